"""How much each structure of an encoder (any family of `layouts.LAYOUTS`) matters, measured on calibration data.

Structured pruning (`pruning.py`) removes whole layers, attention heads, per-head query/key and value dimensions,
FFN neurons and hidden (residual) channels. This module scores each of them, higher meaning "keep":

- `"activation"` (Minitron, Muralidharan et al. 2024): the size of what the structure outputs on calibration data.
  Heads: mean L2 norm of the head's context vector; neurons: mean |activation|; hidden channels: mean |value| after
  every LayerNorm; layers: block importance, 1 - cosine(layer input, layer output).
- `"taylor"` (Michel et al. 2019 for heads, Molchanov et al. 2019 for neurons): the first-order change of the task
  loss when the structure is removed, |activation . d loss / d activation| summed per example; needs labels.
- `"magnitude"`: weight norms only, no data; the cheap baseline. It has no notion of layer importance.

Every score is averaged over real (non-padding) tokens and over examples, so batches of any padding compare.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel
from transformers.utils import logging

from ..distillation.teacher_cache import accepted_inputs, forward_input_names
from .layouts import layout_of

logger = logging.get_logger(__name__)

IMPORTANCE_METHODS = ("activation", "taylor", "magnitude")


@dataclass
class Importance:
    r"""
    Scores of every prunable structure of an encoder (higher is more important).

    Args:
        method (`str`):
            How the scores were measured: one of `"activation"`, `"taylor"`, `"magnitude"`.
        layers (`torch.Tensor` of shape `(num_hidden_layers,)`, *optional*):
            Per encoder layer; `None` for `"magnitude"`, which cannot rank layers.
        heads (`list[torch.Tensor]`):
            Per layer, a `(num_heads_of_layer,)` tensor.
        head_dims (`list[torch.Tensor]`):
            Per layer, `(num_heads_of_layer, head_size)`: each query/key dimension of each head.
        value_dims (`list[torch.Tensor]`):
            Per layer, `(num_heads_of_layer, head_size)`: each value dimension of each head.
        neurons (`list[torch.Tensor]`):
            Per layer, a `(intermediate_size_of_layer,)` tensor.
        channels (`torch.Tensor` of shape `(hidden_size,)`):
            Hidden (residual stream) channels.
        num_examples (`int`):
            Calibration examples the scores were measured on (0 for `"magnitude"`).
    """

    method: str
    layers: torch.Tensor | None
    heads: list[torch.Tensor]
    head_dims: list[torch.Tensor]
    value_dims: list[torch.Tensor]
    neurons: list[torch.Tensor]
    channels: torch.Tensor
    num_examples: int = 0


def compute_importance(
    model: PreTrainedModel,
    batches: Iterable[dict[str, torch.Tensor]] | None = None,
    method: str = "activation",
    show_progress: bool = True,
) -> Importance:
    r"""
    Score every layer, head, head dimension, FFN neuron and hidden channel of `model`.

    Args:
        model ([`PreTrainedModel`]):
            The model to score: TinyBERT, or any family of `layouts.LAYOUTS` (BERT, RoBERTa, DistilBERT, MPNet,
            ModernBERT, DeBERTa-v2, ...). It is not changed: its training mode is restored and no gradient is left
            behind.
        batches (`Iterable[dict[str, torch.Tensor]]`, *optional*):
            Tokenized calibration batches (`input_ids`, `attention_mask`, ...; `labels` for `"taylor"`), e.g. a
            `DataLoader`. A few hundred examples suffice. Not needed for `"magnitude"`.
        method (`str`, *optional*, defaults to `"activation"`):
            `"activation"`, `"taylor"` or `"magnitude"` (see the module docstring).
        show_progress (`bool`, *optional*, defaults to `True`):
            Show a progress bar over the calibration batches.

    Returns:
        [`Importance`]

    Example:

    ```python
    >>> import torch
    >>> from tinybert_hf import TinyBertConfig, TinyBertModel
    >>> from tinybert_hf.pruning.importance import compute_importance

    >>> config = TinyBertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
    >>> model = TinyBertModel(config)
    >>> scores = compute_importance(model, [{"input_ids": torch.randint(0, 99, (2, 7))}], show_progress=False)
    >>> scores.heads[0].shape, scores.neurons[1].shape, scores.channels.shape
    (torch.Size([4]), torch.Size([1200]), torch.Size([32]))

    ```
    """
    if method not in IMPORTANCE_METHODS:
        raise ValueError(f"`method` must be one of {IMPORTANCE_METHODS}, got {method!r}.")
    layout_of(model)  # a BadInputError for a family without a described layout, before any work
    if method == "magnitude":
        return _magnitude_importance(model)
    if batches is None:
        raise ValueError(f"`method={method!r}` measures on calibration data: pass `batches` (tokenized inputs).")
    recorder = _ActivationRecorder(model, taylor=method == "taylor")
    input_names = forward_input_names(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    # Taylor scores need gradients to flow back to every activation: parameters must require them. Whatever the
    # model held before (frozen parameters, accumulated gradients) is put back afterwards.
    saved = {name: (p.requires_grad, p.grad) for name, p in model.named_parameters()}
    try:
        if method == "taylor":
            for parameter in model.parameters():
                parameter.requires_grad_(True)
        for batch in tqdm(batches, desc=f"{method} importance", disable=not show_progress):
            batch = {key: value.to(device) for key, value in batch.items() if isinstance(value, torch.Tensor)}
            batch.pop("teacher_logits", None)
            batch = accepted_inputs(batch, input_names)  # e.g. no `token_type_ids` for MPNet or DistilBERT
            if method != "taylor":
                batch.pop("labels", None)  # no loss needed
            recorder.start_batch(batch)
            if method == "taylor":
                if "labels" not in batch:
                    raise ValueError(
                        "`method='taylor'` needs the task loss: the calibration batches must carry `labels` "
                        "(or use `method='activation'`, which needs none)."
                    )
                with torch.enable_grad():
                    outputs = model(**batch, output_hidden_states=True)
                    if outputs.loss is None:
                        raise ValueError(
                            f"{type(model).__name__} returns no loss; Taylor importance needs a task head."
                        )
                    for hidden_state in outputs.hidden_states:
                        hidden_state.retain_grad()
                    outputs.loss.backward()
            else:
                with torch.no_grad():
                    outputs = model(**batch, output_hidden_states=True)
            recorder.end_batch(outputs.hidden_states)
    finally:
        recorder.remove()
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(saved[name][0])
            parameter.grad = saved[name][1]
        model.train(was_training)
    if recorder.num_examples == 0:
        raise ValueError("The calibration batches are empty: importance needs at least one example.")
    return recorder.importance(method)


class _ActivationRecorder:
    """Forward hooks that sum per-example scores over calibration batches (activations, or activation x gradient)."""

    def __init__(self, model: PreTrainedModel, taylor: bool):
        self.model = model
        self.taylor = taylor
        self.layout = layout = layout_of(model)
        config = model.config
        self.head_size = layout.head_size(config)
        self.hidden_size = layout.shape(config, "hidden_size")
        layers = layout.layer_modules(model)
        self.num_layers = len(layers)
        self.sums: dict[str, list[torch.Tensor | float]] = {
            key: [0.0] * self.num_layers for key in ("heads", "value", "query", "key", "neurons", "layers")
        }
        self.channels = 0.0
        self.num_examples = 0
        self.pending: list[tuple[str, int, torch.Tensor]] = []  # activations whose gradient arrives later
        self.handles = []
        for index, layer in enumerate(layers):
            self.handles += [
                layer.get_submodule(layout.attention_output).register_forward_pre_hook(
                    self._input_hook("context", index)
                ),
                layer.get_submodule(layout.ffn_output).register_forward_pre_hook(self._input_hook("neurons", index)),
            ]
            if layout.fused_qkv:
                fused = layer.get_submodule(layout.fused_qkv)
                self.handles.append(fused.register_forward_hook(self._output_hook("qkv", index)))
            else:
                query, key = layout.linears(layer, layout.queries)[0], layout.linears(layer, layout.keys)[0]
                self.handles += [
                    query.register_forward_hook(self._output_hook("query", index)),
                    key.register_forward_hook(self._output_hook("key", index)),
                ]
            for norm in layout.norms:
                self.handles.append(layer.get_submodule(norm).register_forward_hook(self._output_hook("channels", -1)))
        for norm in (layout.embedding_norm, layout.final_norm):
            if norm:
                module = model.base_model.get_submodule(norm)
                self.handles.append(module.register_forward_hook(self._output_hook("channels", -1)))

    def _input_hook(self, kind: str, index: int):
        def hook(module, inputs):
            self._record(kind, index, inputs[0])

        return hook

    def _output_hook(self, kind: str, index: int):
        def hook(module, inputs, output):
            self._record(kind, index, output)

        return hook

    def start_batch(self, batch: dict[str, torch.Tensor]) -> None:
        input_ids = batch.get("input_ids")
        shape = input_ids.shape if input_ids is not None else batch["inputs_embeds"].shape[:2]
        mask = batch.get("attention_mask")
        # (batch, seq, 1): 1 on real tokens
        self.mask = (torch.ones(shape) if mask is None else mask).to(torch.float32)[..., None]
        self.tokens = self.mask.sum(dim=1).clamp(min=1)  # (batch, 1)
        self.pending = []

    def _record(self, kind: str, index: int, activation: torch.Tensor) -> None:
        if tuple(activation.shape[:2]) != tuple(self.mask.shape[:2]):
            return  # not this batch's tokens: DeBERTa-v3 runs its query/key layers over position embeddings too
        if kind == "channels" and activation.shape[-1] != self.hidden_size:
            return  # ELECTRA's embedding norm, before the projection to the hidden size
        if self.taylor:
            if activation.requires_grad:
                activation.retain_grad()
                self.pending.append((kind, index, activation))
            return
        self._add(kind, index, activation.detach().float(), None)

    def end_batch(self, hidden_states: tuple[torch.Tensor, ...]) -> None:
        for kind, index, activation in self.pending:
            gradient = activation.grad
            if gradient is None:  # e.g. a layer whose output the loss does not reach
                gradient = torch.zeros_like(activation)
            self._add(kind, index, activation.detach().float(), gradient.float())
        self.pending = []
        mask = self.mask.to(hidden_states[0].device)
        for index in range(self.num_layers):
            before, after = hidden_states[index].detach().float(), hidden_states[index + 1].detach().float()
            if self.taylor:
                # removing the layer removes its residual update (after - before): first-order loss change
                gradient = hidden_states[index + 1].grad
                score = 0.0 if gradient is None else ((after - before) * gradient * mask).sum(dim=(1, 2)).abs()
            else:
                cosine = torch.nn.functional.cosine_similarity(before, after, dim=-1)[..., None]  # (batch, seq, 1)
                score = ((1 - cosine) * mask).sum(dim=1).squeeze(-1) / self.tokens.squeeze(-1).to(mask.device)
            self.sums["layers"][index] = self.sums["layers"][index] + torch.as_tensor(score).sum()
        self.num_examples += mask.shape[0]

    def _add(self, kind: str, index: int, activation: torch.Tensor, gradient: torch.Tensor | None) -> None:
        """Sum one batch's per-example scores of `kind` into the running totals."""
        mask = self.mask.to(activation.device)
        tokens = self.tokens.to(activation.device)
        batch, seq = activation.shape[:2]
        if kind == "qkv":  # a fused projection, (batch, seq, 3 * heads * head_size): queries, keys, values
            query, key, _ = activation.chunk(3, dim=-1)
            query_gradient, key_gradient, _ = (None, None, None) if gradient is None else gradient.chunk(3, dim=-1)
            self._add("query", index, query, query_gradient)
            self._add("key", index, key, key_gradient)
            return
        if kind in ("context", "query", "key"):
            # (batch, seq, heads, head_size)
            activation = activation.view(batch, seq, -1, self.head_size)
            gradient = None if gradient is None else gradient.view(batch, seq, -1, self.head_size)
            head_mask = mask[..., None]
            if gradient is None:
                per_dim = (activation.abs() * head_mask).sum(dim=1) / tokens[..., None]  # (batch, heads, head_size)
                if kind == "context":
                    norms = (activation.norm(dim=-1) * mask).sum(dim=1) / tokens  # (batch, heads)
                    self._accumulate("heads", index, norms.sum(dim=0))
                    self._accumulate("value", index, per_dim.sum(dim=0))
                else:
                    self._accumulate(kind, index, per_dim.sum(dim=0))
                return
            per_dim = (activation * gradient * head_mask).sum(dim=1)  # (batch, heads, head_size)
            if kind == "context":
                self._accumulate("heads", index, per_dim.sum(dim=-1).abs().sum(dim=0))
                self._accumulate("value", index, per_dim.abs().sum(dim=0))
            else:
                self._accumulate(kind, index, per_dim.abs().sum(dim=0))
            return
        if gradient is None:
            per_example = (activation.abs() * mask).sum(dim=1) / tokens  # (batch, width)
        else:
            per_example = (activation * gradient * mask).sum(dim=1).abs()
        if kind == "neurons":
            self._accumulate("neurons", index, per_example.sum(dim=0))
        else:  # a LayerNorm output: the residual stream's channels
            self.channels = self.channels + per_example.sum(dim=0)

    def _accumulate(self, key: str, index: int, value: torch.Tensor) -> None:
        self.sums[key][index] = self.sums[key][index] + value

    def importance(self, method: str) -> Importance:
        count = self.num_examples
        layers = self.layout.layer_modules(self.model)
        head_dims, value_dims = [], []
        for index, layer in enumerate(layers):
            query, key = self.sums["query"][index] / count, self.sums["key"][index] / count
            # Query and key dimension d meet in q_d * k_d: both must be large for the dimension to matter.
            head_dims.append((query * key).cpu())
            # A value dimension matters by what reaches the output projection: |context_d| x ||W_o[:, d]||.
            output = layer.get_submodule(self.layout.attention_output)
            column_norms = output.weight.detach().float().norm(dim=0).view(-1, self.head_size)
            value_dims.append(
                (self.sums["value"][index] / count * column_norms.to(self.sums["value"][index].device)).cpu()
            )
        return Importance(
            method=method,
            layers=torch.stack([torch.as_tensor(s, dtype=torch.float32) / count for s in self.sums["layers"]]).cpu(),
            heads=[(s / count).cpu() for s in self.sums["heads"]],
            head_dims=head_dims,
            value_dims=value_dims,
            neurons=[(s / count).cpu() for s in self.sums["neurons"]],
            channels=(self.channels / count).cpu(),
            num_examples=count,
        )

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


