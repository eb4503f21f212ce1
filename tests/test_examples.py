"""The example scripts run as users run them: in a subprocess, on a tiny teacher built here."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from transformers import BertModel

from tinybert_hf import TinyBertModel

from .conftest import tiny_bert_config

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_build_student_example(tmp_path, tiny_tokenizer):
    torch.manual_seed(0)
    teacher_dir = tmp_path / "teacher"
    BertModel(tiny_bert_config()).save_pretrained(teacher_dir)
    tiny_tokenizer.save_pretrained(teacher_dir)
    output_dir = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "build_student.py"),
            "--teacher", str(teacher_dir),
            "--student_layers", "2",
            "--output_dir", str(output_dir),
            "--batch_size", "2",
            "--seq_length", "8",
            "--repeats", "1",
        ],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "layers [1, 3]" in result.stdout and "pipeline OK" in result.stdout
    student = TinyBertModel.from_pretrained(output_dir / "student_0")
    assert student.config.num_hidden_layers == 2
    teacher = BertModel.from_pretrained(teacher_dir)
    torch.testing.assert_close(
        student.encoder.layer[1].attention.self.key.weight, teacher.encoder.layer[3].attention.self.key.weight
    )
