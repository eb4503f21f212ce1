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

from .atomic import last_complete_checkpoint

DONE_MARKER = "stage_done.json"  # what a finished recipe step writes into its directory (`recipe.DONE_MARKER`)


class RunTerminated(KeyboardInterrupt):
    """The process received SIGTERM."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises [`RunTerminated`] in the main thread (the previous handler is put back)."""

    def terminate(signum, frame):
        raise RunTerminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    return "no step had finished or written a checkpoint yet. Run the same command again to start over."


def interruption_message(stop: KeyboardInterrupt, output_dir: str | Path | None) -> str:
    """`"stopped by Ctrl-C; kept ..."`: what the CLI prints for an interrupted command."""
    cause = "SIGTERM" if isinstance(stop, RunTerminated) else "Ctrl-C"
    if output_dir is None:
        return f"stopped by {cause}."
    return f"stopped by {cause}; {kept_after_interruption(output_dir)}"


__all__ = ["RunTerminated", "interruption_message", "kept_after_interruption", "sigterm_as_interrupt"]
