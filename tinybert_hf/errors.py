"""The errors tinybert-hf raises for things the user can fix: each message names the input and the fix.

The CLI prints these as one line and exits with status 1 (a traceback would add nothing); anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class BadInputError(ValueError):
    """Data, models or options that cannot be distilled as given (empty data, missing columns, labels outside the
    label set, teacher and student that do not fit, ...)."""


class CorruptWeightsError(OSError):
    """A weights file that is truncated or not a valid safetensors file; names the file."""


class UnsafeWeightsError(OSError):
    """Weights that only exist as pickles (`pytorch_model.bin`, `*.pt`), refused unless the user allows pickle."""


class OutputDirectoryError(FileExistsError):
    """An output directory that holds something this run would overwrite (another model, another run)."""


class NonFiniteLossError(FloatingPointError):
    """A NaN or infinite loss (or parameters) during distillation; names the loss part, the step and the last
    checkpoint that is still good."""


class PushError(RuntimeError):
    """A Hub upload failed; the message says where to and why (never the token). The local student is untouched."""


USER_ERRORS = (
    BadInputError, CorruptWeightsError, UnsafeWeightsError, OutputDirectoryError, NonFiniteLossError, PushError,
)  # fmt: skip
