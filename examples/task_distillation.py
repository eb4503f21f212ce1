"""TinyBERT's task distillation from an already fine-tuned teacher: stage 1 (intermediate layers), stage 2
(prediction layer, cached teacher logits, best dev epoch kept), then the test table and chart.

Run:
    python examples/task_distillation.py --teacher outputs/rt/teacher --output_dir outputs/rt
    python examples/task_distillation.py --teacher textattack/bert-base-uncased-SST-2 --dataset glue \
        --dataset_config sst2 --text_column sentence --output_dir outputs/sst2 --student_init random \
        --student_layers 4
"""

from transformers import HfArgumentParser

from tinybert_hf.recipe.arguments import RecipeArguments
from tinybert_hf.recipe.run import run_recipe


def main() -> None:
    (arguments,) = HfArgumentParser(RecipeArguments).parse_args_into_dataclasses()
    if arguments.teacher is None:
        raise SystemExit("Pass --teacher (a fine-tuned model); examples/finetune_teacher.py makes one.")
    run_recipe(arguments)


if __name__ == "__main__":
    main()
