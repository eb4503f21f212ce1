"""Task rows as model inputs: token ids (and word-aligned labels for NER), label names, and the collator that pads
them.

The functions take the task and lengths as values, not an argument object: `datasets` fingerprints the closures
`tokenize` maps with, and those fingerprints name the on-disk caches downstream (teacher logits), which must not
change with unrelated settings.
"""

from __future__ import annotations

from datasets import Dataset, DatasetDict
from transformers import (
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
)
from transformers.utils import logging

from .tasks import TASKS

logger = logging.get_logger(__name__)


def tokenize(data: DatasetDict | Dataset, tokenizer, task: str, max_length: int):
    """Token ids (and, for a token-level task, word-aligned labels: the first piece of each word, -100 elsewhere),
    cut to `max_length` tokens."""
    # the closures capture only what they use: `datasets` fingerprints them, and the fingerprint names the on-disk
    # caches downstream (teacher logits), which must not change with unrelated settings such as output_dir
    if TASKS[task].token_level:

        def encode(batch):
            encoded = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
            labels = []
            for row, tags in enumerate(batch["ner_tags"]):
                previous, row_labels = None, []
                for word in encoded.word_ids(row):
                    row_labels.append(-100 if word is None or word == previous else tags[word])
                    previous = word
                labels.append(row_labels)
            encoded["labels"] = labels
            return encoded

        columns = ["tokens", "ner_tags"]
    else:
        pair = "text_pair" in (next(iter(data.values())) if isinstance(data, DatasetDict) else data).column_names

        def encode(batch):
            texts = (batch["text"], batch["text_pair"]) if pair else (batch["text"],)
            encoded = tokenizer(*texts, truncation=True, max_length=max_length)
            encoded["labels"] = batch["label"]
            return encoded

        columns = None
    reference = next(iter(data.values())) if isinstance(data, DatasetDict) else data
    remove = [column for column in reference.column_names if column not in (columns or [])] + (columns or [])
    return data.map(encode, batched=True, remove_columns=sorted(set(remove)), desc="Tokenizing")


def tokenize_splits(data: DatasetDict, tokenizer, task: str, max_length: int) -> DatasetDict:
    """Every split tokenized; validation and test ordered by length (batches of similar lengths: less padding,
    same metrics)."""
    tokenized = tokenize(data, tokenizer, task, max_length)
    for split in ("validation", "test"):
        if split in tokenized:
            tokenized[split] = sort_by_length(tokenized[split])
    return tokenized


def sort_by_length(data: Dataset) -> Dataset:
    """Rows ordered by token count, so evaluation batches pad little (evaluation order changes no metric)."""
    lengths = [len(ids) for ids in data["input_ids"]]
    return data.select(sorted(range(len(lengths)), key=lengths.__getitem__))


def label_names(data: DatasetDict, task: str) -> list[str]:
    """The names of the task's labels, in id order, from the training split's features."""
    feature = data["train"].features[TASKS[task].label_column]
    return list(feature.feature.names if TASKS[task].token_level else feature.names)


def data_collator(tokenizer, task: str):
    """Pads each batch to its longest row: the input ids, and the labels too for a token-level task."""
    if TASKS[task].token_level:
        return DataCollatorForTokenClassification(tokenizer)
    return DataCollatorWithPadding(tokenizer)
