"""Serving exported students (fp32 or int8 ONNX) with ONNX Runtime behind the `transformers` model interface.

The classes are `PreTrainedModel`s without parameters whose forward runs an ONNX Runtime session, so they drop
into `transformers.pipeline` (batching, label names, `aggregation_strategy` for entities) like optimum's ORTModel
classes. A padded batch runs in groups of rows of similar length, each cut to its longest row
([`~tinybert_hf.onnx.length_buckets.length_groups`]; `length_buckets=False` runs it as given):

```python
from tinybert_hf.onnx.modeling_onnx import onnx_pipeline

classifier = onnx_pipeline("outputs/tinybert/student-int8")
classifier(["a warm, funny film", "a dull mess"])  # [{'label': 'fresh', 'score': 0.97}, ...]
```
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput, TokenClassifierOutput
from transformers.utils import logging

from ..data.tasks import TASKS, TEXT_TASK, task_of_model_class
from .export import INPUT_NAMES, inference_session
from .length_buckets import length_groups, row_lengths

logger = logging.get_logger(__name__)


class OnnxModel(PreTrainedModel):
    r"""
    An exported TinyBERT/BERT task model run by ONNX Runtime on CPU; outputs are torch tensors like the original.

    Args:
        config ([`PretrainedConfig`]): the student's config (label names, vocabulary size).
        session (`onnxruntime.InferenceSession`): a session on the exported graph.
        length_buckets (`bool`, *optional*, defaults to `True`):
            Run a right-padded batch as groups of rows of similar length, each padded only to its own longest row,
            and put the outputs back in order (token logits beyond a group's longest row are 0). `False` runs every
            batch as given.
    """

    config_class = PretrainedConfig
    main_input_name = "input_ids"
    output_class = SequenceClassifierOutput

    def __init__(self, config: PretrainedConfig, session, length_buckets: bool = True):
        super().__init__(config)
        self.session = session
        # what the graph takes, in INPUT_NAMES order: the TorchScript exporter drops inputs a model never reads
        # (`token_type_ids` of MPNet, DistilBERT, ModernBERT, DeBERTa-v3), which ONNX Runtime then refuses
        graph_inputs = {graph_input.name for graph_input in session.get_inputs()}
        self.input_names = [name for name in INPUT_NAMES if name in graph_inputs]
        self.length_buckets = length_buckets
        self.post_init()

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        file_name: str = "model.onnx",
        threads: int | None = None,
        length_buckets: bool = True,
    ):
        r"""
        Load an exported model directory (written by `tinybert-hf export` or `tinybert-hf quantize`).

        Args:
            directory (`str` or `Path`): holds `config.json` and the graph.
            file_name (`str`, *optional*, defaults to `"model.onnx"`): the graph's file name.
            threads (`int`, *optional*): ONNX Runtime intra-op threads.
            length_buckets (`bool`, *optional*, defaults to `True`): see [`OnnxModel`].

        An int8 graph whose `quantization.json` says its int8 weights were chosen on a CPU where the uint8 x int8
        product is exact logs a warning when this CPU's saturates (its predictions may differ more here;
        requantize here, or with `--weight_type uint8`).
        """
        directory = Path(directory)
        graph = directory / file_name
        if not graph.is_file():
            raise FileNotFoundError(
                f"No ONNX graph at {graph}; write one with `tinybert-hf export` or `tinybert-hf quantize`."
            )
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(f"{directory} has no config.json next to {file_name}.")

        _warn_if_saturating_here(directory)
        return cls(AutoConfig.from_pretrained(directory), inference_session(graph, threads=threads), length_buckets)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ):
        """Logits `(batch, num_labels)` or `(batch, sequence, num_labels)` in the task's output class, with the
        cross-entropy `loss` when `labels` are given (label -100 ignored), as the PyTorch models return it."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        tensors = dict(zip(INPUT_NAMES, (input_ids, attention_mask, token_type_ids), strict=True))
        feeds = {name: np.ascontiguousarray(tensors[name].cpu().numpy(), dtype=np.int64) for name in self.input_names}
        logits = torch.from_numpy(self._run(feeds))
        loss = None
        if labels is not None:
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1).long())
        return self.output_class(loss=loss, logits=logits)

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """The graph's output for `feeds` (each `(batch, sequence)`), run in length groups when that saves work."""
        lengths = row_lengths(feeds["attention_mask"]) if self.length_buckets else None
        if lengths is None or lengths.min() == feeds["attention_mask"].shape[1] or lengths.min() == 0:
            return self.session.run(None, feeds)[0]  # unpadded, not right-padded, or an empty row
        outputs = None
        for rows in length_groups(lengths):
            longest = int(lengths[rows].max())
            part = self.session.run(None, {name: value[rows, :longest] for name, value in feeds.items()})[0]
            if outputs is None:  # (batch, labels) or (batch, sequence, labels), zeros past a group's longest row
                shape = (
                    (len(lengths), *part.shape[1:]) if part.ndim == 2 else (*feeds["input_ids"].shape, part.shape[-1])
                )
                outputs = np.zeros(shape, dtype=part.dtype)
            if part.ndim == 2:
                outputs[rows] = part
            else:
                outputs[rows, :longest] = part
        return outputs


