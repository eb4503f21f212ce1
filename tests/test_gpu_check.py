"""benchmarks/gpu_check.py, the prepared GPU check, runs end to end on CPU (`--device cpu --small`): every section
gives its figures, none an error, so the script is known to work before a GPU machine runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_gpu_check_runs_end_to_end_on_cpu(tmp_path):
    output = tmp_path / "gpu_check.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--small", "--steps", "5",
         "--output", str(output)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:]
    report = json.loads(output.read_text())
    sections = ("mixed_precision", "throughput", "trainer_overhead", "host_syncs", "fsdp2", "recipe")
    for section in sections:
        assert "error" not in report[section], report[section]
    bf16 = report["mixed_precision"]["bf16"]
    assert len(bf16) == 6  # three attention losses, three prediction losses
    for name, check in bf16.items():
        assert check["finite"] and check["loss_fell"], name
    assert "loss_attention" in bf16["intermediate, attention relation"]["loss_parts"]
    assert "skipped" in report["mixed_precision"]["fp16"]  # fp16 needs a GPU
    assert all(value > 0 for key, value in report["throughput"].items() if key.endswith("_seq_per_s"))
    assert report["trainer_overhead"]["trainer_over_loop"] > 0
    syncs = report["host_syncs"]
    assert syncs["trainer_intermediate"]["aten::_local_scalar_dense"] > 0  # counted, not assumed
    assert report["fsdp2"]["loss_fell"] and report["fsdp2"]["tensors_changed"] > 0
    assert report["recipe"]["seconds"] > 0 and 0 <= report["recipe"]["student_test_accuracy"] <= 1
