"""int8 students for CPU inference: ONNX export, ONNX Runtime graph fusion, then int8 quantization.

Chosen by measurement (`benchmarks/quantization.py`, the main-job TinyBERT4 student, 2 threads, sequence 64; the
README has the table): ONNX Runtime's dynamic int8 ran 1.45-1.55x the PyTorch fp32 student at batch 32 and
1.9-2.3x at batch 1, within 0.4 test points, at 25% of the size; torchao's int8 configurations ran 0.05x (dynamic
activations, no fast CPU kernel here) and 0.97-1.02x (weight-only, compiled), and torch.ao's `quantize_dynamic` is
deprecated (1.29x, embeddings left fp32).

The default since issue 21 (`benchmarks/int8_engines.py` measures the choices side by side):

- the TorchScript export (`exporter="torchscript"`), in which ONNX Runtime's BERT optimizer fuses attention (one
  `Attention` node per layer), bias + GELU and residual + LayerNorm;
- per-row int8 ([`~tinybert_hf.quantization.rowwise_int8.quantize_rowwise`], `activations="per_row"`): each
  token's activations get their own scale at run time, weights one scale per output channel, embedding tables one
  per row. ONNX Runtime's `quantize_dynamic` (`activations="per_tensor"`, the scheme before) scales a whole batch's
  activations at once; on the main-job student 2.0% of the test predictions differed from the fp32 student that
  way, 0.4% per row;
- int8 or uint8 weights by what this CPU computes exactly ([`~tinybert_hf.onnx.cpu_features`]):
  `weight_type="auto"` takes int8 unless ONNX Runtime's uint8 x int8 product saturates here (AVX2 without VNNI),
  and `quantization.json` records the CPU it was chosen on.

Neither scheme needs calibration data (static calibrated int8 measured slower: 277 against 305 seq/s, the same
accuracy).

[`quantize_saved_model`] writes, next to the student (`<student>-int8` by default):

```
student-int8/
  model.onnx           int8 graph: inputs input_ids / attention_mask / token_type_ids, output logits
  config.json, tokenizer files
  quantization.json    settings, the CPU they were chosen and checked on, versions, sizes, and the largest logit
                       change on the check batches
```

It loads with [`OnnxModelForSequenceClassification`] / [`OnnxModelForTokenClassification`] or
[`onnx_pipeline`], which skip most padding by running rows of similar length together. The source student is read
only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging as python_logging
import tempfile
from contextlib import closing
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm
from transformers.utils import logging

from ..onnx.cpu_features import cpu_features, int8_weight_type
from ..onnx.export import (
    CHECK_SHAPES,
    INPUT_NAMES,
    batches_to_check,
    check_output_directory,
    export_onnx,
    graph_feeds,
    inference_session,
    load_task_model,
    require_onnx,
    sibling_directory,
    write_model_files,
)
from ..utils.atomic import atomic_directory, write_text
from .arguments import DEFAULT_INT8_OP_TYPES, QuantizeArguments
from .rowwise_int8 import quantize_rowwise

logger = logging.get_logger(__name__)

DEFAULT_OP_TYPES = DEFAULT_INT8_OP_TYPES
ROWWISE_OP_TYPES = ("MatMul", "Attention", "Gather")  # what the per-row rewrite quantizes


# families whose graphs ONNX Runtime's BERT optimizer cannot take: ModernBERT's LayerNorms have no bias, which its
# SkipLayerNormalization fusion fails on (IndexError in onnxruntime 1.2x); they are quantized unfused
UNFUSED_MODEL_TYPES = ("modernbert",)


def supported_op_types() -> set[str]:
    """ONNX operators ONNX Runtime's dynamic quantizer turns into integer kernels."""
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    return set(IntegerOpsRegistry)


def check_op_types(op_types) -> None:
    """Refuse an empty list or operators ONNX Runtime's dynamic quantizer cannot turn into integer kernels."""
    unsupported = sorted(set(op_types) - supported_op_types())
    if unsupported or not op_types:
        raise ValueError(
            f"Cannot quantize {unsupported or 'an empty operator list'}; choose among {sorted(supported_op_types())}."
        )


def fuse_onnx(fp32_path: str | Path, fused_path: str | Path) -> dict[str, int]:
    """Fuse attention (in a TorchScript export), bias + GELU and residual + LayerNorm with ONNX Runtime's BERT
    optimizer; returns the fused op counts. The embedding lookups stay `Gather` nodes (not
    `EmbedLayerNormalization`), whose tables both int8 schemes quantize."""
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("bert")
    options.enable_embed_layer_norm = False
    # num_heads / hidden_size 0: read from the graph (pruned students have per-layer head counts)
    fused = optimizer.optimize_model(
        str(fp32_path), model_type="bert", num_heads=0, hidden_size=0, optimization_options=options
    )
    fused.save_model_to_file(str(fused_path))
    return {name: count for name, count in fused.get_fused_operator_statistics().items() if count}


