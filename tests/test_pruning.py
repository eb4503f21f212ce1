"""Structured pruning: exact equivalences with zeroed weights, importance on known structures, round trips, errors."""

from __future__ import annotations

import copy

import pytest
import torch
from datasets import Dataset
from transformers import (
    AlbertConfig,
    AlbertForSequenceClassification,
    AutoModelForSequenceClassification,
    BertForMaskedLM,
    BertForSequenceClassification,
)

from tests.conftest import load_without_the_package, random_batch, tiny_bert_config, tiny_config
from tinybert_hf import TinyBertForSequenceClassification, TinyBertForTokenClassification, TinyBertModel
from tinybert_hf.models.tinybert.conversion import as_tinybert
from tinybert_hf.pruning.importance import compute_importance
from tinybert_hf.pruning.structured import PruningPlan, apply_plan, calibration_batches, plan_for_shape, prune


def full_plan(config) -> PruningPlan:
    layers = list(range(config.num_hidden_layers))
    return PruningPlan(
        layers=layers,
        heads=[list(range(config.num_attention_heads_of_layer(i))) for i in layers],
        neurons=[list(range(config.intermediate_size_of_layer(i))) for i in layers],
    )


def labelled_batches(num_labels: int = 3, count: int = 2) -> list[dict]:
    batches = []
    for seed in range(count):
        batch = random_batch(batch_size=4, seq_length=9, seed=seed)
        batch["labels"] = torch.randint(0, num_labels, (4,), generator=torch.Generator().manual_seed(seed))
        batches.append(batch)
    return batches


def state_copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


@pytest.fixture
def classifier():
    torch.manual_seed(0)
    return TinyBertForSequenceClassification(tiny_config(num_hidden_layers=3, num_labels=3)).eval()


# ---- exact equivalences: removing a structure = zeroing what it contributes --------------------------------------


@pytest.mark.parametrize(
    "model_class", [BertForSequenceClassification, BertForMaskedLM, TinyBertForTokenClassification]
)
def test_keeping_everything_changes_nothing(model_class):
    torch.manual_seed(0)
    config = tiny_bert_config(num_labels=3) if model_class.__module__.startswith("transformers") else tiny_config()
    model = model_class(config).eval()
    pruned = apply_plan(model, full_plan(as_tinybert(model).config)).eval()
    batch = random_batch()
    with torch.no_grad():
        torch.testing.assert_close(pruned(**batch).logits, model(**batch).logits, rtol=0, atol=1e-6)


def test_removing_heads_equals_zeroing_their_output_columns(classifier):
    head_size = classifier.config.head_size
    removed = {0: [1, 3], 2: [0]}
    zeroed = copy.deepcopy(classifier)
    with torch.no_grad():
        for layer, heads in removed.items():
            dense = zeroed.bert.encoder.layer[layer].attention.output.dense
            for head in heads:
                dense.weight[:, head * head_size : (head + 1) * head_size] = 0
    plan = full_plan(classifier.config)
    plan.heads = [[h for h in range(4) if h not in removed.get(i, [])] for i in range(3)]
    pruned = apply_plan(classifier, plan).eval()
    assert pruned.config.layer_num_attention_heads == [2, 4, 3]
    assert pruned.bert.encoder.layer[0].attention.self.query.weight.shape == (2 * head_size, 32)
    batch = random_batch()
    with torch.no_grad():
        torch.testing.assert_close(pruned(**batch).logits, zeroed(**batch).logits, rtol=0, atol=1e-6)


def test_removing_neurons_equals_zeroing_their_down_projection(classifier):
    kept = [list(range(0, 37, 2)), list(range(37)), list(range(10, 30))]
    zeroed = copy.deepcopy(classifier)
    with torch.no_grad():
        for layer, neurons in enumerate(kept):
            removed = [n for n in range(37) if n not in neurons]
            zeroed.bert.encoder.layer[layer].output.dense.weight[:, removed] = 0
    plan = full_plan(classifier.config)
    plan.neurons = kept
    pruned = apply_plan(classifier, plan).eval()
    assert pruned.config.layer_intermediate_sizes == [19, 37, 20]
    batch = random_batch()
    with torch.no_grad():
        torch.testing.assert_close(pruned(**batch).logits, zeroed(**batch).logits, rtol=0, atol=1e-6)


