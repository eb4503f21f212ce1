"""A run stopped by Ctrl-C or SIGTERM: one line saying what it kept and how to go on, instead of a traceback (Ctrl-C)
or nothing at all (SIGTERM, as a scheduler or `kill` sends it).

SIGTERM is turned into [`RunTerminated`], a `KeyboardInterrupt`, so the run unwinds exactly as for Ctrl-C: every
`finally` block and context manager runs, and what is half-written stays in its hidden staging name (`atomic.py`).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import RunTerminated
from ..utils.atomic import DONE_MARKER, last_complete_checkpoint

RETRY_SECONDS = 0.05  # how soon a SIGTERM that arrived inside a finalizer is raised again


@contextmanager
def stop_signals_as_interrupts() -> Iterator[None]:
    """Within the block, Ctrl-C (SIGINT) raises `KeyboardInterrupt` and SIGTERM [`RunTerminated`] in the main thread;
    the previous handlers are put back after it.

    A signal handler runs between any two bytecodes, also inside a `__del__` that garbage collection calls (a
    `datasets.Dataset` closing its files), where Python prints an exception and ignores it: the run would go on as if
    no signal had come. There the handler only sets an alarm, and raises when SIGALRM calls it again, outside."""
    pending = []  # the stop an alarm is to raise

    def stop(signum, frame):
        if signum != signal.SIGALRM:
            pending[:] = [RunTerminated if signum == signal.SIGTERM else KeyboardInterrupt]
        if _in_finalizer(frame):
            signal.setitimer(signal.ITIMER_REAL, RETRY_SECONDS)
            return
        if pending:
            raise pending[0]

    previous = {number: signal.signal(number, stop) for number in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)}
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for number, handler in previous.items():
            signal.signal(number, handler)


def _in_finalizer(frame) -> bool:
    """Whether `frame` runs inside a `__del__` (where a raised exception is ignored)."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def kept_after_interruption(output_dir: str | Path) -> str:
    """One sentence naming the finished steps and the newest complete checkpoint under `output_dir`, and what running
    the same command again does with them."""
    output_dir = Path(output_dir)
    finished = sorted(f"{path.parent.name}/" for path in output_dir.glob(f"*/{DONE_MARKER}"))
    checkpoints = [
        Path(checkpoint)
        for run in sorted((output_dir / "checkpoints").glob("*"))
        if (checkpoint := last_complete_checkpoint(run, remove_incomplete=False))
    ]
    kept = [*(f"{output_dir / name}" for name in finished), *(str(path) for path in checkpoints)]
    if checkpoints:
        newest = max(checkpoints, key=lambda path: path.stat().st_mtime)
        return (
            f"kept {', '.join(kept)}. Run the same command again to resume from {newest.name} of {newest.parent.name}."
        )
    if finished:
        return f"kept the finished steps {', '.join(kept)}. Run the same command again to reuse them and go on."
    return (
        "no step had finished or written a checkpoint yet. Run the same command again to start over (steps write a "
        "checkpoint every epoch; `--save_steps N` writes one every N steps, so that less is lost)."
    )


def interruption_message(stop: KeyboardInterrupt, output_dir: str | Path | None) -> str:
    """`"stopped by Ctrl-C; kept ..."`: what the CLI prints for an interrupted command."""
    cause = "SIGTERM" if isinstance(stop, RunTerminated) else "Ctrl-C"
    if output_dir is None:
        return f"stopped by {cause}."
    return f"stopped by {cause}; {kept_after_interruption(output_dir)}"


__all__ = ["interruption_message", "kept_after_interruption", "stop_signals_as_interrupts"]