def quantize_onnx(
    fp32_path: str | Path,
    int8_path: str | Path,
    per_channel: bool = False,
    reduce_range: bool = False,
    op_types: tuple[str, ...] | list[str] = ("MatMul", "Gather"),
    weight_type: str = "int8",
) -> Path:
    r"""
    Write a copy of an fp32 ONNX graph quantized by ONNX Runtime's `quantize_dynamic` (activations per tensor).

    Args:
        fp32_path (`str` or `Path`): the fp32 graph (fused or not); read only.
        int8_path (`str` or `Path`): the int8 graph to write.
        per_channel (`bool`, *optional*, defaults to `False`): one weight scale per output channel.
        reduce_range (`bool`, *optional*, defaults to `False`): 7-bit weights.
        op_types (`tuple[str]`, *optional*): ONNX operators to quantize; others stay fp32.
        weight_type (`str`, *optional*, defaults to `"int8"`): `"int8"` or `"uint8"` weights.

    Returns:
        `Path`: `int8_path`.
    """
    require_onnx()
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    check_op_types(op_types)
    with _quiet_preprocessing_hint():
        quantize_dynamic(
            str(fp32_path),
            str(int8_path),
            op_types_to_quantize=list(op_types),
            per_channel=per_channel,
            reduce_range=reduce_range,
            weight_type=QuantType.QInt8 if weight_type == "int8" else QuantType.QUInt8,
            # fused ops (com.microsoft domain) have no ONNX type inference: their outputs are fp32
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )
    _strip_export_metadata(Path(int8_path))
    return Path(int8_path)


def _strip_export_metadata(path: Path) -> None:
    """Drop the exporter's per-node stack traces and doc strings: a deployment graph does not need them (for a tiny
    model they outweigh the int8 weights)."""
    import onnx

    graph = onnx.load(str(path))
    for node in graph.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    onnx.save(graph, str(path))


@contextlib.contextmanager
def _quiet_preprocessing_hint():
    """Drop ORT's root-logger advice to run its pre-processing: the BERT optimizer has already done that work."""

    class _Filter(python_logging.Filter):
        def filter(self, record):
            return "pre-processing before quantization" not in record.getMessage()

    root = python_logging.getLogger()
    hint_filter = _Filter()
    root.addFilter(hint_filter)
    try:
        yield
    finally:
        root.removeFilter(hint_filter)


def default_int8_directory(model_path: str | Path) -> Path:
    """`<student>-int8`, beside the student directory."""
    return sibling_directory(model_path, "int8")