def test_narrower_heads_keep_the_score_scale(classifier):
    """Dropping query/value dimensions that contribute nothing leaves the outputs unchanged: the query is rescaled
    so that q.k / sqrt(new head size) equals the source's q.k / sqrt(old head size)."""
    head_size, kept = 8, [0, 2, 3, 5, 6, 7]
    removed = [d for d in range(head_size) if d not in kept]
    zeroed = copy.deepcopy(classifier)
    with torch.no_grad():
        for layer in zeroed.bert.encoder.layer:
            for head in range(4):
                for d in removed:
                    for linear in (layer.attention.self.query, layer.attention.self.value):
                        linear.weight[head * head_size + d] = 0
                        linear.bias[head * head_size + d] = 0
    plan = full_plan(classifier.config)
    plan.head_dims = [[kept] * 4 for _ in range(3)]
    plan.value_dims = [[kept] * 4 for _ in range(3)]
    pruned = apply_plan(classifier, plan).eval()
    assert pruned.config.head_size == 6 and pruned.config.hidden_size == 32
    batch = random_batch()
    with torch.no_grad():
        torch.testing.assert_close(pruned(**batch).logits, zeroed(**batch).logits, rtol=0, atol=1e-5)


class _SkipLayer(torch.nn.Module):
    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states, None, None


def test_removing_a_layer_equals_skipping_it(classifier):
    skipped = copy.deepcopy(classifier)
    skipped.bert.encoder.layer[1] = _SkipLayer()
    plan = full_plan(classifier.config)
    plan.layers, plan.heads, plan.neurons = [0, 2], [plan.heads[0], plan.heads[2]], [plan.neurons[0], plan.neurons[2]]
    pruned = apply_plan(classifier, plan).eval()
    assert pruned.config.num_hidden_layers == 2
    batch = random_batch()
    with torch.no_grad():
        torch.testing.assert_close(pruned(**batch).logits, skipped(**batch).logits, rtol=0, atol=1e-6)


def test_removing_channels_shrinks_every_width_and_fit_dense_puts_channels_back(classifier):
    plan = full_plan(classifier.config)
    plan.channels = [0, 3, 4, 9, 10, 11, 20, 21, 22, 30, 31, 5, 6, 7, 8, 1][:16]
    plan.channels.sort()
    pruned = apply_plan(classifier, plan).eval()
    config = pruned.config
    assert (config.hidden_size, config.fit_size, config.head_size, config.num_attention_heads) == (16, 32, 8, 4)
    assert pruned.bert.embeddings.word_embeddings.weight.shape == (99, 16)
    assert pruned.bert.encoder.layer[2].output.LayerNorm.weight.shape == (16,)
    assert pruned.bert.pooler.dense.weight.shape == (16, 16)
    assert pruned.classifier.weight.shape == (3, 16)
    torch.testing.assert_close(
        pruned.bert.embeddings.word_embeddings.weight,
        classifier.bert.embeddings.word_embeddings.weight[:, plan.channels],
        rtol=0,
        atol=0,
    )
    hidden = torch.randn(2, 5, 16)
    projected = pruned.bert.project_to_teacher(hidden)  # (2, 5, 32): kept channels in place, removed ones zero
    torch.testing.assert_close(projected[..., plan.channels], hidden)
    removed = [c for c in range(32) if c not in plan.channels]
    assert projected[..., removed].abs().max() == 0
    assert pruned(**random_batch()).logits.isfinite().all()


def test_masked_lm_pruning_keeps_the_decoder_tied():
    torch.manual_seed(0)
    model = BertForMaskedLM(tiny_bert_config()).eval()
    pruned, _ = prune(
        model, [random_batch()], hidden_size=24, num_attention_heads=3, importance="activation", show_progress=False
    )
    decoder = pruned.get_output_embeddings().weight
    assert decoder.shape == (99, 24)
    assert decoder.data_ptr() == pruned.get_input_embeddings().weight.data_ptr()


# ---- importance ---------------------------------------------------------------------------------------------------


def test_activation_importance_finds_dead_heads_and_neurons(classifier):
    head_size = classifier.config.head_size
    dead = copy.deepcopy(classifier)
    with torch.no_grad():
        value = dead.bert.encoder.layer[1].attention.self.value
        value.weight[2 * head_size : 3 * head_size] = 0  # head 2 of layer 1 outputs zeros
        value.bias[2 * head_size : 3 * head_size] = 0
        up = dead.bert.encoder.layer[0].intermediate.dense
        up.weight[[4, 7]] = 0
        up.bias[[4, 7]] = -50.0  # gelu(-50) = 0: neurons 4 and 7 of layer 0 never fire
    scores = compute_importance(dead, [random_batch()], show_progress=False)
    assert scores.heads[1][2] == 0 and scores.heads[1].argmin() == 2
    assert set(scores.neurons[0].topk(2, largest=False).indices.tolist()) == {4, 7}
    assert scores.value_dims[1][2].abs().max() == 0
    assert scores.layers.shape == (3,) and (scores.layers > 0).all()
    # pruning one head per layer removes the dead one
    pruned, plan = prune(dead, importance=scores, num_attention_heads=3, attention_head_size=8)
    assert plan.heads[1] == [0, 1, 3]


