"""Which teacher layer each student layer learns from.

`DistillationTrainingArguments.layer_mapping` is `"uniform"` (TinyBERT's: [`uniform_layer_subset`], which also picks
the layers a student copies from its teacher), `"last"`, or one 0-based teacher layer index per student layer.
"""

from __future__ import annotations

from ..errors import BadInputError
from ..models.tinybert.conversion import uniform_layer_subset


def parse_layer_list(text: str) -> list[int]:
    """'1,3,5' -> [1, 3, 5]; raises ValueError on anything else."""
    return [int(index) for index in text.split(",")]


def resolve_layer_mapping(mapping: str | list[int], num_teacher_layers: int, num_student_layers: int) -> list[int]:
    """0-based teacher layer index learnt by each student layer."""
    if mapping == "uniform":
        return uniform_layer_subset(num_teacher_layers, num_student_layers)
    if mapping == "last":
        return list(range(num_teacher_layers - num_student_layers, num_teacher_layers))
    layers = parse_layer_list(mapping) if isinstance(mapping, str) else list(mapping)
    if len(layers) != num_student_layers:
        raise BadInputError(
            f"`layer_mapping` names {len(layers)} teacher layers but the student has {num_student_layers} layers; "
            "give one teacher layer per student layer."
        )
    out_of_range = [index for index in layers if not 0 <= index < num_teacher_layers]
    if out_of_range:
        raise BadInputError(
            f"`layer_mapping` refers to teacher layers {out_of_range}, but the teacher has {num_teacher_layers} "
            f"layers (0..{num_teacher_layers - 1})."
        )
    return layers


def layer_mapping_option(teacher_layers: list[int] | None) -> str:
    """`DistillationTrainingArguments.layer_mapping` for the teacher layer of each student layer (default: uniform)."""
    return ",".join(map(str, teacher_layers)) if teacher_layers else "uniform"
