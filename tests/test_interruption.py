"""Stop signals become one exception that always lands, and the line the CLI prints names what a run kept.
(The CLI's Ctrl-C and SIGTERM on a real recipe subprocess are in test_resume.py.)"""

import json
import os
import signal
import time

import pytest

from tinybert_hf.commands.interruption import interruption_message, kept_after_interruption, stop_signals_as_interrupts
from tinybert_hf.errors import RunTerminated


class SignalsWhileCollected:
    """Sends `number` to this process from its `__del__`, and lingers there: the handler runs inside it."""

    def __init__(self, number):
        self.number = number

    def __del__(self):
        os.kill(os.getpid(), self.number)
        time.sleep(0.02)


@pytest.mark.parametrize(("number", "expected"), [(signal.SIGTERM, RunTerminated), (signal.SIGINT, KeyboardInterrupt)])
def test_a_stop_that_lands_in_a_finalizer_is_raised_after_it(number, expected):
    # raised inside __del__, it would be printed as "Exception ignored" and the run would go on
    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)}
    went_on = False
    with pytest.raises(expected), stop_signals_as_interrupts():
        SignalsWhileCollected(number)  # no reference kept: collected, and __del__ runs, at once
        time.sleep(5)  # the retry raises within it
        went_on = True
    assert not went_on
    assert {number: signal.getsignal(number) for number in before} == before  # the handlers are put back


def test_the_line_names_finished_steps_and_the_newest_complete_checkpoint(tmp_path):
    assert interruption_message(KeyboardInterrupt(), None) == "stopped by Ctrl-C."
    assert "no step had finished" in kept_after_interruption(tmp_path)
    (tmp_path / "teacher").mkdir()
    (tmp_path / "teacher" / "stage_done.json").write_text("{}")
    assert kept_after_interruption(tmp_path) == (
        f"kept the finished steps {tmp_path / 'teacher'}. Run the same command again to reuse them and go on."
    )
    for step in (4, 8):  # checkpoint-8 cut short while it was written: checkpoint-4 is what a rerun resumes from
        checkpoint = tmp_path / "checkpoints" / "student" / f"checkpoint-{step}"
        checkpoint.mkdir(parents=True)
    (tmp_path / "checkpoints" / "student" / "checkpoint-4" / "trainer_state.json").write_text(json.dumps({}))
    message = interruption_message(RunTerminated(), tmp_path)
    assert message == (
        f"stopped by SIGTERM; kept {tmp_path / 'teacher'}, {tmp_path / 'checkpoints' / 'student' / 'checkpoint-4'}. "
        "Run the same command again to resume from checkpoint-4 of student."
    )
