"""The example scripts run as users run them: in a subprocess, on a tiny teacher built here."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from transformers import BertModel

from tinybert_hf import TinyBertForSequenceClassification, TinyBertModel

from .conftest import TINY_WORDS, tiny_bert_config, tiny_config

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
            "--pruned_layers", "2", "--pruned_hidden_size", "24", "--pruned_heads", "4",
            "--pruned_intermediate_size", "16",
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
    assert "layers [1, 3]" in result.stdout and "pipeline OK" in result.stdout and "pruned teacher" in result.stdout
    pruned = TinyBertModel.from_pretrained(output_dir / "student_1")
    assert (pruned.config.hidden_size, pruned.config.head_size, pruned.config.fit_size) == (24, 6, 32)
    student = TinyBertModel.from_pretrained(output_dir / "student_0")
    assert student.config.num_hidden_layers == 2
    teacher = BertModel.from_pretrained(teacher_dir)
    torch.testing.assert_close(
        student.encoder.layer[1].attention.self.key.weight, teacher.encoder.layer[3].attention.self.key.weight
    )


def test_custom_loss_term_example(tmp_path, tiny_tokenizer):
    """The subclassing example adds a `cosine` part that is logged, weighted and trained down."""
    torch.manual_seed(0)
    teacher_dir = tmp_path / "teacher"
    BertModel(tiny_bert_config(hidden_dropout_prob=0.0, initializer_range=0.2)).save_pretrained(teacher_dir)
    tiny_tokenizer.save_pretrained(teacher_dir)
    words = [word for word in TINY_WORDS if word.isalpha()]
    generator = torch.Generator().manual_seed(0)
    lines = [" ".join(words[i] for i in torch.randint(len(words), (8,), generator=generator)) for _ in range(32)]
    (tmp_path / "corpus.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "custom_loss_term.py"),
            "--teacher", str(teacher_dir),
            "--train_file", str(tmp_path / "corpus.txt"),
            "--student_layers", "2",
            "--output_dir", str(tmp_path / "student"),
            "--stage", "general",
            "--max_steps", "40",
            "--learning_rate", "5e-3",
            "--per_device_train_batch_size", "8",
            "--report_to", "none",
            "--save_strategy", "no",
            "--use_cpu",
        ],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {line.split()[0]: [float(value) for value in line.split()[1:]] for line in result.stdout.splitlines()
            if line.startswith("loss_")}  # fmt: skip
    assert set(rows) == {"loss_cosine", "loss_embedding", "loss_attention", "loss_hidden"}
    before, after = rows["loss_cosine"]
    assert after < before
    assert TinyBertModel.from_pretrained(tmp_path / "student").config.num_hidden_layers == 2


def test_general_distillation_example_streams_a_corpus(tmp_path, tiny_tokenizer):
    torch.manual_seed(0)
    teacher_dir = tmp_path / "teacher"
    BertModel(tiny_bert_config()).save_pretrained(teacher_dir)
    tiny_tokenizer.save_pretrained(teacher_dir)
    words = [word for word in TINY_WORDS if word.isalpha()]
    generator = torch.Generator().manual_seed(0)
    lines = [" ".join(words[i] for i in torch.randint(len(words), (7,), generator=generator)) for _ in range(40)]
    (tmp_path / "corpus.txt").write_text("\n".join(lines) + "\n\n", encoding="utf-8")  # an empty line is skipped
    result = subprocess.run(
        [
            sys.executable, str(EXAMPLES / "general_distillation.py"),
            "--teacher", str(teacher_dir), "--corpus", str(tmp_path / "corpus.txt"),
            "--student_layers", "2", "--student_hidden_size", "24", "--student_intermediate_size", "48",
            "--output_dir", str(tmp_path / "general"), "--max_steps", "6", "--per_device_train_batch_size", "8",
            "--logging_steps", "3", "--report_to", "none", "--save_strategy", "no", "--use_cpu",
        ],
        env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    student = TinyBertModel.from_pretrained(tmp_path / "general" / "student")
    assert (student.config.num_hidden_layers, student.config.hidden_size, student.config.fit_size) == (2, 24, 32)
    assert "loss_attention" in result.stdout + result.stderr


def test_deploy_int8_example(tmp_path, tiny_tokenizer):
    """Quantizes a saved student next to itself, serves it through a pipeline and compares it with fp32."""
    torch.manual_seed(0)
    config = tiny_config(num_labels=2, hidden_size=64, intermediate_size=128, id2label={0: "bad", 1: "good"})
    student_dir = tmp_path / "student"
    TinyBertForSequenceClassification(config).save_pretrained(student_dir)
    tiny_tokenizer.save_pretrained(student_dir)
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "deploy_int8.py"), "--student", str(student_dir), "--texts", "good film",
         "dull plot", "a great cast"],
        env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "student-int8" / "model.onnx").is_file()
    labels = [
        line.split()[0] for line in result.stdout.splitlines() if line.endswith(("good film", "dull plot", "cast"))
    ]
    assert len(labels) == 3 and set(labels) <= {"bad", "good"}
    assert "predictions agree on" in result.stdout
