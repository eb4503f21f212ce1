"""Killed with SIGKILL and resumed, a distillation ends with the same student, bitwise, as one never interrupted.

Each run is a real subprocess (tests/interrupted_distillation.py) stopped with a real SIGKILL: after a step whose
checkpoint is not yet written, and in the middle of writing a checkpoint (weights on disk, optimizer and trainer
state not). Dropout is on, so the restored RNG states matter, and the student is narrower than the teacher, so its
fit_dense projections train too.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tinybert_hf.atomic import is_complete_checkpoint

from .test_cli import offline_env

SCRIPT = Path(__file__).resolve().parent / "interrupted_distillation.py"


def distil(output: Path, *options: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(output), *options], env=offline_env(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def kill_when_paused(output: Path, *options: str) -> None:
    """Start a run, SIGKILL it as soon as it reports the pause point, and check that the signal killed it."""
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(output), *options],
        env=offline_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        for line in process.stdout:
            if line.strip() == "PAUSED":
                break
        else:
            pytest.fail("the run ended without reaching its pause point")
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


def assert_same_weights(reference: Path, resumed: Path) -> None:
    expected, actual = load_file(reference / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert expected.keys() == actual.keys()
    assert {"bert.fit_dense.weight", "bert.fit_dense.bias"} <= expected.keys()
    differing = [name for name in expected if not torch.equal(expected[name], actual[name])]
    assert not differing, differing


@pytest.mark.parametrize("stage", ["intermediate", "prediction"])
def test_sigkill_then_resume_gives_the_uninterrupted_student(tmp_path, stage):
    distil(tmp_path / "reference", "--stage", stage)

    # killed after step 5: checkpoint-3 is the newest, steps 4-5 are redone
    after_step = tmp_path / "after_step"
    kill_when_paused(after_step, "--stage", stage, "--pause_after_step", "5")
    assert sorted(path.name for path in (after_step / "checkpoints").iterdir()) == ["checkpoint-3"]
    distil(after_step, "--stage", stage, "--resume")
    assert_same_weights(tmp_path / "reference" / "final", after_step / "final")

    # killed while checkpoint-6 is being written: it is skipped (and removed), the run resumes from checkpoint-3
    in_save = tmp_path / "in_save"
    kill_when_paused(in_save, "--stage", stage, "--pause_in_save", "6")
    cut_short = in_save / "checkpoints" / "checkpoint-6"
    assert (cut_short / "model.safetensors").is_file() and not is_complete_checkpoint(cut_short)
    assert is_complete_checkpoint(in_save / "checkpoints" / "checkpoint-3")
    resumed = distil(in_save, "--stage", stage, "--resume")
    assert "checkpoint-6 was cut short" in resumed.stderr
    assert_same_weights(tmp_path / "reference" / "final", in_save / "final")
    if stage == "prediction":  # one teacher-logit cache, written by the first run and read by the resumed one
        assert len(list((in_save / "cache").glob("teacher-logits-*.arrow"))) == 1
        assert not [path for path in (in_save / "cache").iterdir() if path.name.startswith("tmp")]
