"""Task metrics computed here, offline: `evaluate.load("accuracy")` fetches its script from the Hub.

Accuracy and macro-F1 for text classification; entity-level precision/recall/F1 over BIO spans for token
classification, with seqeval's default (conlleval) rules: an entity starts at `B-x`, or at `I-x` after anything
that is not the same entity, and must match in type, start and end.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..data.tasks import TASKS


def accuracy_and_f1(predictions: Sequence[int], labels: Sequence[int], num_labels: int) -> dict[str, float]:
    r"""
    Accuracy and macro-averaged F1 (F1 per class, averaged with equal weight).

    Example:

    ```python
    >>> from tinybert_hf.evaluation.metrics import accuracy_and_f1

    >>> accuracy_and_f1([1, 0, 1, 1], [1, 0, 0, 1], num_labels=2)
    {'accuracy': 0.75, 'f1': 0.7333}

    ```
    """
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    scores = []
    for label in range(num_labels):
        true_positive = np.sum((predictions == label) & (labels == label))
        predicted, actual = np.sum(predictions == label), np.sum(labels == label)
        scores.append(0.0 if predicted + actual == 0 else 2 * true_positive / (predicted + actual))
    return {"accuracy": round(float(np.mean(predictions == labels)), 4), "f1": round(float(np.mean(scores)), 4)}


def entity_spans(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """`(type, start, end)` of every entity in one BIO sequence (end exclusive)."""
    spans, kind, start = set(), None, 0
    for index, tag in enumerate([*tags, "O"]):
        prefix, _, name = tag.partition("-")
        continues = prefix == "I" and name == kind
        if kind is not None and not continues:
            spans.add((kind, start, index))
            kind = None
        if prefix in ("B", "I") and not continues:
            kind, start = name, index
    return spans


def entity_f1(predictions: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> dict[str, float]:
    r"""
    Entity-level precision, recall and F1 (micro over all entities), as seqeval computes them by default.

    Example:

    ```python
    >>> from tinybert_hf.evaluation.metrics import entity_f1

    >>> entity_f1([["B-person", "I-person", "O", "B-geo-loc"]], [["B-person", "I-person", "O", "B-company"]])
    {'precision': 0.5, 'recall': 0.5, 'f1': 0.5}

    ```
    """
    true_positives = predicted = actual = 0
    for predicted_tags, reference_tags in zip(predictions, references, strict=True):
        ours, theirs = entity_spans(predicted_tags), entity_spans(reference_tags)
        true_positives += len(ours & theirs)
        predicted += len(ours)
        actual += len(theirs)
    precision = true_positives / predicted if predicted else 0.0
    recall = true_positives / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def compute_metrics_for(names: list[str], task: str):
    """`compute_metrics` for Trainer on `task` with labels `names`: accuracy and macro-F1, or entity F1 for a
    token-level task; `score` is what selects the best model."""

    def compute(prediction):
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        predicted, labels = np.argmax(logits, axis=-1), prediction.label_ids
        if TASKS[task].token_level:
            real = labels != -100
            predicted_tags = [[names[p] for p, keep in zip(row, mask, strict=True) if keep]
                              for row, mask in zip(predicted, real, strict=True)]  # fmt: skip
            reference_tags = [[names[t] for t, keep in zip(row, mask, strict=True) if keep]
                              for row, mask in zip(labels, real, strict=True)]  # fmt: skip
            scores = entity_f1(predicted_tags, reference_tags)
            return {**scores, "score": scores["f1"]}
        scores = accuracy_and_f1(predicted, labels, len(names))
        return {**scores, "score": scores["accuracy"]}

    return compute
