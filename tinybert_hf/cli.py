"""`tinybert-hf`: the recipe and each of its steps from the command line.

```
tinybert-hf distill            fine-tune the teacher (unless --teacher), augment, distil in two stages, report
tinybert-hf finetune-teacher   only fine-tune the teacher        -> <output_dir>/teacher
tinybert-hf augment            only augment the training split  -> <output_dir>/augmented (datasets format)
tinybert-hf general-distill    task-agnostic student from a pretrained encoder on unlabeled text
tinybert-hf task-distill       two-stage distillation from a fine-tuned --teacher
tinybert-hf evaluate           dev and test metrics of a saved model directory
tinybert-hf prune              structured pruning of a saved student, then optional recovery distillation
```

Every subcommand takes `--help`; options are the fields of [`RecipeArguments`] (and of
[`DistillationTrainingArguments`] for `general-distill`). With no data options, the embedded offline defaults
are used: the packaged MiniLM teacher backbone and the packaged Rotten Tomatoes snippets.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

COMMANDS = ("distill", "finetune-teacher", "augment", "general-distill", "task-distill", "evaluate", "prune")


@dataclass
class EvaluateArguments:
    model: str = field(metadata={"help": "Saved model directory or Hub id to evaluate."})


def _recipe(argv: list[str]):
    from .recipe import RecipeArguments

    (arguments,) = HfArgumentParser(RecipeArguments).parse_args_into_dataclasses(args=argv)
    return arguments


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"Unknown command {argv[0]!r}; choose one of {', '.join(COMMANDS)}.", file=sys.stderr)
            return 2
        return 0
    command, rest = argv[0], argv[1:]
    from . import recipe

    if command == "distill":
        recipe.run_recipe(_recipe(rest))
    elif command == "task-distill":
        arguments = _recipe(rest)
        if arguments.teacher is None:
            raise SystemExit("task-distill needs --teacher (a fine-tuned model); `distill` fine-tunes one for you.")
        recipe.run_recipe(arguments)
    elif command == "finetune-teacher":
        arguments = _recipe(rest)
        data, names, tokenizer = recipe.prepare_data(arguments)
        print(f"teacher saved to {recipe.finetune_teacher(data, names, tokenizer, arguments)}")
    elif command == "augment":
        arguments = _recipe(rest)
        data, _, tokenizer = recipe.prepare_data(arguments)
        teacher = recipe.load_embedding_source(arguments)
        augmented = recipe.augment_training_data(data["train"], tokenizer, teacher, arguments)
        output = Path(arguments.output_dir) / "augmented"
        augmented.save_to_disk(str(output))
        print(f"{augmented.num_rows} rows ({data['train'].num_rows} original) saved to {output}")
    elif command == "general-distill":
        from .general_distillation import GeneralDistillationArguments, general_distill
        from .trainer import DistillationTrainingArguments

        parser = HfArgumentParser((GeneralDistillationArguments, DistillationTrainingArguments))
        general, training = parser.parse_args_into_dataclasses(args=rest)
        print(f"general student saved to {general_distill(general, training)}")
    elif command == "evaluate":
        parser = HfArgumentParser((EvaluateArguments, recipe.RecipeArguments))
        evaluate_arguments, arguments = parser.parse_args_into_dataclasses(args=rest)
        print(json.dumps(recipe.evaluate_saved_model(evaluate_arguments.model, arguments), indent=2))
    elif command == "prune":
        from .compress import PruneArguments, prune_saved_model

        parser = HfArgumentParser((PruneArguments, recipe.RecipeArguments))
        prune_arguments, arguments = parser.parse_args_into_dataclasses(args=rest)
        record = prune_saved_model(prune_arguments, arguments)
        for name, entry in record["models"].items():
            score = entry["test"]["score"]
            print(f"{name:>10}: {entry['parameters'] / 1e6:.2f}M parameters, test score {100 * score:.1f}")
        print(
            f"saved to {Path(arguments.output_dir) / 'pruned'}" + (" and recovered/" if "recovery" in record else "")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
