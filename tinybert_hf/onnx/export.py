"""ONNX export of TinyBERT students (uniform or pruned shapes) with dynamic batch and sequence axes.

Uses torch's own exporter: `torch.onnx.export(..., dynamo=True)` (torch.export, which needs `onnx` and
`onnxscript`; the default of `export_onnx`), or the TorchScript tracer (`dynamo=False`, `exporter="torchscript"`),
whose graph ONNX Runtime's BERT optimizer fuses further (attention into one `Attention` node, the embeddings into
`EmbedLayerNormalization`; on the dynamo graph it finds neither pattern), so the int8 path exports with it. The
graph is checked against PyTorch with ONNX Runtime on inputs of several batch sizes and lengths before it is kept.
Attention is exported in its eager form (matmul, softmax, matmul) whatever the model runs with: that is the
pattern ONNX Runtime's graph optimizer and int8 quantizer know (int8, batch 32, one run: graph of `sdpa` attention
195 seq/s, of eager attention 226, eager and fused 262).

A saved model directory exports to a directory that [`OnnxModelForSequenceClassification`] and
[`OnnxModelForTokenClassification`] load:

```
output_dir/
  model.onnx         the graph, inputs input_ids / attention_mask / token_type_ids, output logits
  config.json        the student's config (labels, shapes)
  tokenizer.json, tokenizer_config.json
  onnx.json          source, architecture, opset and the torch / onnxruntime versions
```
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging as python_logging
import warnings
from pathlib import Path

import torch
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel
from transformers.utils import logging

from ..utils.atomic import atomic_directory, write_text

logger = logging.get_logger(__name__)

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
CHECK_SHAPES = ((1, 7), (3, 33), (2, 64))  # (batch, sequence) of the batches every written graph is run on


def require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"ONNX export needs onnx, onnxscript and onnxruntime ({error}), dependencies of tinybert-hf; install "
            "them with `pip install -c constraints.txt onnx onnxscript onnxruntime`."
        ) from error
    return onnxruntime


class _LogitsOnly(torch.nn.Module):
    """The model's first output (logits, or the last hidden state of a base model) as a plain tensor."""

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return outputs[0]


EXPORTERS = ("dynamo", "torchscript")


