"""`tinybert-hf`: the recipe and each of its steps from the command line.

Each subcommand parses only the option groups of [`~tinybert_hf.recipe.arguments`] it uses (`COMMANDS`), so its
`--help` lists only those, with help that is true for it. Help is printed before anything imports torch or transformers
(the package's `__init__` skips them in a `tinybert-hf ... --help` process, and the parser is transformers'
`HfArgumentParser` module loaded on its own), so it answers in a fraction of a second. Errors the user can fix are one
line, as are Ctrl-C and SIGTERM ([`~tinybert_hf.commands.interruption`]).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import gc
import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_type_hints

from ..errors import USER_ERRORS, BadInputError
from ..quantization.arguments import QuantizeArguments
from ..recipe import arguments as options
from . import arguments as commands_options

USAGE = """usage: tinybert-hf <command> [options]

Distil a fine-tuned BERT-family teacher into a small, fast TinyBERT student, and ship it.

commands:
{commands}

Run `tinybert-hf <command> --help` for a command's options. With no data or teacher options, the recipe runs
offline on its embedded defaults: the packaged MiniLM teacher backbone and the packaged Rotten Tomatoes snippets.
`push` authenticates as huggingface_hub does (HF_TOKEN, else `hf auth login`); it has no token option, so a token
never shows in the process list or the shell history."""

# commands that train, and leave finished steps or checkpoints a rerun of the same command resumes from
RESUMABLE = ("distill", "task-distill", "finetune-teacher", "prune", "general-distill")
_NO_EVAL_FILES = ("eval_files", "eval_label_map", "eval_max_length")


@dataclass(frozen=True)
class Command:
    """One subcommand: what it does (its `--help` description) and the option groups it parses, each whole or cut
    to the named options; `help` replaces an option's help where its meaning differs for this command."""

    summary: str
    groups: tuple = ()
    help: dict = field(default_factory=dict)


def _only(group, *names: str):
    return (group, names)


def _without(group, *names: str):
    return (group, tuple(item.name for item in dataclasses.fields(group) if item.name not in names))


_DATA_FOR_SAVED_MODEL = (
    "Default: the data the model's run recorded (tinybert_results.json, or pruning.json of a pruned model); given, "
    "only what is given is used."
)
COMMANDS = {
    "distill": Command(
        "Fine-tune the teacher (unless --teacher), cut the student from it, augment, distil in two stages, "
        "quantize, measure and report.",
        options.GROUPS,
    ),
    "task-distill": Command(
        "The recipe from an already fine-tuned --teacher (distill without its first step).", options.GROUPS
    ),
    "finetune-teacher": Command(
        "Only fine-tune the teacher -> <output_dir>/teacher.",
        (
            options.OutputArguments,
            _only(options.RunRecordArguments, "save_steps"),
            options.CommonArguments,
            _without(options.DataArguments, *_NO_EVAL_FILES),
            _without(options.TeacherArguments, "teacher"),
            _only(options.DistillationArguments, "batch_size"),
        ),
        help={"batch_size": "Batch size of the teacher's fine-tuning."},
    ),
    "augment": Command(
        "Only augment the training split -> <output_dir>/augmented (datasets format).",
        (
            options.OutputArguments,
            options.CommonArguments,
            _without(options.DataArguments, *_NO_EVAL_FILES),
            _only(options.TeacherArguments, "teacher", "teacher_backbone"),
            _without(options.AugmentationArguments, "augment"),
        ),
        help={
            "teacher": "Fine-tuned teacher whose input embeddings give the candidate words (path or Hub id).",
            "teacher_backbone": "Encoder whose input embeddings give the candidate words; default: packaged MiniLM.",
        },
    ),
    "general-distill": Command("A task-agnostic student from an encoder, on unlabelled text -> <output_dir>/student."),
    "evaluate": Command(
        "Dev and test metrics of a saved model (and of --eval_files), printed as JSON.",
        (
            commands_options.EvaluateArguments,
            _only(options.CommonArguments, "allow_pickle", "seed"),
            options.DataArguments,
        ),
        help={
            "train_file": "Local training data: dev/test are cut from it unless --validation_file/--test_file are "
            "given. " + _DATA_FOR_SAVED_MODEL,
            "seed": "Seed of the dev/test splits cut from the training data (the run's, by default).",
        },
    ),
    "prune": Command(
        "Structured pruning of a saved student (heads, FFN neurons, layers, width), then optional recovery "
        "distillation -> <output_dir>/pruned (and recovered/).",
        (
            commands_options.PruneArguments,
            options.OutputArguments,
            _only(options.RunRecordArguments, "save_steps"),
            options.CommonArguments,
            _without(options.DataArguments, *_NO_EVAL_FILES),
            options.PruningArguments,
            _only(options.TeacherArguments, "teacher"),
            options.DistillationArguments,
        ),
        help={
            "teacher": "Teacher of the recovery distillation (path or Hub id); default: the student before pruning.",
            "train_file": "Local training data: importance is measured on it and recovery trains on it. "
            + _DATA_FOR_SAVED_MODEL,
            "learning_rate": "Learning rate of the recovery distillation.",
            "batch_size": "Batch size of the recovery distillation.",
            "layer_selection": "How --target_layers picks the layers it keeps: 'uniform' or 'importance'.",
            "prediction_loss": "The recovery distillation's loss on the teacher's logits: 'soft_ce', 'kl' or 'mse'.",
            "prediction_intermediate_losses": "Also distil embeddings, attention and hidden states in the recovery.",
            "l1_penalty": "L1 penalty on the attention and FFN weights in the recovery distillation.",
            "l2_penalty": "L2 penalty on the same weights in the recovery distillation.",
            "temperature": "Temperature of the recovery distillation.",
            "seed": "Seed of the calibration rows, of dev/test splits cut from the training data, and of recovery.",
        },
    ),
    "sparsify": Command(
        "Unstructured magnitude pruning of a saved student, its sparsity and metrics reported -> <output_dir>/sparse.",
        (
            commands_options.SparsifyArguments,
            options.OutputArguments,
            options.CommonArguments,
            _without(options.DataArguments, *_NO_EVAL_FILES),
        ),
        help={
            "train_file": "Local training data: dev/test are cut from it unless --validation_file/--test_file are "
            "given. " + _DATA_FOR_SAVED_MODEL,
            "seed": "Seed of the dev/test splits cut from the training data (the run's, by default).",
        },
    ),
    "export": Command(
        "A saved student as an fp32 ONNX model directory (dynamic batch and sequence axes).",
        (commands_options.ExportArguments,),
    ),
    "quantize": Command(
        "A saved student as an int8 ONNX model directory for CPU inference (<model>-int8).",
        (QuantizeArguments,),
    ),
    "card": Command(
        "(Re)write a student's model card (README.md) from what its run recorded.", (commands_options.CardArguments,)
    ),
    "push": Command(
        "Upload a saved student (weights, config, code, tokenizer, card) to the Hub.",
        (commands_options.PushArguments,),
    ),
}


