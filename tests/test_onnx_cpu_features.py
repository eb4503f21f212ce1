"""The CPU the int8 weight type is chosen on: flags read from cpuinfo, ONNX Runtime's saturation probe, the choice."""

import json
import logging

import pytest

from tinybert_hf.onnx import cpu_features as features_module
from tinybert_hf.onnx.cpu_features import cpu_features, cpu_flags, int8_weight_type, u8s8_saturates

CPUINFO = """processor\t: 0
model name\t: Example CPU @ 2.0GHz
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw
processor\t: 1
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_vnni
"""


def test_flags_are_read_from_the_first_cpu_and_a_missing_file_has_none(tmp_path):
    (tmp_path / "cpuinfo").write_text(CPUINFO)
    flags = cpu_flags(tmp_path / "cpuinfo")
    assert {"avx2", "avx512f", "avx512bw"} <= flags and "avx512_vnni" not in flags  # the first CPU's line
    assert cpu_flags(tmp_path / "missing") == set()


def test_the_probe_agrees_with_the_flags_and_decides_the_weight_type():
    features = cpu_features()
    assert set(features) == {"model", "flags", "vnni", "u8s8_saturates"}
    assert isinstance(u8s8_saturates(), bool) and features["u8s8_saturates"] == u8s8_saturates()
    if features["vnni"]:  # vpdpbusd sums in 32 bits: exact
        assert not features["u8s8_saturates"]
    if "avx2" in features["flags"] and not features["vnni"] and "avx512bw" not in features["flags"]:
        assert features["u8s8_saturates"]  # vpmaddubsw's int16 pair sums clip at 32767
    assert int8_weight_type({**features, "u8s8_saturates": True}) == "uint8"
    assert int8_weight_type({**features, "u8s8_saturates": False}) == "int8"


def cast_graph(path):
    """A stand-in ONNX graph: logits = float(input_ids)."""
    import onnx
    from onnx import TensorProto, helper

    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "sequence"])
    node = helper.make_node("Cast", ["input_ids"], ["logits"], to=TensorProto.FLOAT)
    model = helper.make_model(
        helper.make_graph([node], "cast", [ids], [logits]), opset_imports=[helper.make_opsetid("", 13)]
    )
    model.ir_version = 8
    onnx.save(model, str(path))


def test_an_int8_model_chosen_on_an_exact_cpu_warns_on_a_saturating_one(tmp_path, monkeypatch, caplog):
    from transformers import BertConfig

    from tinybert_hf.onnx.modeling_onnx import OnnxModel

    BertConfig().save_pretrained(tmp_path)
    cast_graph(tmp_path / "model.onnx")
    record = {"settings": {"weight_type": "int8"}, "cpu": {"model": "Example VNNI CPU", "u8s8_saturates": False}}
    (tmp_path / "quantization.json").write_text(json.dumps(record))
    monkeypatch.setattr(features_module, "u8s8_saturates", lambda: True)
    logger = logging.getLogger("tinybert_hf")
    monkeypatch.setattr(logger, "propagate", True)
    with caplog.at_level(logging.WARNING, logger="tinybert_hf"):
        OnnxModel.from_pretrained(tmp_path)
    assert "on this CPU they saturate" in caplog.text and "Example VNNI CPU" in caplog.text
    caplog.clear()
    record["settings"]["weight_type"] = "uint8"  # never saturates: nothing to say
    (tmp_path / "quantization.json").write_text(json.dumps(record))
    with caplog.at_level(logging.WARNING, logger="tinybert_hf"):
        OnnxModel.from_pretrained(tmp_path)
    assert "saturate" not in caplog.text


@pytest.mark.parametrize(
    ("option", "value"), [("activations", "per_block"), ("weight_type", "int4"), ("exporter", "jit")]
)
def test_unknown_int8_choices_are_refused(option, value):
    from tinybert_hf.quantization.arguments import QuantizeArguments

    with pytest.raises(ValueError, match=f"`{option}` must be one of"):
        QuantizeArguments(model="student", **{option: value})
