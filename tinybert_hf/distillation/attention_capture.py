"""Pre-softmax attention scores (and queries, keys, values) from stock Hugging Face teachers.

TinyBERT's attention loss compares pre-softmax scores, but `BertForSequenceClassification`, RoBERTa, MiniLM and
the other transformers encoders return at most post-softmax probabilities, and nothing at all under SDPA. Their
self-attention, however, hands query, key and value to a function looked up in transformers' attention registry
(`ALL_ATTENTION_FUNCTIONS`). [`record_attention`] registers a function there that records what it is given and
then runs SDPA, so the teacher keeps its fast attention while every layer's scores are captured, with no copy of
the teacher's modeling code.

Which teachers work: every transformers model whose self-attention goes through the registry
(`_supports_attention_backend = True`: BERT, RoBERTa, XLM-RoBERTa, ELECTRA, DistilBERT, ALBERT, CamemBERT, ERNIE,
ModernBERT, ... and the TinyBERT classes). MPNet and DeBERTa-v2 do not use the registry: a clear error says so,
and such teachers can still be distilled with the hidden-state and prediction losses.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

RECORDING_ATTENTION = "tinybert_hf_recording_sdpa"

_ACTIVE_RECORD: contextvars.ContextVar[AttentionRecord | None] = contextvars.ContextVar(
    "tinybert_hf_attention_record", default=None
)


@dataclass
class AttentionRecord:
    r"""
    What [`record_attention`] captured, one entry per self-attention call in the order the layers ran.

    Attributes:
        scores (`list[torch.Tensor]`):
            Pre-softmax, pre-mask scores `q.k * scaling`, each `(batch, heads, seq, seq)`; empty unless requested.
        queries, keys, values (`list[torch.Tensor]`):
            Per-head projections `(batch, heads, seq, head_size)`; empty unless requested.
    """

    record_scores: bool = True
    record_projections: bool = False
    scores: list[torch.Tensor] = field(default_factory=list)
    queries: list[torch.Tensor] = field(default_factory=list)
    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)

    def clear(self) -> None:
        """Forget what was recorded, to reuse the record for the next batch."""
        for captured in (self.scores, self.queries, self.keys, self.values):
            captured.clear()


def _recording_sdpa(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """AttentionInterface function: record q/k/v (or their scores) for the active record, then run SDPA."""
    record = _ACTIVE_RECORD.get()
    if record is not None:
        if record.record_scores:
            scale = scaling if scaling is not None else query.shape[-1] ** -0.5
            record.scores.append(torch.matmul(query, key.transpose(-1, -2)) * scale)  # (batch, heads, seq, seq)
        if record.record_projections:
            record.queries.append(query)
            record.keys.append(key)
            record.values.append(value)
    return sdpa_attention_forward(
        module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
    )


AttentionInterface.register(RECORDING_ATTENTION, _recording_sdpa)
AttentionMaskInterface.register(RECORDING_ATTENTION, sdpa_mask)  # the mask format SDPA expects


def supports_attention_recording(model: PreTrainedModel) -> bool:
    """Whether `model`'s self-attention runs through transformers' attention registry."""
    return bool(getattr(model, "_supports_attention_backend", False)) and model._can_set_attn_implementation()


@contextmanager
def record_attention(
    model: PreTrainedModel, scores: bool = True, projections: bool = False
) -> Iterator[AttentionRecord]:
    r"""
    Record every self-attention layer's pre-softmax scores (and optionally q, k, v) while `model` runs.

    The model's attention implementation is switched to a recording SDPA for the duration of the block and put
    back afterwards, even on error. Recording does not detach: run the teacher under `torch.no_grad()`.

    Args:
        model ([`PreTrainedModel`]):
            A transformers encoder whose attention uses the registry (see the module docstring).
        scores (`bool`, *optional*, defaults to `True`):
            Record `(batch, heads, seq, seq)` pre-softmax scores.
        projections (`bool`, *optional*, defaults to `False`):
            Record per-head queries, keys and values, for relation-based losses.

    Example:

    ```python
    >>> import torch
    >>> from transformers import BertConfig, BertModel
    >>> from tinybert_hf.distillation.attention_capture import record_attention

    >>> teacher = BertModel(BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4))
    >>> with torch.no_grad(), record_attention(teacher) as record:
    ...     _ = teacher(torch.tensor([[2, 7, 9, 3]]))
    >>> len(record.scores), tuple(record.scores[0].shape)
    (2, (1, 4, 4, 4))

    ```
    """
    if not supports_attention_recording(model):
        raise ValueError(
            f"{type(model).__name__} does not run its attention through transformers' attention registry, so its "
            "pre-softmax scores cannot be recorded; distil it with the hidden-state and prediction losses only "
            "(set the attention loss weight to 0)."
        )
    previous = model.config._attn_implementation
    record = AttentionRecord(record_scores=scores, record_projections=projections)
    model.set_attn_implementation(RECORDING_ATTENTION)
    token = _ACTIVE_RECORD.set(record)
    try:
        yield record
    finally:
        _ACTIVE_RECORD.reset(token)
        model.set_attn_implementation(previous)
