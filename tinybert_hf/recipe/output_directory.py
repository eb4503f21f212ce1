"""The recipe's output directory: what it holds, and when a run may use it.

Each step writes its own directory under `output_dir`, whole or not at all (assembled under a hidden name and
renamed into place with its `stage_done.json`). A rerun with the same output directory and settings reuses finished
steps and resumes an interrupted one from its newest complete Trainer checkpoint, so a run killed at any point ends
with the same models as one never interrupted; `run.json` records the settings and a digest of the rows the models
learn from (training and dev splits, transfer text), and a directory holding another run, a run made from other
rows (an edited data file), or another model is refused unless `--overwrite_output_dir`.

```
output_dir/
  teacher/                fine-tuned teacher (skipped when --teacher is a fine-tuned model)
  run.json                the settings the directory's models are made with (checked on every rerun)
  cache/                  augmented data, teacher logits (of the training rows and the transfer text)
  student_recovered/      after recovery on the transfer text (--recovery_steps): the cut layers' general features
  student_intermediate/   after stage 1 (embedding + attention + hidden losses)
  student/                after stage 2 (prediction layer), best on the dev split: the deliverable
  checkpoints/<step>/     Trainer checkpoints of the running step (for resuming; removed when the step is done)
  baseline/               the same student architecture fine-tuned on hard labels only (for comparison)
  results.json            every figure of the final table, with the settings that produced it
  results.png             the chart
```
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
from transformers.utils import logging

from ..errors import OutputDirectoryError
from ..utils.atomic import write_text
from .arguments import RecipeArguments

logger = logging.get_logger(__name__)


RUN_RECORD = "run.json"


# what the recipe writes under output_dir: what `--overwrite_output_dir` removes (nothing else is touched)
RECIPE_OUTPUTS = (
    "teacher", "cache", "student_initial", "student_recovered", "student_intermediate", "student", "student-int8",
    "baseline",
    "checkpoints", "results.json", "results.png", RUN_RECORD,
)  # fmt: skip


# settings that change no model: a rerun may change them and still reuse and resume the directory's steps
SETTINGS_OUTSIDE_MODELS = (
    "output_dir", "overwrite_output_dir", "allow_pickle", "baseline", "int8", "push_to_hub",
    "hub_model_id", "hub_strategy", "hub_private_repo", "speed_batch_size", "speed_seq_length",
    "eval_files", "eval_label_map", "eval_max_length", "process_timeout",
)  # fmt: skip


def model_settings(args: RecipeArguments, data_digests: dict[str, str | None] | None = None) -> dict:
    """The settings that decide what the recipe's models are (all but `SETTINGS_OUTSIDE_MODELS`), JSON-normalized,
    with the `data_digests` of the rows they learn from under `data` when given."""
    settings = {key: value for key, value in asdict(args).items() if key not in SETTINGS_OUTSIDE_MODELS}
    if data_digests is not None:
        settings["data"] = data_digests
    return json.loads(json.dumps(settings, default=str))


def dataset_digest(dataset) -> str | None:
    """sha256 of a [`~datasets.Dataset`]'s rows as they are seen (after any selection), columns and types included:
    two datasets share it exactly when they hold the same rows in the same order. `None` for no dataset."""
    if dataset is None:
        return None
    # the visible rows, whatever indices mapping the dataset carries, in one chunk (the stream below writes chunk
    # boundaries too, and a selection splits the table into chunks of its own), without the schema's metadata, which
    # holds `datasets`' fingerprint: that names how the rows were made (the tokenizer's files), not what they are
    table = dataset.with_format("arrow")[:].combine_chunks().replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def prepare_output_dir(args: RecipeArguments, data_digests: dict[str, str | None] | None = None) -> Path:
    r"""
    Create `args.output_dir`, or check that what it holds was made with these settings and from the same rows (its
    finished steps are then reused and an interrupted one resumes), and record both in `run.json`.

    `data_digests` names the rows the models learn from (e.g. `{"train": dataset_digest(...), "transfer": ...}`):
    a data file edited between two runs gives another digest, so its stale students are not reused. A run recorded
    without digests (an earlier version) is checked on its settings only.

    Raises:
        [`~tinybert_hf.errors.OutputDirectoryError`]: the directory holds a run made with other settings, a model, or
            other files, and `overwrite_output_dir` is off. With it, the recipe's own outputs there
            (`RECIPE_OUTPUTS`) are deleted; nothing else is.
    """
    output_dir = Path(args.output_dir)
    settings = model_settings(args, data_digests)
    conflict = _output_dir_conflict(output_dir, settings)
    if conflict and not args.overwrite_output_dir:
        raise OutputDirectoryError(
            f"{output_dir} {conflict}. Choose another `--output_dir`, or pass `--overwrite_output_dir true` to delete "
            "the recipe's outputs there and start over."
        )
    if conflict:
        logger.warning(f"{output_dir} {conflict}: deleting the recipe's outputs there (`--overwrite_output_dir`).")
        for name in RECIPE_OUTPUTS:
            path = output_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_text(output_dir / RUN_RECORD, json.dumps({"settings": settings}, indent=2))
    # `datasets` writes a cache under a temporary name and renames it when complete: these are from killed runs
    for leftover in (output_dir / "cache").glob("tmp*"):
        logger.info(f"Removing {leftover}, a cache file an interrupted run left half-written.")
        leftover.unlink()
    return output_dir


def _output_dir_conflict(output_dir: Path, settings: dict) -> str | None:
    """Why `output_dir` cannot take this run's outputs as it is, or `None`."""
    if not output_dir.is_dir() or not any(output_dir.iterdir()):
        return None
    record, results = output_dir / RUN_RECORD, output_dir / "results.json"
    if record.is_file():
        recorded = json.loads(record.read_text())["settings"]
    elif results.is_file():  # a run of an earlier version, which wrote no run.json
        recorded = json.loads(results.read_text()).get("settings", {})
    elif (output_dir / "config.json").is_file():
        return "holds a model (config.json), not a tinybert-hf run"
    else:
        names = sorted(path.name for path in output_dir.iterdir())
        return f"holds files no tinybert-hf run wrote ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})"
    changed = [key for key, value in settings.items() if key != "data" and key in recorded and recorded[key] != value]
    if changed:  # named first: another `--train_file` changes the rows too, and the option is what the user changed
        differences = "; ".join(f"{key}: {recorded[key]!r} there, {settings[key]!r} now" for key in changed[:5])
        return f"holds a run made with other settings ({differences})"
    data_there, data_now = recorded.get("data") or {}, settings.get("data") or {}
    edited = [part for part, digest in data_now.items() if part in data_there and data_there[part] != digest]
    if edited:  # the same options, but a file they name holds other rows than when that run read it
        return f"holds a run made from other rows of the same options: the {' and '.join(edited)} data changed since"
    return None


LAUNCH_MARKER = ".launch"  # a multi-process run's id, written by the main process for the others to find


def check_shared_with_every_process(output_dir: Path) -> None:
    """Under several processes, check that every one of them sees what the main process writes in `output_dir`:
    the others read the steps, caches and student it writes there. On machines without a shared file system
    (NFS, a cluster's shared disk) each would otherwise look at a directory of its own. Nothing with one process.

    Raises:
        [`~tinybert_hf.errors.OutputDirectoryError`]: on every process, when one of them does not see the main
            process's file.
    """
    from ..utils.processes import agree_on_failure, launched_processes, on_main_process, process_index

    if launched_processes() == 1:
        return
    marker = output_dir / LAUNCH_MARKER

    def write_marker() -> str:
        launch = uuid.uuid4().hex
        write_text(marker, launch)
        return launch

    launch = on_main_process(write_marker, share_result=True)
    seen = marker.read_text() if marker.is_file() else None
    error = None
    if seen != launch:
        error = OutputDirectoryError(
            f"Process {process_index()} does not see what the main process writes in {output_dir}: the processes of "
            "a run share its output directory. On several machines, give an `--output_dir` on a file system they "
            "all mount (NFS, the cluster's shared disk)."
        )
    agree_on_failure(error)
