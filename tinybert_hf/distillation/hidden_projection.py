"""The projection that maps a narrower stock-family student's hidden states to its teacher's width.

A TinyBERT student carries its own `fit_dense` (config `fit_size`). A student of a stock family (a RoBERTa, MPNet,
ModernBERT, ... cut from its teacher by structured pruning) has no place for it in its config: a
`nn.Linear(student_width, teacher_width)` is attached to it as the submodule `fit_dense` for distillation only, so
that DDP, DeepSpeed and the optimizer see it like any other parameter. It is saved beside the model as
`fit_dense.safetensors` (never inside `model.safetensors`, which the family's Auto classes then load cleanly), read
back when the next stage or a resumed run attaches it again, and dropped from the shipped student.

It starts as the map that puts each kept channel back where it was in the teacher (`config.pruned_hidden_channels`,
recorded by pruning), so the hidden-state loss of a freshly pruned student starts where the cut left it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedModel

PROJECTION_FILE = "fit_dense.safetensors"
PROJECTION_PREFIX = "fit_dense."


def attach_hidden_projection(student: PreTrainedModel, teacher_width: int) -> nn.Linear:
    """Give `student` a `fit_dense` from its hidden size to `teacher_width`, read from `fit_dense.safetensors`
    beside the student when an earlier stage saved one, else starting from the pruned channels' places (or a
    random init for a student that was not cut from the teacher). Returns the projection."""
    existing = getattr(student, "fit_dense", None)
    if isinstance(existing, nn.Linear) and existing.out_features == teacher_width:
        return existing
    width = student.config.hidden_size
    parameter = next(student.parameters())
    projection = nn.Linear(width, teacher_width)
    saved = Path(str(getattr(student, "name_or_path", "") or "")) / PROJECTION_FILE
    channels = getattr(student.config, "pruned_hidden_channels", None)
    with torch.no_grad():
        if saved.is_file():
            projection.load_state_dict(load_file(saved))
        elif channels is not None and len(channels) == width and max(channels) < teacher_width:
            # (teacher_width, width): a 1 at (source channel, kept position), zero elsewhere
            projection.weight.zero_()
            projection.weight[list(channels), torch.arange(width)] = 1.0
            projection.bias.zero_()
        else:
            projection.weight.normal_(0.0, getattr(student.config, "initializer_range", 0.02))
            projection.bias.zero_()
    student.fit_dense = projection.to(device=parameter.device, dtype=parameter.dtype)
    return student.fit_dense


def detach_hidden_projection(student: nn.Module) -> None:
    """Drop an attached `fit_dense` (the shipped student needs none)."""
    if "fit_dense" in student._modules:
        del student._modules["fit_dense"]


def split_projection(state_dict: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """`(model entries, projection entries)` of a state dict, the projection's without their prefix."""
    model, projection = {}, {}
    for name, tensor in state_dict.items():
        if name.startswith(PROJECTION_PREFIX):
            projection[name[len(PROJECTION_PREFIX) :]] = tensor
        else:
            model[name] = tensor
    return model, projection


def save_projection(projection_state: dict[str, torch.Tensor], directory: str | Path) -> None:
    tensors = {name: tensor.detach().contiguous() for name, tensor in projection_state.items()}
    save_file(tensors, Path(directory) / PROJECTION_FILE)


def load_projection(student: nn.Module, directory: str | Path) -> bool:
    """Load `fit_dense.safetensors` from `directory` into `student.fit_dense`, when both exist."""
    path = Path(directory) / PROJECTION_FILE
    projection = student._modules.get("fit_dense")
    if projection is None or not path.is_file():
        return False
    projection.load_state_dict(load_file(path))
    return True


__all__ = [
    "PROJECTION_FILE",
    "attach_hidden_projection",
    "detach_hidden_projection",
    "load_projection",
    "save_projection",
    "split_projection",
]
