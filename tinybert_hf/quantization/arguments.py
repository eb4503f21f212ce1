"""What `tinybert-hf quantize` (and the recipe's int8 step) reads, writes and how it quantizes. Imports nothing heavy:
`tinybert-hf quantize --help` prints from it."""

from __future__ import annotations

from dataclasses import dataclass, field

# every linear layer (ONNX Runtime rewrites Gemm as MatMul) and the embeddings
DEFAULT_INT8_OP_TYPES = ("MatMul", "Gather")


@dataclass
class QuantizeArguments:
    """What `tinybert-hf quantize` reads, writes and how it quantizes."""

    model: str = field(metadata={"help": "Saved student directory (PyTorch weights) to quantize."})
    output_dir: str | None = field(
        default=None, metadata={"help": "Where the int8 model goes (default: <model>-int8 next to the student)."}
    )
    per_channel: bool = field(
        default=False, metadata={"help": "One weight scale per output channel instead of per tensor."}
    )
    reduce_range: bool = field(
        default=False, metadata={"help": "7-bit weights: avoids saturation on CPUs without VNNI, can cost accuracy."}
    )
    op_types: str = field(
        default=",".join(DEFAULT_INT8_OP_TYPES),
        metadata={"help": "Comma-separated ONNX operators to quantize (Gather = embedding tables)."},
    )
    fuse: bool = field(
        default=True, metadata={"help": "Fuse the fp32 graph with ONNX Runtime's BERT optimizer first."}
    )
    opset_version: int = field(default=18, metadata={"help": "ONNX opset of the exported graph."})
