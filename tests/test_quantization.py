"""int8 ONNX students: quantization, serving, the fake-quantized modules, weight penalties, sparsity, bad input."""

import hashlib
import json

import numpy as np
import onnx
import pytest
import torch
from transformers import GPT2Config, GPT2ForSequenceClassification

from tinybert_hf import TinyBertForSequenceClassification, TinyBertModel
from tinybert_hf.commands.arguments import SparsifyArguments
from tinybert_hf.commands.sparsify import sparsify_saved_model
from tinybert_hf.distillation.trainer import weight_penalty
from tinybert_hf.onnx.export import batches_to_check, export_onnx, export_saved_model, inference_session
from tinybert_hf.onnx.modeling_onnx import OnnxModelForSequenceClassification, onnx_pipeline
from tinybert_hf.pruning.magnitude import magnitude_prune, sparsity_report
from tinybert_hf.quantization.arguments import QuantizeArguments
from tinybert_hf.quantization.onnx_int8 import quantize_onnx, quantize_saved_model, weights_digest
from tinybert_hf.quantization.quantization_aware import (
    add_fake_quantization,
    fake_quantize_activation,
    fake_quantize_weight,
    has_fake_quantization,
    remove_fake_quantization,
)
from tinybert_hf.recipe.arguments import RecipeArguments
from tinybert_hf.utils.layers import prunable_linears

from .conftest import tiny_config
from .test_trainer import one_update, teacher_and_student


def small_student(**overrides) -> TinyBertForSequenceClassification:
    torch.manual_seed(0)
    values = dict(num_labels=2, hidden_size=64, intermediate_size=128, id2label={0: "bad", 1: "good"})
    values.update(overrides)
    return TinyBertForSequenceClassification(tiny_config(**values)).eval()


def saved_student(directory, tokenizer, model=None):
    model = model if model is not None else small_student()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def digest(directory) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(directory.iterdir())}


def test_quantized_student_is_small_close_and_served_by_a_pipeline(tmp_path, tiny_tokenizer):
    model = small_student(initializer_range=0.2)  # logits of a trained model's size, not ~0.01
    student_dir = saved_student(tmp_path / "student", tiny_tokenizer, model)
    before = digest(student_dir)
    record = quantize_saved_model(QuantizeArguments(model=str(student_dir)))
    int8_dir = tmp_path / "student-int8"  # next to the student by default
    assert record["output_dir"] == str(int8_dir)
    assert record["source_weights_sha256"] == weights_digest(student_dir)  # the recipe reuses it only if equal
    assert digest(student_dir) == before  # the source is only read
    assert {"model.onnx", "config.json", "quantization.json", "tokenizer_config.json"} <= set(digest(int8_dir))
    assert not list(tmp_path.glob("*.partial"))
    fp32_bytes = (student_dir / "model.safetensors").stat().st_size
    assert (int8_dir / "model.onnx").stat().st_size < 0.4 * fp32_bytes
    graph = onnx.load(str(int8_dir / "model.onnx"))
    operators = {node.op_type for node in graph.graph.node}
    # the default: TorchScript export, attention fused (its core kept fused), per-row int8 products and tables
    assert {"MatMulIntegerToFloat", "MultiHeadAttention", "BiasGelu", "SkipLayerNormalization"} <= operators
    assert "DynamicQuantizeLinear" not in operators and "Attention" not in operators  # no per-tensor scales
    assert record["quantized_operators"] == {"MatMul": 6, "Attention": 2, "Gather": 3}  # 2 layers, 3 tables
    assert record["settings"]["weight_type"] == ("uint8" if record["cpu"]["u8s8_saturates"] else "int8")
    assert {"model", "flags", "vnni", "u8s8_saturates"} <= set(record["cpu"])  # what it was checked on

    served = OnnxModelForSequenceClassification.from_pretrained(int8_dir)
    for batch in batches_to_check(99, ((1, 9), (4, 21))):
        with torch.no_grad():
            expected = model(**batch).logits
        got = served(**batch).logits
        assert got.shape == expected.shape and expected.abs().max() > 0.2
        assert (got - expected).abs().max() < 0.1 * expected.abs().max()  # int8 rounding, not a new model
    texts = ["good film", "the plot was dull", "a great cast in new york"]
    with pytest.raises(FileNotFoundError, match="No exported model directory at .*missing-int8; write one with"):
        onnx_pipeline(tmp_path / "missing-int8")  # transformers would call the path a malformed Hub id
    classifier = onnx_pipeline(int8_dir)
    predictions = classifier(texts)
    encoded = tiny_tokenizer(texts, padding=True, return_tensors="pt")
    expected_labels = served(**encoded).logits.argmax(-1).tolist()
    assert [p["label"] for p in predictions] == [model.config.id2label[i] for i in expected_labels]


