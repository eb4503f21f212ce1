"""`tinybert-hf quantize`: a saved student as an int8 ONNX model, with its size and largest logit change."""

from __future__ import annotations

from ..quantization.arguments import QuantizeArguments
from ..quantization.onnx_int8 import quantize_saved_model


def run(arguments: QuantizeArguments) -> None:
    record = quantize_saved_model(arguments)
    sizes = record["size_mb"]
    size = (
        f"{sizes['int8_onnx']} MB ({sizes['fp32_onnx']} MB fp32 ONNX)"
        if "int8_onnx" in sizes
        else f"{sizes['int8']} MB (CTranslate2)"
    )
    print(
        f"int8 model saved to {record['output_dir']}: {size}, largest logit change on the check batches "
        f"{record['max_logit_change_on_check_batches']}"
    )
