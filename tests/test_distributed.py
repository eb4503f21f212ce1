"""Two CPU processes under `accelerate launch`: the first step equals the single-process step on the same batch.

accelerate 1.15's `--cpu --num_processes 2` starts a single process unless an MPI hostfile is given (its simple
launcher); `--multi_gpu` starts the processes with torchrun and, with no GPU present, Accelerate runs them as
MULTI_CPU over gloo. That is the command tested here and documented in the README.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .test_trainer import teacher_and_student

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "distributed_distillation.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(command: list[str], output: Path) -> tuple[dict, dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(output.read_text()), torch.load(str(output) + ".pt")


@pytest.mark.parametrize("stage", ["intermediate", "prediction"])
def test_two_processes_match_one_process_on_the_same_global_batch(tmp_path, stage):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    assert accelerate, "accelerate's CLI is installed with the package"
    single, single_weights = run(
        [sys.executable, str(SCRIPT), "--output", str(tmp_path / "one.json"), "--stage", stage,
         "--per_device_train_batch_size", "16"],
        tmp_path / "one.json",
    )  # fmt: skip
    double, double_weights = run(
        [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", "--main_process_port", str(free_port()), str(SCRIPT),
         "--output", str(tmp_path / "two.json"), "--stage", stage, "--per_device_train_batch_size", "8"],
        tmp_path / "two.json",
    )  # fmt: skip
    assert (single["world_size"], double["world_size"]) == (1, 2)
    loss_keys = [key for key in single["log"] if key.startswith("loss")]
    assert len(loss_keys) >= 3
    for key in loss_keys:
        assert double["log"][key] == pytest.approx(single["log"][key], rel=1e-4), key
    for key, value in single_weights.items():
        torch.testing.assert_close(double_weights[key], value, rtol=1e-4, atol=1e-5, msg=key)
    _, untouched = teacher_and_student()
    assert sum(not torch.equal(value, single_weights[key]) for key, value in untouched.state_dict().items()) > 10
