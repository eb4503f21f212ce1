"""General distillation: a task-agnostic student learns a pretrained encoder's layers on unlabeled text.

TinyBERT's first phase: embedding, attention and hidden-state losses only, teacher = a *pretrained* (not
fine-tuned) encoder, on a large corpus. Corpora are read as streams (`datasets` streaming), so a Wikipedia-sized
text file is never loaded whole; training runs for `max_steps`. The result is a `TinyBertModel` that task
distillation starts from (`tinybert-hf distill --student_init <dir>`).
"""

from __future__ import annotations

import bz2
import csv
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, IterableDataset
from transformers import AutoModel, AutoTokenizer, DataCollatorWithPadding, set_seed

from ..data.packaged import packaged_rotten_tomatoes_path, packaged_teacher_path
from ..data.transfer_text import text_stream
from ..models.tinybert.configuration_tinybert import TinyBertConfig
from ..models.tinybert.conversion import student_from_teacher_layers, uniform_layer_subset
from ..models.tinybert.modeling_tinybert import TinyBertModel
from ..utils.safe_loading import load_pretrained
from ..utils.step_runner import run_training_step
from .arguments import DistillationTrainingArguments
from .trainer import DistillationTrainer


@dataclass
class GeneralDistillationArguments:
    """`tinybert-hf general-distill` options (training options are `DistillationTrainingArguments`)."""

    allow_pickle: bool = field(
        default=False,
        metadata={"help": "Also load a teacher whose weights exist only as pickles (trusted files only)."},
    )

    corpus: str | None = field(
        default=None,
        metadata={
            "help": "Unlabeled text: .txt files (one document per line; a glob works), a .csv/.json file with a "
            "`text` column, or a Hub data set id. Default: the packaged Rotten Tomatoes text (offline)."
        },
    )
    corpus_config: str | None = field(default=None, metadata={"help": "Hub configuration of the corpus."})
    text_column: str = field(default="text", metadata={"help": "Text column of the corpus."})
    teacher: str | None = field(default=None, metadata={"help": "Pretrained encoder; default: packaged MiniLM."})
    student_init: str = field(default="random", metadata={"help": "'random' (TinyBERT shape) or 'teacher_layers'."})
    student_layers: int = field(default=4, metadata={"help": "Student depth."})
    student_hidden_size: int = field(default=312, metadata={"help": "Student width ('random')."})
    student_intermediate_size: int = field(default=1200, metadata={"help": "Student FFN width ('random')."})
    max_length: int = field(default=128, metadata={"help": "Tokens per text."})


def corpus_stream(arguments: GeneralDistillationArguments) -> IterableDataset | Dataset:
    """The corpus as a stream of `{"text": ...}` rows."""
    if arguments.corpus is None:
        path = packaged_rotten_tomatoes_path()

        def rows():
            with bz2.open(path, "rt", encoding="utf-8", newline="") as file:
                for row in csv.DictReader(file):
                    yield {"text": row["text"]}

        return IterableDataset.from_generator(rows)
    return text_stream(arguments.corpus, arguments.corpus_config, arguments.text_column)


def build_general_student(teacher, arguments: GeneralDistillationArguments) -> TinyBertModel:
    if arguments.student_init == "teacher_layers":
        layers = uniform_layer_subset(teacher.config.num_hidden_layers, arguments.student_layers)
        return student_from_teacher_layers(teacher, layers=layers, student_class=TinyBertModel)
    if arguments.student_init != "random":
        raise ValueError(f"`student_init` must be 'random' or 'teacher_layers', got {arguments.student_init!r}.")
    config = TinyBertConfig.from_teacher_config(
        teacher.config,
        num_hidden_layers=arguments.student_layers,
        hidden_size=arguments.student_hidden_size,
        intermediate_size=arguments.student_intermediate_size,
        num_attention_heads=teacher.config.num_attention_heads,
    )
    return TinyBertModel(config)


def general_distill(arguments: GeneralDistillationArguments, training: DistillationTrainingArguments) -> Path:
    r"""
    Distil a pretrained encoder into a task-agnostic TinyBERT student on streamed text; returns its directory.

    `training.max_steps` must be set (a stream has no length); `training.stage` defaults to `"general"`.
    """
    if training.max_steps is None or training.max_steps <= 0:
        raise ValueError("General distillation streams its corpus: set `--max_steps` (a stream has no length).")
    set_seed(training.seed)
    teacher_path = arguments.teacher or str(packaged_teacher_path())
    tokenizer = AutoTokenizer.from_pretrained(teacher_path)
    teacher = load_pretrained(AutoModel, teacher_path, allow_pickle=arguments.allow_pickle).eval()
    student = build_general_student(teacher, arguments)
    stream = corpus_stream(arguments).filter(lambda row: bool(row["text"] and row["text"].strip()))
    tokenized = stream.map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=arguments.max_length),
        batched=True,
        remove_columns=["text"],
    )
    student_dir = Path(training.output_dir) / "student"
    # a copy, the given arguments unchanged: the stage's weights by default, a stream's columns kept (they are
    # unknown until read; ours are model inputs), and checkpoints beside the student, which a rerun resumes from
    training = dataclasses.replace(
        training,
        stage=training.stage or "general",
        remove_unused_columns=False,
        output_dir=str(student_dir.parent / "checkpoints" / student_dir.name),
    )
    run_training_step(
        student_dir,
        lambda: DistillationTrainer(
            model=student,
            teacher_model=teacher,
            args=training,
            train_dataset=tokenized,
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,  # saved with the student
        ),
    )
    return student_dir
