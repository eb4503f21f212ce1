"""tinybert-hf: distil fine-tuned BERT-family teachers into small, fast TinyBERT students.

Importing the package registers the TinyBERT classes with the `transformers` Auto classes, so
`AutoConfig`, `AutoModel`, `AutoModelForSequenceClassification`, `AutoModelForTokenClassification`,
`AutoModelForMaskedLM` and `pipeline(...)` resolve `model_type="tinybert"`; saved students also ship their
modeling code, so `trust_remote_code=True` loads them where this package is not installed.
"""

import sys
from pathlib import Path

__version__ = "0.1.0"

__all__ = [
    "DistillationTrainer",
    "add_teacher_logits",
    "DistillationTrainingArguments",
    "TinyBertConfig",
    "TinyBertForMaskedLM",
    "TinyBertForSequenceClassification",
    "TinyBertForTokenClassification",
    "TinyBertModel",
    "TinyBertModelOutput",
    "TinyBertPreTrainedModel",
    "__version__",
    "student_from_teacher_layers",
    "uniform_layer_subset",
]


def _register() -> None:
    """Import the public classes into the package and register the TinyBERT classes with the Auto classes."""
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForMaskedLM,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
    )

    from .distillation.arguments import DistillationTrainingArguments
    from .distillation.teacher_cache import add_teacher_logits
    from .distillation.trainer import DistillationTrainer
    from .models.tinybert.configuration_tinybert import TinyBertConfig
    from .models.tinybert.conversion import student_from_teacher_layers, uniform_layer_subset
    from .models.tinybert.modeling_tinybert import (
        TinyBertForMaskedLM,
        TinyBertForSequenceClassification,
        TinyBertForTokenClassification,
        TinyBertModel,
        TinyBertModelOutput,
        TinyBertPreTrainedModel,
    )

    globals().update(
        DistillationTrainer=DistillationTrainer,
        DistillationTrainingArguments=DistillationTrainingArguments,
        TinyBertConfig=TinyBertConfig,
        TinyBertForMaskedLM=TinyBertForMaskedLM,
        TinyBertForSequenceClassification=TinyBertForSequenceClassification,
        TinyBertForTokenClassification=TinyBertForTokenClassification,
        TinyBertModel=TinyBertModel,
        TinyBertModelOutput=TinyBertModelOutput,
        TinyBertPreTrainedModel=TinyBertPreTrainedModel,
        add_teacher_logits=add_teacher_logits,
        student_from_teacher_layers=student_from_teacher_layers,
        uniform_layer_subset=uniform_layer_subset,
    )
    AutoConfig.register(TinyBertConfig.model_type, TinyBertConfig, exist_ok=True)
    TinyBertConfig.register_for_auto_class()
    for auto_class, model_class in (
        (AutoModel, TinyBertModel),
        (AutoModelForMaskedLM, TinyBertForMaskedLM),
        (AutoModelForSequenceClassification, TinyBertForSequenceClassification),
        (AutoModelForTokenClassification, TinyBertForTokenClassification),
    ):
        auto_class.register(TinyBertConfig, model_class, exist_ok=True)
        # Makes save_pretrained copy modeling_tinybert.py and configuration_tinybert.py next to the weights.
        model_class.register_for_auto_class(auto_class.__name__)


def _printing_cli_help() -> bool:
    """Whether this process is `tinybert-hf [<command>] --help` (or a bare `tinybert-hf`): it prints text and exits,
    and importing torch and transformers for that would take seconds. Every other import registers at once."""
    arguments = sys.argv[1:]
    return Path(sys.argv[0]).name == "tinybert-hf" and (not arguments or "-h" in arguments or "--help" in arguments)


def __getattr__(name: str):
    """The public classes of a help-only `tinybert-hf` process, imported (and registered) when first used."""
    if name in __all__:
        _register()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if not _printing_cli_help():
    _register()
