"""Serving exported students (fp32 or int8 ONNX) with ONNX Runtime behind the `transformers` model interface.

The classes are `PreTrainedModel`s without parameters whose forward runs an ONNX Runtime session, so they drop
into `transformers.pipeline` (batching, label names, `aggregation_strategy` for entities) like optimum's ORTModel
classes:

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


class OnnxModel(PreTrainedModel):
    r"""
    An exported TinyBERT/BERT task model run by ONNX Runtime on CPU; outputs are torch tensors like the original.

    Args:
        config ([`PretrainedConfig`]): the student's config (label names, vocabulary size).
        session (`onnxruntime.InferenceSession`): a session on the exported graph.
    """

    config_class = PretrainedConfig
    main_input_name = "input_ids"
    output_class = SequenceClassifierOutput

    def __init__(self, config: PretrainedConfig, session):
        super().__init__(config)
        self.session = session
        self.post_init()

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @classmethod
    def from_pretrained(cls, directory: str | Path, file_name: str = "model.onnx", threads: int | None = None):
        r"""
        Load an exported model directory (written by `tinybert-hf export` or `tinybert-hf quantize`).

        Args:
            directory (`str` or `Path`): holds `config.json` and the graph.
            file_name (`str`, *optional*, defaults to `"model.onnx"`): the graph's file name.
            threads (`int`, *optional*): ONNX Runtime intra-op threads.
        """
        directory = Path(directory)
        graph = directory / file_name
        if not graph.is_file():
            raise FileNotFoundError(
                f"No ONNX graph at {graph}; write one with `tinybert-hf export` or `tinybert-hf quantize`."
            )
        if not (directory / "config.json").is_file():
            raise FileNotFoundError(f"{directory} has no config.json next to {file_name}.")

        return cls(AutoConfig.from_pretrained(directory), inference_session(graph, threads=threads))

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
        feeds = {name: np.ascontiguousarray(tensor.cpu().numpy(), dtype=np.int64) for name, tensor in tensors.items()}
        logits = torch.from_numpy(self.session.run(None, feeds)[0])
        loss = None
        if labels is not None:
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1).long())
        return self.output_class(loss=loss, logits=logits)


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


def onnx_pipeline(directory: str | Path, task: str | None = None, threads: int | None = None, **kwargs):
    r"""
    A `transformers` pipeline on an exported (fp32 or int8) student directory.

    Args:
        directory (`str` or `Path`): the exported directory (graph, config, tokenizer).
        task (`str`, *optional*): `"text-classification"` or `"token-classification"`; read from the config's
            architecture when not given.
        threads (`int`, *optional*): ONNX Runtime intra-op threads.
        kwargs: passed to `transformers.pipeline` (for example `aggregation_strategy="simple"`).
    """
    from transformers import pipeline
    from transformers.pipelines import base as pipeline_base

    if not (Path(directory) / "config.json").is_file():  # transformers would read a missing path as a Hub id
        raise FileNotFoundError(
            f"No exported model directory at {directory}; write one with `tinybert-hf quantize --model <student>` "
            "(int8) or `tinybert-hf export` (fp32); `tinybert-hf distill` writes <output_dir>/student-int8."
        )
    config = AutoConfig.from_pretrained(directory)
    if task is None:
        task = (task_of_model_class((config.architectures or [""])[0]) or TASKS[TEXT_TASK]).name
    model = onnx_class(task).from_pretrained(directory, threads=threads)
    # The pipeline logs an error for model classes outside its Auto mappings; this one implements the same forward.
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
]
