"""Structured pruning that physically shrinks BERT-family encoders (transformers 5 removed `prune_heads`).

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
names and outputs, but a config that can describe per-layer shapes. The source model is never modified.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import torch
from transformers import PreTrainedModel
from transformers.utils import logging

from ..evaluation.speed_and_size import parameter_count
from ..models.tinybert.configuration_tinybert import TinyBertConfig, divisors_near
from ..models.tinybert.conversion import as_tinybert, uniform_layer_subset
from ..models.tinybert.modeling_tinybert import TinyBertPreTrainedModel
from .importance import IMPORTANCE_METHODS, Importance, compute_importance

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
    source_layers = config.num_hidden_layers
    source_heads = [config.num_attention_heads_of_layer(i) for i in range(source_layers)]
    source_ffn = [config.intermediate_size_of_layer(i) for i in range(source_layers)]
    num_hidden_layers = source_layers if num_hidden_layers is None else num_hidden_layers
    hidden_size = config.hidden_size if hidden_size is None else hidden_size
    num_attention_heads = max(source_heads) if num_attention_heads is None else num_attention_heads
    intermediate_size = max(source_ffn) if intermediate_size is None else intermediate_size
    if num_attention_heads < 1 or hidden_size < 1:
        raise ValueError(
            f"Target `num_attention_heads={num_attention_heads}`, `hidden_size={hidden_size}`: pruning cannot remove "
            "every head or channel; keep at least one."
        )
    if attention_head_size is None:
        if hidden_size == config.hidden_size and num_attention_heads == config.num_attention_heads:
            attention_head_size = config.head_size
        elif hidden_size % num_attention_heads:
            raise ValueError(
                f"{num_attention_heads} heads do not divide the new hidden size {hidden_size}: choose a head count "
                f"that does (e.g. {divisors_near(hidden_size, num_attention_heads)}) or set `attention_head_size`."
            )
        else:
            attention_head_size = hidden_size // num_attention_heads
    target = {
        "num_hidden_layers": (num_hidden_layers, source_layers),
        "hidden_size": (hidden_size, config.hidden_size),
        "num_attention_heads": (num_attention_heads, min(source_heads)),
        "intermediate_size": (intermediate_size, min(source_ffn)),
        "attention_head_size": (attention_head_size, config.head_size),
    }
    for name, (wanted, available) in target.items():
        if not 1 <= wanted <= available:
            raise ValueError(
                f"Target `{name}={wanted}` is not possible: pruning only removes structures, and the source model has "
                f"{available} (every layer)." + (" Choose a smaller student." if wanted > available else "")
            )
    layers = _select_layers(importance, source_layers, num_hidden_layers, layer_selection)
    heads = [_top(importance.heads[i], num_attention_heads) for i in layers]
    plan = PruningPlan(
        layers=layers,
        heads=heads,
        neurons=[_top(importance.neurons[i], intermediate_size) for i in layers],
        channels=None if hidden_size == config.hidden_size else _top(importance.channels, hidden_size),
    )
    if attention_head_size != config.head_size:
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
    layers = list(range(config.num_hidden_layers))
    return PruningPlan(
        layers=layers,
        heads=_allocate(importance.heads, head_ratio, allocation),
        neurons=_allocate(importance.neurons, ffn_ratio, allocation),
    )


def apply_plan(model: PreTrainedModel, plan: PruningPlan) -> TinyBertPreTrainedModel:
    r"""
    Build the pruned model described by `plan`: a new TinyBERT model of the same class (head) with smaller weights.

    Args:
        model ([`PreTrainedModel`]):
            TinyBERT or BERT-architecture model the plan was made for; not modified.
        plan ([`PruningPlan`]):
            What to keep.

    Returns:
        [`TinyBertPreTrainedModel`]: the pruned model, in the source's dtype, device and training mode.
    """
    source = as_tinybert(model)
    config = source.config
    _check_plan(plan, config)
    new_config = _pruned_config(config, plan)
    state = source.state_dict()
    new_state = {}
    for name, tensor in state.items():
        new_name, new_tensor = _prune_tensor(name, tensor, plan, config)
        if new_name is not None:
            new_state[new_name] = new_tensor
    if plan.channels is not None and not config.has_fit_dense:
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
) -> tuple[TinyBertPreTrainedModel, PruningPlan]:
    r"""
    Score a model on calibration data and cut it down, either to a target shape or by removing a share of heads and
    FFN neurons (not both at once).

    Args:
        model ([`PreTrainedModel`]):
            A TinyBERT or BERT-architecture model (with or without a task head). Never modified.
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
        `tuple`: the pruned model and the [`PruningPlan`] that made it.

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
    source = as_tinybert(model)
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


