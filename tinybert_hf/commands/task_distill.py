"""`tinybert-hf task-distill`: the recipe from a teacher fine-tuned already (`--teacher` is required)."""

from __future__ import annotations

from .distill import run_with_teacher as run

__all__ = ["run"]
