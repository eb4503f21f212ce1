"""TinyBERT's data augmentation, batched: replace words by a masked LM's guesses or by word-vector neighbours.

For every word of a sentence (Jiao et al., 2020, Algorithm 1): a word that is a single WordPiece is masked and a
masked language model proposes its top-K replacements *in context*; a word of several pieces gets its K nearest
neighbours in a word-vector space (GloVe). Each of `num_augmentations` (N_a) variants then replaces every word with
probability `replace_probability` (p_t) by one of its candidates, drawn at random. The paper uses p_t = 0.4,
N_a = 20, K = 15.

What this implementation adds to the original script:

- **Batching.** The original runs the masked LM once per masked word. Here every masked copy of every sentence in
  a batch goes through the model together (`mlm_batch_size` at a time), and neighbours are one matrix product.
- **Casing and text kept.** Words are found by position in the original text; only replaced words change, and a
  replacement takes the case pattern of the word it replaces (`Paris` -> `London`, not `london`).
- **Sentence pairs.** Each sentence of a pair is augmented in its own column, so augmenting the second sentence
  never touches the first (the original rebuilt the pair from a corrupted first sentence).
- **Stop words** (a configurable list) and non-alphabetic tokens are never replaced.
- **Offline fallback.** With no masked LM and no vector file, candidates come from nearest neighbours in an
  encoder's own input-embedding matrix (e.g. the teacher's): real, but not contextual; a warning says so.
- **Determinism.** Each row's variants are drawn from a generator seeded by `(seed, row index)`, so the result
  does not depend on batch sizes or on how `datasets.map` shards the work; `augment_dataset` is a `datasets.map`
  cached under a fingerprint of the data, the settings and the candidate source.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging

logger = logging.get_logger(__name__)

_STOP_WORDS_TEXT = (
    "a an the and or but if then than so as of to in on at by for with from into about over after before "
    "is are was were be been being am do does did has have had it its it's this that these those there here "
    "i me my we us our you your he him his she her they them their what which who whom whose not no nor "
    "very too just can will would should could may might must shall also only own same such both each"
)
DEFAULT_STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?|[^\sA-Za-z]+")


@dataclass
class AugmentationConfig:
    r"""
    Settings of [`TinyBertAugmenter`].

    Args:
        num_augmentations (`int`, *optional*, defaults to 20): variants per example (N_a).
        replace_probability (`float`, *optional*, defaults to 0.4): chance to replace each eligible word (p_t).
        top_k (`int`, *optional*, defaults to 15): candidates per word (K).
        seed (`int`, *optional*, defaults to 0): seed of the draws.
        stop_words (`frozenset[str]`, *optional*): lower-case words never replaced.
        max_length (`int`, *optional*, defaults to 128): tokens of context given to the masked LM.
        mlm_batch_size (`int`, *optional*, defaults to 64): masked copies per masked-LM forward pass.
    """

    num_augmentations: int = 20
    replace_probability: float = 0.4
    top_k: int = 15
    seed: int = 0
    stop_words: frozenset[str] = field(default_factory=lambda: DEFAULT_STOP_WORDS)
    max_length: int = 128
    mlm_batch_size: int = 64

    def __post_init__(self):
        if self.num_augmentations < 1:
            raise ValueError(f"`num_augmentations` must be at least 1, got {self.num_augmentations}.")
        if not 0.0 <= self.replace_probability <= 1.0:
            raise ValueError(f"`replace_probability` must be in [0, 1], got {self.replace_probability}.")
        if self.top_k < 1:
            raise ValueError(f"`top_k` must be at least 1, got {self.top_k}.")
        self.stop_words = frozenset(word.lower() for word in self.stop_words)


def load_word_vectors(path: str | Path, limit: int | None = None) -> tuple[list[str], torch.Tensor]:
    r"""
    Read a GloVe-format text file (`word v1 v2 ...` per line; a word2vec header line is skipped).

    Args:
        path (`str` or `Path`): the vector file.
        limit (`int`, *optional*): keep only the first `limit` words (GloVe files are sorted by frequency).

    Returns:
        `tuple[list[str], torch.Tensor]`: the words and their `(words, dim)` unit-normalized vectors.
    """
    words, vectors = [], []
    with open(path, encoding="utf-8", errors="replace") as file:
        for line_number, line in enumerate(file):
            parts = line.rstrip().split(" ")
            if line_number == 0 and len(parts) == 2:  # word2vec text header: "<count> <dim>"
                continue
            if len(parts) < 3:
                continue
            try:
                vector = [float(value) for value in parts[1:]]
            except ValueError as error:
                raise ValueError(f"{path}, line {line_number + 1}: not a GloVe vector line ({error}).") from error
            if vectors and len(vector) != len(vectors[0]):
                raise ValueError(
                    f"{path}, line {line_number + 1}: {len(vector)} values where earlier lines have {len(vectors[0])}."
                )
            words.append(parts[0])
            vectors.append(vector)
            if limit is not None and len(words) >= limit:
                break
    if not words:
        raise ValueError(f"{path} holds no word vectors.")
    matrix = torch.nn.functional.normalize(torch.tensor(vectors), dim=-1)
    return words, matrix


class _NeighbourIndex:
    """Nearest neighbours by cosine in a fixed vocabulary of whole words."""

    def __init__(self, words: list[str], unit_vectors: torch.Tensor):
        keep = [index for index, word in enumerate(words) if word.isalpha() and len(word) > 1]
        self.words = [words[index] for index in keep]
        self.vectors = unit_vectors[keep]  # (words, dim)
        self.position = {word: index for index, word in enumerate(self.words)}

    def neighbours(self, queries: torch.Tensor, exclude: list[str], top_k: int) -> list[list[str]]:
        """`queries`: `(n, dim)`; the `top_k` nearest words of each, leaving out the word itself."""
        if not len(queries):
            return []
        similarity = torch.nn.functional.normalize(queries, dim=-1) @ self.vectors.T  # (n, words)
        best = similarity.topk(min(top_k + 1, similarity.shape[1]), dim=-1).indices.tolist()
        return [
            [self.words[i] for i in row if self.words[i] != word][:top_k]
            for row, word in zip(best, exclude, strict=True)
        ]


class TinyBertAugmenter:
    r"""
    TinyBERT's augmentation with batched candidate generation.

    Args:
        tokenizer ([`PreTrainedTokenizerBase`]):
            The WordPiece tokenizer deciding which words are a single piece (the masked LM's, or the teacher's).
        masked_lm ([`PreTrainedModel`], *optional*):
            Any `AutoModelForMaskedLM` sharing `tokenizer`: contextual candidates for single-piece words.
        word_vectors (`tuple[list[str], torch.Tensor]`, *optional*):
            From [`load_word_vectors`]: candidates for words of several pieces.
        embedding_model ([`PreTrainedModel`], *optional*):
            Any encoder sharing `tokenizer` (e.g. the teacher): its input embeddings give neighbour candidates for
            whatever the two sources above do not cover. The offline fallback.
        config ([`AugmentationConfig`], *optional*):
            p_t, N_a, K, seed, stop words, batch sizes.

    Example:

    ```python
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    from tinybert_hf.data.augmentation import AugmentationConfig, TinyBertAugmenter

    tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")
    bert_mlm = AutoModelForMaskedLM.from_pretrained("bert-base-uncased")
    augmenter = TinyBertAugmenter(tokenizer, masked_lm=bert_mlm, config=AugmentationConfig(num_augmentations=2))
    augmenter.augment_texts(["A gorgeous, moving film."])  # e.g. [['A stunning, moving movie.', ...]]
    ```
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        masked_lm: PreTrainedModel | None = None,
        word_vectors: tuple[list[str], torch.Tensor] | None = None,
        embedding_model: PreTrainedModel | None = None,
        config: AugmentationConfig | None = None,
    ):
        if masked_lm is None and word_vectors is None and embedding_model is None:
            raise ValueError(
                "TinyBertAugmenter needs a candidate source: a masked LM (`masked_lm`), word vectors "
                "(`word_vectors`) or an encoder whose input embeddings give neighbours (`embedding_model`)."
            )
        self.tokenizer = tokenizer
        self.masked_lm = masked_lm.eval() if masked_lm is not None else None
        # the LM head: the one child module beside the encoder (BERT's `cls`, RoBERTa's `lm_head`); None when the
        # head is split over several modules (DistilBERT), and then the whole model runs
        heads = (
            [module for module in masked_lm.children() if module is not masked_lm.base_model]
            if masked_lm is not None
            else []
        )
        self._mlm_head = heads[0] if len(heads) == 1 and masked_lm.base_model is not masked_lm else None
        self.config = config or AugmentationConfig()
        self.vector_index = _NeighbourIndex(*word_vectors) if word_vectors is not None else None
        self.embedding_index = None
        vocabulary = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        if embedding_model is not None:
            embeddings = embedding_model.get_input_embeddings().weight.detach().float()[: len(vocabulary)]
            self._embeddings = embeddings  # (vocab, hidden), for averaging a word's pieces
            self.embedding_index = _NeighbourIndex(vocabulary, torch.nn.functional.normalize(embeddings, dim=-1))
        if masked_lm is None:
            logger.warning(
                "No masked language model given: augmentation candidates for single-piece words come from %s, "
                "not from a masked LM in context as in TinyBERT. Pass an English `AutoModelForMaskedLM` "
                "(e.g. bert-base-uncased) for the paper's augmentation.",
                "word-vector neighbours"
                if embedding_model is None
                else "nearest neighbours in the encoder's input-embedding matrix",
            )
        special = set(tokenizer.all_special_tokens)
        self._replaceable_ids = torch.tensor(
            [token.isalpha() and len(token) > 1 and token not in special for token in vocabulary]
        )

    def fingerprint(self) -> str:
        """Changes whenever the candidates could: settings, tokenizer vocabulary and each source's weights."""
        # sets sorted: their repr follows string hashing, which differs between processes (PYTHONHASHSEED)
        settings = {key: sorted(value) if isinstance(value, set | frozenset) else value
                    for key, value in asdict(self.config).items()}  # fmt: skip
        digest = hashlib.sha256(repr(sorted(settings.items())).encode())
        digest.update(repr(sorted(self.tokenizer.get_vocab().items())).encode())
        for tensor in (
            self.masked_lm.get_output_embeddings().weight if self.masked_lm is not None else None,
            self.vector_index.vectors if self.vector_index is not None else None,
            self._embeddings if self.embedding_index is not None else None,
        ):
            if tensor is not None:
                digest.update(tensor.detach().float().cpu().numpy().tobytes())
        return digest.hexdigest()[:32]

    # ---- candidates ----------------------------------------------------------------------------------------------

    def _eligible_words(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, word) of every replaceable word in `text`."""
        stop_words = self.config.stop_words
        return [
            (match.start(), match.end(), match.group())
            for match in _WORD.finditer(text)
            if match.group().isalpha() and len(match.group()) > 1 and match.group().lower() not in stop_words
        ]

    def _mlm_candidates(self, requests: list[tuple[str, int, int]]) -> list[list[str]]:
        """Top-K masked-LM candidates of each `(text, start, end)` word, masked in its own sentence."""
        mask = self.tokenizer.mask_token
        texts = [text[:start] + mask + text[end:] for text, start, end in requests]
        results: list[list[str]] = []
        device = next(self.masked_lm.parameters()).device
        for begin in range(0, len(texts), self.config.mlm_batch_size):
            chunk = texts[begin : begin + self.config.mlm_batch_size]
            encoded = self.tokenizer(
                chunk, padding=True, truncation=True, max_length=self.config.max_length, return_tensors="pt"
            ).to(device)
            rows, columns = (encoded["input_ids"] == self.tokenizer.mask_token_id).nonzero(as_tuple=True)
            with torch.no_grad():
                mask_logits = self._mask_logits(encoded, rows, columns).float()  # (masks, vocab)
            found = {row: index for index, row in enumerate(rows.tolist())}
            for row in range(len(chunk)):
                if row not in found:  # the word was truncated away
                    results.append([])
                    continue
                scores = mask_logits[found[row]]
                scores[~self._replaceable_ids[: scores.shape[0]].to(scores.device)] = float("-inf")
                best = scores.topk(self.config.top_k + 1).indices.tolist()
                original = requests[begin + row][0][requests[begin + row][1] : requests[begin + row][2]].lower()
                words = [word for word in self.tokenizer.convert_ids_to_tokens(best) if word != original]
                results.append(words[: self.config.top_k])
        return results

    def _mask_logits(self, encoded, rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits at the masked positions only: `(masks, vocab)`. The LM head is most of an MLM's cost
        (hidden -> 30k words at every position), so it runs only where a word is masked when it is one module."""
        if self._mlm_head is None:
            return self.masked_lm(**encoded).logits[rows, columns]
        hidden = self.masked_lm.base_model(**encoded).last_hidden_state  # (chunk, seq, hidden)
        return self._mlm_head(hidden[rows, columns])

    def _embedding_candidates(self, words: list[str]) -> list[list[str]]:
        """Neighbours of each word's mean piece embedding among the vocabulary's whole words."""
        queries = []
        for word in words:
            ids = self.tokenizer.convert_tokens_to_ids(self.tokenizer.tokenize(word))
            queries.append(self._embeddings[ids].mean(0))
        return self.embedding_index.neighbours(torch.stack(queries), [w.lower() for w in words], self.config.top_k)

    def _vector_candidates(self, words: list[str]) -> list[list[str]]:
        known = [word for word in words if word.lower() in self.vector_index.position]
        rows = self.vector_index.vectors[[self.vector_index.position[word.lower()] for word in known]]
        found = dict(zip(known, self.vector_index.neighbours(rows, [w.lower() for w in known], self.config.top_k),
                         strict=True))  # fmt: skip
        return [found.get(word, []) for word in words]

    def candidates(self, texts: list[str]) -> list[list[tuple[int, int, str, list[str]]]]:
        """For each text, `(start, end, word, candidates)` of its replaceable words."""
        spans = [self._eligible_words(text) for text in texts]
        single = {}  # (text index, span index) -> candidates
        requests, keys, multi_words = [], [], set()
        for text_index, (text, text_spans) in enumerate(zip(texts, spans, strict=True)):
            for span_index, (start, end, word) in enumerate(text_spans):
                if len(self.tokenizer.tokenize(word)) == 1 and self.masked_lm is not None:
                    requests.append((text, start, end))
                    keys.append((text_index, span_index))
                else:
                    multi_words.add(word)
        if requests:
            single = dict(zip(keys, self._mlm_candidates(requests), strict=True))
        by_word: dict[str, list[str]] = {}
        words = sorted(multi_words)
        if words and self.vector_index is not None:
            by_word = {word: found for word, found in zip(words, self._vector_candidates(words), strict=True) if found}
        missing = [word for word in words if word not in by_word]
        if missing and self.embedding_index is not None:
            by_word.update(zip(missing, self._embedding_candidates(missing), strict=True))
        return [
            [
                (start, end, word, single.get((text_index, span_index), by_word.get(word, [])))
                for span_index, (start, end, word) in enumerate(text_spans)
            ]
            for text_index, text_spans in enumerate(spans)
        ]

    # ---- sampling ------------------------------------------------------------------------------------------------

    @staticmethod
    def _match_case(candidate: str, original: str) -> str:
        if original.isupper() and len(original) > 1:
            return candidate.upper()
        if original[0].isupper():
            return candidate[0].upper() + candidate[1:]
        return candidate

    def _variants(self, text: str, words: list[tuple[int, int, str, list[str]]], seed: int) -> list[str]:
        """N_a variants of `text`, each word replaced with probability p_t; the same seed gives the same variants."""
        generator = np.random.default_rng(seed)
        variants = []
        for _ in range(self.config.num_augmentations):
            pieces, cursor = [], 0
            for start, end, word, options in words:
                replace = generator.random() < self.config.replace_probability
                choice = int(generator.integers(len(options))) if options else 0
                if replace and options:
                    pieces.append(text[cursor:start])
                    pieces.append(self._match_case(options[choice], word))
                    cursor = end
            pieces.append(text[cursor:])
            variants.append("".join(pieces))
        return variants

    def _seed(self, column_position: int, row_index: int) -> list[int]:
        """One generator per (column, row): variants do not depend on batching or on other rows."""
        return [self.config.seed, column_position, row_index]

    def augment_texts(self, texts: list[str], first_index: int = 0) -> list[list[str]]:
        """N_a variants of each text; `first_index` is the row index of `texts[0]` (seeds are per row)."""
        return [
            self._variants(text, words, seed=self._seed(0, first_index + offset))
            for offset, (text, words) in enumerate(zip(texts, self.candidates(texts), strict=True))
        ]

    def augment_dataset(
        self,
        dataset: Dataset,
        text_columns: tuple[str, ...] = ("text",),
        batch_size: int = 256,
        cache_dir: str | Path | None = None,
    ) -> Dataset:
        r"""
        Every row followed by its distinct variants (identical copies of the original are dropped); the other
        columns (labels, ids) are copied, and an `augmented` column tells originals from variants.

        Each column of `text_columns` is augmented on its own (sentence pairs: a variant changes one sentence at
        a time, so the pair stays a pair). With `cache_dir`, the result is written there under a fingerprint of
        the data, the settings and the candidate source, and read back by later runs.

        Args:
            dataset ([`~datasets.Dataset`]): untokenized rows.
            text_columns (`tuple[str, ...]`): the text column(s), e.g. `("text", "text_pair")`.
            batch_size (`int`): rows per `datasets.map` batch.
            cache_dir (`str` or `Path`, *optional*): where to keep the augmented data between runs.

        Returns:
            [`~datasets.Dataset`]: originals and variants.
        """
        missing = [column for column in text_columns if column not in dataset.column_names]
        if missing:
            raise ValueError(f"No text column {missing} in the data (columns: {dataset.column_names}).")
        if "augmented" in dataset.column_names:
            raise ValueError("The data already has an `augmented` column: augment the original rows only.")

        def augment(batch: dict, indices: list[int]) -> dict:
            output = {column: [] for column in [*dataset.column_names, "augmented"]}
            per_column = {
                column: [
                    self._variants(text, words, seed=self._seed(position, index))
                    for text, words, index in zip(batch[column], self.candidates(batch[column]), indices, strict=True)
                ]
                for position, column in enumerate(text_columns)
            }
            for row in range(len(indices)):
                original = {column: batch[column][row] for column in dataset.column_names}
                seen = {tuple(original[column] for column in text_columns)}
                rows = [original]
                for variant in range(self.config.num_augmentations):
                    # a pair changes one sentence per variant, alternating, the other kept as it was
                    column = text_columns[variant % len(text_columns)]
                    candidate = dict(original, **{column: per_column[column][row][variant]})
                    key = tuple(candidate[name] for name in text_columns)
                    if key not in seen:
                        seen.add(key)
                        rows.append(candidate)
                for number, values in enumerate(rows):
                    for column in dataset.column_names:
                        output[column].append(values[column])
                    output["augmented"].append(number > 0)
            return output

        fingerprint = hashlib.sha256(
            f"{dataset._fingerprint}-{self.fingerprint()}-{text_columns}".encode()
        ).hexdigest()[:32]
        options = {}
        if cache_dir is not None:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            options["cache_file_name"] = str(Path(cache_dir) / f"augmented-{fingerprint}.arrow")
        return dataset.map(
            augment,
            batched=True,
            batch_size=batch_size,
            with_indices=True,
            remove_columns=dataset.column_names,
            new_fingerprint=fingerprint,
            desc=f"Augmenting x{self.config.num_augmentations}",
            **options,
        )
