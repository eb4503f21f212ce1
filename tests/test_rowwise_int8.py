"""Per-row int8 graphs: closer to fp32 than per-tensor int8, each row independent of its batch, fused attention
kept fused, int8 and uint8 weights computing the same thing, pruned shapes."""

import numpy as np
import onnx
import pytest
import torch

from tinybert_hf import TinyBertForSequenceClassification
from tinybert_hf.onnx.cpu_features import u8s8_saturates
from tinybert_hf.onnx.export import export_onnx, inference_session
from tinybert_hf.pruning.structured import PruningPlan, apply_plan
from tinybert_hf.quantization.onnx_int8 import fuse_onnx, quantize_onnx
from tinybert_hf.quantization.rowwise_int8 import quantize_rowwise

from .conftest import random_batch, tiny_config


def trained_like_student(**overrides) -> TinyBertForSequenceClassification:
    torch.manual_seed(0)
    values = dict(num_labels=3, hidden_size=64, intermediate_size=128, initializer_range=0.2)  # trained-size logits
    return TinyBertForSequenceClassification(tiny_config(**{**values, **overrides})).eval()


def feeds(batch: dict) -> dict[str, np.ndarray]:
    return {
        "input_ids": batch["input_ids"].numpy(),
        "attention_mask": batch["attention_mask"].numpy(),
        "token_type_ids": np.zeros_like(batch["input_ids"].numpy()),
    }


@pytest.fixture(scope="module")
def fused_graph(tmp_path_factory):
    """A TorchScript export of a trained-size student, fused (one Attention node per layer), and the student."""
    directory = tmp_path_factory.mktemp("rowwise")
    model = trained_like_student()
    export_onnx(model, directory / "fp32.onnx", exporter="torchscript")
    operators = fuse_onnx(directory / "fp32.onnx", directory / "fused.onnx")
    assert operators["Attention"] == 2  # the TorchScript graph's attention fuses; ORT finds it in no dynamo graph
    return model, directory


def test_per_row_int8_is_closer_to_fp32_than_per_tensor_and_keeps_attention_fused(fused_graph):
    model, directory = fused_graph
    counts = quantize_rowwise(directory / "fused.onnx", directory / "row.onnx")
    assert counts == {"MatMul": 6, "Attention": 2, "Gather": 3}  # 3 products a layer besides attention, 3 tables
    quantize_onnx(directory / "fused.onnx", directory / "tensor.onnx", op_types=("MatMul", "Attention", "Gather"))
    graph = onnx.load(str(directory / "row.onnx"))
    operators = [node.op_type for node in graph.graph.node]
    assert operators.count("MultiHeadAttention") == 2 and "Attention" not in operators
    assert operators.count("MatMulIntegerToFloat") == 8 and "MatMul" not in operators
    assert operators.count("QuantizeLinear") == 8  # each product's input quantized once
    fp32_matrices = {
        tensor.name
        for tensor in graph.graph.initializer
        if tensor.data_type == onnx.TensorProto.FLOAT and len(tensor.dims) == 2 and tensor.dims[1] > 1
    }  # (rows, 1) are the tables' row scales
    gemm_inputs = {name for node in graph.graph.node if node.op_type == "Gemm" for name in node.input}
    assert fp32_matrices and fp32_matrices <= gemm_inputs  # only the pooler and classifier stay fp32
    batch = random_batch(batch_size=4, seq_length=24, seed=1)
    with torch.no_grad():
        expected = model(**batch).logits.numpy()
    per_row = inference_session(directory / "row.onnx").run(None, feeds(batch))[0]
    per_tensor = inference_session(directory / "tensor.onnx").run(None, feeds(batch))[0]
    row_error, tensor_error = np.abs(per_row - expected).mean(), np.abs(per_tensor - expected).mean()
    assert np.abs(expected).max() > 0.5 and row_error < 0.02 * np.abs(expected).max()  # int8 rounding, no new model
    assert row_error < 0.6 * tensor_error, (row_error, tensor_error)


