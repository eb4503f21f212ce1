"""What `tinybert-hf quantize` (and the recipe's int8 step) reads, writes and how it quantizes. Imports nothing heavy:
`tinybert-hf quantize --help` prints from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# every linear layer (ONNX Runtime rewrites Gemm as MatMul), fused attention's projections, and the embeddings
DEFAULT_INT8_OP_TYPES = ("MatMul", "Attention", "Gather")
ACTIVATIONS = ("per_row", "per_tensor")
WEIGHT_TYPES = ("auto", "int8", "uint8")
EXPORTERS = ("torchscript", "dynamo")
ENGINES = ("onnxruntime", "ctranslate2")


@dataclass
class QuantizeArguments:
    """What `tinybert-hf quantize` reads, writes and how it quantizes."""

    model: str = field(metadata={"help": "Saved student directory (PyTorch weights) to quantize."})
    output_dir: str | None = field(
        default=None, metadata={"help": "Where the int8 model goes (default: <model>-int8 next to the student)."}
    )
    engine: Literal["onnxruntime", "ctranslate2"] = field(
        default="onnxruntime",
        metadata={
            "help": "Which runtime serves the int8 student: 'onnxruntime' (an int8 ONNX graph, the options below) or "
            "'ctranslate2' (its int8 BERT encoder; needs the ctranslate2 extra and a student of uniform shape; "
            "faster on padded real batches, slower at batch 1, on the CPU measured)."
        },
    )
    activations: Literal["per_row", "per_tensor"] = field(
        default="per_row",
        metadata={
            "help": "How activations get their int8 scale at run time: 'per_row', one per token (as CTranslate2; "
            "a sentence's result does not depend on its batch); 'per_tensor', one per batch (ONNX Runtime's "
            "quantize_dynamic, the scheme before issue 21: more predictions change)."
        },
    )
    weight_type: Literal["auto", "int8", "uint8"] = field(
        default="auto",
        metadata={
            "help": "int8 weights (the fast uint8 x int8 kernel) or uint8 (a uint8 x uint8 kernel that never "
            "saturates); 'auto' picks int8 unless ONNX Runtime's uint8 x int8 product saturates on this CPU (AVX2 "
            "without VNNI). The CPU it was chosen on is recorded in quantization.json."
        },
    )
    per_channel: bool = field(
        default=True, metadata={"help": "One weight scale per output channel instead of per tensor."}
    )
    reduce_range: bool = field(
        default=False,
        metadata={
            "help": "7-bit weights: cannot saturate on CPUs without VNNI, but cost accuracy ('uint8' does not)."
        },
    )
    op_types: str = field(
        default=",".join(DEFAULT_INT8_OP_TYPES),
        metadata={"help": "Comma-separated ONNX operators to quantize (Gather = embedding tables)."},
    )
    exporter: Literal["torchscript", "dynamo"] = field(
        default="torchscript",
        metadata={
            "help": "torch's ONNX exporter: 'torchscript' (its graph lets ONNX Runtime fuse attention) or "
            "'dynamo' (torch.export; attention stays unfused)."
        },
    )
    fuse: bool = field(
        default=True, metadata={"help": "Fuse the fp32 graph with ONNX Runtime's BERT optimizer first."}
    )
    opset_version: int = field(default=18, metadata={"help": "ONNX opset of the exported graph."})

    def __post_init__(self):
        choices_of = {
            "engine": ENGINES,
            "activations": ACTIVATIONS,
            "weight_type": WEIGHT_TYPES,
            "exporter": EXPORTERS,
        }
        for name, choices in choices_of.items():
            if getattr(self, name) not in choices:
                shown = ", ".join(map(repr, choices))
                raise ValueError(f"`{name}` must be one of {shown}, got {getattr(self, name)!r}.")
