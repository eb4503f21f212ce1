"""int8 students on CTranslate2 (`--engine ctranslate2`): the student's encoder as a CTranslate2 BERT encoder with
int8 weights, its classifier applied in numpy, behind the same `PreTrainedModel` interface as the ONNX models.

CTranslate2 quantizes weights per output channel and activations per row, as the per-row ONNX scheme does, and runs
each sequence at its own length (no padding work). On the main-job student (`benchmarks/int8_engines.py`, a CPU
with AVX-512 VNNI, 2 threads) it ran real batches faster than the ONNX Runtime engines and changed as few test
predictions as per-row ONNX, at a longer batch-1 latency; see the deployment page for the figures. It needs the
optional `ctranslate2` package (`pip install -c constraints.txt "tinybert-hf[ctranslate2]"`) and a student of
uniform shape (CTranslate2's BERT spec has one head count and FFN size for all layers).

```
student-int8/
  ctranslate2/        CTranslate2's int8 encoder (model.bin, its config and vocabulary)
  head.npz            the classifier: weight (labels, hidden), bias (labels,)
  config.json, tokenizer files
  quantization.json   engine, settings, the CPU it was checked on, versions, size, largest logit change
```
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput, TokenClassifierOutput
from transformers.utils import logging

from ..data.tasks import TASKS
from ..onnx.cpu_features import cpu_features
from ..onnx.export import CHECK_SHAPES, batches_to_check, check_output_directory, load_task_model, write_model_files
from ..onnx.modeling_onnx import directory_task, served_pipeline
from ..utils.atomic import atomic_directory, write_text

logger = logging.get_logger(__name__)

ENGINE_DIRECTORY = "ctranslate2"
HEAD_FILE = "head.npz"
# what a TinyBERT config says that a BertConfig needs for CTranslate2's BERT loader
_BERT_KEYS = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
    "max_position_embeddings", "type_vocab_size", "layer_norm_eps",
)  # fmt: skip


def require_ctranslate2():
    try:
        import ctranslate2
    except ImportError as error:
        raise ImportError(
            f"The CTranslate2 engine needs ctranslate2 ({error}); install it with "
            '`pip install -c constraints.txt "tinybert-hf[ctranslate2]"`, or quantize with --engine onnxruntime.'
        ) from error
    return ctranslate2


def quantize_saved_model_ctranslate2(args) -> dict:
    r"""
    Convert a saved student to a CTranslate2 int8 encoder plus its classifier, check it against the PyTorch student
    on the export's check batches, and write the int8 model directory (assembled in a staging directory).

    Args:
        args ([`~tinybert_hf.quantization.arguments.QuantizeArguments`]): `model`, `output_dir`; the ONNX-only
            settings (activations, exporter, op types) do not apply.

    Returns:
        `dict`: the record also written to `quantization.json`.
    """
    ctranslate2 = require_ctranslate2()
    from ctranslate2.converters import TransformersConverter
    from transformers import BertConfig, BertModel

    from .onnx_int8 import default_int8_directory, weights_digest

    output_dir = Path(args.output_dir) if args.output_dir else default_int8_directory(args.model)
    check_output_directory(output_dir)
    model = load_task_model(args.model)
    config = model.config
    if getattr(config, "layer_num_attention_heads", None) or getattr(config, "layer_intermediate_sizes", None):
        raise ValueError(
            f"{args.model} is a pruned student with per-layer head counts or FFN sizes, which CTranslate2's BERT "
            "encoder cannot hold; quantize it with --engine onnxruntime."
        )
    encoder = model.base_model
    # position_embedding_type: CTranslate2's BERT loader asserts it; transformers 5's BertConfig no longer has it
    bert = BertModel(
        BertConfig(**{key: getattr(config, key) for key in _BERT_KEYS}, position_embedding_type="absolute")
    )
    missing, _ = bert.load_state_dict(encoder.state_dict(), strict=False)  # fit_dense is left out
    if "TokenClassification" in (config.architectures or [""])[0]:  # the pooler is not used for token logits
        missing = [key for key in missing if not key.startswith("pooler.")]
    if missing:
        raise ValueError(f"The student's encoder does not fill a BERT encoder: missing {missing}.")
    classifier = model.classifier
    with atomic_directory(output_dir) as staging, tempfile.TemporaryDirectory(dir=output_dir.parent) as scratch:
        bert.save_pretrained(scratch)
        AutoTokenizer.from_pretrained(args.model).save_pretrained(scratch)  # the converter writes its vocabulary
        TransformersConverter(scratch).convert(str(staging / ENGINE_DIRECTORY), quantization="int8")
        np.savez(
            staging / HEAD_FILE,
            weight=classifier.weight.detach().numpy(),
            bias=classifier.bias.detach().numpy(),
        )
        write_model_files(args.model, staging)
        task = directory_task(staging)  # the architecture write_model_files copied there
        served = ctranslate2_class(task)(AutoConfig.from_pretrained(staging), *_load_engine(staging, threads=None))
        change = 0.0
        for batch in batches_to_check(config.vocab_size, CHECK_SHAPES):
            with torch.no_grad():
                expected = model(**batch).logits
            got = served(**batch).logits
            if not torch.isfinite(got).all():
                raise ValueError("The CTranslate2 int8 encoder gives non-finite logits.")
            real = batch["attention_mask"].bool() if got.dim() == 3 else slice(None)
            change = max(change, float((got - expected)[real].abs().max()))
        record = {
            "output_dir": str(output_dir),
            "source": str(args.model),
            "source_weights_sha256": weights_digest(args.model),
            "settings": {"model": str(args.model), "output_dir": str(output_dir), "engine": "ctranslate2"},
            "method": "ctranslate2.converters.TransformersConverter, quantization int8",
            "cpu": cpu_features(),
            "ctranslate2": ctranslate2.__version__,
            "size_mb": {"int8": round(sum(p.stat().st_size for p in staging.rglob("*.bin")) / 1e6, 2)},
            "max_logit_change_on_check_batches": round(change, 5),
        }
        write_text(staging / "quantization.json", json.dumps(record, indent=2))
    logger.info(f"CTranslate2 int8 model written to {output_dir}.")
    return record


def _load_engine(directory: Path, threads: int | None):
    ctranslate2 = require_ctranslate2()
    encoder = ctranslate2.Encoder(
        str(directory / ENGINE_DIRECTORY), device="cpu", compute_type="int8", intra_threads=threads or 0
    )
    head = np.load(directory / HEAD_FILE)
    return encoder, head["weight"].T.copy(), head["bias"]  # (hidden, labels), (labels,)


class CTranslate2Model(PreTrainedModel):
    r"""
    A student whose encoder runs on CTranslate2 (int8) and whose classifier runs in numpy; outputs are torch
    tensors like the PyTorch model's. Each row runs at its own length (its attention mask's count of ones); token
    logits past the batch's longest row are those of zero features (the classifier's bias).

    Args:
        config ([`PretrainedConfig`]): the student's config (label names).
        encoder (`ctranslate2.Encoder`): the int8 encoder.
        weight (`np.ndarray`): `(hidden, labels)` classifier weight; bias (`np.ndarray`): `(labels,)`.
    """

    config_class = PretrainedConfig
    main_input_name = "input_ids"
    output_class = SequenceClassifierOutput

    def __init__(self, config: PretrainedConfig, encoder, weight: np.ndarray, bias: np.ndarray):
        super().__init__(config)
        self.encoder, self.weight, self.bias = encoder, weight, bias
        self.post_init()

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @classmethod
    def from_pretrained(cls, directory: str | Path, threads: int | None = None):
        r"""
        Load a directory written by `tinybert-hf quantize --engine ctranslate2`.

        Args:
            directory (`str` or `Path`): holds `ctranslate2/`, `head.npz` and `config.json`.
            threads (`int`, *optional*): CTranslate2 intra-op threads (default: its own choice).
        """
        directory = Path(directory)
        if not (directory / ENGINE_DIRECTORY).is_dir() or not (directory / HEAD_FILE).is_file():
            raise FileNotFoundError(
                f"No CTranslate2 model at {directory}; write one with `tinybert-hf quantize --engine ctranslate2`."
            )
        return cls(AutoConfig.from_pretrained(directory), *_load_engine(directory, threads))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ):
        """Logits `(batch, num_labels)` or `(batch, sequence, num_labels)` and the cross-entropy `loss` when `labels`
        are given, as the PyTorch models return them."""
        import ctranslate2

        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        lengths = attention_mask.sum(dim=1).to(torch.int32).numpy()
        ids = ctranslate2.StorageView.from_array(np.ascontiguousarray(input_ids.numpy(), dtype=np.int32))
        types = None if token_type_ids is None or not token_type_ids.any() else token_type_ids.tolist()
        output = self.encoder.forward_batch(ids, ctranslate2.StorageView.from_array(lengths), types)
        if self.output_class is SequenceClassifierOutput:
            features = np.array(output.pooler_output)  # (batch, hidden): tanh(dense(first token))
        else:
            features = np.array(output.last_hidden_state)  # (batch, longest length, hidden)
            width = input_ids.shape[1] - features.shape[1]  # CTranslate2 stops at the longest row: pad to the input
            features = np.pad(features, ((0, 0), (0, width), (0, 0))) if width > 0 else features
        logits = torch.from_numpy(np.ascontiguousarray(features @ self.weight + self.bias, dtype=np.float32))
        loss = None
        if labels is not None:
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1).long())
        return self.output_class(loss=loss, logits=logits)


class CTranslate2ModelForSequenceClassification(CTranslate2Model):
    output_class = SequenceClassifierOutput


class CTranslate2ModelForTokenClassification(CTranslate2Model):
    output_class = TokenClassifierOutput


def ctranslate2_class(task: str) -> type[CTranslate2Model]:
    """The CTranslate2 model class with `task`'s head."""
    return {
        cls.__name__.removeprefix("CTranslate2Model"): cls
        for cls in (CTranslate2ModelForSequenceClassification, CTranslate2ModelForTokenClassification)
    }[TASKS[task].head]


def ctranslate2_pipeline(directory: str | Path, task: str | None = None, threads: int | None = None, **kwargs):
    r"""
    A `transformers` pipeline on a CTranslate2 int8 student directory (like
    [`~tinybert_hf.onnx.modeling_onnx.onnx_pipeline`] for ONNX ones).

    Args:
        directory (`str` or `Path`): written by `tinybert-hf quantize --engine ctranslate2`.
        task (`str`, *optional*): read from the config's architecture when not given.
        threads (`int`, *optional*): CTranslate2 intra-op threads.
        kwargs: passed to `transformers.pipeline`.
    """
    task = directory_task(directory, task)
    model = ctranslate2_class(task).from_pretrained(directory, threads=threads)
    return served_pipeline(task, model, directory, **kwargs)


__all__ = [
    "CTranslate2Model",
    "CTranslate2ModelForSequenceClassification",
    "CTranslate2ModelForTokenClassification",
    "ctranslate2_class",
    "ctranslate2_pipeline",
    "quantize_saved_model_ctranslate2",
    "require_ctranslate2",
]
