"""The one error hierarchy of tinybert-hf: what it raises for things the user can fix, each message naming the input
and the fix.

Every error is a [`TinyBertHfError`] and also the built-in type transformers raises for the same case (`ValueError`
for values, `OSError` for files, `RuntimeError` for a failed call), so `except TinyBertHfError` catches all of them
and code that catches what transformers documents still catches each one. The CLI prints them as one line and exits
with status 1 (a traceback would add nothing); anything else is a bug and keeps its traceback. The model files
(`models/tinybert/`) raise built-in types only: they ship beside saved students, without this module.
"""

from __future__ import annotations


class TinyBertHfError(Exception):
    """The base of every error tinybert-hf raises on purpose."""


class BadInputError(TinyBertHfError, ValueError):
    """Data, models or options that cannot be distilled as given (empty data, missing columns, labels outside the
    label set, teacher and student that do not fit, ...)."""


class CorruptWeightsError(TinyBertHfError, OSError):
    """A weights file that is truncated or not a valid safetensors file; names the file."""


class UnsafeWeightsError(TinyBertHfError, OSError):
    """Weights that only exist as pickles (`pytorch_model.bin`, `*.pt`), refused unless the user allows pickle."""


class OutputDirectoryError(TinyBertHfError, FileExistsError):
    """An output directory that holds something this run would overwrite (another model, another run)."""


class NonFiniteLossError(TinyBertHfError, FloatingPointError):
    """A NaN or infinite loss (or parameters) during distillation; names the loss part, the step and the last
    checkpoint that is still good."""


class PushError(TinyBertHfError, RuntimeError):
    """A Hub upload failed; the message says where to and why (never the token). The local student is untouched."""


class ProcessFailedError(TinyBertHfError, RuntimeError):
    """Another process of a multi-process run failed; names that process and gives its error, so that every process
    stops with the same message instead of waiting for the one that failed."""


class RunTerminated(KeyboardInterrupt):
    """A SIGTERM, raised where the run is, like Ctrl-C's KeyboardInterrupt: a stop, not an error (so neither a
    [`TinyBertHfError`] nor caught by `except Exception`)."""


USER_ERRORS = (TinyBertHfError,)
