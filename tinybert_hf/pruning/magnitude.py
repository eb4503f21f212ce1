"""Unstructured magnitude (L1) pruning of a student's layer weights, for runtimes that exploit sparse weights.

Zeroing the smallest weights keeps every tensor's shape: dense CPU kernels (PyTorch, ONNX Runtime) do exactly the
same work, and safetensors stores the zeros, so neither speed nor size on disk improve here. [`sparsity_report`]
says so with numbers: the share of zeros among the pruned weights and among all parameters (embeddings are not
pruned) and the compressed size, which is what a sparse format or a zip of the weights would gain. For dense CPU
speed, use structured pruning (`tinybert_hf.pruning.structured`) and int8 (`tinybert_hf.quantization.onnx_int8`).

Pair it with the `l1_penalty` of [`DistillationTrainingArguments`], which drives weights towards zero during
distillation so that the magnitude cut then loses less.
"""

from __future__ import annotations

import copy
import io
import zlib

from torch import nn
from torch.nn.utils import prune as torch_prune

from ..utils.layers import prunable_linears


def magnitude_prune(model: nn.Module, sparsity: float, scope: str = "global") -> nn.Module:
    r"""
    A copy of `model` whose smallest-magnitude linear weights are set to zero (`torch.nn.utils.prune`, made permanent).

    Args:
        model (`nn.Module`): the student; not modified.
        sparsity (`float`): share of the linear weights to zero, in [0, 1).
        scope (`str`, *optional*, defaults to `"global"`): `"global"` ranks all linear weights together (layers that
            matter less lose more), `"per_layer"` zeroes the same share in each layer.

    Returns:
        `nn.Module`: the pruned copy (plain tensors with zeros; no pruning masks or hooks left).
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"`sparsity` must be in [0, 1), got {sparsity}.")
    if scope not in ("global", "per_layer"):
        raise ValueError(f"`scope` must be 'global' or 'per_layer', got {scope!r}.")
    pruned = copy.deepcopy(model)
    linears = prunable_linears(pruned)
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear weights to prune.")
    if scope == "global":
        torch_prune.global_unstructured(
            [(module, "weight") for _, module in linears], pruning_method=torch_prune.L1Unstructured, amount=sparsity
        )
    else:
        for _, module in linears:
            torch_prune.l1_unstructured(module, "weight", amount=sparsity)
    for _, module in linears:
        torch_prune.remove(module, "weight")  # bake the mask into the weight; saved models carry no masks
    return pruned


def sparsity_report(model: nn.Module) -> dict:
    r"""
    How sparse a model really is, and what that buys on a dense runtime.

    Returns:
        `dict`: `linear_sparsity` (zeros among the prunable linear weights), `overall_sparsity` (zeros among all
        parameters), `per_layer` (each linear layer's share of zeros), `dense_mb` (fp32 bytes as stored) and
        `compressed_mb` (zlib of those bytes: the storage a sparse or compressed format could save).
    """
    linears = prunable_linears(model)
    linear_zeros = sum(int((module.weight == 0).sum()) for _, module in linears)
    linear_total = sum(module.weight.numel() for _, module in linears)
    parameters = list(model.parameters())
    zeros = sum(int((parameter == 0).sum()) for parameter in parameters)
    total = sum(parameter.numel() for parameter in parameters)
    buffer = io.BytesIO()
    for parameter in parameters:
        buffer.write(parameter.detach().cpu().float().numpy().tobytes())
    raw = buffer.getvalue()
    return {
        "linear_sparsity": linear_zeros / max(linear_total, 1),
        "overall_sparsity": zeros / max(total, 1),
        "linear_parameters": linear_total,
        "parameters": total,
        "per_layer": {name: float((module.weight == 0).float().mean()) for name, module in linears},
        "dense_mb": round(len(raw) / 1e6, 2),
        "compressed_mb": round(len(zlib.compress(raw, 1)) / 1e6, 2),
    }


__all__ = ["magnitude_prune", "sparsity_report"]
