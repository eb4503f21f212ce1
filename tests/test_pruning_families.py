"""Structured pruning of every encoder family with a layout (`tinybert_hf.pruning.layouts`), on tiny random configs:
what is removed equals the source with it zeroed or skipped, and the pruned model stays a stock model that the Auto
classes load without `tinybert_hf`."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    DebertaV2Config,
    DistilBertConfig,
    ElectraConfig,
    ModernBertConfig,
    MPNetConfig,
    RobertaConfig,
    XLMRobertaConfig,
)

from tinybert_hf.errors import BadInputError
from tinybert_hf.models.tinybert.modeling_tinybert import TinyBertPreTrainedModel
from tinybert_hf.onnx.export import export_saved_model
from tinybert_hf.onnx.modeling_onnx import OnnxModelForSequenceClassification
from tinybert_hf.pruning.importance import compute_importance
from tinybert_hf.pruning.layouts import layout_of
from tinybert_hf.pruning.structured import PruningPlan, apply_plan, prune
from tinybert_hf.quantization.arguments import QuantizeArguments
from tinybert_hf.quantization.onnx_int8 import quantize_saved_model

# hidden 24 is neither the vocabulary (99), the labels (2) nor MPNet's position buckets (32): pruning finds the
# hidden axes of tensors outside the layers by their length
TINY = dict(vocab_size=99, hidden_size=24, num_hidden_layers=3, num_attention_heads=4, intermediate_size=20)
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
DEBERTA = dict(relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=8)
MODERNBERT_TOKENS = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2)

FAMILIES = {
    "bert": lambda: BertConfig(**TINY, **NO_DROPOUT),
    "roberta": lambda: RobertaConfig(**TINY, **NO_DROPOUT, pad_token_id=1),
    "xlm-roberta": lambda: XLMRobertaConfig(**TINY, **NO_DROPOUT, pad_token_id=1),
    "electra": lambda: ElectraConfig(**TINY, **NO_DROPOUT, embedding_size=12),
    "distilbert": lambda: DistilBertConfig(
        vocab_size=99, dim=24, n_layers=3, n_heads=4, hidden_dim=20, dropout=0.0, attention_dropout=0.0
    ),
    "mpnet": lambda: MPNetConfig(**TINY, **NO_DROPOUT),
    "modernbert": lambda: ModernBertConfig(
        **TINY, **MODERNBERT_TOKENS, attention_dropout=0.0, mlp_dropout=0.0, embedding_dropout=0.0
    ),
    "deberta-v3": lambda: DebertaV2Config(**TINY, **NO_DROPOUT, **DEBERTA),  # shared attention keys
    "deberta-v2": lambda: DebertaV2Config(**TINY, **NO_DROPOUT, **DEBERTA, share_att_key=False),
}
STOCK_FAMILIES = [name for name in FAMILIES if name != "bert"]  # a BERT model is pruned into its TinyBERT twin


def family_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(FAMILIES[name]()).eval()
    with torch.no_grad():  # norms off their initial ones and zeros, so that a wrong slice shows
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.uniform_(0.5, 1.5)
                if module.bias is not None:
                    module.bias.uniform_(-0.2, 0.2)
    return model


def batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(3, 99, (3, 9), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 6:] = 0
    attention_mask[2, 4:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch()).logits


def calibration() -> list[dict[str, torch.Tensor]]:
    return [{**batch(), "labels": torch.tensor([0, 1, 1])}]


def zero_rows_and_columns(linear: torch.nn.Linear, rows=(), columns=()) -> None:
    with torch.no_grad():
        if rows:
            linear.weight[list(rows)] = 0
            if linear.bias is not None:
                linear.bias[list(rows)] = 0
        if columns:
            linear.weight[:, list(columns)] = 0


@pytest.mark.parametrize("family", list(FAMILIES))
def test_removing_neurons_and_a_layer_equals_zeroing_and_skipping_them(family):
    model = family_model(family)
    layout = layout_of(model)
    kept_neurons = [list(range(0, 20, 2)), list(range(10))]
    plan = PruningPlan(layers=[0, 2], heads=[[0, 1, 2, 3]] * 2, neurons=kept_neurons)
    pruned = apply_plan(model, plan)

    reference = copy.deepcopy(model)
    layers = layout.layer_modules(reference)
    for layer, kept in zip([layers[0], layers[2]], kept_neurons, strict=True):
        removed = [n for n in range(20) if n not in kept]
        zero_rows_and_columns(layer.get_submodule(layout.ffn_output), columns=removed)
    del layers[1]
    if isinstance(getattr(reference.config, "layer_types", None), list):
        reference.config.layer_types = [reference.config.layer_types[i] for i in (0, 2)]
    torch.testing.assert_close(logits(pruned), logits(reference), rtol=1e-5, atol=1e-5)
    assert torch.equal(logits(model), logits(family_model(family))), "the source model was changed"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_activation_importance_finds_a_dead_head_and_a_dead_neuron(family):
    model = family_model(family)
    layout = layout_of(model)
    layer = layout.layer_modules(model)[0]
    head_size = layout.head_size(model.config)
    value_rows = range(1 * head_size, 2 * head_size)  # head 1
    if layout.fused_qkv:
        zero_rows_and_columns(layer.get_submodule(layout.fused_qkv), rows=[2 * 24 + r for r in value_rows])
    else:
        zero_rows_and_columns(layout.linears(layer, layout.values)[0], rows=value_rows)
    neuron_rows = [3, 20 + 3] if layout.gated_ffn else [3]
    zero_rows_and_columns(layer.get_submodule(layout.ffn_input), rows=neuron_rows)
    scores = compute_importance(model, calibration(), method="activation", show_progress=False)
    assert scores.heads[0][1] == 0 and scores.heads[0].min() == 0 and (scores.heads[0] > 0).sum() == 3
    assert scores.neurons[0][3] < 1e-6 < scores.neurons[0].median()
    assert scores.channels.shape == (24,) and bool((scores.channels > 0).all())
    magnitude = compute_importance(model, method="magnitude")
    assert magnitude.heads[0].argmin() == 1 and magnitude.neurons[0].argmin() == 3


@pytest.mark.parametrize("family", STOCK_FAMILIES)
@pytest.mark.parametrize("importance", ["taylor", "activation", "magnitude"])
def test_a_student_cut_from_a_stock_family_stays_that_family(family, importance, tmp_path):
    model = family_model(family)
    # ModernBERT's head width is fixed (rotary positions): 2 heads of 6; the others go to 4 heads of 4
    heads, hidden = (2, 12) if family == "modernbert" else (4, 16)
    student, plan = prune(
        model,
        calibration(),
        num_hidden_layers=2,
        hidden_size=hidden,
        num_attention_heads=heads,
        intermediate_size=10,
        importance=importance,
        show_progress=False,
    )
    assert type(student) is type(model) and not isinstance(student, TinyBertPreTrainedModel)
    layout = layout_of(student)
    config = student.config
    assert [layout.shape(config, name) for name in ("num_hidden_layers", "hidden_size")] == [2, hidden]
    assert layout.shape(config, "num_attention_heads") == heads and layout.head_size(config) == hidden // heads
    assert config.pruned_hidden_channels == plan.channels and len(plan.channels) == hidden
    if family == "mpnet":  # one position bias for all layers: the same heads everywhere
        assert plan.heads[0] == plan.heads[1]
    if family == "modernbert":
        assert plan.layers[0] == 0 and config.layer_types == [model.config.layer_types[i] for i in plan.layers]
    assert torch.isfinite(logits(student)).all()
    student.save_pretrained(tmp_path / "student")
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "student").eval()
    assert type(loaded) is type(model)
    assert torch.equal(logits(loaded), logits(student))


LOAD_WITHOUT_THE_PACKAGE = textwrap.dedent(
    """
    import sys
    sys.modules["tinybert_hf"] = None  # any `import tinybert_hf` fails
    import torch
    from transformers import AutoModelForSequenceClassification

    model_dir, batch_file = sys.argv[1], sys.argv[2]
    batch = torch.load(batch_file)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(logits, batch["logits"], rtol=0, atol=0)
    print("LOADED", type(model).__name__)
    """
)


@pytest.mark.parametrize("family", ["roberta", "modernbert"])
def test_a_pruned_stock_model_loads_in_a_process_without_the_package(family, tmp_path):
    model = family_model(family)
    heads, hidden = (2, 12) if family == "modernbert" else (2, 12)
    student, _ = prune(
        model,
        calibration(),
        num_hidden_layers=2,
        hidden_size=hidden,
        num_attention_heads=heads,
        intermediate_size=8,
        show_progress=False,
    )
    student.save_pretrained(tmp_path / "student")
    torch.save({**batch(), "logits": logits(student)}, tmp_path / "batch.pt")
    script = tmp_path / "load.py"
    script.write_text(LOAD_WITHOUT_THE_PACKAGE)
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "student"), str(tmp_path / "batch.pt")],
        capture_output=True,
        text=True,
        timeout=300,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == f"LOADED {type(model).__name__}"


def test_what_a_family_cannot_do_is_a_clear_error_before_any_work():
    mpnet = family_model("mpnet")
    with pytest.raises(BadInputError, match="same heads"):
        prune(mpnet, calibration(), head_ratio=0.5, show_progress=False)
    with pytest.raises(BadInputError, match="head width is fixed at 6"):
        prune(family_model("modernbert"), calibration(), hidden_size=16, num_attention_heads=4, show_progress=False)
    roberta = family_model("roberta")
    with pytest.raises(BadInputError, match=r"one head count and one FFN width for every layer.*\[2, 2, 2\] heads"):
        apply_plan(roberta, PruningPlan(layers=[0, 1, 2], heads=[[0, 1]] * 3, neurons=[[0, 1], [0], [0]]))
    with pytest.raises(BadInputError, match="divides the hidden size"):
        apply_plan(roberta, PruningPlan(layers=[0], heads=[[0, 1]], neurons=[list(range(20))]))
    with pytest.raises(BadInputError, match="equals the embedding width"):
        prune(family_model("electra"), calibration(), hidden_size=12, num_attention_heads=2, show_progress=False)
    with pytest.raises(ValueError, match="keeps layer 0 first"):
        apply_plan(family_model("modernbert"), PruningPlan(layers=[1, 2], heads=[[0, 1, 2, 3]] * 2, neurons=[[0]] * 2))


@pytest.mark.parametrize("family", STOCK_FAMILIES)
def test_a_pruned_stock_student_exports_to_onnx_and_int8(family, tmp_path, tiny_tokenizer):
    """The same checks as a TinyBERT student's: the fp32 graph computes the model's logits, the int8 one is close,
    and both are served by the ONNX classes."""
    torch.manual_seed(0)
    config = FAMILIES[family]()
    config.initializer_range = 0.2  # logits of a trained model's size
    teacher = AutoModelForSequenceClassification.from_config(config).eval()
    heads, hidden = (2, 12) if family == "modernbert" else (4, 16)
    student, _ = prune(teacher, calibration(), num_hidden_layers=2, hidden_size=hidden, num_attention_heads=heads,
                       intermediate_size=10, importance="activation", show_progress=False)  # fmt: skip
    student.save_pretrained(tmp_path / "student")
    tiny_tokenizer.save_pretrained(tmp_path / "student")
    fp32_dir = export_saved_model(tmp_path / "student", tmp_path / "student-onnx")
    quantize_saved_model(QuantizeArguments(model=str(tmp_path / "student")))
    inputs = {**batch(), "token_type_ids": torch.zeros(3, 9, dtype=torch.long)}
    expected = logits(student)
    fp32 = OnnxModelForSequenceClassification.from_pretrained(fp32_dir)(**inputs).logits
    int8 = OnnxModelForSequenceClassification.from_pretrained(tmp_path / "student-int8")(**inputs).logits
    torch.testing.assert_close(fp32, expected, rtol=1e-4, atol=1e-4)
    assert expected.abs().max() > 0.05 and (int8 - expected).abs().max() < 0.2 * expected.abs().max()
    assert json.loads((tmp_path / "student-int8" / "config.json").read_text())["model_type"] == config.model_type
