"""Quantization-aware distillation: train the student through the rounding its int8 ONNX graph will apply.

The fake-quantized modules reproduce ONNX Runtime's dynamic int8 scheme (`tinybert_hf.quantization.onnx_int8`):

- weights of every `nn.Linear`: symmetric int8, zero point 0, scale `max|w| / 127` per tensor (per output channel
  with `per_channel`), values in [-127, 127] ([-64, 64], scale `max|w| / 64`, with `reduce_range`);
- inputs of every `nn.Linear`: asymmetric uint8 from the batch's own range (ORT's `DynamicQuantizeLinear`: the
  range always holds 0, scale `(max - min) / 255`, zero point `round(-min / scale)`);
- embedding tables (`nn.Embedding`, ONNX `Gather`): asymmetric uint8 per table, the same formula on the table.

On CPUs without VNNI (AVX2 only), ORT's u8 x s8 kernel sums pairs of products in saturating int16, so the int8
graph can differ from the fake-quantized model by more than rounding; `reduce_range` (7-bit weights) avoids the
saturation and brings the two together (largest logit difference on the main-job student, linear layers only:
0.031 without, 0.0015 with, against 0.115 / 0.284 for the fp32 model).

Rounding passes gradients straight through (`torch.fake_quantize_*`), so the student learns weights that survive
int8. The modules subclass `nn.Linear` / `nn.Embedding` and keep their parameter names: state dicts, optimizers and
checkpoints see the same tensors, and [`remove_fake_quantization`] swaps plain modules back before saving.
"""

from __future__ import annotations

import torch
from torch import nn

WEIGHT_RANGE = (-127, 127)  # ORT's symmetric int8 range
REDUCED_WEIGHT_RANGE = (-64, 64)


def fake_quantize_weight(weight: torch.Tensor, per_channel: bool = False, reduce_range: bool = False) -> torch.Tensor:
    """Symmetric int8 round trip of a linear weight `(out, in)`, per tensor or per output row."""
    low, high = REDUCED_WEIGHT_RANGE if reduce_range else WEIGHT_RANGE
    if per_channel:
        scale = (weight.detach().abs().amax(dim=1) / high).clamp_min(1e-12)  # (out,)
        zero_point = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(weight, scale.float(), zero_point, 0, low, high)
    scale = (weight.detach().abs().max() / high).clamp_min(1e-12).float().reshape(1)
    return torch.fake_quantize_per_tensor_affine(weight, scale, torch.zeros(1, dtype=torch.int32), low, high)


def fake_quantize_activation(inputs: torch.Tensor) -> torch.Tensor:
    """uint8 round trip with the tensor's own range, as ORT's `DynamicQuantizeLinear` does at inference."""
    low = inputs.detach().min().clamp(max=0)
    high = inputs.detach().max().clamp(min=0)
    scale = ((high - low) / 255).clamp_min(1e-12).float().reshape(1)
    zero_point = (-low / scale).round().clamp(0, 255).to(torch.int32).reshape(1)
    return torch.fake_quantize_per_tensor_affine(inputs, scale, zero_point, 0, 255)


class FakeQuantLinear(nn.Linear):
    """`nn.Linear` computing `fq(x) @ fq(W).T + b`, with the same parameters as the module it replaces."""

    per_channel: bool = False
    reduce_range: bool = False

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        weight = fake_quantize_weight(self.weight, self.per_channel, self.reduce_range)
        return nn.functional.linear(fake_quantize_activation(inputs), weight, self.bias)


class FakeQuantEmbedding(nn.Embedding):
    """`nn.Embedding` looking rows up in the uint8 round trip of its table (ORT quantizes a Gather's table so)."""

    per_channel: bool = False
    reduce_range: bool = False

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        # one scale per table and all 8 bits, whatever `per_channel` and `reduce_range` say (as ORT does)
        weight = fake_quantize_activation(self.weight)
        return nn.functional.embedding(inputs, weight, self.padding_idx, self.max_norm, self.norm_type)


_FAKE = {nn.Linear: FakeQuantLinear, nn.Embedding: FakeQuantEmbedding}
_PLAIN = {fake: plain for plain, fake in _FAKE.items()}


def add_fake_quantization(model: nn.Module, per_channel: bool = False, reduce_range: bool = False) -> nn.Module:
    r"""
    Make every `nn.Linear` and `nn.Embedding` of `model` fake-quantized, in place (the parameters are shared).

    Args:
        model (`nn.Module`): a TinyBERT or BERT model being trained; other module types are left in fp32, as the
            int8 ONNX graph leaves them (LayerNorm, softmax, GELU).
        per_channel (`bool`, *optional*, defaults to `False`): must match the later `quantize --per_channel`.
        reduce_range (`bool`, *optional*, defaults to `False`): must match `quantize --reduce_range`.

    Returns:
        `nn.Module`: `model`.
    """
    swapped = 0
    for module in model.modules():
        if type(module) in _FAKE:  # exact types: a subclass with its own forward would lose it
            module.__class__ = _FAKE[type(module)]
            module.per_channel, module.reduce_range = per_channel, reduce_range
            swapped += 1
    if not swapped:
        raise ValueError(
            f"{type(model).__name__} has no nn.Linear or nn.Embedding to fake-quantize; quantization-aware "
            "training supports the linear and embedding layers of TinyBERT/BERT models."
        )
    return model


def remove_fake_quantization(model: nn.Module) -> nn.Module:
    """Turn fake-quantized modules back into plain `nn.Linear` / `nn.Embedding` (same parameters), in place."""
    for module in model.modules():
        if type(module) in _PLAIN:
            module.__class__ = _PLAIN[type(module)]
            for attribute in ("per_channel", "reduce_range"):
                module.__dict__.pop(attribute, None)
    return model


def has_fake_quantization(model: nn.Module) -> bool:
    return any(type(module) in _PLAIN for module in model.modules())


__all__ = [
    "FakeQuantEmbedding",
    "FakeQuantLinear",
    "add_fake_quantization",
    "fake_quantize_activation",
    "fake_quantize_weight",
    "has_fake_quantization",
    "remove_fake_quantization",
]
