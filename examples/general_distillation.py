"""TinyBERT's general distillation: a task-agnostic student from a pretrained encoder, on streamed unlabeled text.

Run:
    python examples/general_distillation.py --output_dir outputs/general --max_steps 200   # packaged teacher + text
    python examples/general_distillation.py --teacher bert-base-uncased --corpus wiki.txt --max_steps 100000 \
        --per_device_train_batch_size 256 --output_dir outputs/general
Then start task distillation from it: `tinybert-hf distill --student_init outputs/general/student ...`.
"""

from transformers import HfArgumentParser

from tinybert_hf.distillation.arguments import DistillationTrainingArguments
from tinybert_hf.distillation.general_distillation import GeneralDistillationArguments, general_distill


def main() -> None:
    parser = HfArgumentParser((GeneralDistillationArguments, DistillationTrainingArguments))
    general, training = parser.parse_args_into_dataclasses()
    print(f"general student saved to {general_distill(general, training)}")


if __name__ == "__main__":
    main()
