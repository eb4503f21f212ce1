"""Loading weights without running anyone's code: safetensors only unless pickle is asked for, every file checked
before it is read, and `trust_remote_code` never turned on by the library.

Pickle-based checkpoints (`pytorch_model.bin`, `*.pt`, `*.ckpt`) are programs as much as data: unpickling one from a
stranger can run code. torch's `weights_only` unpickler narrows that, but it is still a pickle parser over
untrusted bytes. So every model tinybert-hf loads itself (the recipe, the CLIs) goes through [`load_pretrained`],
which reads only safetensors unless `allow_pickle=True` (`--allow_pickle true` on the command line).
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError, safe_open
from transformers import PreTrainedModel

from ..errors import CorruptWeightsError, UnsafeWeightsError
from .processes import whole_models

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# pickles Trainer writes beside the weights of a checkpoint: its state, not the model's weights
TRAINER_STATE_PICKLES = ("training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state.pth")
SAFETENSORS_INDEX = "model.safetensors.index.json"


def check_safetensors_file(path: str | Path) -> None:
    """Raise [`CorruptWeightsError`] naming `path` unless safetensors can parse its header and the header's tensors
    cover the file exactly (what a truncated or overwritten file fails)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as file:
            file.keys()
    except (SafetensorError, OSError) as error:
        raise CorruptWeightsError(
            f"{path} is not a complete safetensors file ({path.stat().st_size} bytes; {error}). It was probably cut "
            "short by a crash or a full disk while it was written, or overwritten: save or download it again."
        ) from error


def safetensors_files(directory: str | Path) -> list[Path]:
    """The safetensors weights of a model directory: the shards its index names, else every `*.safetensors`."""
    directory = Path(directory)
    index = directory / SAFETENSORS_INDEX
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, UnicodeDecodeError) as error:
            raise CorruptWeightsError(f"{index} is not a valid safetensors index ({error}).") from error
        missing = [name for name in shards if not (directory / name).is_file()]
        if missing:
            raise CorruptWeightsError(f"{index} names shards that are not in {directory}: {missing}.")
        return [directory / name for name in shards]
    return sorted(directory.glob("*.safetensors"))


def check_model_directory(directory: str | Path, allow_pickle: bool = False) -> None:
    r"""
    Check a local model directory before anything is read from it.

    Args:
        directory (`str` or `Path`): a directory written by `save_pretrained`.
        allow_pickle (`bool`, *optional*, defaults to `False`): accept a directory whose weights are only pickles.

    Raises:
        [`CorruptWeightsError`]: a safetensors file (or index) is truncated or invalid; the message names it.
        [`UnsafeWeightsError`]: the weights exist only as pickles and `allow_pickle` is off.
    """
    directory = Path(directory)
    files = safetensors_files(directory)
    for path in files:
        check_safetensors_file(path)
    pickles = sorted(
        path.name
        for path in directory.iterdir()
        if path.suffix in PICKLE_SUFFIXES and path.name not in TRAINER_STATE_PICKLES
    )
    if not files and pickles and not allow_pickle:
        raise UnsafeWeightsError(
            f"{directory} holds weights only as pickles ({', '.join(pickles)}), which can run code when loaded. "
            "If you trust where they come from, allow them (`allow_pickle=True`, `--allow_pickle true`), or convert "
            "them once with `model.save_pretrained(...)`, which writes safetensors."
        )


def load_pretrained(model_class, name_or_path: str | Path, allow_pickle: bool = False, **kwargs) -> PreTrainedModel:
    r"""
    `model_class.from_pretrained(name_or_path, **kwargs)`, safely: a local directory is checked first
    ([`check_model_directory`]); only safetensors are read unless `allow_pickle`; `trust_remote_code` stays off
    (TinyBERT students load through the classes this package registers, not through downloaded code).

    Example:

    ```python
    >>> from transformers import AutoModelForSequenceClassification
    >>> from tinybert_hf.utils.safe_loading import load_pretrained

    >>> model = load_pretrained(AutoModelForSequenceClassification, "outputs/tinybert/student")  # doctest: +SKIP
    ```
    """
    if kwargs.get("trust_remote_code"):
        raise ValueError("tinybert-hf never loads remote code; import `tinybert_hf` to load TinyBERT students.")
    if Path(name_or_path).is_dir():
        check_model_directory(name_or_path, allow_pickle=allow_pickle)
    kwargs.setdefault("use_safetensors", None if allow_pickle else True)
    try:
        with whole_models():  # even after a ZeRO-3 Trainer: the recipe cuts, scores and exports whole models
            return model_class.from_pretrained(str(name_or_path), trust_remote_code=False, **kwargs)
    except SafetensorError as error:  # a Hub download that is cut short: name what was being read
        raise CorruptWeightsError(f"The safetensors weights of {name_or_path} could not be read: {error}.") from error
