"""Dev and test metrics of a saved student (or any saved classifier) on the recipe's data.

Run:
    python examples/evaluate_student.py --model outputs/rt/student
    python examples/evaluate_student.py --model outputs/ner/student --task token-classification
"""

import json

from transformers import AutoTokenizer, HfArgumentParser

from tinybert_hf.cli import EvaluateArguments
from tinybert_hf.recipe import RecipeArguments, evaluate_model, model_class, prepare_data, tokenize


def main() -> None:
    wanted, arguments = HfArgumentParser((EvaluateArguments, RecipeArguments)).parse_args_into_dataclasses()
    data, names, _ = prepare_data(arguments)
    tokenizer = AutoTokenizer.from_pretrained(wanted.model)
    model = model_class(arguments).from_pretrained(wanted.model)
    tokenized = tokenize(data, tokenizer, arguments)
    scores = {
        split: evaluate_model(model, tokenized[split], tokenizer, names, arguments) for split in ("validation", "test")
    }
    print(json.dumps(scores, indent=2))


if __name__ == "__main__":
    main()