@torch.no_grad()
def _magnitude_importance(model: PreTrainedModel) -> Importance:
    """Weight norms: a structure whose weights are small changes the output little (no data needed)."""
    layout = layout_of(model)
    head_size = layout.head_size(model.config)
    hidden_size = layout.shape(model.config, "hidden_size")
    heads, head_dims, value_dims, neurons = [], [], [], []
    channels = torch.zeros(hidden_size)

    def add_norm_weight(norm: torch.nn.Module) -> None:
        nonlocal channels
        weight = getattr(norm, "weight", None)  # ModernBERT's first attention norm is an Identity
        if weight is not None and weight.shape == (hidden_size,):
            channels = channels + weight.detach().float().abs().cpu()

    def row_norms(weight: torch.Tensor) -> torch.Tensor:  # (heads, head_size): each output row's norm, by head
        return weight.detach().float().norm(dim=1).view(-1, head_size)

    for norm in (layout.embedding_norm, layout.final_norm):
        if norm:
            add_norm_weight(model.base_model.get_submodule(norm))
    for layer in layout.layer_modules(model):
        if layout.fused_qkv:
            query, key, value = (row_norms(w) for w in layer.get_submodule(layout.fused_qkv).weight.chunk(3, dim=0))
        else:
            query, key, value = (
                row_norms(layout.linears(layer, paths)[0].weight)
                for paths in (layout.queries, layout.keys, layout.values)
            )
        output = layer.get_submodule(layout.attention_output).weight.detach().float()
        output_columns = output.norm(dim=0).view(-1, head_size)
        head_dims.append(query * key)
        value_dims.append(value * output_columns)
        heads.append((query.square() + key.square() + value.square() + output_columns.square()).sum(dim=1).sqrt())
        up = layer.get_submodule(layout.ffn_input).weight.detach().float().norm(dim=1)
        if layout.gated_ffn:  # rows [input | gate]: a neuron needs both
            up_input, up_gate = up.chunk(2)
            up = up_input * up_gate
        down = layer.get_submodule(layout.ffn_output).weight.detach().float().norm(dim=0)
        neurons.append(up * down)
        for norm in layout.norms:
            add_norm_weight(layer.get_submodule(norm))
    return Importance(
        method="magnitude",
        layers=None,
        heads=heads,
        head_dims=head_dims,
        value_dims=value_dims,
        neurons=neurons,
        channels=channels,
    )


__all__ = ["IMPORTANCE_METHODS", "Importance", "compute_importance"]