def test_taylor_importance_needs_labels_and_leaves_the_model_as_it_was(classifier):
    classifier.train()
    classifier.classifier.weight.requires_grad_(False)
    before = state_copy(classifier)
    with pytest.raises(ValueError, match="labels"):
        compute_importance(classifier, [random_batch()], method="taylor", show_progress=False)
    scores = compute_importance(classifier, labelled_batches(), method="taylor", show_progress=False)
    assert classifier.training and not classifier.classifier.weight.requires_grad
    assert all(parameter.grad is None for parameter in classifier.parameters())
    for name, tensor in classifier.state_dict().items():
        torch.testing.assert_close(tensor, before[name], rtol=0, atol=0)
    assert all(s.isfinite().all() and (s >= 0).all() for s in [*scores.heads, *scores.neurons, scores.channels])
    assert scores.layers.shape == (3,) and scores.num_examples == 8


def test_taylor_head_score_is_the_first_order_loss_change(classifier):
    """Michel et al.: |d loss / d gate| with a gate of 1 on each head equals |sum context . d loss / d context|."""
    batch = labelled_batches(count=1)[0]
    scores = compute_importance(classifier, [batch], method="taylor", show_progress=False)
    expected = []
    for layer in range(3):
        gates = torch.ones(4, requires_grad=True)
        dense = classifier.bert.encoder.layer[layer].attention.output.dense

        def gate_heads(module, inputs, gates=gates):
            context = inputs[0].view(*inputs[0].shape[:2], 4, 8) * gates[:, None]
            return (context.view(*inputs[0].shape),)

        handle = dense.register_forward_pre_hook(gate_heads)
        per_example = []
        for row in range(4):
            single = {key: value[row : row + 1] for key, value in batch.items()}
            (gradient,) = torch.autograd.grad(classifier(**single).loss, gates)
            per_example.append(gradient.abs())
        handle.remove()
        # the batch loss is a mean over 4 rows: each row's gradient inside it is a quarter of its own
        expected.append(torch.stack(per_example).mean(dim=0) / 4)
    for layer in range(3):
        torch.testing.assert_close(scores.heads[layer], expected[layer], rtol=1e-4, atol=1e-7)


def test_magnitude_needs_no_data_and_cannot_rank_layers(classifier):
    scores = compute_importance(classifier, method="magnitude")
    assert scores.layers is None and scores.num_examples == 0
    with pytest.raises(ValueError, match="cannot rank layers"):
        plan_for_shape(scores, classifier.config, num_hidden_layers=2, layer_selection="importance")


# ---- the public call, shapes, round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["activation", "taylor", "magnitude"])
def test_prune_a_bert_teacher_to_a_student_shape(method):
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(tiny_bert_config(num_labels=3)).eval()
    before = state_copy(teacher)
    student, plan = prune(
        teacher,
        labelled_batches(),
        num_hidden_layers=2,
        hidden_size=24,
        num_attention_heads=4,
        intermediate_size=20,
        importance=method,
        show_progress=False,
    )
    config = student.config
    assert isinstance(student, TinyBertForSequenceClassification)
    assert (config.num_hidden_layers, config.hidden_size, config.head_size, config.intermediate_size) == (2, 24, 6, 20)
    assert config.fit_size == 32 and plan.layers == [1, 3]
    assert student.bert.encoder.layer[1].attention.self.key.weight.shape == (24, 24)
    assert student(**random_batch()).logits.shape == (3, 3)
    for name, tensor in teacher.state_dict().items():  # the source is untouched
        torch.testing.assert_close(tensor, before[name], rtol=0, atol=0)


def test_global_allocation_gives_layers_different_sizes_and_round_trips(classifier, tmp_path):
    pruned, plan = prune(
        classifier, labelled_batches(), head_ratio=0.5, ffn_ratio=0.4, allocation="global", show_progress=False
    )
    heads = [len(h) for h in plan.heads]
    assert sum(heads) == 6 and min(heads) >= 1
    assert sum(len(n) for n in plan.neurons) == round(3 * 37 * 0.6)
    pruned.eval().save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is TinyBertForSequenceClassification
    assert loaded.config.layer_num_attention_heads == pruned.config.layer_num_attention_heads
    batch = random_batch()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, pruned(**batch).logits, rtol=0, atol=0)


def test_pruned_student_loads_without_the_package(tmp_path, tiny_tokenizer):
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(tiny_bert_config(num_labels=2)).eval()
    student, _ = prune(
        teacher, labelled_batches(2), num_hidden_layers=3, hidden_size=24, num_attention_heads=3, show_progress=False
    )
    student, _ = prune(
        student.eval(), [random_batch()], head_ratio=0.4, ffn_ratio=0.3, allocation="global", importance="activation"
    )
    student.eval()
    model_dir = tmp_path / "student"
    student.save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    assert "REMOTE-CODE-OK" in load_without_the_package(student, model_dir, tmp_path)


