"""The named sources of transfer text, and how a `--transfer_text` value is read as one: imports nothing heavy, so
the recipe's arguments (and `tinybert-hf distill --help`) can use them without torch or `datasets`."""

from __future__ import annotations

import os
from pathlib import Path

GENERAL = "general"  # the packaged general English text (news articles and health tweets)
WIKIPEDIA = "wikipedia"  # the packaged Wikipedia articles (gensim's shortened export)
JOINED = "joined"  # the task's own training texts, joined into longer passages (their labels unused)
NAMED_SOURCES = (GENERAL, WIKIPEDIA, JOINED)


def source_name(source: str | os.PathLike) -> str:
    """`source` as the stream reads it: a named source in any case ('Wikipedia', not a Hub id to wait 20 s on)
    as its name, unless a file or folder of that name exists; a path or Hub id as it is, as a `str`."""
    named = str(source).strip().lower()
    return named if named in NAMED_SOURCES and not Path(source).exists() else str(source)
