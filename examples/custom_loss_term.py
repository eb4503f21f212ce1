"""Add your own loss term to TinyBERT distillation by subclassing `DistillationTrainer`.

`DistillationTrainer.compute_loss_parts` returns the named, unweighted loss terms of a batch; the trainer weights
them (`self.loss_weights`, weight 1 for a name it does not know), sums them, logs each as `loss_<name>` and
`eval_loss_<name>`, and scales them for gradient accumulation and multi-process runs. Override it, call `super()`,
and add or replace entries. Here: DistilBERT's cosine loss between the student's (projected) last hidden states
and the teacher's, added to TinyBERT's general-distillation terms, on unlabeled text.

Run:
    python examples/custom_loss_term.py --train_file my_corpus.txt --max_steps 200        # packaged teacher
    python examples/custom_loss_term.py --teacher bert-base-uncased --train_file corpus.csv --text_column text
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from datasets import load_dataset
from transformers import AutoModel, AutoTokenizer, DataCollatorWithPadding, HfArgumentParser

from tinybert_hf import DistillationTrainer, DistillationTrainingArguments, student_from_teacher_layers
from tinybert_hf.data.packaged import packaged_teacher_path


class CosineDistillationTrainer(DistillationTrainer):
    """TinyBERT's objective plus `1 - cos(student, teacher)` of the last hidden state at every real token."""

    def __init__(self, *args, cosine_loss_weight: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_weights["cosine"] = cosine_loss_weight

    def compute_loss_parts(self, student_outputs, teacher_outputs, inputs, **attention):
        parts = super().compute_loss_parts(student_outputs, teacher_outputs, inputs, **attention)
        student_last = student_outputs.fit_hidden_states[-1]  # (batch, seq, teacher_hidden), through fit_dense
        teacher_last = teacher_outputs.hidden_states[-1]  # (batch, seq, teacher_hidden)
        real = inputs["attention_mask"].bool()  # (batch, seq)
        cosine = torch.cosine_similarity(student_last[real], teacher_last[real], dim=-1)  # (real tokens,)
        # A mean over the batch's examples (each example's mean over its tokens), so that gradient accumulation
        # and several processes weight it as one large batch would.
        per_example = torch.zeros(real.shape[0], device=cosine.device).index_add_(
            0, real.nonzero()[:, 0], 1 - cosine
        ) / real.sum(-1).clamp(min=1)
        parts["cosine"] = per_example.mean()
        return parts


@dataclass
class ExampleArguments:
    train_file: str = field(metadata={"help": "Unlabeled text: .txt (one text per line), .csv or .json."})
    teacher: str | None = field(default=None, metadata={"help": "Teacher path or Hub id; default: packaged MiniLM."})
    text_column: str = field(default="text", metadata={"help": "Text column of a .csv/.json file."})
    student_layers: int = field(default=3, metadata={"help": "Student depth, cut from the teacher's layers."})
    max_length: int = field(default=64, metadata={"help": "Tokens per text."})
    cosine_loss_weight: float = field(default=1.0, metadata={"help": "Weight of the added cosine term."})


def main() -> None:
    parser = HfArgumentParser((ExampleArguments, DistillationTrainingArguments))
    example, training = parser.parse_args_into_dataclasses()
    teacher_path = example.teacher or str(packaged_teacher_path())
    tokenizer = AutoTokenizer.from_pretrained(teacher_path)
    teacher = AutoModel.from_pretrained(teacher_path)
    student = student_from_teacher_layers(teacher, num_hidden_layers=example.student_layers)

    extension = example.train_file.rsplit(".", 1)[-1]
    builder = {"txt": "text", "csv": "csv", "json": "json", "jsonl": "json"}.get(extension)
    if builder is None:
        raise ValueError(f"--train_file must end in .txt, .csv, .json or .jsonl, got {example.train_file!r}.")
    texts = load_dataset(builder, data_files=example.train_file, split="train")
    if example.text_column not in texts.column_names:
        raise ValueError(f"{example.train_file} has no column {example.text_column!r}; columns: {texts.column_names}")
    tokenized = texts.map(
        lambda batch: tokenizer(batch[example.text_column], truncation=True, max_length=example.max_length),
        batched=True,
        remove_columns=texts.column_names,
        desc="Tokenizing",
    )

    trainer = CosineDistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=training,
        train_dataset=tokenized,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        cosine_loss_weight=example.cosine_loss_weight,
    )
    first = trainer.evaluate(eval_dataset=tokenized)
    trainer.train()
    last = trainer.evaluate(eval_dataset=tokenized)
    print(f"{'loss part':<22}{'before':>10}{'after':>10}")
    for name in sorted(key for key in last if key.startswith("eval_loss_")):
        print(f"{name.removeprefix('eval_'):<22}{first[name]:>10.4f}{last[name]:>10.4f}")
    trainer.save_model()
    print(f"student saved to {training.output_dir}")


if __name__ == "__main__":
    main()