def test_the_per_tensor_scheme_before_issue_21_is_still_there(tmp_path, tiny_tokenizer):
    student_dir = saved_student(tmp_path / "student", tiny_tokenizer, small_student(initializer_range=0.2))
    options = dict(activations="per_tensor", exporter="dynamo", per_channel=False, op_types="MatMul,Gather")
    record = quantize_saved_model(QuantizeArguments(model=str(student_dir), **options))
    assert record["method"] == "onnxruntime.quantization.quantize_dynamic" and record["quantized_operators"] == {}
    assert record["settings"]["activations"] == "per_tensor" and record["settings"]["exporter"] == "dynamo"
    operators = {node.op_type for node in onnx.load(str(tmp_path / "student-int8" / "model.onnx")).graph.node}
    assert "DynamicQuantizeLinear" in operators and "MultiHeadAttention" not in operators
    with pytest.raises(ValueError, match="Per-row int8 quantizes MatMul, Attention, Gather, not \\['Conv'\\]"):
        quantize_saved_model(QuantizeArguments(model=str(student_dir), op_types="MatMul,Conv"))


def test_fake_quantization_closed_form():
    weight = torch.tensor([[1.0, -0.5, 0.01], [0.25, 2.0, -2.0]], requires_grad=True)
    scale = 2.0 / 127  # symmetric int8 per tensor: the largest magnitude maps to 127
    expected = torch.round(weight.detach() / scale) * scale
    torch.testing.assert_close(fake_quantize_weight(weight), expected)
    rows = torch.tensor([1.0, 2.0]).unsqueeze(1) / 127  # per output channel
    torch.testing.assert_close(fake_quantize_weight(weight, per_channel=True), torch.round(weight / rows) * rows)
    reduced = 2.0 / 64
    torch.testing.assert_close(
        fake_quantize_weight(weight, reduce_range=True), torch.round(weight / reduced) * reduced
    )
    fake_quantize_weight(weight).sum().backward()  # straight-through: the gradient of rounding is 1
    torch.testing.assert_close(weight.grad, torch.ones_like(weight))

    inputs = torch.tensor([-1.0, 0.0, 0.3, 3.0])
    scale, zero_point = 4.0 / 255, round(1.0 / (4.0 / 255))  # range [-1, 3] holds 0; zero point 64
    quantized = torch.clamp(torch.round(inputs / scale) + zero_point, 0, 255)
    torch.testing.assert_close(fake_quantize_activation(inputs), (quantized - zero_point) * scale)
    positive = torch.tensor([0.5, 1.0])  # the range is stretched to include 0
    torch.testing.assert_close(fake_quantize_activation(positive), torch.round(positive / (1 / 255)) * (1 / 255))


def test_fake_quantized_student_predicts_what_the_int8_graph_computes(tmp_path):
    """With 7-bit weights (no int16 saturation on AVX2), training through fake quantization sees nearly the int8
    graph's logits, much closer than the fp32 model's."""
    model = small_student(initializer_range=0.2)  # a trained model's spread of weights and logits
    fp32_path = export_onnx(model, tmp_path / "model.onnx")
    int8_path = quantize_onnx(fp32_path, tmp_path / "model_int8.onnx", reduce_range=True)
    session = inference_session(int8_path)
    batch = batches_to_check(99, ((4, 24),))[0]
    int8_logits = torch.from_numpy(session.run(None, {name: tensor.numpy() for name, tensor in batch.items()})[0])
    with torch.no_grad():
        fp32_logits = model(**batch).logits
        fake_logits = add_fake_quantization(model, reduce_range=True)(**batch).logits
    fp32_gap = (fp32_logits - int8_logits).abs().max()
    fake_gap = (fake_logits - int8_logits).abs().max()
    assert fp32_gap > 1e-2, fp32_gap
    assert fake_gap < 0.25 * fp32_gap, (fake_gap, fp32_gap)