def test_a_row_gives_the_same_logits_alone_and_in_any_batch(fused_graph):
    """Per-row scales never see the other rows, so bucketing or batching changes nothing; per-tensor scales do."""
    _, directory = fused_graph
    quantize_rowwise(directory / "fused.onnx", directory / "row.onnx")
    quantize_onnx(directory / "fused.onnx", directory / "tensor.onnx", op_types=("MatMul", "Attention", "Gather"))
    batch = random_batch(batch_size=4, seq_length=24, seed=2)
    batch["input_ids"][3, :4] = 98  # a different row beside row 0 changes a shared (per-tensor) range
    for name, tolerance in (("row", 1e-5), ("tensor", None)):
        session = inference_session(directory / f"{name}.onnx")
        together = session.run(None, feeds(batch))[0]
        alone = session.run(None, feeds({key: value[:1] for key, value in batch.items()}))[0]
        if tolerance is None:
            assert np.abs(together[0] - alone[0]).max() > 1e-4  # the per-tensor row moved with its batch
        else:
            np.testing.assert_allclose(together[0], alone[0], atol=tolerance)


def test_uint8_weights_compute_what_int8_weights_do_and_reduce_range_keeps_7_bits(fused_graph):
    model, directory = fused_graph
    quantize_rowwise(directory / "fused.onnx", directory / "s8.onnx", weight_type="int8")
    quantize_rowwise(directory / "fused.onnx", directory / "u8.onnx", weight_type="uint8")
    quantize_rowwise(directory / "fused.onnx", directory / "7bit.onnx", weight_type="int8", reduce_range=True)
    batch = random_batch(batch_size=3, seq_length=17, seed=3)
    signed = inference_session(directory / "s8.onnx").run(None, feeds(batch))[0]
    unsigned = inference_session(directory / "u8.onnx").run(None, feeds(batch))[0]
    if not u8s8_saturates():  # VNNI: the same integers, shifted by 128
        np.testing.assert_allclose(signed, unsigned, atol=1e-4)
    else:  # AVX2 alone: the int8 kernel's int16 pair sums clip; uint8 weights are what "auto" picks here
        with torch.no_grad():
            expected = model(**batch).logits.numpy()
        assert np.abs(unsigned - expected).mean() < np.abs(signed - expected).mean()
    graph = onnx.load(str(directory / "7bit.onnx"))
    products = {node.input[1] for node in graph.graph.node if node.op_type == "MatMulIntegerToFloat"}
    for tensor in graph.graph.initializer:
        if tensor.name in products:
            assert np.abs(onnx.numpy_helper.to_array(tensor).astype(np.int16)).max() <= 63
    with pytest.raises(ValueError, match="weight_type must be one of"):
        quantize_rowwise(directory / "fused.onnx", directory / "bad.onnx", weight_type="int4")
    quantize_rowwise(directory / "fused.onnx", directory / "auto.onnx")  # the default: what this CPU runs exactly
    automatic = inference_session(directory / "auto.onnx").run(None, feeds(batch))[0]
    np.testing.assert_allclose(automatic, signed if not u8s8_saturates() else unsigned, atol=1e-4)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_a_pruned_student_with_per_layer_heads_quantizes_per_row(tmp_path, exporter):
    model = trained_like_student(num_attention_heads=4)
    plan = PruningPlan(layers=[0, 1], heads=[[0, 2], [1, 2, 3]], neurons=[list(range(50)), list(range(5, 100))])
    model = apply_plan(model, plan).eval()
    export_onnx(model, tmp_path / "fp32.onnx", exporter=exporter)
    fuse_onnx(tmp_path / "fp32.onnx", tmp_path / "fused.onnx")
    counts = quantize_rowwise(tmp_path / "fused.onnx", tmp_path / "row.onnx")
    assert counts["Gather"] == 3 and counts["MatMul"] + 3 * counts.get("Attention", 0) == 12  # 6 products a layer
    operators = [node.op_type for node in onnx.load(str(tmp_path / "row.onnx")).graph.node]
    # separate query / key / value products (dynamo) share one quantized input: 4 per layer, not 6
    assert operators.count("QuantizeLinear") == 8
    batch = random_batch(batch_size=3, seq_length=20, seed=4)
    with torch.no_grad():
        expected = model(**batch).logits.numpy()
    got = inference_session(tmp_path / "row.onnx").run(None, feeds(batch))[0]
    assert np.abs(got - expected).max() < 0.05 * np.abs(expected).max()
