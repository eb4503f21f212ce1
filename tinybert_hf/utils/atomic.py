"""Outputs that appear whole or not at all: a crash, a SIGKILL or a full disk while saving never leaves a directory
that loads as a half-written model, and never loses the previous complete version.

A directory is assembled under a hidden sibling name (`.<name>.partial`) and renamed into place once every file is
written (a rename within one file system is atomic); single files go through a temporary file and `os.replace`.
Trainer checkpoints are written by Trainer itself; [`last_complete_checkpoint`] tells a finished one (Trainer
writes `trainer_state.json` last) from one cut short.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging

from ..errors import CorruptWeightsError
from .safe_loading import check_safetensors_file, safetensors_files

logger = logging.get_logger(__name__)

DONE_MARKER = "stage_done.json"  # what a finished recipe step writes into its directory, last

PARTIAL_SUFFIX = ".partial"
TRAINER_STATE = "trainer_state.json"  # written by Trainer after the model, optimizer, scheduler and RNG states


def write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same directory: readers see the old or the new file."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}{PARTIAL_SUFFIX}")
    with open(temporary, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    r"""
    Yield an empty staging directory; when the block ends without an error it replaces `path` (whose previous
    version, if any, is removed only after the new one is in place). On an error the staging directory is removed
    and `path` is untouched; after a kill, the staging directory is left under a hidden name and cleared by the next
    save to `path`.

    Example:

    ```python
    >>> from tinybert_hf.utils.atomic import atomic_directory

    >>> with atomic_directory("outputs/student") as staging:  # doctest: +SKIP
    ...     model.save_pretrained(staging)
    ```
    """
    staging = start_staging(path)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    commit_staging(staging, path)


def staging_path(path: str | Path) -> Path:
    """The hidden sibling (`.<name>.partial`) that `path` is assembled in: the same on every process of a run."""
    path = Path(path)
    return path.with_name(f".{path.name}{PARTIAL_SUFFIX}")


def start_staging(path: str | Path) -> Path:
    """An empty [`staging_path`] of `path` (leftovers of a killed save cleared): the first half of
    [`atomic_directory`], for saves that several processes take part in."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_path(path)
    for leftover in (staging, path.with_name(f".{path.name}.previous")):
        shutil.rmtree(leftover, ignore_errors=True)
    staging.mkdir()
    return staging


def commit_staging(staging: Path, path: str | Path) -> None:
    """Put the complete `staging` directory in place of `path` (its previous version removed only afterwards)."""
    path = Path(path)
    previous = path.with_name(f".{path.name}.previous")
    if path.exists():
        path.rename(previous)
    staging.rename(path)
    shutil.rmtree(previous, ignore_errors=True)


def _step(checkpoint: Path) -> int:
    return int(checkpoint.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-"))


def is_complete_checkpoint(checkpoint: str | Path) -> bool:
    """Whether Trainer finished writing `checkpoint`: its state file exists and its safetensors weights (if any:
    FSDP and DeepSpeed checkpoints keep theirs in their own formats) are whole."""
    checkpoint = Path(checkpoint)
    if not (checkpoint / TRAINER_STATE).is_file():
        return False
    try:
        for file in safetensors_files(checkpoint):
            check_safetensors_file(file)
    except CorruptWeightsError:
        return False
    return True


def last_complete_checkpoint(run_dir: str | Path, remove_incomplete: bool = True) -> str | None:
    r"""
    The newest checkpoint under `run_dir` that Trainer finished writing, or `None`.

    Checkpoints cut short by a crash (no `trainer_state.json`, or truncated weights) are skipped and, with
    `remove_incomplete`, deleted with a warning: Trainer would otherwise count the newest of them when it rotates
    checkpoints and delete the complete one resuming relies on.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    pattern = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
    checkpoints = sorted(
        (path for path in run_dir.iterdir() if path.is_dir() and pattern.match(path.name)), key=_step, reverse=True
    )
    for checkpoint in checkpoints:
        if is_complete_checkpoint(checkpoint):
            return str(checkpoint)
        logger.warning(f"{checkpoint} was cut short while it was written (no {TRAINER_STATE} or truncated weights).")
        if remove_incomplete:  # every process of a multi-process run may get here: the first one removes it
            shutil.rmtree(checkpoint, ignore_errors=True)
    return None
