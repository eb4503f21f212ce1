"""Students that start from their teacher's weights: a subset of a same-width teacher's layers.

A TinyBERT student trained from random weights on a small task loses several points that a student starting from
the teacher's own layers keeps (see docs/pruning.md). This module copies embeddings, chosen encoder layers and the task
head of a BERT-format teacher into a TinyBERT model of the same width.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel
from transformers.utils import logging

from .configuration_tinybert import TinyBertConfig
from .modeling_tinybert import (
    TinyBertForMaskedLM,
    TinyBertForSequenceClassification,
    TinyBertForTokenClassification,
    TinyBertModel,
    TinyBertPreTrainedModel,
)

logger = logging.get_logger(__name__)

# Teacher class-name suffix -> student class with the same head (and the same head parameter names).
TINYBERT_CLASS_BY_HEAD = {
    "ForSequenceClassification": TinyBertForSequenceClassification,
    "ForTokenClassification": TinyBertForTokenClassification,
    "ForMaskedLM": TinyBertForMaskedLM,
}


def uniform_layer_subset(num_teacher_layers: int, num_student_layers: int) -> list[int]:
    """
    TinyBERT's uniform layer mapping as 0-based teacher layer indices: student layer `m` learns from teacher layer
    `(m + 1) * k - 1` with `k = num_teacher_layers / num_student_layers`, so the last layers meet.

    Example:

    ```python
    >>> from tinybert_hf import uniform_layer_subset

    >>> uniform_layer_subset(6, 3), uniform_layer_subset(12, 4)
    ([1, 3, 5], [2, 5, 8, 11])

    ```
    """
    if not 1 <= num_student_layers <= num_teacher_layers:
        raise ValueError(
            f"A student needs between 1 and {num_teacher_layers} layers (the teacher's count), "
            f"got {num_student_layers}."
        )
    step = num_teacher_layers / num_student_layers
    return [round((m + 1) * step) - 1 for m in range(num_student_layers)]


def student_from_teacher_layers(
    teacher: PreTrainedModel,
    layers: Sequence[int] | None = None,
    num_hidden_layers: int | None = None,
    student_class: type[TinyBertPreTrainedModel] | None = None,
) -> TinyBertPreTrainedModel:
    r"""
    Build a TinyBERT student from a subset of a BERT-format teacher's layers.

    The student has the teacher's width, heads and FFN size, its embeddings, the chosen encoder layers (in the
    given order) and, when the teacher has one, its pooler and task head. It needs no distillation projection.

    Args:
        teacher ([`PreTrainedModel`]):
            A `BertModel`/`BertFor*` or TinyBERT model (BERT parameter names); it is not modified.
        layers (`Sequence[int]`, *optional*):
            0-based teacher layer indices to copy. Defaults to [`uniform_layer_subset`] of `num_hidden_layers`.
        num_hidden_layers (`int`, *optional*):
            Student depth when `layers` is not given; defaults to half the teacher's layers (rounded up).
        student_class (`type`, *optional*):
            TinyBERT class to build; defaults to the one with the teacher's head (`...ForSequenceClassification`
            -> [`TinyBertForSequenceClassification`], ...), else [`TinyBertModel`].

    Returns:
        The student, in training mode like a freshly built model.

    Example:

    ```python
    >>> from transformers import BertConfig, BertForSequenceClassification
    >>> from tinybert_hf import student_from_teacher_layers

    >>> teacher = BertForSequenceClassification(BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=4,
    ...                                                    num_attention_heads=4, intermediate_size=37))
    >>> student = student_from_teacher_layers(teacher, layers=[1, 3])
    >>> type(student).__name__, student.config.num_hidden_layers
    ('TinyBertForSequenceClassification', 2)

    ```
    """
    teacher_config = teacher.config
    num_teacher_layers = teacher_config.num_hidden_layers
    if layers is None:
        num_hidden_layers = num_hidden_layers or (num_teacher_layers + 1) // 2
        layers = uniform_layer_subset(num_teacher_layers, num_hidden_layers)
    layers = list(layers)
    if not layers:
        raise ValueError("`layers` is empty: a student needs at least one teacher layer.")
    bad = [index for index in layers if not 0 <= index < num_teacher_layers]
    if bad:
        raise ValueError(
            f"Teacher layers {bad} do not exist: the teacher has {num_teacher_layers} layers, indices "
            f"0..{num_teacher_layers - 1}."
        )
    if student_class is None:
        suffix = next((s for s in TINYBERT_CLASS_BY_HEAD if type(teacher).__name__.endswith(s)), None)
        student_class = TINYBERT_CLASS_BY_HEAD.get(suffix, TinyBertModel)

    student_config = TinyBertConfig.from_teacher_config(
        teacher_config,
        num_hidden_layers=len(layers),
        hidden_size=teacher_config.hidden_size,
        num_attention_heads=teacher_config.num_attention_heads,
        intermediate_size=teacher_config.intermediate_size,
        hidden_dropout_prob=teacher_config.hidden_dropout_prob,
        attention_probs_dropout_prob=teacher_config.attention_probs_dropout_prob,
        classifier_dropout=getattr(teacher_config, "classifier_dropout", None),
    )
    student = student_class(student_config)

    teacher_state = _state_dict_with_prefix(teacher)
    student_to_teacher = {f"encoder.layer.{m}.": f"encoder.layer.{t}." for m, t in enumerate(layers)}
    copied, missing = [], []
    with torch.no_grad():
        for name, tensor in _state_dict_with_prefix(student).items():
            source = name
            for student_prefix, teacher_prefix in student_to_teacher.items():
                if f"bert.{student_prefix}" in name:
                    source = name.replace(student_prefix, teacher_prefix, 1)
                    break
            if source not in teacher_state:
                missing.append(name)
                continue
            if teacher_state[source].shape != tensor.shape:
                raise ValueError(
                    f"Teacher weight {source} has shape {tuple(teacher_state[source].shape)} but the student's {name} "
                    f"has {tuple(tensor.shape)}; is the teacher a BERT-architecture model?"
                )
            tensor.copy_(teacher_state[source])
            copied.append(name)
    if missing:
        logger.warning(
            f"{len(missing)} student weights have no counterpart in the teacher and keep their fresh initialization: "
            f"{missing}"
        )
    logger.info(f"Student initialized from teacher layers {layers} ({len(copied)} tensors copied).")
    return student


def _state_dict_with_prefix(model: PreTrainedModel) -> dict[str, torch.Tensor]:
    """State dict whose encoder keys always start with `bert.`, whether the model is a base model or has a head."""
    state = model.state_dict(keep_vars=True)
    prefix = model.base_model_prefix
    if hasattr(model, prefix):
        return state
    return {f"bert.{name}": tensor for name, tensor in state.items()}


def as_tinybert(model: PreTrainedModel) -> TinyBertPreTrainedModel:
    """
    The TinyBERT twin of a BERT-architecture model (same weights, head and outputs), or the model itself when it is
    already a TinyBERT model. Pruning works on the twin because BERT's config cannot describe per-layer shapes.
    """
    if isinstance(model, TinyBertPreTrainedModel):
        return model
    if getattr(model.config, "model_type", None) != "bert":
        raise ValueError(
            f"Structured pruning supports BERT-architecture encoders (TinyBERT and transformers' BERT classes); "
            f"{type(model).__name__} has model_type {getattr(model.config, 'model_type', None)!r}. Distil it into a "
            "TinyBERT student first, then prune the student."
        )
    twin = student_from_teacher_layers(model, layers=range(model.config.num_hidden_layers))
    return twin.to(next(model.parameters()).dtype).train(model.training)
