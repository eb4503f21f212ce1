"""The processes of one run (`accelerate launch`, `torchrun`, mpirun): which work runs once, on the main process,
and how the others wait for it without hanging when it fails.

Training steps run on every process (Trainer splits the batches). Everything else that writes (the output
directory's `run.json`, the cut of the student, teacher-logit caches, reports, the int8 export, the card, the push)
runs on the main process only, behind a barrier, through [`on_main_process`] or [`main_process_first`]. Both end
with one small collective in which every process says whether its part failed: a failure on any process stops all
of them, each with the failing process's message, instead of leaving the others waiting in their next collective
until the process group's timeout (30 minutes by default).

With one process every helper here runs its work directly and starts nothing: no process group, no collective.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TypeVar

from ..errors import ProcessFailedError

T = TypeVar("T")

_LAUNCHER_VARIABLES = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")  # torchrun/accelerate, Open MPI, Intel MPI


def launched_processes() -> int:
    """How many processes the launcher started (1 when run directly), read from its environment: no process group
    is started to find out."""
    for name in _LAUNCHER_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


_RANK_VARIABLES = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")


def cpu_process_group_needed() -> bool:
    """Whether `TrainingArguments` need `use_cpu=True` for this launch to train as one process group: several
    processes on a machine without an accelerator. Without it, under a plain `torchrun` Trainer would train every
    process alone, on its own copy of the data, and say nothing. (Not under a DeepSpeed launch config: DeepSpeed's
    CPU accelerator sets itself up, and `use_cpu` would turn it off.)"""
    if launched_processes() == 1 or os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        return False
    import torch

    return not torch.accelerator.is_available()


def process_state(timeout_seconds: float | None = None):
    """Start the process group under a launcher, through Accelerate's `PartialState` (gloo on a machine without an
    accelerator, NCCL on GPUs), and return that state.

    The first call's `timeout_seconds` (how long a collective waits for the slowest process, e.g. while the main
    process alone quantizes the student) holds for the whole run: Trainer's `TrainingArguments` re-create the
    state later, but keep the process group it started."""
    from accelerate import PartialState

    options = {"cpu": cpu_process_group_needed()}  # else a plain torchrun on CPUs would start no group
    if timeout_seconds is not None and launched_processes() > 1:
        options["timeout"] = timedelta(seconds=timeout_seconds)
    return PartialState(**options)


def _process_group():
    """`torch.distributed`, its process group started (by [`process_state`]) if nothing started it yet."""
    import torch.distributed as dist

    if not dist.is_initialized():
        process_state()
    return dist


def process_index() -> int:
    """This process's rank among all processes of the run (0 when run directly)."""
    if launched_processes() == 1:
        return 0
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    for name in _RANK_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def is_main_process() -> bool:
    """Whether this is the process that writes (always, when run directly)."""
    return process_index() == 0


def agree_on_failure(error: BaseException | None) -> None:
    """Every process says whether its part failed (one `all_gather_object`); if any did, every process raises:
    the failing one its own error, the others a [`ProcessFailedError`] with its message."""
    if launched_processes() == 1:
        if error is not None:
            raise error
        return
    dist = _process_group()
    reports: list[str | None] = [None] * dist.get_world_size()
    own = f"{type(error).__name__}: {error}" if error is not None else None
    dist.all_gather_object(reports, own)
    if error is not None:
        raise error
    failed = [(rank, report) for rank, report in enumerate(reports) if report is not None]
    if failed:
        rank, report = failed[0]
        raise ProcessFailedError(f"Process {rank} stopped the run: {report}")


def on_main_process(work: Callable[[], T], share_result: bool = False) -> T | None:
    """
    Run `work` on the main process only; the others wait for it.

    Args:
        work (`Callable[[], T]`): what to run once (it may write files the others read afterwards).
        share_result (`bool`, *optional*, defaults to `False`): send `work`'s (picklable) result to every process;
            without it the others get `None`.

    Returns:
        `T` or `None`: `work()`'s result on the main process (and on all, with `share_result`).

    Raises:
        [`~tinybert_hf.errors.ProcessFailedError`]: on the other processes, when `work` failed on the main one,
            which raises `work`'s own error.
    """
    if launched_processes() == 1:
        return work()
    result, error = None, None
    if is_main_process():
        try:
            result = work()
        except BaseException as failure:  # noqa: BLE001 - every process must hear of it, then it is raised
            error = failure
    agree_on_failure(error)
    if share_result:
        shared = [result]
        _process_group().broadcast_object_list(shared, src=0)
        result = shared[0]
    return result


@contextmanager
def main_process_first() -> Iterator[None]:
    """Run the block on the main process, then on the others: what the main process writes to a cache (tokenized
    data, teacher logits, augmented rows), the others then read. A failure of the block on any process stops every
    process (see [`agree_on_failure`])."""
    if launched_processes() == 1:
        yield
        return
    main = is_main_process()
    if not main:
        agree_on_failure(None)  # waits for the main process's turn
    error = None
    try:
        yield
    except BaseException as failure:  # noqa: BLE001 - every process must hear of it, then it is raised
        error = failure
    if main:
        agree_on_failure(error)
    agree_on_failure(error if not main else None)  # the others' turn


def wait_for_everyone() -> None:
    """A barrier (nothing, with one process)."""
    if launched_processes() > 1:
        _process_group().barrier()


def end_process_group() -> None:
    """Tear the process group down once a multi-process command is done (torch warns of one left behind, and its
    gloo threads can abort the interpreter's exit); nothing with one process."""
    if launched_processes() == 1:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


__all__ = [
    "agree_on_failure",
    "cpu_process_group_needed",
    "end_process_group",
    "is_main_process",
    "launched_processes",
    "main_process_first",
    "on_main_process",
    "process_index",
    "process_state",
    "wait_for_everyone",
]