def _check_plan(plan: PruningPlan, config: TinyBertConfig) -> None:
    """Every index must exist in the source and nothing may be emptied; errors say which list is wrong."""
    layers = config.num_hidden_layers

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
        check(heads, config.num_attention_heads_of_layer(layer), f"heads of layer {layer}")
        check(neurons, config.intermediate_size_of_layer(layer), f"FFN neurons of layer {layer}")
    if plan.channels is not None:
        check(plan.channels, config.hidden_size, "hidden channels")
    if (plan.head_dims is None) != (plan.value_dims is None):
        raise ValueError("`head_dims` and `value_dims` go together: the model has one head width.")
    if plan.head_dims is not None:
        widths = {len(d) for per_layer in plan.head_dims + plan.value_dims for d in per_layer}
        if len(widths) != 1:
            raise ValueError(f"Every kept head must keep the same number of dimensions, got {sorted(widths)}.")
        for per_layer in plan.head_dims + plan.value_dims:
            for dims in per_layer:
                check(dims, config.head_size, "head dimensions")


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


def _has_prefix(model: TinyBertPreTrainedModel) -> bool:
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
    name: str, tensor: torch.Tensor, plan: PruningPlan, config: TinyBertConfig
) -> tuple[str | None, torch.Tensor]:
    """The pruned version of one state-dict entry, renamed when its layer moves; `(None, _)` drops it."""
    channels = None if plan.channels is None else _index(plan.channels)

    def keep_channels(t: torch.Tensor, dim: int) -> torch.Tensor:
        return t if channels is None else t.index_select(dim, channels)

    parts = name.split(".")
    if "encoder" in parts and "layer" in parts:
        at = parts.index("layer")
        source_layer = int(parts[at + 1])
        if source_layer not in plan.layers:
            return None, tensor
        position = plan.layers.index(source_layer)
        parts[at + 1] = str(position)
        new_name = ".".join(parts)
        local = ".".join(parts[at + 2 :])
        head_size = config.head_size
        qk_rows = _index(_attention_rows(plan, position, head_size, plan.head_dims))
        v_rows = _index(_attention_rows(plan, position, head_size, plan.value_dims))
        neurons = _index(plan.neurons[position])
        if local.startswith(("attention.self.query.", "attention.self.key.")):
            pruned = tensor.index_select(0, qk_rows)
            if local.startswith("attention.self.query.") and plan.head_dims is not None:
                # scores = q.k * new_size**-0.5 should keep the source's q.k * old_size**-0.5 scale
                pruned = pruned * (len(plan.head_dims[0][0]) / head_size) ** 0.5
            return new_name, keep_channels(pruned, 1) if local.endswith("weight") else pruned
        if local.startswith("attention.self.value."):
            pruned = tensor.index_select(0, v_rows)
            return new_name, keep_channels(pruned, 1) if local.endswith("weight") else pruned
        if local == "attention.output.dense.weight":
            return new_name, keep_channels(tensor.index_select(1, v_rows), 0)
        if local.startswith("intermediate.dense."):
            pruned = tensor.index_select(0, neurons)
            return new_name, keep_channels(pruned, 1) if local.endswith("weight") else pruned
        if local == "output.dense.weight":
            return new_name, keep_channels(tensor.index_select(1, neurons), 0)
        # attention.output.dense.bias, output.dense.bias and the LayerNorms: one entry per channel
        return new_name, keep_channels(tensor, 0)
    if channels is None:
        return name, tensor
    if "embeddings" in parts and parts[-2].endswith("_embeddings"):
        return name, keep_channels(tensor, 1)  # (rows, hidden)
    if "fit_dense" in parts:
        return name, keep_channels(tensor, 1) if parts[-1] == "weight" else tensor  # (fit_size, hidden)
    if parts[0] == "classifier" or name.endswith("predictions.decoder.weight"):
        return name, keep_channels(tensor, 1) if parts[-1] == "weight" else tensor  # (labels or vocab, hidden)
    if name.endswith(("predictions.bias", "predictions.decoder.bias")):
        return name, tensor
    if tensor.dim() == 2:  # pooler and MLM transform: (hidden, hidden)
        return name, keep_channels(keep_channels(tensor, 0), 1)
    return name, keep_channels(tensor, 0)  # embedding LayerNorm, pooler/transform biases and LayerNorm


__all__ = [
    "LAYER_SELECTIONS",
    "PruningPlan",
    "apply_plan",
    "as_tinybert",
    "calibration_batches",
    "plan_for_ratios",
    "plan_for_shape",
    "prune",
]