def _hf_argument_parser():
    """transformers' `HfArgumentParser`. When transformers is not imported yet, its parser module is loaded on its own:
    it needs only the standard library and yaml, while importing the transformers package takes most of a second,
    which `--help` should not. A transformers whose parser needs the package gets the usual import."""
    if "transformers" not in sys.modules:
        spec = importlib.util.find_spec("transformers")
        location = Path(spec.origin).parent / "hf_argparser.py" if spec and spec.origin else None
        if location is not None and location.is_file():
            module_spec = importlib.util.spec_from_file_location("tinybert_hf._hf_argparser", location)
            module = importlib.util.module_from_spec(module_spec)
            try:
                module_spec.loader.exec_module(module)
                return module.HfArgumentParser
            except ImportError:
                pass
    from transformers import HfArgumentParser

    return HfArgumentParser


def _group(entry, help_overrides: dict):
    """A dataclass for one entry of `Command.groups`: the group itself, or a copy with only the named options (and
    with `help_overrides` applied), so that `--help` lists exactly what the command uses."""
    group, names = entry if isinstance(entry, tuple) else (entry, None)
    chosen = [item for item in dataclasses.fields(group) if names is None or item.name in names]
    hints = get_type_hints(group)  # the copy is made elsewhere: it takes the types resolved, not as strings
    if names is None and not help_overrides.keys() & {item.name for item in chosen}:
        return group
    copies = []
    for item in chosen:
        metadata = {**item.metadata, "help": help_overrides.get(item.name, item.metadata.get("help"))}
        copy = field(default=item.default, default_factory=item.default_factory, metadata=metadata)
        copies.append((item.name, hints[item.name], copy))
    return dataclasses.make_dataclass(
        group.__name__, copies, namespace={"_argument_group_name": getattr(group, "_argument_group_name", None)}
    )


def _parser(name: str, groups):
    # allow_abbrev=False: argparse would take `--teacher_epoch` for `--teacher_epochs` without a word
    parser = _hf_argument_parser()(
        groups, prog=f"tinybert-hf {name}", description=COMMANDS[name].summary, allow_abbrev=False
    )

    def one_line_error(message: str):  # argparse would print the whole usage first: 60 lines for `distill`
        parser.exit(2, f"tinybert-hf {name}: {message}; `tinybert-hf {name} --help` lists the options.\n")

    parser.error = one_line_error
    _add_turn_off_flags(parser)
    for action in parser._actions:
        if action.help:  # help strings are written with Markdown code spans for the docs; a terminal shows them raw
            action.help = action.help.replace("`", "")
        # HfArgumentParser gives `--no_<flag>` the help of `--<flag>`, which then reads as its opposite
        if action.option_strings and action.option_strings[0].startswith("--no_") and action.nargs == 0:
            action.help = f"Turn off --{action.dest} (see above)."
            action.default = argparse.SUPPRESS  # its flag's default is the one that counts (and is shown)
    return parser