def export_onnx(
    model: PreTrainedModel, path: str | Path, opset_version: int = 18, atol: float = 1e-4, exporter: str = "dynamo"
) -> Path:
    r"""
    Export `model` to an ONNX file with dynamic `batch` and `sequence` axes, then check it with ONNX Runtime.

    Args:
        model ([`PreTrainedModel`]):
            A TinyBERT (or BERT) model, with any head; exported in eval mode, not modified.
        path (`str` or `Path`):
            The `.onnx` file to write (its directory is created).
        opset_version (`int`, *optional*, defaults to 18):
            ONNX opset of the graph.
        atol (`float`, *optional*, defaults to 1e-4):
            Largest difference to PyTorch allowed on the check inputs; a larger one is an error and no file is kept.
        exporter (`str`, *optional*, defaults to `"dynamo"`):
            `"dynamo"` (`torch.onnx.export(dynamo=True)`) or `"torchscript"` (the tracer, `dynamo=False`: the graph
            in which ONNX Runtime's optimizer fuses attention). Both have dynamic batch and sequence axes.

    Returns:
        `Path`: the written file. Its inputs are `input_ids`, `attention_mask`, `token_type_ids` (int64,
        `(batch, sequence)`), its output `logits` (`last_hidden_state` for a base model).
    """
    onnxruntime = require_onnx()
    if exporter not in EXPORTERS:
        raise ValueError(f"`exporter` must be one of {', '.join(map(repr, EXPORTERS))}, got {exporter!r}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = _eager_copy(model)  # the caller's model keeps its attention implementation and training mode
    wrapper = _LogitsOnly(model).eval()
    example = batches_to_check(model.config.vocab_size, ((2, 16),))[0]
    output_name = "logits" if hasattr(model, "classifier") or hasattr(model, "cls") else "last_hidden_state"
    partial = path.with_suffix(".onnx.partial")
    if exporter == "dynamo":
        axes = {name: {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")} for name in INPUT_NAMES}
        options = {"dynamic_shapes": axes, "dynamo": True, "external_data": False}
    else:
        options = {"dynamic_axes": {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}, "dynamo": False}
    try:
        with torch.no_grad(), _quiet_exporter():
            torch.onnx.export(
                wrapper,
                tuple(example[name] for name in INPUT_NAMES),
                str(partial),
                input_names=list(INPUT_NAMES),
                output_names=[output_name],
                opset_version=opset_version,
                verbose=False,  # its step-by-step progress lines
                **options,
            )
    except Exception as error:
        partial.unlink(missing_ok=True)
        raise ValueError(
            f"torch.onnx.export could not export {type(model).__name__} at opset {opset_version}: {error}"
        ) from error
    try:
        session = inference_session(partial, opset_version)
        difference = 0.0
        for inputs in batches_to_check(model.config.vocab_size, CHECK_SHAPES):
            with torch.no_grad():
                expected = wrapper(**inputs).numpy()
            got = session.run(None, graph_feeds(session, {name: tensor.numpy() for name, tensor in inputs.items()}))[0]
            difference = max(difference, float(abs(expected - got).max()))
            if difference > atol:
                raise ValueError(
                    f"The ONNX graph differs from PyTorch by {difference:.2e} (> {atol}) on a batch of shape "
                    f"{tuple(inputs['input_ids'].shape)} in onnxruntime {onnxruntime.__version__}; try another "
                    "`opset_version` or onnxruntime version."
                )
        partial.replace(path)  # only a checked graph gets the final name
    finally:
        partial.unlink(missing_ok=True)
    logger.info(f"ONNX graph written to {path} (max difference to PyTorch {difference:.1e} <= {atol}).")
    return path


def inference_session(path: str | Path, opset_version: int | None = None, threads: int | None = None):
    r"""
    An ONNX Runtime CPU session for `path`, with a clear error when this runtime cannot run the graph.

    Args:
        path (`str` or `Path`): the `.onnx` file.
        opset_version (`int`, *optional*): the opset the graph was written with, named in the error.
        threads (`int`, *optional*): intra-op threads (default: ONNX Runtime's choice); the pool does not spin
            between runs, so it does not steal the CPU from other work in the same process.
    """
    onnxruntime = require_onnx()
    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own Fail / InvalidGraph / NotImplemented types
        opset = f" (opset {opset_version})" if opset_version is not None else ""
        raise ValueError(
            f"onnxruntime {onnxruntime.__version__} cannot run the graph {Path(path).name}{opset}: {error}. "
            "Export with an opset this runtime supports (`opset_version`, 18 is tested) or upgrade onnxruntime."
        ) from error


def graph_feeds(session, feeds: dict) -> dict:
    """The entries of `feeds` that `session`'s graph takes: the TorchScript exporter drops inputs a model never
    reads (`token_type_ids` of MPNet, DistilBERT, ModernBERT, DeBERTa-v3), which ONNX Runtime then refuses."""
    names = {graph_input.name for graph_input in session.get_inputs()}
    return {name: value for name, value in feeds.items() if name in names}


def _eager_copy(model: PreTrainedModel) -> PreTrainedModel:
    """A copy of `model` in eval mode computing attention as matmul-softmax-matmul (the pattern ORT fuses)."""
    model = copy.deepcopy(model).cpu().eval()
    model.config._attn_implementation = "eager"
    return model


def sibling_directory(model_path: str | Path, suffix: str) -> Path:
    """`<model>-<suffix>`, beside the model directory (where exports go by default)."""
    model_path = Path(model_path)
    return model_path.with_name(f"{model_path.name}-{suffix}")


def export_saved_model(
    model_path: str | Path, output_dir: str | Path | None = None, opset_version: int = 18, exporter: str = "dynamo"
) -> Path:
    r"""
    Export a saved student directory (weights, config, tokenizer) to an ONNX model directory.

    Args:
        model_path (`str` or `Path`):
            A directory written by `save_pretrained` holding a sequence- or token-classification TinyBERT or BERT.
        output_dir (`str` or `Path`, *optional*, defaults to `<model_path>-onnx`):
            Where `model.onnx`, the config, the tokenizer and `onnx.json` go; assembled in a staging directory and
            renamed into place when complete ([`~tinybert_hf.utils.atomic.atomic_directory`]), so a failed export
            never leaves a directory that looks finished, nor touches an earlier export.
        opset_version (`int`, *optional*, defaults to 18): ONNX opset of the graph.
        exporter (`str`, *optional*, defaults to `"dynamo"`): torch's exporter, see [`export_onnx`].

    Returns:
        `Path`: `output_dir`.
    """
    onnxruntime = require_onnx()
    output_dir = Path(output_dir) if output_dir else sibling_directory(model_path, "onnx")
    check_output_directory(output_dir)
    model = load_task_model(model_path)
    with atomic_directory(output_dir) as staging:
        export_onnx(model, staging / "model.onnx", opset_version=opset_version, exporter=exporter)
        write_model_files(model_path, staging)
        record = {
            "source": str(model_path),
            "architecture": type(model).__name__,
            "opset_version": opset_version,
            "exporter": exporter,
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "dtype": "float32",
        }
        write_text(staging / "onnx.json", json.dumps(record, indent=2))
    return output_dir


def load_task_model(model_path: str | Path) -> PreTrainedModel:
    """The sequence- or token-classification model saved in `model_path`, with clear errors for missing files."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    directory = Path(model_path)
    if not directory.is_dir():
        raise FileNotFoundError(f"No model directory at {directory}; give the directory a student was saved to.")
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{directory} has no config.json: it is not a saved model directory.")
    if not list(directory.glob("*.safetensors")):
        raise FileNotFoundError(f"{directory} has no *.safetensors weights; save the model with save_pretrained.")
    config = AutoConfig.from_pretrained(directory)
    from ..pruning.layouts import PRUNABLE_MODEL_TYPES  # the families students are made of

    if config.model_type not in PRUNABLE_MODEL_TYPES:
        raise ValueError(
            f"{directory} holds a {config.model_type!r} model; ONNX export and int8 quantization support the student "
            f"families ({', '.join(PRUNABLE_MODEL_TYPES)})."
        )
    architecture = (config.architectures or [""])[0]
    auto_class = AutoModelForTokenClassification if "TokenClassification" in architecture else None
    if auto_class is None and "SequenceClassification" not in architecture:
        raise ValueError(
            f"{directory} holds a {architecture or 'model without a task head'}; export a sequence- or "
            "token-classification student (the ONNX graph's output is its logits)."
        )
    from ..utils.safe_loading import load_pretrained  # safetensors checked and named, no remote code

    return load_pretrained(auto_class or AutoModelForSequenceClassification, directory).eval()


def write_model_files(model_path: str | Path, output_dir: Path) -> None:
    """Copy the config and tokenizer of a saved model next to an ONNX graph (no weights, no modeling code)."""
    AutoConfig.from_pretrained(model_path).save_pretrained(output_dir)
    from ..models.tinybert.modeling_tinybert import TINYBERT_CODE_FILES

    for name in TINYBERT_CODE_FILES:
        (output_dir / name).unlink(missing_ok=True)
    try:
        AutoTokenizer.from_pretrained(model_path).save_pretrained(output_dir)
    except (OSError, ValueError) as error:
        logger.warning(f"No tokenizer saved next to the ONNX graph ({error}); pass one to the pipeline yourself.")


def check_output_directory(target: Path) -> None:
    """Refuse an existing, non-empty `target` that is not an earlier export (holding `onnx.json` or
    `quantization.json`): any other directory is the user's data, which a new export must not replace."""
    ours = (target / "onnx.json").is_file() or (target / "quantization.json").is_file()
    if target.is_dir() and any(target.iterdir()) and not ours:
        raise FileExistsError(
            f"{target} exists and is not an ONNX export of tinybert-hf; choose another output directory "
            "(nothing was written over it)."
        )


def batches_to_check(vocab_size: int, shapes) -> list[dict[str, torch.Tensor]]:
    """Random token ids with some padding in the last row, for each `(batch, sequence)` shape."""
    generator = torch.Generator().manual_seed(0)
    batches = []
    for batch, length in shapes:
        input_ids = torch.randint(1, vocab_size, (batch, length), generator=generator)
        attention_mask = torch.ones_like(input_ids)
        attention_mask[-1, max(1, length // 2) :] = 0
        token_type_ids = torch.zeros_like(input_ids)
        batches.append({"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids})
    return batches


@contextlib.contextmanager
def _quiet_exporter():
    """Silence what torch's exporter says about itself on every export and that asks nothing of the user: the
    torchvision operators it skips registering, its own deprecation warnings, that the batch and sequence axes
    keep their names, and the tracer's notes on the model's input checks (Python-side validation, constant in a
    traced graph, which the check batches then confirm). Real failures still raise."""
    registration = python_logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(python_logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated", category=FutureWarning)
            warnings.filterwarnings("ignore", message=r"# The axis name: .* will not be used", category=UserWarning)
            warnings.filterwarnings(
                "ignore", message=r"You are using the legacy TorchScript", category=DeprecationWarning
            )
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=r"Exporting aten::index operator", category=UserWarning)
            yield
    finally:
        registration.setLevel(level)


__all__ = ["export_onnx", "export_saved_model", "inference_session", "load_task_model", "sibling_directory"]
