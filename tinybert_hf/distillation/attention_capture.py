"""Pre-softmax attention scores (and queries, keys, values) from stock Hugging Face teachers.

TinyBERT's attention loss compares pre-softmax scores, but `BertForSequenceClassification`, RoBERTa, MiniLM and
the other transformers encoders return at most post-softmax probabilities, and nothing at all under SDPA. Their
self-attention, however, hands query, key and value to a function looked up in transformers' attention registry
(`ALL_ATTENTION_FUNCTIONS`). [`record_attention`] registers a function there that records what it is given and
then runs SDPA, so the teacher keeps its fast attention while every layer's scores are captured, with no copy of
the teacher's modeling code.

Which teachers work: every transformers model whose self-attention goes through the registry
(`_supports_attention_backend = True`: BERT, RoBERTa, XLM-RoBERTa, ELECTRA, DistilBERT, ALBERT, CamemBERT, ERNIE,
ModernBERT, ... and the TinyBERT classes) gives scores and projections. MPNet and DeBERTa-v2/v3 bypass the registry:
their queries, keys and values are read from forward hooks on their projection layers (`PROJECTION_LAYERS`), so
they take the attention-relation loss (MiniLMv2); their scores add terms outside `q.k` (MPNet's relative position
bias, DeBERTa's disentangled position terms), so score losses are refused for them with an error that says so.
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


# Self-attention modules that compute q, k and v with Linear layers of their own and never call the registry:
# class name -> the attributes of the query, key and value projections (each `hidden -> heads * head_size`)
PROJECTION_LAYERS = {
    "MPNetSelfAttention": ("q", "k", "v"),
    "DisentangledSelfAttention": ("query_proj", "key_proj", "value_proj"),  # DeBERTa-v2 and v3
}


def supports_attention_recording(model: PreTrainedModel) -> bool:
    """Whether `model`'s self-attention runs through transformers' attention registry (scores and projections)."""
    return bool(getattr(model, "_supports_attention_backend", False)) and model._can_set_attn_implementation()


def supports_projection_recording(model: PreTrainedModel) -> bool:
    """Whether `model`'s per-head queries, keys and values can be recorded (through the registry, or from its
    projection layers): what the attention-relation loss needs."""
    return supports_attention_recording(model) or bool(_projection_attention_modules(model))


def attention_recording_error(model: PreTrainedModel, scores: bool) -> str | None:
    """Why `model`'s attention cannot be recorded as asked (`scores`: pre-softmax scores; else projections), or
    `None` when it can."""
    if supports_attention_recording(model) or (not scores and supports_projection_recording(model)):
        return None
    name = type(model).__name__
    if _projection_attention_modules(model):
        return (
            f"{name} adds terms outside q.k to its attention scores (MPNet's relative position bias, DeBERTa's "
            "disentangled position attention), so its pre-softmax scores cannot be matched by a student's; use the "
            "attention-relation loss (`attention_loss='relation'`, MiniLMv2), which reads its queries, keys and "
            "values, or set the attention loss weight to 0."
        )
    return (
        f"{name} does not run its attention through transformers' attention registry, and its queries, keys and "
        "values are not in layers tinybert-hf knows, so its attention cannot be recorded; distil it with the "
        "hidden-state and prediction losses only (set the attention loss weight to 0)."
    )


def _projection_attention_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The self-attention modules of `model` listed in `PROJECTION_LAYERS`, in layer order."""
    return [module for module in model.modules() if type(module).__name__ in PROJECTION_LAYERS]


@contextmanager
def _recording_projections(model: torch.nn.Module, record: AttentionRecord) -> Iterator[None]:
    """Forward hooks on every attention module's q, k and v layers, appending their outputs per head. Only the first
    call of each layer within a call of its attention module is the token projection: DeBERTa-v3 runs the same
    layers again over its relative position embeddings (`share_att_key`)."""
    handles = []

    def mark_pending(module, args):  # a new call of the attention module: its next q, k and v calls are the tokens'
        pending[module] = {"queries", "keys", "values"}

    def hook_for(module: torch.nn.Module, kind: str, captured: list):
        heads, head_size = module.num_attention_heads, module.attention_head_size

        def hook(layer, inputs, output):  # output (batch, seq, heads * head_size) -> (batch, heads, seq, head_size)
            if kind not in pending.get(module, ()):
                return
            pending[module].discard(kind)
            batch, length, _ = output.shape
            captured.append(output.view(batch, length, heads, head_size).transpose(1, 2))

        return hook

    pending: dict[torch.nn.Module, set[str]] = {}
    targets = {"queries": record.queries, "keys": record.keys, "values": record.values}
    for module in _projection_attention_modules(model):
        handles.append(module.register_forward_pre_hook(mark_pending))
        for (kind, captured), name in zip(targets.items(), PROJECTION_LAYERS[type(module).__name__], strict=True):
            handles.append(getattr(module, name).register_forward_hook(hook_for(module, kind, captured)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


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
            A transformers encoder whose attention uses the registry, or (projections only) MPNet or DeBERTa-v2/v3
            (see the module docstring).
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
    error = attention_recording_error(model, scores=scores)
    if error:
        raise ValueError(error)
    record = AttentionRecord(record_scores=scores, record_projections=projections)
    if not supports_attention_recording(model):  # projections only, from the q, k, v layers
        with _recording_projections(model, record):
            yield record
        return
    previous = model.config._attn_implementation
    model.set_attn_implementation(RECORDING_ATTENTION)
    token = _ACTIVE_RECORD.set(record)
    try:
        yield record
    finally:
        _ACTIVE_RECORD.reset(token)
        model.set_attn_implementation(previous)
