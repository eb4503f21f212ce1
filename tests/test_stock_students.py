"""Distilling students that stay in a stock family (cut from their teacher by structured pruning): every loss,
the projection to the teacher's width kept beside the weights, and a student the family's Auto classes load."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from tinybert_hf.distillation.hidden_projection import (
    PROJECTION_FILE,
    attach_hidden_projection,
    detach_hidden_projection,
)
from tinybert_hf.distillation.trainer import DistillationTrainer
from tinybert_hf.pruning.structured import prune

from .test_pruning_families import FAMILIES, calibration
from .test_trainer import arguments, dataset

# the attention loss each family's student and teacher take: score losses through the attention registry, the
# relations (MiniLMv2) for families that compute attention themselves
ATTENTION_LOSS = {
    "roberta": "mse",
    "distilbert": "kl",
    "modernbert": "relation",
    "mpnet": "relation",
    "deberta-v3": "relation",
}


def pruned_pair(family: str):
    torch.manual_seed(0)
    config = FAMILIES[family]()
    config.initializer_range = 0.2  # peaked attention and logits, as in a trained teacher
    teacher = AutoModelForSequenceClassification.from_config(config).eval()
    heads, hidden = (2, 12) if family == "modernbert" else (4, 16)
    student, plan = prune(
        teacher,
        calibration(),
        num_hidden_layers=2,
        hidden_size=hidden,
        num_attention_heads=heads if family != "mpnet" else 4,
        intermediate_size=10,
        importance="activation",
        show_progress=False,
    )
    return teacher, student.train(), plan


@pytest.mark.parametrize("family", list(ATTENTION_LOSS))
def test_a_pruned_stock_student_learns_every_intermediate_loss(family, tmp_path):
    teacher, student, plan = pruned_pair(family)
    args = arguments(
        tmp_path / "run", stage="intermediate", attention_loss=ATTENTION_LOSS[family], max_steps=120,
        logging_steps=20, learning_rate=1e-2,
        relation_heads=2 if ATTENTION_LOSS[family] == "relation" else None,
    )  # fmt: skip
    data = dataset()
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=data)
    projection = student.fit_dense  # attached: 16 (12) channels back to the teacher's 24
    assert projection.weight.shape == (24, len(plan.channels))
    assert torch.equal(projection.weight[plan.channels, range(len(plan.channels))], torch.ones(len(plan.channels)))
    before = trainer.evaluate(eval_dataset=data)
    trainer.train()
    after = trainer.evaluate(eval_dataset=data)
    parts = ("eval_loss_embedding", "eval_loss_hidden", "eval_loss_attention")
    for part in parts:  # each falls; together by a fifth at least (the embeddings, renormalized over fewer
        assert after[part] < before[part], (part, before[part], after[part])  # channels, fall slowest)
    assert sum(after[part] for part in parts) < 0.8 * sum(before[part] for part in parts), (before, after)

    trainer.save_model(tmp_path / "student")
    weights = load_file(tmp_path / "student" / "model.safetensors")
    assert not any(name.startswith("fit_dense") for name in weights)
    saved_projection = load_file(tmp_path / "student" / PROJECTION_FILE)
    assert torch.equal(saved_projection["weight"], student.fit_dense.weight.detach())
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "student")
    assert type(loaded) is type(teacher) and "fit_dense" not in loaded._modules
    # the next stage (or a resumed run) picks the trained projection up again
    assert torch.equal(attach_hidden_projection(loaded, 24).weight, student.fit_dense.weight.detach())

    # stage 2: the prediction loss (KL to the teacher's logits)
    detach_hidden_projection(loaded)
    args = arguments(tmp_path / "stage2", stage="prediction", prediction_loss="kl", max_steps=40,
                     learning_rate=1e-2)  # fmt: skip
    trainer = DistillationTrainer(model=loaded.train(), teacher_model=teacher, args=args, train_dataset=data)
    before = trainer.evaluate(eval_dataset=data)
    trainer.train()
    after = trainer.evaluate(eval_dataset=data)
    assert after["eval_loss_prediction"] < before["eval_loss_prediction"] and "fit_dense" not in loaded._modules


def test_a_stock_student_resumes_with_its_trained_projection(tmp_path):
    teacher, student, _ = pruned_pair("roberta")
    data = dataset()
    args = arguments(tmp_path / "run", stage="intermediate", max_steps=20, save_strategy="steps", save_steps=10)
    DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=data).train()
    checkpoint = tmp_path / "run" / "checkpoint-10"
    assert (checkpoint / PROJECTION_FILE).is_file()

    _, fresh, _ = pruned_pair("roberta")
    resumed = DistillationTrainer(model=fresh, teacher_model=teacher, args=args, train_dataset=data)
    scatter = fresh.fit_dense.weight.detach().clone()  # where a freshly pruned student's projection starts
    resumed._load_from_checkpoint(str(checkpoint))
    trained = load_file(checkpoint / PROJECTION_FILE)["weight"]
    assert torch.equal(fresh.fit_dense.weight.detach(), trained) and not torch.equal(trained, scatter)
