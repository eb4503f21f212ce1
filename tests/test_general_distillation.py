"""General distillation as a step: its arguments are never changed, a finished student is reused, and an interrupted
run resumes from its newest complete checkpoint instead of starting over."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file
from transformers import BertModel, Trainer

from tinybert_hf import DistillationTrainingArguments
from tinybert_hf.distillation.general_distillation import GeneralDistillationArguments, general_distill

from .conftest import TINY_WORDS, tiny_bert_config


def setup(
    tmp_path, tiny_tokenizer, max_steps: int
) -> tuple[GeneralDistillationArguments, DistillationTrainingArguments]:
    torch.manual_seed(0)
    teacher_dir = tmp_path / "teacher"
    if not teacher_dir.exists():
        BertModel(tiny_bert_config()).save_pretrained(teacher_dir)
        tiny_tokenizer.save_pretrained(teacher_dir)
        words = [word for word in TINY_WORDS if word.isalpha()]
        lines = [" ".join(words[(i * 7 + j) % len(words)] for j in range(6)) for i in range(64)]
        (tmp_path / "corpus.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    general = GeneralDistillationArguments(
        teacher=str(teacher_dir), corpus=str(tmp_path / "corpus.txt"), student_layers=2, student_hidden_size=24,
        student_intermediate_size=48, max_length=16,
    )  # fmt: skip
    training = DistillationTrainingArguments(
        output_dir=str(tmp_path / "general"), max_steps=max_steps, per_device_train_batch_size=8, save_steps=2,
        report_to="none", use_cpu=True, seed=0,
    )  # fmt: skip
    return general, training


def test_arguments_stay_as_given_and_a_finished_student_is_reused(tmp_path, tiny_tokenizer):
    general, training = setup(tmp_path, tiny_tokenizer, max_steps=2)
    student_dir = general_distill(general, training)
    assert training.stage is None and training.remove_unused_columns is True  # copies carried the changes
    assert training.output_dir == str(tmp_path / "general")
    assert not (tmp_path / "general" / "checkpoints").exists()  # removed once the student is saved
    weights = load_file(student_dir / "model.safetensors")
    assert general_distill(general, training) == student_dir  # reused: nothing trains again
    for name, tensor in load_file(student_dir / "model.safetensors").items():
        torch.testing.assert_close(tensor, weights[name], rtol=0, atol=0)


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path, tiny_tokenizer, monkeypatch):
    general, training = setup(tmp_path, tiny_tokenizer, max_steps=4)
    uninterrupted = load_file(general_distill(general, training) / "model.safetensors")
    shutil.rmtree(tmp_path / "general")
    # the same run, stopped right after it wrote its checkpoint at step 2 (as a kill or Ctrl-C would stop it)
    save = Trainer._save_checkpoint

    def save_then_stop(self, *args, **kwargs):
        save(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        general_distill(general, training)
    assert (tmp_path / "general" / "checkpoints" / "student" / "checkpoint-2").is_dir()
    assert not (tmp_path / "general" / "student").exists()
    monkeypatch.setattr(Trainer, "_save_checkpoint", save)
    steps = []
    train_step = Trainer.training_step
    monkeypatch.setattr(Trainer, "training_step", lambda self, *a, **k: steps.append(1) or train_step(self, *a, **k))
    resumed = load_file(general_distill(general, training) / "model.safetensors")
    assert len(steps) == 2  # steps 3 and 4 only: resumed, not started over
    for name, tensor in uninterrupted.items():
        torch.testing.assert_close(resumed[name], tensor)
