"""`tinybert-hf general-distill`: a task-agnostic student from an encoder, on unlabelled text."""

from __future__ import annotations

from ..distillation.arguments import DistillationTrainingArguments
from ..distillation.general_distillation import GeneralDistillationArguments, general_distill


def run(general: GeneralDistillationArguments, training: DistillationTrainingArguments) -> None:
    print(f"general student saved to {general_distill(general, training)}")