def _warn_if_saturating_here(directory: Path) -> None:
    """Warn when int8 weights chosen on a CPU with exact uint8 x int8 products run on one whose products saturate."""
    import json

    record_path = directory / "quantization.json"
    if not record_path.is_file():
        return
    record = json.loads(record_path.read_text())
    checked_on = record.get("cpu") or {}
    if record.get("settings", {}).get("weight_type") != "int8" or checked_on.get("u8s8_saturates", True):
        return
    from .cpu_features import u8s8_saturates

    if u8s8_saturates():
        logger.warning(
            f"{directory} has int8 weights chosen on a CPU whose uint8 x int8 products are exact "
            f"({checked_on.get('model')}); on this CPU they saturate (AVX2 without VNNI), so more predictions may "
            "change. Quantize again here (weight_type 'auto' picks uint8) or with --weight_type uint8."
        )


class OnnxModelForSequenceClassification(OnnxModel):
    output_class = SequenceClassifierOutput


class OnnxModelForTokenClassification(OnnxModel):
    output_class = TokenClassifierOutput


def onnx_class(task: str) -> type[OnnxModel]:
    """The ONNX model class with `task`'s head (`OnnxModel<head>`)."""
    return {
        cls.__name__.removeprefix("OnnxModel"): cls
        for cls in (OnnxModelForSequenceClassification, OnnxModelForTokenClassification)
    }[TASKS[task].head]


def onnx_pipeline(
    directory: str | Path,
    task: str | None = None,
    threads: int | None = None,
    length_buckets: bool = True,
    **kwargs,
):
    r"""
    A `transformers` pipeline on an exported (fp32 or int8) student directory.

    Args:
        directory (`str` or `Path`): the exported directory (graph, config, tokenizer).
        task (`str`, *optional*): `"text-classification"` or `"token-classification"`; read from the config's
            architecture when not given.
        threads (`int`, *optional*): ONNX Runtime intra-op threads.
        length_buckets (`bool`, *optional*, defaults to `True`): run each padded batch (`batch_size` > 1) in groups
            of similar length, see [`OnnxModel`].
        kwargs: passed to `transformers.pipeline` (for example `aggregation_strategy="simple"`).
    """
    if not (Path(directory) / "config.json").is_file():  # transformers would read a missing path as a Hub id
        raise FileNotFoundError(
            f"No exported model directory at {directory}; write one with `tinybert-hf quantize --model <student>` "
            "(int8) or `tinybert-hf export` (fp32); `tinybert-hf distill` writes <output_dir>/student-int8."
        )
    task = directory_task(directory, task)
    model = onnx_class(task).from_pretrained(directory, threads=threads, length_buckets=length_buckets)
    return served_pipeline(task, model, directory, **kwargs)


def directory_task(directory: str | Path, task: str | None = None) -> str:
    """`task`, or the task of the architecture a saved model directory's config records (text classification
    when it records none)."""
    if task is not None:
        return task
    config = AutoConfig.from_pretrained(directory)
    return (task_of_model_class((config.architectures or [""])[0]) or TASKS[TEXT_TASK]).name


def served_pipeline(task: str, model, directory: str | Path, **kwargs):
    """A `transformers` pipeline on a serving model (ONNX Runtime, CTranslate2) with the tokenizer of `directory`."""
    from transformers import pipeline
    from transformers.pipelines import base as pipeline_base

    # The pipeline logs an error for model classes outside its Auto mappings; these implement the same forward.
    pipeline_logger = pipeline_base.logger
    level = pipeline_logger.level
    pipeline_logger.setLevel(logging.CRITICAL)
    try:
        return pipeline(task, model=model, tokenizer=AutoTokenizer.from_pretrained(directory), **kwargs)
    finally:
        pipeline_logger.setLevel(level)


__all__ = [
    "OnnxModel",
    "OnnxModelForSequenceClassification",
    "OnnxModelForTokenClassification",
    "onnx_class",
    "onnx_pipeline",
    "directory_task",
    "served_pipeline",
]