def test_calibration_batches_pad_sequence_and_token_labels():
    rows = Dataset.from_dict({"input_ids": [[2, 5, 3], [2, 5, 6, 7, 3]], "labels": [[-100, 1, -100], [0, 1, 2, 1, 0]]})
    (batch,) = calibration_batches(rows, num_samples=8, pad_token_id=0)
    assert batch["input_ids"].shape == (2, 5) and batch["attention_mask"].sum() == 8
    padded_row = 0 if batch["attention_mask"][0].sum() == 3 else 1
    assert batch["labels"][padded_row, 3:].tolist() == [-100, -100]
    sentences = Dataset.from_dict({"input_ids": [[2, 5, 3], [2, 3]], "label": [0, 1]}).rename_column("label", "labels")
    (batch,) = calibration_batches(sentences)
    assert batch["labels"].shape == (2,)
    with pytest.raises(ValueError, match="empty"):
        calibration_batches(sentences.select([]))


# ---- bad input: clear errors, the source untouched --------------------------------------------------------------


def test_bad_targets_are_clear_errors_and_leave_the_source_untouched(classifier):
    before = state_copy(classifier)
    batches = [random_batch()]
    cases = [
        (dict(hidden_size=64), "hidden_size=64.*source model has 32"),
        (dict(num_hidden_layers=5), "num_hidden_layers=5"),
        (dict(num_attention_heads=6, attention_head_size=8), "num_attention_heads=6"),
        (dict(intermediate_size=100), "intermediate_size=100"),
        (dict(hidden_size=0), "cannot remove every head or channel"),
        (dict(num_attention_heads=0), "cannot remove every head or channel"),
        (dict(intermediate_size=0), "intermediate_size=0"),
        (dict(num_hidden_layers=0), "num_hidden_layers=0"),
        (dict(hidden_size=30, num_attention_heads=4), "4 heads do not divide the new hidden size 30"),
        (dict(head_ratio=1.0), r"head_ratio.*\[0, 1\)"),
        (dict(ffn_ratio=1.5), r"ffn_ratio.*\[0, 1\)"),
        (dict(hidden_size=16, head_ratio=0.5), "not both"),
        (dict(importance="random"), "importance"),
    ]
    for arguments, message in cases:
        with pytest.raises(ValueError, match=message):
            prune(classifier, batches, show_progress=False, **{"importance": "activation", **arguments})
    plan = full_plan(classifier.config)
    plan.heads[0] = [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="heads of layer 0"):
        apply_plan(classifier, plan)
    plan = full_plan(classifier.config)
    plan.neurons[1] = []
    with pytest.raises(ValueError, match="removes every FFN neurons of layer 1"):
        apply_plan(classifier, plan)
    with pytest.raises(ValueError, match="empty"):
        prune(classifier, [], show_progress=False)
    with pytest.raises(ValueError, match="knows the layout of .*, not of a 'albert' model"):
        other = AlbertForSequenceClassification(
            AlbertConfig(vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=1, num_attention_heads=4)
        )
        prune(other, batches, head_ratio=0.5)
    for name, tensor in classifier.state_dict().items():
        torch.testing.assert_close(tensor, before[name], rtol=0, atol=0)


def test_a_pruned_config_does_not_load_unpruned_weights(classifier, tmp_path):
    classifier.save_pretrained(tmp_path / "full")
    pruned, _ = prune(classifier, [random_batch()], head_ratio=0.5, importance="activation", show_progress=False)
    with pytest.raises(RuntimeError, match="does not fit this model's shapes"):
        TinyBertForSequenceClassification.from_pretrained(tmp_path / "full", config=pruned.config)


def test_base_model_pruning():
    torch.manual_seed(0)
    model = TinyBertModel(tiny_config()).eval()
    pruned, _ = prune(
        model, [random_batch()], hidden_size=16, num_attention_heads=2, importance="activation", show_progress=False
    )
    assert isinstance(pruned, TinyBertModel) and pruned.config.fit_size == 32
    assert pruned(**random_batch()).last_hidden_state.shape == (3, 7, 16)


def test_a_student_with_a_projection_keeps_its_columns_for_the_kept_channels():
    torch.manual_seed(0)
    student = TinyBertForSequenceClassification(tiny_config(fit_size=48, num_labels=2)).eval()
    plan = full_plan(student.config)
    plan.channels = list(range(0, 32, 2))
    pruned = apply_plan(student, plan)
    assert pruned.config.fit_size == 48 and pruned.bert.fit_dense.weight.shape == (48, 16)
    torch.testing.assert_close(pruned.bert.fit_dense.weight, student.bert.fit_dense.weight[:, plan.channels])
    torch.testing.assert_close(pruned.bert.fit_dense.bias, student.bert.fit_dense.bias)
