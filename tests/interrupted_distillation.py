"""A small distillation stage that the resume tests kill with SIGKILL and resume (run as a subprocess).

    python tests/interrupted_distillation.py OUTPUT --stage intermediate [--pause_after_step K | --pause_in_save K]
    python tests/interrupted_distillation.py OUTPUT --stage intermediate --resume

`--pause_after_step K` prints `PAUSED` once step K is done (before its checkpoint is written) and sleeps, so the
test kills it at a known point; `--pause_in_save K` does the same in the middle of writing checkpoint K (model
written, optimizer and trainer state not yet). The finished student goes to OUTPUT/final.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification, TrainerCallback

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tinybert_hf import DistillationTrainer, DistillationTrainingArguments, TinyBertConfig  # noqa: E402
from tinybert_hf.distillation.teacher_cache import add_teacher_logits  # noqa: E402
from tinybert_hf.models.tinybert.modeling_tinybert import TinyBertForSequenceClassification  # noqa: E402

SIZES = dict(vocab_size=99, num_attention_heads=4, intermediate_size=37, max_position_embeddings=64)
DROPOUT = dict(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)  # so the RNG state matters


def models() -> tuple[BertForSequenceClassification, TinyBertForSequenceClassification]:
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(BertConfig(hidden_size=32, num_hidden_layers=4, **SIZES, **DROPOUT))
    # narrower than the teacher: the fit_dense projections are trained (and must be resumed) too
    config = TinyBertConfig(hidden_size=24, fit_size=32, num_hidden_layers=2, **SIZES, **DROPOUT)
    return teacher.eval(), TinyBertForSequenceClassification(config)


def rows(count: int = 64) -> Dataset:
    generator = torch.Generator().manual_seed(1)
    lengths = torch.randint(4, 20, (count,), generator=generator).tolist()
    ids = [[2, *torch.randint(5, 99, (length,), generator=generator).tolist(), 3] for length in lengths]
    labels = torch.randint(0, 2, (count,), generator=generator).tolist()
    return Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(row) for row in ids], "labels": labels})


def pad(features: list[dict]) -> dict:
    """Right-pad `input_ids` (with 0) and `attention_mask`; stack the labels."""
    longest = max(len(feature["input_ids"]) for feature in features)
    batch = {
        name: torch.tensor([feature[name] + [0] * (longest - len(feature[name])) for feature in features])
        for name in ("input_ids", "attention_mask")
    }
    batch["labels"] = torch.tensor([feature["labels"] for feature in features])
    return batch


class Pause(TrainerCallback):
    """Stop still after step `step` so that the parent process can SIGKILL at a known point."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            print("PAUSED", flush=True)
            time.sleep(600)


def pause_inside_save(trainer: DistillationTrainer, step: int) -> None:
    """Sleep after checkpoint `step`'s weights are written, before its optimizer and trainer state are."""
    save_optimizer = trainer._save_optimizer_and_scheduler

    def paused(output_dir):
        if trainer.state.global_step == step:
            print("PAUSED", flush=True)
            time.sleep(600)
        save_optimizer(output_dir)

    trainer._save_optimizer_and_scheduler = paused


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("output", type=Path)
    parser.add_argument("--stage", choices=("intermediate", "prediction"), required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--pause_after_step", type=int)
    parser.add_argument("--pause_in_save", type=int)
    options = parser.parse_args()

    teacher, student = models()
    train = rows()
    if options.stage == "prediction":  # the teacher-logit cache lives on disk beside the checkpoints
        train = add_teacher_logits(train, teacher, batch_size=16, cache_dir=options.output / "cache")
    args = DistillationTrainingArguments(
        output_dir=str(options.output / "checkpoints"),
        stage=options.stage,
        num_train_epochs=3,  # 24 steps: kills land mid-epoch and in later epochs
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        save_strategy="steps",
        save_steps=3,
        save_total_limit=2,
        train_sampling_strategy="group_by_length",
        logging_steps=1,
        report_to="none",
        seed=0,
        use_cpu=True,
    )
    callbacks = [Pause(options.pause_after_step)] if options.pause_after_step else []
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=args,
        train_dataset=train,
        data_collator=pad,
        callbacks=callbacks,
    )
    if options.pause_in_save:
        pause_inside_save(trainer, options.pause_in_save)
    trainer.train(resume_from_checkpoint=True if options.resume else None)
    trainer.save_model(str(options.output / "final"))
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
