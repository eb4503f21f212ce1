"""Teacher logits computed once and stored as a `datasets` column, so later epochs cost only the student.

The prediction stage of TinyBERT runs many epochs over augmented data (20 variants of each example); the
teacher's logits do not change between epochs (it is frozen and in eval mode), so [`add_teacher_logits`] runs
it once per example and [`DistillationTrainer`] reads the `teacher_logits` column instead of running the teacher
whenever only the prediction-layer losses are on. `datasets` writes the column to its on-disk cache under a
fingerprint of the dataset *and* the teacher's weights, so a second run with the same data and teacher reuses
it and a different teacher never does.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from pathlib import Path

import torch
from datasets import Dataset
from transformers import PreTrainedModel

TEACHER_LOGITS_COLUMN = "teacher_logits"
_MODEL_INPUT_COLUMNS = ("input_ids", "attention_mask", "token_type_ids")


def teacher_fingerprint(teacher_model: PreTrainedModel) -> str:
    """sha256 of the teacher's class, parameters and buffers: changes whenever its logits could."""
    digest = hashlib.sha256(type(teacher_model).__name__.encode())
    for name, tensor in teacher_model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _pad(rows: list[list[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token rows: `(batch, max_len)` values and the `(batch, max_len)` real-token mask."""
    longest = max(len(row) for row in rows)
    values = torch.full((len(rows), longest), value, dtype=torch.long)
    real = torch.zeros(len(rows), longest, dtype=torch.long)
    for index, row in enumerate(rows):
        values[index, : len(row)] = torch.tensor(row, dtype=torch.long)
        real[index, : len(row)] = 1
    return values, real


def add_teacher_logits(
    dataset: Dataset,
    teacher_model: PreTrainedModel,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    cache_dir: str | Path | None = None,
) -> Dataset:
    r"""
    Return `dataset` with a `teacher_logits` column holding the teacher's logits for every row.

    Rows are batched and right-padded (BERT-family teachers use absolute positions, so right padding leaves each
    row's logits unchanged), run under `torch.no_grad()` in eval mode, and stored in fp32: `(num_labels,)` per row
    for sequence classification, `(row_length, num_labels)` for token classification.

    Args:
        dataset ([`~datasets.Dataset`]):
            Tokenized rows with `input_ids` (and `attention_mask`, `token_type_ids` when the teacher uses them).
        teacher_model ([`PreTrainedModel`]):
            The teacher with its task head, exactly as the trainer will get it.
        batch_size (`int`, *optional*, defaults to 64):
            Rows per teacher forward pass.
        device (`str` or `torch.device`, *optional*):
            Where to run the teacher; defaults to where its parameters are.
        cache_dir (`str` or `Path`, *optional*):
            Where to keep the result between runs (`teacher-logits-<fingerprint>.arrow`) when `dataset` lives in
            memory and `datasets` would not cache it. `datasets` writes it under a temporary name and renames it
            when complete, so a run killed meanwhile leaves nothing a later run would read.

    Returns:
        [`~datasets.Dataset`]: the same rows plus `teacher_logits`.

    Example:

    ```python
    >>> import torch
    >>> from datasets import Dataset
    >>> from transformers import BertConfig, BertForSequenceClassification
    >>> from tinybert_hf.distillation.teacher_cache import add_teacher_logits

    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> teacher = BertForSequenceClassification(BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
    ...     num_attention_heads=4, intermediate_size=37, num_labels=3))
    >>> data = Dataset.from_dict({"input_ids": [[2, 7, 9, 3], [2, 5, 3]]})
    >>> cached = add_teacher_logits(data, teacher)
    >>> len(cached[0]["teacher_logits"]), len(cached[1]["teacher_logits"])
    (3, 3)

    ```
    """
    if "input_ids" not in dataset.column_names:
        raise ValueError(
            f"The dataset has no `input_ids` column (columns: {dataset.column_names}); tokenize it before caching "
            "the teacher's logits."
        )
    if TEACHER_LOGITS_COLUMN in dataset.column_names:
        dataset = dataset.remove_columns(TEACHER_LOGITS_COLUMN)
    device = torch.device(device) if device is not None else next(teacher_model.parameters()).device
    pad_id = getattr(teacher_model.config, "pad_token_id", None) or 0
    was_training = teacher_model.training
    teacher_model.eval()
    names = forward_input_names(teacher_model)
    accepted = _MODEL_INPUT_COLUMNS if names is None else names

    @torch.no_grad()
    def forward(rows: dict) -> list:
        """Logits of one padded forward pass over `rows` (dict of lists), one entry per row."""
        lengths = [len(row) for row in rows["input_ids"]]
        input_ids, real = _pad(rows["input_ids"], pad_id)
        inputs = {"input_ids": input_ids, "attention_mask": real}
        if "attention_mask" in rows:
            inputs["attention_mask"] = _pad(rows["attention_mask"], 0)[0]
        if "token_type_ids" in rows:
            inputs["token_type_ids"] = _pad(rows["token_type_ids"], 0)[0]
        logits = teacher_model(**{key: value.to(device) for key, value in inputs.items()}).logits.float().cpu()
        if logits.dim() == 3:  # token classification: (batch, seq, labels), trimmed back to each row's length
            return [row[:length].tolist() for row, length in zip(logits, lengths, strict=True)]
        return logits.tolist()

    @torch.no_grad()
    def logits_of(batch: dict) -> dict:
        # Forward passes over rows of similar length (sorted within this map batch): a random batch pads every row
        # to its longest, which on short-text tasks doubles the teacher's work.
        order = sorted(range(len(batch["input_ids"])), key=lambda index: len(batch["input_ids"][index]))
        present = [column for column in _MODEL_INPUT_COLUMNS if column in batch and column in accepted]
        results: list = [None] * len(order)
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            for index, logits in zip(
                chosen, forward({c: [batch[c][i] for i in chosen] for c in present}), strict=True
            ):
                results[index] = logits
        return {TEACHER_LOGITS_COLUMN: results}

    fingerprint = hashlib.sha256(f"{dataset._fingerprint}-{teacher_fingerprint(teacher_model)}".encode()).hexdigest()
    options = {}
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        options["cache_file_name"] = str(Path(cache_dir) / f"teacher-logits-{fingerprint[:32]}.arrow")
    try:
        return dataset.map(
            logits_of,
            batched=True,
            batch_size=batch_size * 16,  # sorted into forward passes of `batch_size` inside
            desc="Teacher logits",
            new_fingerprint=fingerprint[:32],
            **options,
        )
    finally:
        teacher_model.train(was_training)


class TeacherLogitsCollator:
    r"""
    Wraps a data collator so a `teacher_logits` column survives batching: the other features go through the
    wrapped collator, the cached logits become a tensor, padded to the batch's sequence length for token tasks.

    Batches without the column pass through untouched, so the trainer wraps its collator unconditionally.

    Args:
        collator (`Callable`):
            The collator that pads the model inputs (e.g. `DataCollatorWithPadding`).
        padding_side (`str`, *optional*, defaults to `"right"`):
            Where the wrapped collator pads; per-token logits are padded on the same side.
    """

    def __init__(self, collator: Callable[[list[dict]], dict], padding_side: str = "right"):
        self.collator = collator
        self.padding_side = padding_side

    def __call__(self, features: list[dict]) -> dict:
        if not features or TEACHER_LOGITS_COLUMN not in features[0]:
            return self.collator(features)
        logits = [torch.as_tensor(feature[TEACHER_LOGITS_COLUMN], dtype=torch.float32) for feature in features]
        others = [
            {key: value for key, value in feature.items() if key != TEACHER_LOGITS_COLUMN} for feature in features
        ]
        batch = self.collator(others)
        if logits[0].dim() == 1:  # (num_labels,) per row
            batch[TEACHER_LOGITS_COLUMN] = torch.stack(logits)
            return batch
        # (row_length, num_labels) per row -> (batch, seq, num_labels), zeros at padding
        seq = batch["input_ids"].shape[1]
        padded = torch.zeros(len(logits), seq, logits[0].shape[-1])
        for index, row in enumerate(logits):
            if self.padding_side == "left":
                padded[index, seq - len(row) :] = row
            else:
                padded[index, : len(row)] = row
        batch[TEACHER_LOGITS_COLUMN] = padded
        return batch


def forward_input_names(model: torch.nn.Module) -> frozenset[str] | None:
    """The keyword inputs `model.forward` takes, or `None` when it takes any (`**kwargs`). Read once per model: a
    TinyBERT student reads `token_type_ids`, which encoders without token types (MPNet, DistilBERT, ...) refuse."""
    parameters = inspect.signature(model.forward).parameters
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()):
        return None
    return frozenset(parameters)


def accepted_inputs(inputs: dict, names: frozenset[str] | None) -> dict:
    """The entries of `inputs` a forward taking `names` ([`forward_input_names`]) accepts."""
    return inputs if names is None else {name: value for name, value in inputs.items() if name in names}
