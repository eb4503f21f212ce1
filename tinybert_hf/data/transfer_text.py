"""Transfer text: unlabelled text the student learns the teacher's predictions on, beyond the labelled set.

TinyBERT's prediction stage fits the teacher's soft labels on the task's training rows only, so on text unlike
them (another domain, longer texts) the student drifts from the teacher. Rows of other text, labelled by the
teacher alone, carry what the teacher does there: in-domain text a user has without labels, or general English
(the packaged news articles and health tweets, or Wikipedia articles). They enter training as rows whose label is
-100, which every hard-label loss and label check ignores, while the distillation losses count them like any other
row.

```python
>>> from datasets import Dataset
>>> from tinybert_hf.data.transfer_text import snippets

>>> snippets("One. Two is here! Three? Four.", max_words=3)
['One.', 'Two is here!', 'Three? Four.']

```
"""

from __future__ import annotations

import csv
import glob
import io
import itertools
import os
import random
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

from datasets import Dataset, IterableDataset, concatenate_datasets, load_dataset

from ..errors import BadInputError
from .loading import TEXT_FILE_BUILDERS, check_utf8
from .packaged import packaged_general_text_paths, packaged_wikipedia_path
from .source_names import GENERAL, JOINED, WIKIPEDIA, source_name
from .wikipedia import wikipedia_articles

# A Wikipedia dump (`pages-articles.xml.bz2`), read page by page.
MEDIAWIKI_EXPORT_SUFFIXES = (".xml", ".xml.bz2", ".xml.gz")
IGNORED_LABEL = -100  # what torch's cross-entropy and the trainer's label checks skip
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_LINK = re.compile(r"https?://\S+")


def snippets(document: str, max_words: int = 60, budgets: Iterator[int] | None = None) -> list[str]:
    r"""
    Split a document into snippets of whole sentences, each up to `max_words` words (a longer sentence is cut into
    pieces of `max_words`), so transfer rows look like the short texts a classifier reads rather than whole
    articles.

    Args:
        document (`str`): the text.
        max_words (`int`, *optional*, defaults to 60): words per snippet, about 80 WordPiece tokens.
        budgets (`Iterator[int]`, *optional*): a word budget for each snippet in turn (at most `max_words`), for
            snippets of varied lengths; default: `max_words` for every one.

    Returns:
        `list[str]`: the snippets, in document order.
    """
    chunks, current, words = [], [], 0
    budget = min(next(budgets), max_words) if budgets is not None else max_words

    def close() -> None:
        nonlocal current, words, budget
        chunks.append(" ".join(current))
        current, words = [], 0
        budget = min(next(budgets), max_words) if budgets is not None else max_words

    for sentence in _SENTENCE_END.split(" ".join(document.split())):
        sentence_words = sentence.split()
        while len(sentence_words) > budget:  # no sentence end for a long stretch (lists, headlines)
            if current:
                close()
            cut = budget
            current, words = sentence_words[:cut], cut
            close()
            sentence_words = sentence_words[cut:]
        if not sentence_words:
            continue
        if current and words + len(sentence_words) > budget:
            close()
        current.append(" ".join(sentence_words))
        words += len(sentence_words)
    if current:
        chunks.append(" ".join(current))
    return chunks


def _packaged_documents(name: str, path: Path) -> Iterator[str]:
    """Documents of one packaged corpus (a zip holding one CSV), read as a stream: news article texts, tweets
    without their links."""
    with zipfile.ZipFile(path) as archive, archive.open(archive.namelist()[0]) as raw:
        for row in csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline="")):
            text = row.get("text") or ""
            if name == "health_tweets":
                text = _LINK.sub("", text)
            if text.strip():
                yield text


def _file_documents(source: str) -> Iterator[str]:
    """Documents of a user's unlabelled text: .txt (one per line, globs work), .csv/.jsonl/... with a `text`
    column, a MediaWiki export (.xml[.bz2], one document per article), or a Hub data set id (streamed by
    `datasets`)."""
    if source.lower().endswith(MEDIAWIKI_EXPORT_SUFFIXES) and "://" not in source:
        files = sorted(glob.glob(os.path.expanduser(source)))
        if not files:
            raise FileNotFoundError(f"No MediaWiki export matches {source}.")
        for path in files:
            yield from wikipedia_articles(path)
        return
    for row in text_stream(source):
        if row["text"] and row["text"].strip():
            yield row["text"]


