"""Step 1 of the recipe on its own: fine-tune a pretrained backbone into the teacher (a plain `Trainer` run).

Run:
    python examples/finetune_teacher.py --output_dir outputs/rt                      # packaged MiniLM, RT snippets
    python examples/finetune_teacher.py --teacher_backbone bert-base-uncased --dataset glue --dataset_config sst2 \
        --text_column sentence --output_dir outputs/sst2                              # online
"""

from transformers import HfArgumentParser

from tinybert_hf.recipe.arguments import RecipeArguments
from tinybert_hf.recipe.run import prepare_data
from tinybert_hf.recipe.steps import finetune_teacher


def main() -> None:
    (arguments,) = HfArgumentParser(RecipeArguments).parse_args_into_dataclasses()
    data, names, tokenizer = prepare_data(arguments)
    directory = finetune_teacher(data, names, tokenizer, arguments)
    tokenizer.save_pretrained(directory)
    print(f"teacher saved to {directory}")


if __name__ == "__main__":
    main()
