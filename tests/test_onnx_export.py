"""ONNX export: dynamic axes, pruned (non-uniform) shapes, outputs equal to PyTorch in ONNX Runtime."""

import onnxruntime  # a dependency of the package: missing is a failure
import pytest
import torch

from tinybert_hf import TinyBertForSequenceClassification, TinyBertForTokenClassification
from tinybert_hf.onnx.export import export_onnx
from tinybert_hf.pruning.structured import PruningPlan, apply_plan

from .conftest import random_batch, tiny_config


@pytest.mark.parametrize("model_class", [TinyBertForSequenceClassification, TinyBertForTokenClassification])
def test_export_matches_pytorch_on_several_shapes(tmp_path, model_class):
    torch.manual_seed(0)
    model = model_class(tiny_config(num_labels=3)).eval()
    if model_class is TinyBertForSequenceClassification:  # a pruned student: layers with different shapes
        plan = PruningPlan(layers=[0, 1], heads=[[0, 2], [1, 2, 3]], neurons=[list(range(20)), list(range(5, 37))])
        model = apply_plan(model, plan).eval()
        assert model.config.layer_num_attention_heads == [2, 3]
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    path = export_onnx(model, tmp_path / "onnx" / "model.onnx")
    session = onnxruntime.InferenceSession(str(path))
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask", "token_type_ids"]
    for batch_size, length in ((1, 5), (4, 11), (2, 40)):
        batch = random_batch(batch_size=batch_size, seq_length=length, seed=length)
        batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
        with torch.no_grad():
            expected = model(**batch).logits.numpy()
        got = session.run(None, {name: tensor.numpy() for name, tensor in batch.items()})[0]
        assert got.shape == expected.shape
        assert abs(got - expected).max() < 1e-4
    for name, tensor in model.state_dict().items():  # the source is not modified
        torch.testing.assert_close(tensor, before[name], rtol=0, atol=0)
    assert not list((tmp_path / "onnx").glob("*.partial"))