def joined_documents(texts: list[str], seed: int = 0, per_document: int = 10) -> Iterator[str]:
    r"""
    The training texts joined into longer documents, `per_document` texts each in a seeded order (every text once),
    each text closed as a sentence: cut into snippets by [`transfer_text_stream`], they give passages that span
    several training texts, of every length up to the cut. Short labelled texts (review snippets, tweets) then
    teach the student what the teacher does on the longer, mixed texts it meets when deployed; only the teacher's
    predictions on them are learnt, never the texts' own labels.

    Example:

    ```python
    >>> from tinybert_hf.data.transfer_text import joined_documents

    >>> list(joined_documents(["Great", "Dull.", "Fine!"], per_document=2, seed=0))
    ['Great. Fine!', 'Dull.']

    ```
    """
    order = [text.strip() for text in texts if text and text.strip()]
    random.Random(seed).shuffle(order)
    closed = [text if text[-1] in ".!?" else text + "." for text in order]
    for start in range(0, len(closed), per_document):
        yield " ".join(closed[start : start + per_document])


def transfer_text_stream(
    sources: list[str],
    max_words: int = 150,
    seed: int = 0,
    min_words: int = 8,
    training_texts: list[str] | None = None,
) -> Iterator[str]:
    r"""
    Snippets of every source, interleaved round-robin so each contributes alike, each source's documents in a
    seeded order within a window of 1,000 (streams are never loaded whole). Each snippet holds up to a seeded
    number of words between `min_words` and `max_words`, so snippet lengths spread over the whole
    range: the student then learns the teacher at every position up to the tokenizer's cut, including positions
    the (often short) labelled texts never reach.

    Args:
        sources (`list[str]`):
            `"general"` (the packaged news articles and health tweets, each a source), `"wikipedia"` (the
            packaged Wikipedia articles, see [`~tinybert_hf.data.wikipedia.wikipedia_articles`]), `"joined"`
            (the `training_texts` joined into longer documents, see [`joined_documents`]) and/or paths, globs or
            Hub data set ids of unlabelled text (a MediaWiki export `.xml[.bz2]` is read article by article).
        max_words (`int`, *optional*, defaults to 150): the most words per snippet (about 200 WordPiece tokens,
            past the usual 128-token cut, so that every length up to the cut is well represented).
        seed (`int`, *optional*, defaults to 0): seed of the order and of the snippet lengths.
        min_words (`int`, *optional*, defaults to 8): the least words of a snippet budget (a short document, or
            the end of one, may still give a shorter snippet).
        training_texts (`list[str]`, *optional*): the texts the `"joined"` source joins (the task's training
            texts).

    Yields:
        `str`: snippets.

    Raises:
        [`~tinybert_hf.errors.BadInputError`]: `"joined"` is asked for without `training_texts`.
    """
    streams = []
    for source in map(source_name, sources):
        if source == GENERAL:
            streams += [_packaged_documents(name, path) for name, path in packaged_general_text_paths().items()]
        elif source == WIKIPEDIA:
            streams.append(wikipedia_articles(packaged_wikipedia_path()))
        elif source == JOINED:
            if not training_texts:
                raise BadInputError(
                    f"The transfer text '{JOINED}' joins the task's training texts, and none were given: pass them "
                    "as `training_texts`."
                )
            streams.append(joined_documents(training_texts, seed=seed))
        else:
            streams.append(_file_documents(source))
    generator = random.Random(seed)
    low = min(min_words, max_words)
    snippet_streams = [_shuffled_snippets(stream, low, max_words, generator) for stream in streams]
    for group in itertools.zip_longest(*snippet_streams):
        yield from (snippet for snippet in group if snippet is not None)


def _shuffled_snippets(
    documents: Iterator[str], min_words: int, max_words: int, generator: random.Random, window: int = 1000
):
    """Snippets of `documents` (each with its own seeded word budget, so lengths spread evenly) in a seeded order
    within windows of `window` snippets."""
    budgets = iter(lambda: generator.randint(min_words, max_words), None)  # a new length for every snippet
    buffer = []
    for document in documents:
        buffer.extend(snippets(document, max_words, budgets))
        if len(buffer) >= window:
            generator.shuffle(buffer)
            yield from buffer
            buffer = []
    generator.shuffle(buffer)
    yield from buffer


def load_transfer_text(
    sources: list[str], rows: int, max_words: int = 150, seed: int = 0, training_texts: list[str] | None = None
) -> Dataset:
    r"""
    The first `rows` snippets of [`transfer_text_stream`] as a [`~datasets.Dataset`] with one `text` column (the
    same rows, and so the same fingerprint and on-disk caches downstream, for the same arguments).

    Raises:
        [`~tinybert_hf.errors.BadInputError`]: the sources hold no text at all.
    """
    if "auto" in sources:  # the recipe's option value (`RecipeArguments.resolved_for_task`), not a source
        raise BadInputError(
            f"The transfer text {sources} holds 'auto', which only the recipe resolves (to '{JOINED}' for single "
            f"texts, else '{GENERAL}'): name the sources, e.g. ['{JOINED}', 'traffic.txt'] with `training_texts`."
        )
    if rows < 1:
        raise BadInputError(f"`rows` of transfer text must be 1 or more, got {rows}.")
    stream = transfer_text_stream(sources, max_words, seed, training_texts=training_texts)
    texts = list(itertools.islice(stream, rows))
    if not texts:
        raise BadInputError(
            f"The transfer text {sources} holds no text: its files are empty, or hold no line or article of prose."
        )
    return Dataset.from_dict({"text": texts})


