"""The CTranslate2 int8 engine (optional extra): conversion, closeness to PyTorch, serving, the refusal of pruned
shapes. Skipped where ctranslate2 is not installed."""

import json

import pytest
import torch

from tinybert_hf import TinyBertForSequenceClassification, TinyBertForTokenClassification
from tinybert_hf.onnx.export import batches_to_check
from tinybert_hf.pruning.structured import PruningPlan, apply_plan
from tinybert_hf.quantization.arguments import QuantizeArguments
from tinybert_hf.quantization.onnx_int8 import load_int8_model, quantize_saved_model

from .conftest import tiny_config

pytest.importorskip("ctranslate2")


def saved(tmp_path, tokenizer, model_class, **overrides):
    torch.manual_seed(0)
    values = dict(num_labels=3, hidden_size=64, intermediate_size=128, initializer_range=0.2)
    model = model_class(tiny_config(**{**values, **overrides})).eval()
    model.save_pretrained(tmp_path / "student")
    tokenizer.save_pretrained(tmp_path / "student")
    return model, tmp_path / "student"


@pytest.mark.parametrize(
    ("model_class", "task"),
    [
        (TinyBertForSequenceClassification, "text-classification"),
        (TinyBertForTokenClassification, "token-classification"),
    ],
)
def test_the_ctranslate2_engine_is_close_to_pytorch_and_serves(tmp_path, tiny_tokenizer, model_class, task):
    from tinybert_hf.quantization.ctranslate2_int8 import CTranslate2Model, ctranslate2_pipeline

    model, student_dir = saved(tmp_path, tiny_tokenizer, model_class)
    record = quantize_saved_model(QuantizeArguments(model=str(student_dir), engine="ctranslate2"))
    int8_dir = tmp_path / "student-int8"
    assert json.loads((int8_dir / "quantization.json").read_text())["settings"]["engine"] == "ctranslate2"
    assert record["max_logit_change_on_check_batches"] < 0.25 and {"vnni", "u8s8_saturates"} <= set(record["cpu"])
    served = load_int8_model(int8_dir, task)
    assert isinstance(served, CTranslate2Model) and not (int8_dir / "model.onnx").exists()
    for batch in batches_to_check(99, ((1, 9), (4, 21))):
        with torch.no_grad():
            expected = model(**batch).logits
        got = served(**batch).logits
        assert got.shape == expected.shape
        real = batch["attention_mask"].bool() if got.dim() == 3 else slice(None)
        assert (got - expected)[real].abs().max() < 0.05 * expected.abs().max()  # int8 rounding, not a new model
    predictions = ctranslate2_pipeline(int8_dir)(["good film", "the plot was dull"], batch_size=2)
    assert len(predictions) == 2


def test_a_pruned_student_is_refused_by_the_ctranslate2_engine(tmp_path, tiny_tokenizer):
    model, student_dir = saved(tmp_path, tiny_tokenizer, TinyBertForSequenceClassification)
    plan = PruningPlan(layers=[0, 1], heads=[[0, 2], [1, 2, 3]], neurons=[list(range(50)), list(range(5, 100))])
    apply_plan(model, plan).save_pretrained(student_dir)
    with pytest.raises(ValueError, match="per-layer head counts or FFN sizes.*--engine onnxruntime"):
        quantize_saved_model(QuantizeArguments(model=str(student_dir), engine="ctranslate2"))
    assert not (tmp_path / "student-int8").exists()
