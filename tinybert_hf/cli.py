"""`tinybert-hf`: the recipe and each of its steps from the command line.

```
tinybert-hf distill            fine-tune the teacher (unless --teacher), augment, distil in two stages, report
tinybert-hf finetune-teacher   only fine-tune the teacher        -> <output_dir>/teacher
tinybert-hf augment            only augment the training split  -> <output_dir>/augmented (datasets format)
tinybert-hf general-distill    task-agnostic student from an encoder, on unlabeled text -> <output_dir>/student
tinybert-hf task-distill       two-stage distillation from a fine-tuned --teacher
tinybert-hf evaluate           dev and test metrics of a saved model directory
tinybert-hf prune              structured pruning of a saved student, then optional recovery distillation
tinybert-hf sparsify           unstructured magnitude pruning of a saved student, sparsity and metrics reported
tinybert-hf export             a saved student as an fp32 ONNX model directory (dynamic batch and sequence axes)
tinybert-hf quantize           a saved student as an int8 ONNX model directory for CPU inference (<model>-int8)
tinybert-hf card               (re)write a student's model card (README.md) from what its run recorded
tinybert-hf push               upload a saved student (weights, config, code, tokenizer, card) to the Hub
```

Every subcommand takes `--help`; options are the fields of [`RecipeArguments`] (and of
[`DistillationTrainingArguments`] for `general-distill`). With no data options, the embedded offline defaults
are used: the packaged MiniLM teacher backbone and the packaged Rotten Tomatoes snippets. `push` authenticates as
`huggingface_hub` does (`HF_TOKEN`, else `hf auth login`); it has no token option, so a token never shows in the
process list or the shell history.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

COMMANDS = (
    "distill",
    "finetune-teacher",
    "augment",
    "general-distill",
    "task-distill",
    "evaluate",
    "prune",
    "sparsify",
    "export",
    "quantize",
    "card",
    "push",
)


@dataclass
class EvaluateArguments:
    model: str = field(metadata={"help": "Saved model directory or Hub id to evaluate."})


@dataclass
class CardArguments:
    model: str = field(metadata={"help": "Student directory written by the recipe (holds tinybert_results.json)."})
    repo_id: str | None = field(default=None, metadata={"help": "Hub repository named in the loading examples."})


@dataclass
class ExportArguments:
    model: str = field(metadata={"help": "Saved student directory to export (read only)."})
    output_dir: str | None = field(
        default=None, metadata={"help": "Where the ONNX model goes (default: <model>-onnx)."}
    )
    opset_version: int = field(default=18, metadata={"help": "ONNX opset of the graph."})


def _parse(dataclasses, argv: list[str]) -> tuple:
    """Parse `argv` into the dataclasses; an option value their validation refuses is a one-line error, as a bad
    option name is (argparse), not a traceback."""
    from .errors import BadInputError

    try:
        return HfArgumentParser(dataclasses).parse_args_into_dataclasses(args=argv)
    except ValueError as error:
        raise BadInputError(str(error)) from None


def _recipe(argv: list[str]):
    from .recipe import RecipeArguments

    (arguments,) = _parse(RecipeArguments, argv)
    return arguments


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"Unknown command {argv[0]!r}; choose one of {', '.join(COMMANDS)}.", file=sys.stderr)
            return 2
        return 0
    from .errors import USER_ERRORS
    from .hub import PushError

    try:
        return _run(argv[0], argv[1:])
    # the message says it all; a traceback would not (OSError: transformers' "not a model directory or Hub id",
    # missing files, a full disk)
    except (PushError, OSError, *USER_ERRORS) as error:
        print(f"tinybert-hf {argv[0]}: {error}", file=sys.stderr)
        return 1


def _run(command: str, rest: list[str]) -> int:
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

        general, training = _parse((GeneralDistillationArguments, DistillationTrainingArguments), rest)
        print(f"general student saved to {general_distill(general, training)}")
    elif command == "evaluate":
        evaluate_arguments, arguments = _parse((EvaluateArguments, recipe.RecipeArguments), rest)
        print(json.dumps(recipe.evaluate_saved_model(evaluate_arguments.model, arguments), indent=2))
    elif command == "prune":
        from .compress import PruneArguments, prune_saved_model

        prune_arguments, arguments = _parse((PruneArguments, recipe.RecipeArguments), rest)
        record = prune_saved_model(prune_arguments, arguments)
        for name, entry in record["models"].items():
            score = entry["test"]["score"]
            print(f"{name:>10}: {entry['parameters'] / 1e6:.2f}M parameters, test score {100 * score:.1f}")
        print(
            f"saved to {Path(arguments.output_dir) / 'pruned'}" + (" and recovered/" if "recovery" in record else "")
        )
    elif command == "sparsify":
        from .compress import SparsifyArguments, sparsify_saved_model

        sparsify_arguments, arguments = _parse((SparsifyArguments, recipe.RecipeArguments), rest)
        record = sparsify_saved_model(sparsify_arguments, arguments)
        for name, entry in record["models"].items():
            print(
                f"{name:>7}: {100 * entry['linear_sparsity']:.1f}% of layer weights zero "
                f"({100 * entry['overall_sparsity']:.1f}% of all), test score {100 * entry['test']['score']:.1f}, "
                f"{entry['size_mb']} MB on disk, {entry['compressed_mb']} MB compressed"
            )
        print(f"saved to {Path(arguments.output_dir) / 'sparse'}; {record['note']}")
    elif command == "export":
        from .onnx_export import export_saved_model

        (export_arguments,) = _parse(ExportArguments, rest)
        exported = export_saved_model(
            export_arguments.model, export_arguments.output_dir, export_arguments.opset_version
        )
        print(f"ONNX model saved to {exported}")
    elif command == "quantize":
        from .quantization import QuantizeArguments, quantize_saved_model

        (quantize_arguments,) = _parse(QuantizeArguments, rest)
        record = quantize_saved_model(quantize_arguments)
        sizes = record["size_mb"]
        print(
            f"int8 model saved to {record['output_dir']}: {sizes['int8_onnx']} MB "
            f"({sizes['fp32_onnx']} MB fp32 ONNX), largest logit change on the check batches "
            f"{record['max_logit_change_on_check_batches']}"
        )
    elif command == "card":
        from .model_card import write_model_card

        (card_arguments,) = _parse(CardArguments, rest)
        print(f"model card written to {write_model_card(card_arguments.model, repo_id=card_arguments.repo_id)}")
    elif command == "push":
        from .hub import PushArguments, push_student

        (push_arguments,) = _parse(PushArguments, rest)
        info = push_student(
            push_arguments.model,
            push_arguments.repo_id,
            private=push_arguments.private,
            revision=push_arguments.revision,
            commit_message=push_arguments.commit_message,
            create_pr=push_arguments.create_pr,
        )
        print(f"pushed {push_arguments.model} to {info.commit_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