def test_fake_quantization_swaps_modules_in_place_and_back():
    model = small_student()
    reference = small_student()
    batch = batches_to_check(99, ((2, 10),))[0]
    keys = list(model.state_dict())
    add_fake_quantization(model)
    assert has_fake_quantization(model) and list(model.state_dict()) == keys  # checkpoints see the same tensors
    with torch.no_grad():
        assert not torch.equal(model(**batch).logits, reference(**batch).logits)
    remove_fake_quantization(model)
    assert not has_fake_quantization(model)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, reference(**batch).logits, rtol=0, atol=0)
    with pytest.raises(ValueError, match="no nn.Linear or nn.Embedding"):
        add_fake_quantization(torch.nn.Sequential(torch.nn.LayerNorm(4)))


def test_weight_penalty_closed_form_and_its_update(tmp_path):
    _, student = teacher_and_student()
    assert student.bert.fit_dense is not None  # present, and left out: it only serves the distillation losses
    weights = [
        parameter
        for name, parameter in student.named_parameters()
        if name.endswith(".weight") and parameter.dim() == 2 and ".encoder.layer." in name
    ]
    assert len(weights) == 6 * student.config.num_hidden_layers  # q, k, v, attention output, FFN in and out
    expected = sum(0.01 * w.abs().sum() + 0.1 * w.square().sum() for w in weights)
    torch.testing.assert_close(weight_penalty(student, 0.01, 0.1), expected)

    # one SGD step: the L1 term adds lr * l1 * sign(w) to every penalised weight's update, nothing elsewhere;
    # with gradient accumulation the penalty still counts once per optimizer step
    _, initial = teacher_and_student()
    plain, _ = one_update(tmp_path, rows=16, batch_size=16, accumulation=1, stage="prediction")
    penalised, log = one_update(tmp_path, rows=16, batch_size=16, accumulation=1, stage="prediction", l1_penalty=0.01)
    accumulated, _ = one_update(tmp_path, rows=16, batch_size=8, accumulation=2, stage="prediction", l1_penalty=0.01)
    penalised_names = {f"{name}.weight" for name, _ in prunable_linears(initial)}
    for name, value in initial.state_dict().items():
        shift = -0.5 * 0.01 * torch.sign(value) if name in penalised_names else torch.zeros_like(value)
        torch.testing.assert_close(penalised[name] - plain[name], shift, rtol=1e-4, atol=1e-6, msg=name)
        torch.testing.assert_close(accumulated[name], penalised[name], rtol=1e-5, atol=1e-6, msg=name)
    assert log["loss_weight_penalty"] == pytest.approx(float(weight_penalty(initial, 0.01, 0.0).detach()), rel=1e-5)


@pytest.mark.parametrize("scope", ["global", "per_layer"])
def test_magnitude_pruning_zeroes_the_smallest_weights_of_a_copy(scope):
    model = small_student()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    sparse = magnitude_prune(model, 0.5, scope=scope)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name  # the source is not modified
    assert set(sparse.state_dict()) == set(before)  # no pruning masks or hooks left behind
    for name in ("classifier.weight", "bert.pooler.dense.weight", "bert.embeddings.word_embeddings.weight"):
        assert torch.equal(sparse.state_dict()[name], before[name]), name  # head, pooler, embeddings stay dense
    linears = prunable_linears(sparse)
    total = sum(module.weight.numel() for _, module in linears)
    zeros = sum(int((module.weight == 0).sum()) for _, module in linears)
    if scope == "global":
        assert zeros == round(0.5 * total)
        kept = torch.cat([module.weight[module.weight != 0].abs() for _, module in linears])
        source = dict(model.named_modules())
        removed = torch.cat([source[name].weight[module.weight == 0].abs() for name, module in linears])
        assert kept.min() >= removed.max()  # one magnitude threshold over all layers
    else:
        for _, module in linears:
            assert int((module.weight == 0).sum()) == round(0.5 * module.weight.numel())
    report = sparsity_report(sparse)
    assert report["linear_sparsity"] == pytest.approx(zeros / total)
    assert report["overall_sparsity"] < report["linear_sparsity"]  # embeddings and LayerNorms keep their values
    assert report["compressed_mb"] < report["dense_mb"]
    with pytest.raises(ValueError, match="sparsity"):
        magnitude_prune(model, 1.0)


# ---- bad input ---------------------------------------------------------------------------------------------------