def unlabelled(tokenized: Dataset, token_level: bool = False) -> Dataset:
    r"""
    Give tokenized rows without labels the label -100 (one per token with `token_level`), so they can share
    batches with labelled rows: the hard-label loss and the label checks skip them, the distillation losses do not.

    Example:

    ```python
    >>> from datasets import Dataset
    >>> from tinybert_hf.data.transfer_text import unlabelled

    >>> unlabelled(Dataset.from_dict({"input_ids": [[2, 7, 3]]}))[0]["labels"]
    -100

    ```
    """
    if "labels" in tokenized.column_names:
        tokenized = tokenized.remove_columns("labels")
    if token_level:
        return tokenized.map(lambda row: {"labels": [IGNORED_LABEL] * len(row["input_ids"])}, desc="No labels")
    return tokenized.add_column("labels", [IGNORED_LABEL] * tokenized.num_rows)


def mix_transfer_rows(train: Dataset, transfer: Dataset, token_level: bool = False) -> Dataset:
    r"""
    Training rows followed by unlabelled transfer rows, in one dataset (the trainer's sampler shuffles them, and
    `group_by_length` batches rows of similar length together). Both must be tokenized alike; columns the transfer
    rows lack (other than `labels`) are an error, columns only they have are dropped.

    Typical use in your own script, for TinyBERT's prediction stage:

    ```python
    transfer = tokenizer_map(load_transfer_text(["general"], rows=20_000))  # your tokenization
    train = add_teacher_logits(train, teacher, cache_dir="cache")
    transfer = add_teacher_logits(transfer, teacher, cache_dir="cache")
    trainer = DistillationTrainer(..., train_dataset=mix_transfer_rows(train, transfer))
    ```
    """
    transfer = unlabelled(transfer, token_level=token_level)
    missing = [column for column in train.column_names if column not in transfer.column_names]
    if missing:
        raise BadInputError(
            f"The transfer rows lack the training rows' columns {missing}: tokenize them the same way (and cache "
            "the teacher's logits for both, or for neither)."
        )
    transfer = transfer.select_columns(train.column_names)
    return concatenate_datasets([train, transfer.cast(train.features)])


def text_stream(source: str, config_name: str | None = None, text_column: str = "text") -> IterableDataset:
    """Unlabelled text as a stream of `{"text": ...}` rows: .txt files (one document per line; a glob works), a
    .csv/.json/.jsonl/.parquet file with a `text_column`, or a Hub data set id. Local files are checked for UTF-8
    first (one pass), so a bad byte is found now, not hours into a streamed run."""
    suffix = Path(source).suffix.lower()
    formats = ", ".join([*sorted(TEXT_FILE_BUILDERS), *MEDIAWIKI_EXPORT_SUFFIXES])
    if Path(source).is_dir():  # `datasets` would read one format of it and drop the other files in silence
        raise BadInputError(
            f"The transfer text {source} is a directory: give its files as a quoted glob (e.g. '{source}/*.txt'), "
            f"all of one format among {formats}."
        )
    if Path(source).is_file() and suffix not in TEXT_FILE_BUILDERS:  # not a Hub id: asking the Hub only waits
        raise BadInputError(f"The transfer text {source} is a {suffix or 'suffix-less'} file; give one of {formats}.")
    if suffix in TEXT_FILE_BUILDERS:
        files = [] if "://" in source else sorted(glob.glob(source))  # URLs stream as they are
        if not files and "://" not in source:
            raise FileNotFoundError(f"No corpus file matches {source}.")
        for path in files:
            if suffix != ".parquet":
                check_utf8(path)
        stream = load_dataset(TEXT_FILE_BUILDERS[suffix], data_files=source, split="train", streaming=True)
    else:
        stream = load_dataset(source, config_name, split="train", streaming=True)
    columns = stream.column_names  # `None` where a stream does not know them up front (CSV, JSON Lines)
    if columns is None and suffix in TEXT_FILE_BUILDERS and "://" not in source:  # a local file: one row tells
        columns = list(next(iter(stream), {}))
    if columns and text_column not in columns:
        raise BadInputError(
            f"The transfer text {source} has no column {text_column!r} (columns: {columns}): name its text column "
            f"{text_column!r}, or give one text per line in a .txt file."
        )
    if text_column != "text":
        stream = stream.rename_column(text_column, "text")
    return stream.select_columns(["text"])
