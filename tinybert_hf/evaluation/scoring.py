"""Scoring a model on tokenized rows in one process: the recipe's final evaluation of every model.

Trainer's `evaluate` would do, but under a launcher it splits the rows across processes and gathers the predictions:
every process would have to take part, for every model (the int8 ONNX one too), and under a DeepSpeed launch config
it would even start a DeepSpeed engine to evaluate. The recipe scores on the main process only, with this plain loop,
which gives the metrics Trainer gives: the task's `compute_metrics` on all predictions, and the per-row mean loss.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
import torch
from datasets import Dataset
from transformers import EvalPrediction

IGNORED_LABEL = -100  # what token-level predictions and labels are padded with, as Trainer pads them


def _padded(arrays: list[np.ndarray], value: float) -> np.ndarray:
    """Batches of `(rows, length, ...)` padded to the longest `length` and joined; `(rows, ...)` batches joined."""
    if arrays[0].ndim == 1 or all(array.shape[1:] == arrays[0].shape[1:] for array in arrays):
        return np.concatenate(arrays)
    longest = max(array.shape[1] for array in arrays)
    widths = [[(0, 0), (0, longest - array.shape[1])] + [(0, 0)] * (array.ndim - 2) for array in arrays]
    padded = [np.pad(array, width, constant_values=value) for array, width in zip(arrays, widths, strict=True)]
    return np.concatenate(padded)


@torch.no_grad()
def score(
    model: torch.nn.Module,
    data: Dataset,
    collator: Callable[[list[dict]], dict],
    compute_metrics: Callable[[EvalPrediction], dict],
    batch_size: int = 128,
) -> dict[str, float]:
    """
    The metrics of `model` on `data`, one process, no gradients, rows in their order.

    Args:
        model (`torch.nn.Module`): a model returning `logits` (and `loss` when given `labels`): a PyTorch model in
            eval mode, or an ONNX or CTranslate2 one.
        data ([`~datasets.Dataset`]): tokenized rows with `labels`.
        collator (`Callable`): the task's data collator (pads a batch).
        compute_metrics (`Callable[[EvalPrediction], dict]`): the task's metrics.
        batch_size (`int`, *optional*, defaults to 128): rows per forward pass.

    Returns:
        `dict[str, float]`: `compute_metrics`'s metrics, plus `loss` (the mean over rows) when the model returns one.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device
    logits, labels, losses = [], [], []
    accepted = inspect.signature(model.forward).parameters  # as Trainer drops the columns a model does not take
    rows = data.select_columns([name for name in data.column_names if name in accepted])
    try:
        for start in range(0, rows.num_rows, batch_size):
            batch = collator([rows[index] for index in range(start, min(start + batch_size, rows.num_rows))])
            batch = {name: value.to(device) for name, value in batch.items()}
            outputs = model(**batch)
            if getattr(outputs, "loss", None) is not None:
                losses.append(float(outputs.loss) * batch["labels"].shape[0])
            logits.append(outputs.logits.float().cpu().numpy())
            labels.append(batch["labels"].cpu().numpy())
    finally:
        model.train(was_training)
    predictions = EvalPrediction(predictions=_padded(logits, IGNORED_LABEL), label_ids=_padded(labels, IGNORED_LABEL))
    metrics = dict(compute_metrics(predictions))
    if losses:
        metrics["loss"] = sum(losses) / rows.num_rows
    return metrics


__all__ = ["score"]
