"""Which int8 kernels this CPU runs exactly: the instruction sets ONNX Runtime's int8 products use, and a probe.

ONNX Runtime (MLAS) multiplies uint8 activations by int8 weights with VNNI (`vpdpbusd`, 32-bit sums) where the CPU
has it (AVX512-VNNI, AVX-VNNI, AMX). On AVX2 without VNNI it uses `vpmaddubsw`, which adds two uint8 x int8
products into an int16 and saturates at 32767 (255 * 127 * 2 = 64770): large activations meeting large weights
are clipped, and about 1 prediction in 45 changed on such a CPU (issue 21). uint8 x uint8 products run through
16-bit widening there and never saturate, at some speed; 7-bit weights (`reduce_range`) avoid it too, but changed
1.4% of the main-job student's predictions against 0.4% at 8 bits.

The flags say what the CPU has; [`u8s8_saturates`] asks ONNX Runtime itself, on one 64 x 64 product of the largest
values, so a CPU (or runtime) that the flags misdescribe is still judged by what it computes.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

# the instruction sets that decide MLAS's int8 kernels, as /proc/cpuinfo names them
INT8_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The `flags` of the first CPU in `cpuinfo` (empty where there is no such file: not Linux)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def _cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def u8s8_saturates() -> bool:
    """Whether ONNX Runtime's uint8 x int8 product saturates on this CPU: `255 * 127` summed over 64 terms is
    2,072,640 when exact, 32 * 32767 where each pair sum clips at int16."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from .export import require_onnx

    onnxruntime = require_onnx()
    import numpy as np

    size = 64
    weights = numpy_helper.from_array(np.full((size, size), 127, np.int8), "weights")
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["activations", "weights"], ["product"])],
        "u8s8_probe",
        [helper.make_tensor_value_info("activations", TensorProto.UINT8, [size, size])],
        [helper.make_tensor_value_info("product", TensorProto.INT32, [size, size])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = min(model.ir_version, onnx.IR_VERSION)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    product = session.run(None, {"activations": np.full((size, size), 255, np.uint8)})[0]
    return int(product[0, 0]) != 255 * 127 * size


def cpu_features() -> dict:
    r"""
    What the int8 scheme was chosen on, recorded in `quantization.json`: the CPU model, its int8-relevant flags,
    whether it has VNNI, and whether ONNX Runtime's uint8 x int8 product saturates on it.

    >>> features = cpu_features()
    >>> sorted(features)
    ['flags', 'model', 'u8s8_saturates', 'vnni']
    """
    flags = cpu_flags()
    return {
        "model": _cpu_model(),
        "flags": [flag for flag in INT8_FLAGS if flag in flags],
        "vnni": any(flag in flags for flag in VNNI_FLAGS),
        "u8s8_saturates": u8s8_saturates(),
    }


def int8_weight_type(features: dict) -> str:
    """`"int8"` weights where uint8 x int8 products are exact (VNNI: the fastest kernel), else `"uint8"` (exact
    everywhere: the same predictions as on a VNNI CPU, slower there than the saturating kernel)."""
    return "uint8" if features["u8s8_saturates"] else "int8"


__all__ = ["INT8_FLAGS", "VNNI_FLAGS", "cpu_features", "cpu_flags", "int8_weight_type", "u8s8_saturates"]
