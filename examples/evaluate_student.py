"""Dev and test metrics of a saved student (or any saved classifier) on the recipe's data.

Run:
    python examples/evaluate_student.py --model outputs/rt/student
    python examples/evaluate_student.py --model outputs/ner/student --task token-classification
"""

import json

from transformers import HfArgumentParser

from tinybert_hf.commands.arguments import EvaluateArguments
from tinybert_hf.commands.evaluate import evaluate_saved_model
from tinybert_hf.recipe.arguments import RecipeArguments


def main() -> None:
    wanted, arguments = HfArgumentParser((EvaluateArguments, RecipeArguments)).parse_args_into_dataclasses()
    print(json.dumps(evaluate_saved_model(wanted.model, arguments), indent=2))


if __name__ == "__main__":
    main()