def test_sparsify_scores_on_a_test_file_alone(tmp_path, tiny_tokenizer):
    """Magnitude pruning reads no data: `sparsify --test_file t.csv` scores the sparse copy on that file alone (it
    was refused with pruning's need for training rows)."""
    student_dir = saved_student(tmp_path / "student", tiny_tokenizer)
    (tmp_path / "t.csv").write_text("text,label\ngood film,good\ndull plot,bad\ngreat cast,good\n")
    record = sparsify_saved_model(
        SparsifyArguments(model=str(student_dir), sparsity=0.5),
        RecipeArguments(output_dir=str(tmp_path / "out"), test_file=str(tmp_path / "t.csv")),
    )
    assert "t.csv" in record["settings"]["test_file"]
    for name in ("source", "sparse"):
        assert set(record["models"][name]) >= {"test", "linear_sparsity"} and "dev" not in record["models"][name]
        assert round(3 * record["models"][name]["test"]["accuracy"], 2) in (0, 1, 2, 3)  # scored on the 3 rows
    assert abs(record["models"]["sparse"]["linear_sparsity"] - 0.5) < 0.01
    assert json.loads((tmp_path / "out" / "sparsity.json").read_text())["models"]["sparse"]["test"]


def test_quantizing_an_unsupported_operator_or_model_is_a_clear_error(tmp_path, tiny_tokenizer):
    student_dir = saved_student(tmp_path / "student", tiny_tokenizer)
    before = digest(student_dir)
    with pytest.raises(FileExistsError, match="not an ONNX export"):  # never written over the user's data
        quantize_saved_model(QuantizeArguments(model=str(student_dir), output_dir=str(student_dir)))
    assert digest(student_dir) == before and not list(tmp_path.glob("*.partial"))
    with pytest.raises(ValueError, match="Cannot quantize \\['LayerNormalization'\\]"):
        quantize_saved_model(QuantizeArguments(model=str(student_dir), op_types="MatMul,LayerNormalization"))
    assert digest(student_dir) == before and not (tmp_path / "student-int8").exists()

    gpt2 = GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=32))
    gpt2.save_pretrained(tmp_path / "gpt2")
    with pytest.raises(ValueError, match="holds a 'gpt2' model"):
        quantize_saved_model(QuantizeArguments(model=str(tmp_path / "gpt2")))
    TinyBertModel(tiny_config()).save_pretrained(tmp_path / "encoder")
    with pytest.raises(ValueError, match="sequence- or token-classification"):
        export_saved_model(tmp_path / "encoder", tmp_path / "encoder-onnx")


