"""One training step, run the one way every step runs (each step of the recipe, general distillation): skipped when
done, resumed when interrupted, timed, and saved whole or not at all.

A step owns a directory under an output directory (`teacher/`, `student_intermediate/`, `student/`, ...). It is
finished when that directory holds its `stage_done.json` record, written last inside the staging directory that is
renamed into place; its Trainer checkpoints live beside it (`checkpoints/<step>/`, the Trainer's `output_dir`) and
are removed once it is finished.

Under several processes every process trains, and the main process alone writes the record, renames the step into
place and removes its checkpoints (see [`~tinybert_hf.utils.processes`]); the others wait, so every process
leaves a step with the same finished directory to read.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from transformers import Trainer
from transformers.utils import logging

from .atomic import DONE_MARKER, commit_staging, last_complete_checkpoint, staging_path, start_staging, write_text
from .processes import is_main_process, on_main_process, wait_for_everyone

logger = logging.get_logger(__name__)


def finished_step(directory: str | Path) -> dict | None:
    """The record of the finished step in `directory` (what [`run_training_step`] saved), or `None` when the step has
    not finished."""
    marker = Path(directory) / DONE_MARKER
    return json.loads(marker.read_text()) if marker.is_file() else None


def run_training_step(
    directory: Path, build_trainer: Callable[[], Trainer], finish: Callable[[Trainer], dict] | None = None
) -> dict:
    """
    Run one training step into `directory`, unless it finished in an earlier run.

    Args:
        directory (`Path`): the step's output: the trained model, with its record.
        build_trainer (`Callable[[], Trainer]`): the step's Trainer; called only when the step has to run, so a
            finished step costs no data preparation. Its `args.output_dir` holds the checkpoints it resumes from.
        finish (`Callable[[Trainer], dict]`, *optional*): what runs after training, before the save (evaluate the
            best epoch, strip training-only modules); its dict joins the record.

    Returns:
        `dict`: the step's record: its wall `seconds` (building the trainer, which may cache teacher logits, training
        and finishing), plus what `finish` returned. A reused step returns the record it saved.
    """
    done = finished_step(directory)
    if done is not None:
        logger.info(f"Reusing the finished step in {directory}.")
        return done
    start = time.perf_counter()
    trainer = build_trainer()
    # the main process removes checkpoints cut short; the others skip them, then wait until they are gone
    checkpoint = last_complete_checkpoint(trainer.args.output_dir, remove_incomplete=is_main_process())
    wait_for_everyone()
    if checkpoint:
        logger.warning(f"Resuming from {checkpoint}, where an earlier run of this step stopped.")
    trainer.train(resume_from_checkpoint=checkpoint)
    extra = finish(trainer) if finish else {}
    record = {"seconds": time.perf_counter() - start, **extra}
    _save(trainer, directory, record)
    return record


def _save(trainer: Trainer, directory: Path, record: dict) -> None:
    """Weights, config, code and tokenizer of the trained model with its `stage_done.json` record, renamed into place
    only when complete (a kill meanwhile leaves the step unfinished, never half-written). Not Trainer's pickled
    `training_args.bin`: the settings are in `results.json`, and a model directory should hold nothing that loading
    would have to unpickle. The step's checkpoints, which only served resuming it, are removed."""
    staging = on_main_process(lambda: start_staging(directory)) or staging_path(directory)
    # every process: under DeepSpeed ZeRO-3 and FSDP the weights are gathered from all of them; the main one writes.
    # `_internal_call`: with push_to_hub, Trainer would also push its checkpoint directory here; the recipe pushes
    # the finished student itself, with its card
    try:
        trainer.save_model(str(staging), _internal_call=True)
    except BaseException:  # the staging directory goes, the previous step directory (if any) stays untouched
        if is_main_process():
            shutil.rmtree(staging, ignore_errors=True)
        raise

    def commit() -> None:
        (staging / "training_args.bin").unlink(missing_ok=True)
        write_text(staging / DONE_MARKER, json.dumps(record, indent=2))
        commit_staging(staging, directory)
        shutil.rmtree(trainer.args.output_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # `checkpoints/` itself once no step has any left
            Path(trainer.args.output_dir).parent.rmdir()

    on_main_process(commit)
