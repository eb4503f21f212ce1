"""ONNX export of TinyBERT students (uniform or pruned shapes) with dynamic batch and sequence axes.

Uses torch's own exporter (`torch.onnx.export(..., dynamo=True)`, which needs `onnx` and `onnxscript`); the graph
is checked against PyTorch with ONNX Runtime on inputs of several batch sizes and lengths before it is kept.
Install the optional dependencies with `pip install "tinybert-hf[onnx]"`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import PreTrainedModel
from transformers.utils import logging

logger = logging.get_logger(__name__)

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def _require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"ONNX export needs onnx, onnxscript and onnxruntime ({error}); install them with "
            '`pip install "tinybert-hf[onnx]"`.'
        ) from error
    return onnxruntime


class _LogitsOnly(torch.nn.Module):
    """The model's first output (logits, or the last hidden state of a base model) as a plain tensor."""

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return outputs[0]


def export_onnx(model: PreTrainedModel, path: str | Path, opset_version: int = 18, atol: float = 1e-4) -> Path:
    r"""
    Export `model` to an ONNX file with dynamic `batch` and `sequence` axes, then check it with ONNX Runtime.

    Args:
        model ([`PreTrainedModel`]):
            A TinyBERT (or BERT) model, with any head; exported in eval mode, not modified.
        path (`str` or `Path`):
            The `.onnx` file to write (its directory is created).
        opset_version (`int`, *optional*, defaults to 18):
            ONNX opset of the graph.
        atol (`float`, *optional*, defaults to 1e-4):
            Largest difference to PyTorch allowed on the check inputs; a larger one is an error and no file is kept.

    Returns:
        `Path`: the written file. Its inputs are `input_ids`, `attention_mask`, `token_type_ids` (int64,
        `(batch, sequence)`), its output `logits` (`last_hidden_state` for a base model).
    """
    onnxruntime = _require_onnx()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    wrapper = _LogitsOnly(model)
    example = _check_inputs(model.config.vocab_size, ((2, 16),))[0]
    axes = {name: {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")} for name in INPUT_NAMES}
    output_name = "logits" if hasattr(model, "classifier") or hasattr(model, "cls") else "last_hidden_state"
    partial = path.with_suffix(".onnx.partial")
    try:
        with torch.no_grad():
            torch.onnx.export(
                wrapper,
                tuple(example[name] for name in INPUT_NAMES),
                str(partial),
                input_names=list(INPUT_NAMES),
                output_names=[output_name],
                dynamic_shapes=axes,
                opset_version=opset_version,
                dynamo=True,
                external_data=False,
            )
        session = onnxruntime.InferenceSession(str(partial), providers=["CPUExecutionProvider"])
        for inputs in _check_inputs(model.config.vocab_size, ((1, 7), (3, 33), (2, 64))):
            with torch.no_grad():
                expected = wrapper(**inputs).numpy()
            got = session.run(None, {name: tensor.numpy() for name, tensor in inputs.items()})[0]
            difference = float(abs(expected - got).max())
            if difference > atol:
                raise ValueError(
                    f"The ONNX graph differs from PyTorch by {difference:.2e} (> {atol}) on a batch of shape "
                    f"{tuple(inputs['input_ids'].shape)}; try another `opset_version` or onnxruntime version."
                )
        partial.replace(path)  # only a checked graph gets the final name
    finally:
        partial.unlink(missing_ok=True)
        model.train(was_training)
    logger.info(f"ONNX graph written to {path} (checked against PyTorch within {atol}).")
    return path


def _check_inputs(vocab_size: int, shapes) -> list[dict[str, torch.Tensor]]:
    """Random token ids with some padding in the last row, for each `(batch, sequence)` shape."""
    generator = torch.Generator().manual_seed(0)
    batches = []
    for batch, length in shapes:
        input_ids = torch.randint(1, vocab_size, (batch, length), generator=generator)
        attention_mask = torch.ones_like(input_ids)
        attention_mask[-1, max(1, length // 2) :] = 0
        token_type_ids = torch.zeros_like(input_ids)
        batches.append({"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids})
    return batches


__all__ = ["export_onnx"]