def test_exporting_a_model_with_missing_files_names_what_is_missing(tmp_path, tiny_tokenizer):
    with pytest.raises(FileNotFoundError, match="No model directory"):
        export_saved_model(tmp_path / "nowhere", tmp_path / "out")
    student_dir = saved_student(tmp_path / "student", tiny_tokenizer)
    (student_dir / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no \\*.safetensors weights"):
        export_saved_model(student_dir, tmp_path / "out")
    (student_dir / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        quantize_saved_model(QuantizeArguments(model=str(student_dir)))
    with pytest.raises(FileNotFoundError, match="No ONNX graph"):
        OnnxModelForSequenceClassification.from_pretrained(student_dir)
    assert not (tmp_path / "out").exists()


def test_an_opset_the_exporter_or_runtime_cannot_handle_is_a_clear_error(tmp_path):
    model = small_student()
    # torch writes an inconsistent graph for an opset it cannot convert to; the runtime check refuses it
    with pytest.raises(ValueError, match="(could not export|cannot run the graph).*opset 99"):
        export_onnx(model, tmp_path / "model.onnx", opset_version=99)
    assert not list(tmp_path.iterdir())  # no partial file left
    path = export_onnx(model, tmp_path / "model.onnx")
    graph = onnx.load(str(path))
    graph.opset_import[0].version = 99  # a graph from a newer exporter than this runtime knows
    onnx.save(graph, str(tmp_path / "future.onnx"))
    with pytest.raises(ValueError, match="onnxruntime .* cannot run the graph future.onnx"):
        inference_session(tmp_path / "future.onnx")
    np.testing.assert_array_equal(
        onnx.load(str(path)).graph.initializer[0].dims, graph.graph.initializer[0].dims
    )  # the checked file itself is untouched


def test_export_and_quantize_commands(tmp_path, tiny_tokenizer):
    import os
    import subprocess

    from .test_cli import ROOT, cli, sentences

    student_dir = saved_student(tmp_path / "student", tiny_tokenizer)
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    command = cli()
    exported = subprocess.run([*command, "export", "--model", str(student_dir)], capture_output=True, text=True,
                              env=environment, timeout=300)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert json.loads((tmp_path / "student-onnx" / "onnx.json").read_text())["opset_version"] == 18
    quantized = subprocess.run([*command, "quantize", "--model", str(student_dir), "--per_channel", "false",
                                "--weight_type", "uint8", "--exporter", "dynamo"],
                               capture_output=True, text=True, env=environment, timeout=300)  # fmt: skip
    assert quantized.returncode == 0, quantized.stderr
    assert "Quantizing: 100%" in quantized.stderr  # the progress bar
    record = json.loads((tmp_path / "student-int8" / "quantization.json").read_text())
    assert record["settings"]["per_channel"] is False and record["settings"]["weight_type"] == "uint8"
    assert record["settings"]["exporter"] == "dynamo" and record["settings"]["activations"] == "per_row"
    named = {"negative": "bad", "positive": "good"}  # the student's own label names: data of its task
    lines = ["sentence,sentiment"] + [f"{text},{named[label]}" for text, label in sentences(60, seed=0)]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    sparsified = subprocess.run([*command, "sparsify", "--model", str(student_dir), "--sparsity", "0.5",
                                 "--train_file", str(tmp_path / "train.csv"), "--text_column", "sentence",
                                 "--label_column", "sentiment", "--output_dir", str(tmp_path / "sparse_run")],
                                capture_output=True, text=True, env=environment, timeout=300)  # fmt: skip
    assert sparsified.returncode == 0, sparsified.stderr[-3000:]
    record = json.loads((tmp_path / "sparse_run" / "sparsity.json").read_text())
    assert record["models"]["sparse"]["linear_sparsity"] == pytest.approx(0.5, abs=1e-6)
    assert record["models"]["source"]["linear_sparsity"] < 0.01 and "test" in record["models"]["sparse"]
    assert "no faster" in sparsified.stdout  # the honest note is printed, not only written
    onnx_scored = subprocess.run([*command, "evaluate", "--model", str(tmp_path / "student-int8")],
                                 capture_output=True, text=True, env=environment, timeout=300)  # fmt: skip
    assert onnx_scored.returncode == 1 and "is an exported ONNX model; this command takes a PyTorch" in (
        onnx_scored.stderr
    )
    failed = subprocess.run([*command, "quantize", "--model", str(tmp_path / "missing")], capture_output=True,
                            text=True, env=environment, timeout=300)  # fmt: skip
    assert failed.returncode != 0 and "No model directory" in failed.stderr


def test_quantization_aware_stage_two_saves_a_plain_student(tmp_path, tiny_tokenizer):
    from tinybert_hf.recipe.arguments import RecipeArguments
    from tinybert_hf.recipe.steps import distil_prediction_layer

    from .test_trainer import dataset

    teacher, student = teacher_and_student()
    args = RecipeArguments(output_dir=str(tmp_path), batch_size=16, int8=False)
    trained = distil_prediction_layer(
        teacher, student, dataset(rows=32), dataset(rows=16), tiny_tokenizer, ["a", "b"], args, tmp_path / "student",
        epochs=1, quantization_aware=True,
    )  # fmt: skip
    assert not has_fake_quantization(student) and not has_fake_quantization(trained)
    record = json.loads((tmp_path / "student" / "stage_done.json").read_text())
    assert "eval_score" in record["dev"]  # scored as it trained: through the int8 rounding
    for name, tensor in trained.state_dict().items():
        torch.testing.assert_close(tensor, student.state_dict()[name], rtol=0, atol=0, msg=name)


def test_the_recipe_reuses_an_int8_copy_only_when_made_the_same_way(tmp_path, tiny_tokenizer):
    from tinybert_hf.recipe.run import quantize_student

    student_dir = saved_student(tmp_path / "student", tiny_tokenizer)
    args = RecipeArguments(output_dir=str(tmp_path))
    model, int8_dir = quantize_student(student_dir, args)
    assert model.length_buckets  # the recipe scores and times it as it is served
    written = (int8_dir / "quantization.json").stat().st_mtime_ns
    quantize_student(student_dir, args)
    assert (int8_dir / "quantization.json").stat().st_mtime_ns == written  # same weights, same options: reused
    quantize_student(student_dir, RecipeArguments(output_dir=str(tmp_path), int8_activations="per_tensor"))
    record = json.loads((int8_dir / "quantization.json").read_text())
    assert record["settings"]["activations"] == "per_tensor"  # another scheme asked for: quantized again
    with pytest.raises(ValueError, match="`int8_exporter` must be one of"):
        RecipeArguments(output_dir=str(tmp_path), int8_exporter="jit")