def quantize_saved_model(args: QuantizeArguments) -> dict:
    r"""
    Export a saved student to ONNX, fuse, quantize to int8, check it runs, and write the int8 model directory
    (`args.engine="ctranslate2"`: convert it for CTranslate2 instead, see
    [`~tinybert_hf.quantization.ctranslate2_int8.quantize_saved_model_ctranslate2`]).

    The directory is assembled in a staging directory and renamed into place when complete
    ([`~tinybert_hf.utils.atomic.atomic_directory`]); the student is only read.

    Returns:
        `dict`: the record also written to `quantization.json` (output directory, settings, sizes, check).
    """
    if args.engine == "ctranslate2":
        from .ctranslate2_int8 import quantize_saved_model_ctranslate2

        return quantize_saved_model_ctranslate2(args)
    onnxruntime = require_onnx()
    op_types = tuple(name.strip() for name in args.op_types.split(",") if name.strip())
    check_op_types(op_types)  # before the export, which takes a while
    others = sorted(set(op_types) - set(ROWWISE_OP_TYPES))
    if args.activations == "per_row" and others:
        raise ValueError(
            f"Per-row int8 quantizes {', '.join(ROWWISE_OP_TYPES)}, not {others}; drop them from `op_types` or "
            "quantize with activations='per_tensor'."
        )
    output_dir = Path(args.output_dir) if args.output_dir else default_int8_directory(args.model)
    check_output_directory(output_dir)
    features = cpu_features()
    weight_type = int8_weight_type(features) if args.weight_type == "auto" else args.weight_type
    model = load_task_model(args.model)
    steps = tqdm(total=4, desc="Quantizing", unit="step")
    # the fp32 graphs in a scratch directory beside it, gone before the int8 directory is renamed into place
    with (
        closing(steps),
        atomic_directory(output_dir) as staging,
        tempfile.TemporaryDirectory(dir=output_dir.parent) as scratch,
    ):
        fp32_path = Path(scratch) / "model_fp32.onnx"
        steps.set_postfix_str(f"export fp32 graph ({args.exporter})")
        export_onnx(model, fp32_path, opset_version=args.opset_version, exporter=args.exporter)
        steps.update()
        fused = {}
        if args.fuse and model.config.model_type not in UNFUSED_MODEL_TYPES:
            steps.set_postfix_str("fuse")
            fused = fuse_onnx(fp32_path, Path(scratch) / "model_fused.onnx")
            fp32_path = Path(scratch) / "model_fused.onnx"
        steps.update()
        steps.set_postfix_str(f"quantize ({args.activations})")
        int8_path = staging / "model.onnx"
        if args.activations == "per_row":
            rewritten = quantize_rowwise(
                fp32_path, int8_path, weight_type, args.per_channel, args.reduce_range, op_types
            )
            _strip_export_metadata(int8_path)
            method = "tinybert_hf.quantization.rowwise_int8.quantize_rowwise"
        else:
            quantize_onnx(fp32_path, int8_path, args.per_channel, args.reduce_range, op_types, weight_type)
            rewritten, method = {}, "onnxruntime.quantization.quantize_dynamic"
        steps.update()
        steps.set_postfix_str("check")
        change = _largest_logit_change(fp32_path, int8_path, model.config.vocab_size, args.opset_version)
        fp32_mb = fp32_path.stat().st_size / 1e6
        steps.update()
        write_model_files(args.model, staging)
        record = {
            "output_dir": str(output_dir),
            "source": str(args.model),
            "source_weights_sha256": weights_digest(args.model),
            "settings": {
                **asdict(args),
                "output_dir": str(output_dir),
                "op_types": list(op_types),
                "weight_type": weight_type,
                "activation_type": "uint8",
            },
            "method": method,
            # the CPU the weight type was chosen on and the graph checked on: another CPU may saturate where this
            # one did not (OnnxModel warns when loaded there)
            "cpu": features,
            "fused_operators": fused,
            "quantized_operators": rewritten,
            "onnxruntime": onnxruntime.__version__,
            "size_mb": {"fp32_onnx": round(fp32_mb, 2), "int8_onnx": round(int8_path.stat().st_size / 1e6, 2)},
            "max_logit_change_on_check_batches": change,
        }
        write_text(staging / "quantization.json", json.dumps(record, indent=2))
    logger.info(f"int8 model written to {output_dir} ({record['size_mb']['int8_onnx']} MB).")
    return record


def load_int8_model(directory: str | Path, task: str, threads: int | None = None):
    r"""
    The int8 student in `directory` on the engine its `quantization.json` names: an `OnnxModelFor*` (ONNX Runtime)
    or a `CTranslate2ModelFor*`.

    Args:
        directory (`str` or `Path`): written by [`quantize_saved_model`].
        task (`str`): `"text-classification"` or `"token-classification"`.
        threads (`int`, *optional*): the runtime's intra-op threads.
    """
    from ..onnx.modeling_onnx import onnx_class

    record_path = Path(directory) / "quantization.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    if record.get("settings", {}).get("engine") == "ctranslate2":
        from .ctranslate2_int8 import ctranslate2_class

        return ctranslate2_class(task).from_pretrained(directory, threads=threads)
    return onnx_class(task).from_pretrained(directory, threads=threads)


def weights_digest(model_path: str | Path) -> str:
    """sha256 of a saved model's safetensors files: tells whether an int8 copy still matches its student."""
    digest = hashlib.sha256()
    for path in sorted(Path(model_path).glob("*.safetensors")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _largest_logit_change(fp32_path: Path, int8_path: Path, vocab_size: int, opset_version: int) -> float:
    """Run both graphs on the export's check batches; the int8 graph must run and give finite logits."""
    fp32 = inference_session(fp32_path, opset_version)
    int8 = inference_session(int8_path, opset_version)
    change = 0.0
    for inputs in batches_to_check(vocab_size, CHECK_SHAPES):
        feeds = {name: inputs[name].numpy() for name in INPUT_NAMES}
        expected, got = fp32.run(None, graph_feeds(fp32, feeds))[0], int8.run(None, graph_feeds(int8, feeds))[0]
        if not np.isfinite(got).all():
            raise ValueError(f"The int8 graph {int8_path.name} gives non-finite logits; try --per_channel.")
        change = max(change, float(np.abs(expected - got).max()))
    return round(change, 5)


__all__ = [
    "QuantizeArguments",
    "check_op_types",
    "default_int8_directory",
    "fuse_onnx",
    "load_int8_model",
    "quantize_onnx",
    "quantize_saved_model",
    "supported_op_types",
    "weights_digest",
]
