"""`tinybert-hf export`: a saved student as an ONNX graph, checked against PyTorch."""

from __future__ import annotations

from ..onnx.export import export_saved_model
from .arguments import ExportArguments


def run(arguments: ExportArguments) -> None:
    exported = export_saved_model(arguments.model, arguments.output_dir, arguments.opset_version)
    print(f"ONNX model saved to {exported}")
