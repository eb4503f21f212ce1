"""tinybert-hf: distil fine-tuned BERT-family teachers into small, fast TinyBERT students.

Importing the package registers the TinyBERT classes with the `transformers` Auto classes, so
`AutoConfig`, `AutoModel`, `AutoModelForSequenceClassification`, `AutoModelForTokenClassification`,
`AutoModelForMaskedLM` and `pipeline(...)` resolve `model_type="tinybert"`; saved students also ship their
modeling code, so `trust_remote_code=True` loads them where this package is not installed.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from .configuration_tinybert import TinyBertConfig
from .modeling_tinybert import (
    TinyBertForMaskedLM,
    TinyBertForSequenceClassification,
    TinyBertForTokenClassification,
    TinyBertModel,
    TinyBertModelOutput,
    TinyBertPreTrainedModel,
)
from .student_init import student_from_teacher_layers, uniform_layer_subset
from .teacher_cache import add_teacher_logits
from .trainer import DistillationTrainer, DistillationTrainingArguments

__version__ = "0.1.0"

_AUTO_CLASSES = (
    (AutoModel, TinyBertModel),
    (AutoModelForMaskedLM, TinyBertForMaskedLM),
    (AutoModelForSequenceClassification, TinyBertForSequenceClassification),
    (AutoModelForTokenClassification, TinyBertForTokenClassification),
)

AutoConfig.register(TinyBertConfig.model_type, TinyBertConfig, exist_ok=True)
TinyBertConfig.register_for_auto_class()
for _auto_class, _model_class in _AUTO_CLASSES:
    _auto_class.register(TinyBertConfig, _model_class, exist_ok=True)
    # Makes save_pretrained copy modeling_tinybert.py and configuration_tinybert.py next to the weights.
    _model_class.register_for_auto_class(_auto_class.__name__)

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
