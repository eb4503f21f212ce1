"""What the recipe checks before it does any work: the teacher (its architecture, head and labels), model paths
and the student init. A refused input is one line, given before anything is written."""

from __future__ import annotations

import difflib
from pathlib import Path

from transformers.utils import logging

from ..data.packaged import packaged_teacher_path
from ..data.tasks import TASKS
from ..errors import BadInputError
from ..pruning.layouts import layout_of_config
from .arguments import STUDENT_INITS, RecipeArguments

logger = logging.get_logger(__name__)


# the encoder families the recipe distils, each with every loss it allows: a TinyBERT student (random or
# general-distilled) learns from any of them, and each has a pruning layout (`pruning.layouts.LAYOUTS`), so a student
# is cut from any of them too (`--student_init pruned-teacher` / `layer-subset`)
ENCODER_TEACHER_TYPES = (
    "bert", "tinybert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert", "modernbert", "mpnet",
    "deberta-v2",
)  # fmt: skip
CUT_FROM_TEACHER = ("pruned-teacher", "layer-subset")


def teacher_source(args: RecipeArguments) -> str:
    """The teacher (`--teacher`), else the backbone the recipe fine-tunes into one, else the packaged MiniLM."""
    for option in ("teacher", "teacher_backbone"):
        check_model_reference(getattr(args, option), f"--{option}")
    return args.teacher or args.teacher_backbone or str(packaged_teacher_path())


def check_model_reference(reference: str | None, option: str) -> None:
    """Refuse a local model path that does not exist (transformers would read it as a malformed Hub id): a Hub id is
    `name` or `org/name`, so anything else, or anything starting like a path, must be a directory here."""
    if reference is not None and (Path(reference) / "model.onnx").is_file():
        raise BadInputError(
            f"`{option} {reference}` is an exported ONNX model; this command takes a PyTorch model directory (the "
            "student it was exported from). The recipe's results.json already scores the int8 student."
        )
    if reference is None or Path(reference).expanduser().exists():
        return
    parts = reference.split("/")
    if reference.startswith((".", "/", "~")) or len(parts) > 2 or not all(parts):
        raise FileNotFoundError(
            f"`{option} {reference}`: no such directory (a saved model directory or a Hub model id)."
        )


def check_teacher_architecture(config, path: str | Path, student_init: str) -> None:
    """Refuse, before any work, a teacher (or backbone) the recipe cannot distil into the chosen student: any encoder
    of `ENCODER_TEACHER_TYPES`, with a pruning layout its config does not contradict when the student is cut from
    it."""
    model_type = getattr(config, "model_type", None)
    if model_type not in ENCODER_TEACHER_TYPES:
        raise BadInputError(
            f"The teacher {path} is a {model_type!r} model, not an encoder the recipe distils (model_type "
            f"{', '.join(map(repr, ENCODER_TEACHER_TYPES))}: BERT, MiniLM, TinyBERT, RoBERTa, XLM-R, ELECTRA, "
            "DistilBERT, ModernBERT, MPNet and DeBERTa-v2/v3 checkpoints). Pass one as `--teacher` (fine-tuned) or "
            "`--teacher_backbone` (to fine-tune)."
        )
    if student_init in CUT_FROM_TEACHER:
        layout_of_config(config)  # e.g. a DeBERTa-v2 with a convolution: refused before any work


def check_teacher(config, path: str | Path, names: list[str], args: RecipeArguments) -> None:
    """Refuse a fine-tuned teacher without the task's head (stage 2 learns its predictions) or with another number
    of labels than the data has; warn when its labels are named differently."""
    check_teacher_architecture(config, path, args.student_init)
    head = TASKS[args.task].head
    architectures = getattr(config, "architectures", None) or []
    if not any(name.endswith(head) for name in architectures):
        raise BadInputError(
            f"The teacher {path} has no {args.task} head (architectures: {architectures or 'none recorded'}), and the "
            "prediction stage learns from the teacher's predictions. Pass it as `--teacher_backbone` to have the "
            "recipe fine-tune it first (or run `tinybert-hf finetune-teacher`)."
        )
    if config.num_labels != len(names):
        raise BadInputError(
            f"The teacher {path} predicts {config.num_labels} labels ({list(config.id2label.values())}) but the data "
            f"has {len(names)} ({names}): distil a teacher fine-tuned on these labels."
        )
    teacher_names = [config.id2label[index] for index in range(config.num_labels)]
    if teacher_names != names and not all(name == f"LABEL_{index}" for index, name in enumerate(teacher_names)):
        logger.warning(f"The teacher's labels {teacher_names} are named differently from the data's {names}.")


def general_student_path(args: RecipeArguments) -> str | None:
    """The general-distilled student `--student_init general:<path>` names (`None` for the other inits), refused
    when it names nothing: a misspelt init (`prunned-teacher`) would otherwise be read as a path."""
    if args.student_init in STUDENT_INITS:
        return None
    path = args.student_init.removeprefix("general:")
    if not Path(path).expanduser().exists() and (path.startswith((".", "/", "~")) or path.count("/") != 1):
        close = difflib.get_close_matches(path, STUDENT_INITS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise BadInputError(
            f"`--student_init {path}` is not one of {', '.join(STUDENT_INITS)} and no general-distilled student "
            f"(directory or Hub id) is there: {hint}A general student is given as `general:<path>`."
        )
    return path
