"""Structured pruning that physically shrinks encoders of every common family (transformers 5 removed `prune_heads`).

A pruned model keeps, by original index, a subset of

- encoder layers (depth),
- attention heads of each layer, and within each kept head a subset of its query/key and of its value dimensions
  (when the head width shrinks, the query is rescaled so that `q.k / sqrt(head_size)` keeps its scale),
- FFN neurons of each layer,
- hidden channels: the residual stream's width, shared by the embeddings, every LayerNorm, the pooler and the heads.

Its `nn.Linear` weights are smaller, and its [`TinyBertConfig`] records the new shapes (`layer_num_attention_heads`
and `layer_intermediate_sizes` when layers differ), so `save_pretrained`/`from_pretrained` round-trip it, with or
without `tinybert_hf` installed (`trust_remote_code=True`). When hidden channels are removed, `fit_size` keeps the
source width and the distillation projection `fit_dense` starts as the map that puts every kept channel back in its
place, so intermediate-layer losses still compare the student with its teacher.

BERT models (`BertModel`, `BertFor*`) are pruned through their TinyBERT twin ([`as_tinybert`]): same parameter
names and outputs, but a config that can describe per-layer shapes. Every other family of `layouts.LAYOUTS`
(RoBERTa, XLM-R, CamemBERT, ELECTRA, DistilBERT, MPNet, ModernBERT, DeBERTa-v2/v3) stays in its own class: the pruned
model is a stock transformers model that its Auto classes load without `tinybert_hf`, so its shapes must be the same
in every layer (its config has one head count and one FFN width), and its head width is `hidden / heads`. Its config
records the kept channels (`pruned_hidden_channels`), from which distillation builds the projection back to the
teacher's width. The source model is never modified.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import logging

from ..errors import BadInputError
from ..evaluation.speed_and_size import parameter_count
from ..models.tinybert.configuration_tinybert import TinyBertConfig, divisors_near
from ..models.tinybert.conversion import as_tinybert, uniform_layer_subset
from .importance import IMPORTANCE_METHODS, Importance, compute_importance
from .layouts import EncoderLayout, layout_of, layout_of_config

logger = logging.get_logger(__name__)

LAYER_SELECTIONS = ("uniform", "importance")


@dataclass
class PruningPlan:
    r"""
    What survives pruning, as indices into the source model (so a plan can be stored and applied again).

    Args:
        layers (`list[int]`):
            Source encoder layers to keep, in order.
        heads (`list[list[int]]`):
            For each kept layer, the source heads it keeps.
        neurons (`list[list[int]]`):
            For each kept layer, the source FFN neurons it keeps.
        channels (`list[int]`, *optional*):
            Hidden channels to keep; `None` keeps the width.
        head_dims (`list[list[list[int]]]`, *optional*):
            For each kept layer and kept head, the query/key dimensions it keeps; `None` keeps the head width.
        value_dims (`list[list[list[int]]]`, *optional*):
            Same for the value dimensions; set together with `head_dims` (one head width per model).
    """

    layers: list[int]
    heads: list[list[int]]
    neurons: list[list[int]]
    channels: list[int] | None = None
    head_dims: list[list[list[int]]] | None = None
    value_dims: list[list[list[int]]] | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> PruningPlan:
        return cls(**values)

    def summary(self) -> dict:
        """Kept counts (not indices): what a log line or a model card shows."""
        return {
            "layers": self.layers,
            "heads_per_layer": [len(h) for h in self.heads],
            "intermediate_sizes": [len(n) for n in self.neurons],
            "hidden_size": None if self.channels is None else len(self.channels),
            "head_size": None if self.head_dims is None else len(self.head_dims[0][0]),
        }


def plan_for_shape(
    importance: Importance,
    config: TinyBertConfig,
    num_hidden_layers: int | None = None,
    hidden_size: int | None = None,
    num_attention_heads: int | None = None,
    intermediate_size: int | None = None,
    attention_head_size: int | None = None,
    layer_selection: str = "uniform",
) -> PruningPlan:
    r"""
    Keep the most important structures so that the model gets exactly the given shape (the same in every layer).

    Args:
        importance ([`Importance`]):
            Scores of the source model, from [`~importance.compute_importance`].
        config ([`TinyBertConfig`]):
            The source model's config.
        num_hidden_layers, hidden_size, num_attention_heads, intermediate_size (`int`, *optional*):
            The target shape; an unset field keeps the source value.
        attention_head_size (`int`, *optional*):
            Target head width; defaults to `hidden_size // num_attention_heads` when the hidden size or the head
            count changes, else the source head width.
        layer_selection (`str`, *optional*, defaults to `"uniform"`):
            `"uniform"`: TinyBERT's uniform layer mapping (the last layer always kept); `"importance"`: the layers
            with the highest importance, in their original order.

    Returns:
        [`PruningPlan`]
    """
    layout = layout_of_config(config)
    source_layers = layout.shape(config, "num_hidden_layers")
    source_hidden, source_head_size = layout.shape(config, "hidden_size"), layout.head_size(config)
    source_heads = [layout.heads_of_layer(config, i) for i in range(source_layers)]
    source_ffn = [layout.intermediate_size_of_layer(config, i) for i in range(source_layers)]
    num_hidden_layers = source_layers if num_hidden_layers is None else num_hidden_layers
    hidden_size = source_hidden if hidden_size is None else hidden_size
    num_attention_heads = max(source_heads) if num_attention_heads is None else num_attention_heads
    intermediate_size = max(source_ffn) if intermediate_size is None else intermediate_size
    if num_attention_heads < 1 or hidden_size < 1:
        raise ValueError(
            f"Target `num_attention_heads={num_attention_heads}`, `hidden_size={hidden_size}`: pruning cannot remove "
            "every head or channel; keep at least one."
        )
    if attention_head_size is None:
        if hidden_size == source_hidden and num_attention_heads == max(source_heads):
            attention_head_size = source_head_size
        elif hidden_size % num_attention_heads:
            raise ValueError(
                f"{num_attention_heads} heads do not divide the new hidden size {hidden_size}: choose a head count "
                f"that does (e.g. {divisors_near(hidden_size, num_attention_heads)}) or set `attention_head_size`."
            )
        else:
            attention_head_size = hidden_size // num_attention_heads
    if layout.fixed_head_size and attention_head_size != source_head_size:
        raise BadInputError(
            f"A {config.model_type} model's head width is fixed at {source_head_size} (its rotary positions are "
            f"defined over it), but this shape needs {attention_head_size} ({hidden_size} channels / "
            f"{num_attention_heads} heads): choose `hidden_size = num_attention_heads * {source_head_size}`."
        )
    target = {
        "num_hidden_layers": (num_hidden_layers, source_layers),
        "hidden_size": (hidden_size, source_hidden),
        "num_attention_heads": (num_attention_heads, min(source_heads)),
        "intermediate_size": (intermediate_size, min(source_ffn)),
        "attention_head_size": (attention_head_size, source_head_size),
    }
    for name, (wanted, available) in target.items():
        if not 1 <= wanted <= available:
            raise ValueError(
                f"Target `{name}={wanted}` is not possible: pruning only removes structures, and the source model has "
                f"{available} (every layer)." + (" Choose a smaller student." if wanted > available else "")
            )
    layers = _select_layers(importance, source_layers, num_hidden_layers, layer_selection)
    if layout.keeps_first_layer and 0 not in layers:
        layers = [0, *layers[1:]]  # layer 0 differs from the others (ModernBERT: no attention norm)
    if layout.head_bias:  # one bias column per head, shared by every layer: the same heads everywhere
        shared = _top(sum(_normalized(importance.heads[i]) for i in layers), num_attention_heads)
        heads = [list(shared) for _ in layers]
    else:
        heads = [_top(importance.heads[i], num_attention_heads) for i in layers]
    plan = PruningPlan(
        layers=layers,
        heads=heads,
        neurons=[_top(importance.neurons[i], intermediate_size) for i in layers],
        channels=None if hidden_size == source_hidden else _top(importance.channels, hidden_size),
    )
    if attention_head_size != source_head_size:
        plan.head_dims = [
            [_top(importance.head_dims[i][h], attention_head_size) for h in kept]
            for i, kept in zip(layers, heads, strict=True)
        ]
        plan.value_dims = [
            [_top(importance.value_dims[i][h], attention_head_size) for h in kept]
            for i, kept in zip(layers, heads, strict=True)
        ]
    return plan


def plan_for_ratios(
    importance: Importance,
    config: TinyBertConfig,
    head_ratio: float = 0.0,
    ffn_ratio: float = 0.0,
    allocation: str = "per_layer",
) -> PruningPlan:
    r"""
    Remove a share of the attention heads and of the FFN neurons: how a distilled student is compressed further.

    Args:
        importance ([`Importance`]):
            Scores of the model.
        config ([`TinyBertConfig`]):
            The model's config.
        head_ratio (`float`, *optional*, defaults to 0.0):
            Share of heads to remove, in [0, 1). Every layer keeps at least one head.
        ffn_ratio (`float`, *optional*, defaults to 0.0):
            Share of FFN neurons to remove, in [0, 1). Every layer keeps at least one neuron.
        allocation (`str`, *optional*, defaults to `"per_layer"`):
            `"per_layer"` removes the share from each layer; `"global"` ranks all layers together (scores divided
            by their layer's mean, so layers of different activation scale compare), giving layers different sizes.

    Returns:
        [`PruningPlan`]
    """
    for name, ratio in (("head_ratio", head_ratio), ("ffn_ratio", ffn_ratio)):
        if not 0.0 <= ratio < 1.0:
            raise ValueError(
                f"`{name}` must be in [0, 1) (the share removed; every layer keeps at least one), got {ratio}."
            )
    if allocation not in ("per_layer", "global"):
        raise ValueError(f"`allocation` must be 'per_layer' or 'global', got {allocation!r}.")
    layout = layout_of_config(config)
    if layout.head_bias and head_ratio:
        raise BadInputError(
            f"A {config.model_type} model shares one position bias per head across its layers, so every layer must "
            "keep the same heads: prune it to a target shape (`num_attention_heads=`) rather than by `head_ratio`."
        )
    layers = list(range(layout.shape(config, "num_hidden_layers")))
    return PruningPlan(
        layers=layers,
        heads=_allocate(importance.heads, head_ratio, allocation),
        neurons=_allocate(importance.neurons, ffn_ratio, allocation),
    )


def whole_layers_plan(model: PreTrainedModel, layers: Sequence[int]) -> PruningPlan:
    """The plan that keeps `layers` of `model` whole (every head and neuron, the full width): a shallower copy of the
    chosen layers, for any family of `layouts.LAYOUTS`."""
    layout, config = layout_of(model), model.config
    return PruningPlan(
        layers=list(layers),
        heads=[list(range(layout.heads_of_layer(config, i))) for i in layers],
        neurons=[list(range(layout.intermediate_size_of_layer(config, i))) for i in layers],
    )


def apply_plan(model: PreTrainedModel, plan: PruningPlan) -> PreTrainedModel:
    r"""
    Build the pruned model described by `plan`: a new model of the same head with smaller weights.

    Args:
        model ([`PreTrainedModel`]):
            The model the plan was made for (TinyBERT, BERT, or any family of `layouts.LAYOUTS`); not modified.
        plan ([`PruningPlan`]):
            What to keep.

    Returns:
        [`PreTrainedModel`]: the pruned model, in the source's dtype, device and training mode: a TinyBERT model
        for a BERT or TinyBERT source, else the source's own class.
    """
    source = _source_model(model)
    layout, config = layout_of(source), source.config
    _check_plan(plan, config, layout)
    if layout.per_layer_shapes:
        new_config = _pruned_config(config, plan)
    else:
        new_config = _pruned_family_config(config, plan, layout)
    state = source.state_dict()
    embeddings = {name for name, module in source.named_modules() if isinstance(module, nn.Embedding)}
    new_state = {}
    for name, tensor in state.items():
        new_name, new_tensor = _prune_tensor(name, tensor, plan, config, layout, embeddings)
        if new_name is not None:
            new_state[new_name] = new_tensor
    if layout.per_layer_shapes and plan.channels is not None and not config.has_fit_dense:
        # fit_dense: (fit_size, hidden) with a 1 at (source channel, kept position): the student's hidden state
        # lands where the teacher's kept channels are, the removed ones are zero.
        scatter = torch.zeros(config.hidden_size, len(plan.channels), dtype=next(iter(state.values())).dtype)
        scatter[plan.channels, torch.arange(len(plan.channels))] = 1.0
        new_state["bert.fit_dense.weight" if _has_prefix(source) else "fit_dense.weight"] = scatter
        new_state["bert.fit_dense.bias" if _has_prefix(source) else "fit_dense.bias"] = torch.zeros(config.hidden_size)
    parameter = next(source.parameters())
    pruned = type(source)(new_config)
    missing, unexpected = pruned.load_state_dict(new_state, strict=False)
    missing = [key for key in missing if key not in _tied_keys(pruned)]
    if missing or unexpected:
        raise RuntimeError(f"Pruned weights do not fit the pruned model: missing {missing}, unexpected {unexpected}.")
    pruned.tie_weights()
    return pruned.to(device=parameter.device, dtype=parameter.dtype).train(source.training)


def prune(
    model: PreTrainedModel,
    batches: Iterable[dict[str, torch.Tensor]] | None = None,
    *,
    num_hidden_layers: int | None = None,
    hidden_size: int | None = None,
    num_attention_heads: int | None = None,
    intermediate_size: int | None = None,
    attention_head_size: int | None = None,
    head_ratio: float = 0.0,
    ffn_ratio: float = 0.0,
    importance: str | Importance = "taylor",
    layer_selection: str = "uniform",
    allocation: str = "per_layer",
    show_progress: bool = True,
) -> tuple[PreTrainedModel, PruningPlan]:
    r"""
    Score a model on calibration data and cut it down, either to a target shape or by removing a share of heads and
    FFN neurons (not both at once).

    Args:
        model ([`PreTrainedModel`]):
            A model of any family of `layouts.LAYOUTS` (TinyBERT, BERT, RoBERTa, XLM-R, ELECTRA, DistilBERT, MPNet,
            ModernBERT, DeBERTa-v2/v3), with or without a task head. Never modified.
        batches (`Iterable[dict[str, torch.Tensor]]`, *optional*):
            Tokenized calibration batches (see [`calibration_batches`]); not needed for `importance="magnitude"`.
        num_hidden_layers, hidden_size, num_attention_heads, intermediate_size, attention_head_size (`int`):
            *Optional*, the target shape (see [`plan_for_shape`]).
        head_ratio, ffn_ratio (`float`, *optional*, defaults to 0.0):
            Shares to remove (see [`plan_for_ratios`]).
        importance (`str` or [`Importance`], *optional*, defaults to `"taylor"`):
            `"taylor"` (needs `labels` in the batches and a task head; measured best here, see docs/pruning.md),
            `"activation"` (no labels needed), `"magnitude"` (no data needed), or scores already computed.
        layer_selection (`str`, *optional*, defaults to `"uniform"`):
            How a shallower target picks its layers: `"uniform"` or `"importance"`.
        allocation (`str`, *optional*, defaults to `"per_layer"`):
            How ratios are spread over layers: `"per_layer"` or `"global"`.
        show_progress (`bool`, *optional*, defaults to `True`):
            Progress bar while scoring.

    Returns:
        `tuple`: the pruned model (TinyBERT for a BERT source, else the source's class) and the [`PruningPlan`]
        that made it.

    Example:

    ```python
    >>> import torch
    >>> from transformers import BertConfig, BertForSequenceClassification
    >>> from tinybert_hf.pruning.structured import prune

    >>> teacher = BertForSequenceClassification(BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=4,
    ...                                                    num_attention_heads=4, intermediate_size=64))
    >>> batches = [{"input_ids": torch.randint(0, 99, (4, 9))}]
    >>> student, plan = prune(teacher, batches, num_hidden_layers=2, hidden_size=24, num_attention_heads=3,
    ...                       intermediate_size=40, importance="activation", show_progress=False)
    >>> c = student.config
    >>> c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.head_size, c.intermediate_size, c.fit_size
    (2, 24, 3, 8, 40, 32)

    ```
    """
    shape = (num_hidden_layers, hidden_size, num_attention_heads, intermediate_size, attention_head_size)
    by_shape = any(value is not None for value in shape)
    if by_shape and (head_ratio or ffn_ratio):
        raise ValueError("Give either a target shape or `head_ratio`/`ffn_ratio`, not both.")
    if layer_selection not in LAYER_SELECTIONS:
        raise ValueError(f"`layer_selection` must be one of {LAYER_SELECTIONS}, got {layer_selection!r}.")
    source = _source_model(model)
    if isinstance(importance, str):
        if importance not in IMPORTANCE_METHODS:
            raise ValueError(f"`importance` must be one of {IMPORTANCE_METHODS}, got {importance!r}.")
        importance = compute_importance(source, batches, method=importance, show_progress=show_progress)
    if by_shape:
        plan = plan_for_shape(importance, source.config, *shape, layer_selection=layer_selection)
    else:
        plan = plan_for_ratios(importance, source.config, head_ratio, ffn_ratio, allocation)
    pruned = apply_plan(source, plan)
    logger.info(
        f"Pruned by {importance.method} importance: {parameter_count(source):,} -> {parameter_count(pruned):,} "
        f"parameters; kept {plan.summary()}"
    )
    return pruned, plan


def calibration_batches(
    dataset, num_samples: int = 512, batch_size: int = 32, pad_token_id: int = 0, seed: int = 0
) -> list[dict[str, torch.Tensor]]:
    r"""
    Calibration data for [`prune`]: `num_samples` rows drawn at random from a tokenized `datasets.Dataset`
    (`input_ids`, optionally `attention_mask`, `token_type_ids`, `labels`), padded into batches.

    Token-level labels (lists) are padded with -100, as transformers' token-classification collator does.
    """
    if dataset.num_rows == 0:
        raise ValueError("The calibration dataset is empty: pruning needs a few hundred tokenized rows.")
    if "input_ids" not in dataset.column_names:
        raise ValueError(f"The calibration dataset has no `input_ids` (columns {dataset.column_names}); tokenize it.")
    rows = dataset.shuffle(seed=seed).select(range(min(num_samples, dataset.num_rows)))
    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids", "labels") if c in rows.column_names]
    rows = rows.select_columns(columns)
    padding = {"input_ids": pad_token_id, "attention_mask": 0, "token_type_ids": 0, "labels": -100}
    batches = []
    for start in range(0, rows.num_rows, batch_size):
        chunk = rows[start : start + batch_size]
        length = max(len(ids) for ids in chunk["input_ids"])
        if "attention_mask" not in chunk:
            chunk["attention_mask"] = [[1] * len(ids) for ids in chunk["input_ids"]]
        batch = {}
        for column, values in chunk.items():
            if column == "labels" and not isinstance(values[0], list):
                batch[column] = torch.tensor(values)
            else:
                batch[column] = torch.tensor([list(v) + [padding[column]] * (length - len(v)) for v in values])
        batches.append(batch)
    return batches


# ---- helpers -------------------------------------------------------------------------------------------------------


def _top(scores: torch.Tensor, count: int) -> list[int]:
    """Indices of the `count` highest scores, in increasing index order (the kept structures keep their order)."""
    return sorted(torch.topk(scores.float(), count).indices.tolist())


def _select_layers(importance: Importance, source_layers: int, count: int, selection: str) -> list[int]:
    if selection not in LAYER_SELECTIONS:
        raise ValueError(f"`layer_selection` must be one of {LAYER_SELECTIONS}, got {selection!r}.")
    if count == source_layers:
        return list(range(source_layers))
    if selection == "uniform":
        return uniform_layer_subset(source_layers, count)
    if importance.layers is None:
        raise ValueError(
            f"{importance.method} importance cannot rank layers; use `layer_selection='uniform'` or measure "
            "'activation' or 'taylor' importance."
        )
    return _top(importance.layers, count)


def _allocate(scores: list[torch.Tensor], ratio: float, allocation: str) -> list[list[int]]:
    """Per layer, the structures kept when `ratio` of all of them is removed."""
    if allocation == "per_layer":
        return [_top(s, max(1, round(len(s) * (1 - ratio)))) for s in scores]
    normalized = [s.float() / s.float().mean().clamp(min=1e-12) for s in scores]
    flat = torch.cat(normalized)
    keep_total = max(len(scores), round(len(flat) * (1 - ratio)))
    threshold = torch.topk(flat, keep_total).values.min()
    kept = []
    for s in normalized:
        chosen = [i for i in range(len(s)) if s[i] >= threshold] or [int(s.argmax())]
        kept.append(chosen)
    return kept


def _check_plan(plan: PruningPlan, config, layout: EncoderLayout) -> None:
    """Every index must exist in the source and nothing may be emptied; errors say which list is wrong."""
    layers = layout.shape(config, "num_hidden_layers")

    def check(values: Sequence[int], upper: int, what: str) -> None:
        if not values:
            raise ValueError(f"The plan removes every {what}; keep at least one.")
        bad = [v for v in values if not 0 <= v < upper]
        if bad or len(set(values)) != len(values):
            raise ValueError(
                f"The plan keeps {what} {sorted(values)}, but the source has {upper} "
                f"(indices 0..{upper - 1}, each once)."
            )

    check(plan.layers, layers, "layers")
    if len(plan.heads) != len(plan.layers) or len(plan.neurons) != len(plan.layers):
        raise ValueError("`heads` and `neurons` need one entry per kept layer.")
    for layer, heads, neurons in zip(plan.layers, plan.heads, plan.neurons, strict=True):
        check(heads, layout.heads_of_layer(config, layer), f"heads of layer {layer}")
        check(neurons, layout.intermediate_size_of_layer(config, layer), f"FFN neurons of layer {layer}")
    if plan.channels is not None:
        check(plan.channels, layout.shape(config, "hidden_size"), "hidden channels")
    if (plan.head_dims is None) != (plan.value_dims is None):
        raise ValueError("`head_dims` and `value_dims` go together: the model has one head width.")
    if plan.head_dims is not None:
        widths = {len(d) for per_layer in plan.head_dims + plan.value_dims for d in per_layer}
        if len(widths) != 1:
            raise ValueError(f"Every kept head must keep the same number of dimensions, got {sorted(widths)}.")
        for per_layer in plan.head_dims + plan.value_dims:
            for dims in per_layer:
                check(dims, layout.head_size(config), "head dimensions")
    if layout.head_bias and any(heads != plan.heads[0] for heads in plan.heads):
        raise ValueError(
            f"A {config.model_type} model shares one position bias per head across its layers: every kept layer "
            f"must keep the same heads, got {plan.heads}."
        )
    if layout.keeps_first_layer and plan.layers[0] != 0:
        raise ValueError(
            f"A {config.model_type} model's first layer has no attention norm, unlike the others: a pruned model "
            f"keeps layer 0 first, got layers {plan.layers}."
        )
    if layout.fixed_head_size and plan.head_dims is not None:
        raise ValueError(f"A {config.model_type} model's head width is fixed (rotary positions): no `head_dims`.")


def _pruned_config(config: TinyBertConfig, plan: PruningPlan) -> TinyBertConfig:
    heads = [len(h) for h in plan.heads]
    ffn = [len(n) for n in plan.neurons]
    hidden = config.hidden_size if plan.channels is None else len(plan.channels)
    head_size = config.head_size if plan.head_dims is None else len(plan.head_dims[0][0])
    values = config.to_dict()
    for key in ("model_type", "transformers_version", "architectures", "auto_map"):
        values.pop(key, None)
    fit_size = config.fit_size if config.has_fit_dense else (config.hidden_size if plan.channels is not None else None)
    values.update(
        num_hidden_layers=len(plan.layers),
        hidden_size=hidden,
        num_attention_heads=max(heads),
        intermediate_size=max(ffn),
        layer_num_attention_heads=heads if len(set(heads)) > 1 else None,
        layer_intermediate_sizes=ffn if len(set(ffn)) > 1 else None,
        # Explicit whenever it cannot be derived as hidden_size // num_attention_heads.
        attention_head_size=None if len(set(heads)) == 1 and heads[0] * head_size == hidden else head_size,
        fit_size=fit_size if fit_size != hidden else None,
    )
    return TinyBertConfig(**values)


def _pruned_family_config(config, plan: PruningPlan, layout: EncoderLayout):
    """The config of a pruned stock-family model: one head count, FFN width and head width for every layer."""
    heads = {len(h) for h in plan.heads}
    ffn = {len(n) for n in plan.neurons}
    if len(heads) > 1 or len(ffn) > 1:
        raise BadInputError(
            f"A pruned {config.model_type} model stays a stock {type(config).__name__}, which has one head count and "
            f"one FFN width for every layer, but this plan keeps {[len(h) for h in plan.heads]} heads and "
            f"{[len(n) for n in plan.neurons]} FFN neurons per layer. Prune to a target shape, or with "
            "`allocation='per_layer'`; per-layer shapes are for BERT teachers (their TinyBERT twin records them)."
        )
    hidden = layout.shape(config, "hidden_size") if plan.channels is None else len(plan.channels)
    head_count, head_size = heads.pop(), layout.head_size(config)
    if plan.head_dims is not None:
        head_size = len(plan.head_dims[0][0])
    values = config.to_dict()
    values.pop("transformers_version", None)
    names = layout.config_names
    values.update(
        {
            names["num_hidden_layers"]: len(plan.layers),
            names["hidden_size"]: hidden,
            names["num_attention_heads"]: head_count,
            names["intermediate_size"]: ffn.pop(),
        }
    )
    if head_count * head_size != hidden:
        if not layout.head_size_field:
            raise BadInputError(
                f"A {config.model_type} model's heads are `hidden / heads` wide, but this plan keeps {head_count} "
                f"heads of {head_size} in {hidden} channels; choose a head count that divides the hidden size."
            )
        values[layout.head_size_field] = head_size
    embedding_size = values.get("embedding_size")  # ELECTRA: embeddings of their own width, then a projection
    if embedding_size == layout.shape(config, "hidden_size"):
        values["embedding_size"] = hidden  # no projection: the embeddings lose the same channels
    elif embedding_size == hidden:
        raise BadInputError(
            f"This {config.model_type} model projects its {embedding_size}-wide embeddings to the hidden size; a "
            f"pruned hidden size of {hidden} equals the embedding width, where the model has no projection. Choose "
            "another hidden size."
        )
    if values.get("pooler_hidden_size") == layout.shape(config, "hidden_size"):  # DeBERTa's pooler width
        values["pooler_hidden_size"] = hidden
    if isinstance(values.get("layer_types"), list):  # ModernBERT: global or sliding attention, per layer
        values["layer_types"] = [values["layer_types"][i] for i in plan.layers]
    if plan.channels is not None:
        values["pruned_hidden_channels"] = list(plan.channels)  # distillation's projection starts from them
    return type(config)(**values)


def _has_prefix(model: PreTrainedModel) -> bool:
    return hasattr(model, model.base_model_prefix)


def _tied_keys(model: PreTrainedModel) -> set[str]:
    return set(getattr(model, "_tied_weights_keys", None) or {})


def _index(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long)


def _attention_rows(plan: PruningPlan, position: int, head_size: int, dims: list[list[list[int]]] | None) -> list[int]:
    """Rows of a query/key/value weight kept for kept layer `position`: head-major, then dimension."""
    rows = []
    for slot, head in enumerate(plan.heads[position]):
        kept_dims = range(head_size) if dims is None else dims[position][slot]
        rows += [head * head_size + d for d in kept_dims]
    return rows


def _prune_tensor(
    name: str, tensor: torch.Tensor, plan: PruningPlan, config, layout: EncoderLayout, embeddings: set[str]
) -> tuple[str | None, torch.Tensor]:
    """The pruned version of one state-dict entry, renamed when its layer moves; `(None, _)` drops it.

    The layout names the roles of a layer's linears (queries, keys, values, attention output, FFN in and out); every
    other tensor keeps the kept hidden channels along each axis that is `hidden_size` long (embeddings: their
    width only)."""
    source_hidden = layout.shape(config, "hidden_size")
    channels = None if plan.channels is None else _index(plan.channels)

    def keep_channels(t: torch.Tensor, dim: int) -> torch.Tensor:
        return t if channels is None else t.index_select(dim, channels)

    def keep_hidden_axes(t: torch.Tensor) -> torch.Tensor:
        for dim in range(t.dim()):
            if t.shape[dim] == source_hidden:
                t = keep_channels(t, dim)
        return t

    in_layer = re.match(rf"^(.*?){re.escape(layout.layers)}\.(\d+)\.(.+)$", name)
    if in_layer:
        prefix, source_layer, local = in_layer.group(1), int(in_layer.group(2)), in_layer.group(3)
        if source_layer not in plan.layers:
            return None, tensor
        position = plan.layers.index(source_layer)
        new_name = f"{prefix}{layout.layers}.{position}.{local}"
        module, _, kind = local.rpartition(".")
        is_weight = kind == "weight"
        head_size = layout.head_size(config)
        qk_rows = _attention_rows(plan, position, head_size, plan.head_dims)
        v_rows = _attention_rows(plan, position, head_size, plan.value_dims)
        neurons = plan.neurons[position]
        if module in layout.queries or module in layout.keys:
            pruned = tensor.index_select(0, _index(qk_rows))
            if module in layout.queries and plan.head_dims is not None:
                # scores = q.k * new_size**-0.5 should keep the source's q.k * old_size**-0.5 scale
                pruned = pruned * (len(plan.head_dims[0][0]) / head_size) ** 0.5
            return new_name, keep_channels(pruned, 1) if is_weight else pruned
        if module in layout.values:
            pruned = tensor.index_select(0, _index(v_rows))
            return new_name, keep_channels(pruned, 1) if is_weight else pruned
        if module == layout.fused_qkv:  # rows [queries | keys | values], each heads * head_size
            width = layout.heads_of_layer(config, source_layer) * head_size
            rows = qk_rows + [width + r for r in qk_rows] + [2 * width + r for r in v_rows]
            pruned = tensor.index_select(0, _index(rows))
            return new_name, keep_channels(pruned, 1) if is_weight else pruned
        if module == layout.attention_output:
            return new_name, keep_channels(tensor.index_select(1, _index(v_rows)), 0) if is_weight else keep_channels(
                tensor, 0
            )
        if module == layout.ffn_input:
            if layout.gated_ffn:  # rows [input | gate]: neuron j is rows j and intermediate_size + j
                width = layout.intermediate_size_of_layer(config, source_layer)
                neurons = neurons + [width + n for n in neurons]
            pruned = tensor.index_select(0, _index(neurons))
            return new_name, keep_channels(pruned, 1) if is_weight else pruned
        if module == layout.ffn_output:
            return new_name, keep_channels(tensor.index_select(1, _index(neurons)), 0) if is_weight else keep_channels(
                tensor, 0
            )
        return new_name, keep_hidden_axes(tensor)  # the layer's norms: one entry per channel
    if layout.head_bias and name.endswith(f"{layout.head_bias}.weight"):
        return name, tensor.index_select(1, _index(plan.heads[0]))  # (buckets, heads)
    if channels is None:
        return name, tensor
    parts = name.split(".")
    if "fit_dense" in parts:
        return name, keep_channels(tensor, 1) if parts[-1] == "weight" else tensor  # (fit_size, hidden)
    if name.rpartition(".")[0] in embeddings:
        return name, keep_channels(tensor, 1) if tensor.shape[1] == source_hidden else tensor  # (rows, width)
    # pooler, task heads, MLM transform and decoder, norms: (out, in) or (width,)
    return name, keep_hidden_axes(tensor)


def _source_model(model: PreTrainedModel) -> PreTrainedModel:
    """What pruning works on: a BERT model's TinyBERT twin (per-layer shapes), any other family as it is."""
    if getattr(model.config, "model_type", None) == "bert":
        return as_tinybert(model)
    layout_of(model)  # a clear error for a family without a layout
    return model


def _normalized(scores: torch.Tensor) -> torch.Tensor:
    """Scores over their mean, so that layers of different activation scale add up fairly."""
    return scores.float() / scores.float().mean().clamp(min=1e-12)


__all__ = [
    "LAYER_SELECTIONS",
    "PruningPlan",
    "apply_plan",
    "as_tinybert",
    "calibration_batches",
    "plan_for_ratios",
    "plan_for_shape",
    "prune",
    "whole_layers_plan",
]
