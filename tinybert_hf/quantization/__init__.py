"""int8 students: post-training ONNX Runtime quantization and quantization-aware distillation (fake quantization)."""
