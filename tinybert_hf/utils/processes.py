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
from contextlib import contextmanager, suppress
from datetime import timedelta
from typing import TypeVar

from ..errors import BadInputError, ProcessFailedError

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


def deepspeed_launch() -> bool:
    """Whether `accelerate launch` was given a DeepSpeed config (it tells the processes through the environment)."""
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"


def sharded_launch() -> bool:
    """Whether `accelerate launch` shards the models it trains (DeepSpeed ZeRO-3, or FSDP): the trainer then shards
    the teacher in place too, and a process can no longer run it alone."""
    if deepspeed_launch():
        return os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "") == "3"
    return os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"


@contextmanager
def whole_models() -> Iterator[None]:
    """Models loaded inside come whole on every process. Once a Trainer ran under a ZeRO-3 config, transformers
    builds every later `from_pretrained` model partitioned (through `deepspeed.zero.Init`), and one process alone
    could then neither run it (its weights are empty placeholders) nor load it (the partitioning is collective)."""
    from transformers.integrations import deepspeed as hf_deepspeed

    registered = hf_deepspeed._hf_deepspeed_config_weak_ref  # transformers' one handle on the active config
    config = registered() if registered is not None else None
    if config is None:
        yield
        return
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed.set_hf_deepspeed_config(config)


def cpu_process_group_needed() -> bool:
    """Whether `TrainingArguments` need `use_cpu=True` for this launch to train as one process group: several
    processes on a machine without an accelerator. Without it, under a plain `torchrun` Trainer would train every
    process alone, on its own copy of the data, and say nothing; under a DeepSpeed launch config, Accelerate would
    count one process and DeepSpeed two, and refuse the batch size."""
    if launched_processes() == 1:
        return False
    import torch

    return not torch.accelerator.is_available()


def launch_mixed_precision() -> str | None:
    """
    The mixed precision the launcher was told to train in (`accelerate launch --mixed_precision bf16`, or a config
    file's `mixed_precision`). The recipe sets its `TrainingArguments` to match: under a DeepSpeed config,
    transformers would otherwise stop the run at the first training step (its DeepSpeed config says bf16, the
    arguments do not).

    Returns:
        `str` or `None`: `"bf16"`, `"fp16"`, or `None` for full precision (and under every other launcher).

    Raises:
        [`~tinybert_hf.errors.BadInputError`]: for a precision this machine cannot train in through transformers'
            Trainer: fp16 without a GPU, or bf16 under DeepSpeed without one.
    """
    value = os.environ.get("ACCELERATE_MIXED_PRECISION", "no").lower()
    if value not in ("bf16", "fp16"):
        return None
    import torch

    if not torch.accelerator.is_available():
        if value == "fp16":
            raise BadInputError(
                "The launch asks for fp16 mixed precision, which needs a GPU; on CPUs launch with "
                "`--mixed_precision bf16` or `--mixed_precision no`."
            )
        if deepspeed_launch():
            raise BadInputError(
                "The launch asks for bf16 mixed precision under DeepSpeed, which transformers' Trainer runs only "
                "with a GPU; on CPUs add `--mixed_precision no` to `accelerate launch`."
            )
    return value


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


_ended_process_group = False  # set once this process has torn down the process group it ran in


def end_process_group(finished: bool = True) -> None:
    """
    Tear the process group down once a multi-process command is done (torch warns of one left behind); nothing
    with one process.

    Args:
        finished (`bool`, *optional*, defaults to `True`): whether the command ended on this process without an
            error. Then every process has reached its end too, and they leave together, after one barrier, so none
            closes its connections while a peer is still in the last collective. After an error there is no
            barrier, which a failed peer might never reach.
    """
    global _ended_process_group
    if launched_processes() == 1:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if finished:
            with suppress(RuntimeError):  # a peer already left (it failed after its last collective)
                dist.barrier()
        dist.destroy_process_group()
        _ended_process_group = True


def exit_launched_process(code: int) -> int:
    """
    End a process of a multi-process command with `code`, without the interpreter's teardown.

    Once the process group is torn down, everything is written and only the exit is left. torch 2.13's gloo
    threads abort that teardown now and then (`terminate called without an active exception`, SIGABRT; about one
    process run in eight on CPUs, seen in this project's multi-process tests), and the launcher then reports a
    finished run as failed. So the `atexit` handlers run, the streams are flushed, and the process exits at once.
    A process that ran no process group (every single-process command) returns `code` as it is.

    Args:
        code (`int`): the exit status.

    Returns:
        `int`: `code`, when this process ran no process group (else it does not return).
    """
    if not _ended_process_group:
        return code
    import atexit
    import sys

    atexit._run_exitfuncs()  # logging's flush, temporary directories, progress bars: what a normal exit runs
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


__all__ = [
    "agree_on_failure",
    "cpu_process_group_needed",
    "deepspeed_launch",
    "end_process_group",
    "exit_launched_process",
    "is_main_process",
    "launch_mixed_precision",
    "launched_processes",
    "main_process_first",
    "on_main_process",
    "process_index",
    "process_state",
    "sharded_launch",
    "wait_for_everyone",
    "whole_models",
]