def _add_turn_off_flags(parser: argparse.ArgumentParser):
    """`bool | None` options (None: the recipe picks per task) read as the flags that default to True do: a bare
    `--flag` is true and `--no_<flag>` turns it off (HfArgumentParser gives these only to `bool` fields), so that
    `--augment` and `--no_augment` work whichever default `--augment` has."""
    for action in list(parser._actions):
        if action.default is not None or getattr(action.type, "__name__", None) != "string_to_bool":
            continue
        action.nargs, action.const = "?", True
        group = next(group for group in parser._action_groups if action in group._group_actions)
        names = dict.fromkeys([f"--no_{action.dest}", f"--no-{action.dest.replace('_', '-')}"])
        group.add_argument(*names, action="store_false", dest=action.dest)


def _parse(name: str, argv: list[str]) -> tuple:
    """The command's own arguments (if it has a dataclass of its own) and, for recipe commands, one
    [`~tinybert_hf.recipe.arguments.RecipeArguments`] from its groups. An option value a check refuses is a one-line
    error, as a bad option name is (argparse), not a traceback."""
    command = COMMANDS[name]
    groups = [_group(entry, command.help) for entry in command.groups]
    try:
        parser = _parser(name, groups)
        *parsed, unused = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
        _refuse_unknown_options(name, parser, unused)
        own, recipe_groups = [], []
        for instance, entry in zip(parsed, command.groups, strict=True):
            in_recipe = (entry[0] if isinstance(entry, tuple) else entry) in options.GROUPS
            (recipe_groups if in_recipe else own).append(instance)
        if not recipe_groups:
            return tuple(own)
        return (*own, options.RecipeArguments.from_groups(*recipe_groups))
    except ValueError as error:
        raise BadInputError(str(error)) from None


def _refuse_unknown_options(name: str, parser, unused: list[str]) -> None:
    """One line naming the options the command does not take, with the closest one it does (a typo, usually)."""
    unknown = [argument for argument in unused if argument.startswith("-")] or unused
    if not unknown:
        return
    known = [option for action in parser._actions for option in action.option_strings]
    hints = []
    for option in unknown:
        close = difflib.get_close_matches(option.split("=")[0], known, n=1)
        hints.append(f"{option} (did you mean {close[0]}?)" if close else option)
    raise BadInputError(
        f"`tinybert-hf {name}` does not take {', '.join(hints)}; `tinybert-hf {name} --help` lists its options."
    )


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {command.summary}" for name, command in COMMANDS.items()]
    return USAGE.format(commands="\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    from ..utils.processes import exit_launched_process

    return exit_launched_process(_main(argv))  # under a launcher, a process that ran a process group exits there


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] not in COMMANDS:
        close = difflib.get_close_matches(argv[0], COMMANDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(
            f"tinybert-hf: unknown command {argv[0]!r}{hint}; choose one of {', '.join(COMMANDS)} "
            "(`tinybert-hf --help` says what each does).",
            file=sys.stderr,
        )
        return 2
    command = argv[0]
    output_dir = None
    try:
        parsed = _parse_command(command, argv[1:])  # `--help` prints and exits here, before torch is imported
        if command in RESUMABLE:
            output_dir = next(group.output_dir for group in parsed if hasattr(group, "output_dir"))
        from .interruption import stop_signals_as_interrupts

        with stop_signals_as_interrupts():
            return _run(command, parsed)
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM: what was kept, and how to go on
        from ..errors import RunTerminated
        from .interruption import interruption_message

        # progress bars still held by the unwound frames would otherwise be closed (and drawn) after the message
        stop.__traceback__ = None
        gc.collect()

        print(f"\ntinybert-hf {command}: {interruption_message(stop, output_dir)}", file=sys.stderr)
        return 143 if isinstance(stop, RunTerminated) else 130
    # the message says it all; a traceback would not (OSError: transformers' "not a model directory or Hub id",
    # missing files, a full disk)
    except (OSError, *USER_ERRORS) as error:
        print(f"tinybert-hf {command}: {error}", file=sys.stderr)
        return 1


def _parse_command(command: str, rest: list[str]) -> tuple:
    if command != "general-distill":
        return _parse(command, rest)
    # its options are TrainingArguments': its help needs transformers
    from ..distillation.arguments import DistillationTrainingArguments
    from ..distillation.general_distillation import GeneralDistillationArguments

    parser = _hf_argument_parser()(
        (GeneralDistillationArguments, DistillationTrainingArguments),
        prog="tinybert-hf general-distill",
        description=COMMANDS[command].summary,
    )
    try:
        return tuple(parser.parse_args_into_dataclasses(args=rest))
    except ValueError as error:
        raise BadInputError(str(error)) from None


def _run(command: str, parsed: tuple) -> int:
    """Run the subcommand's module (`commands/<name>.py`, imported only now: the heavy imports are there)."""
    from ..utils.processes import end_process_group

    module = importlib.import_module(f".{command.replace('-', '_')}", __package__)
    try:
        module.run(*parsed)
    except BaseException:  # under a launcher: every process leaves the group, whether the command ended or failed
        end_process_group(finished=False)
        raise
    end_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
