"""ONNX: exporting a saved model, checked against PyTorch, and serving it behind a `PreTrainedModel`-like interface."""
