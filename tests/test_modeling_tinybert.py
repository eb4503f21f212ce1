"""Model classes: output shapes per head, what distillation reads, BERT parity, heads' losses, bad input."""

import pytest
import torch
from transformers import BertModel

from tinybert_hf import (
    TinyBertForMaskedLM,
    TinyBertForSequenceClassification,
    TinyBertForTokenClassification,
    TinyBertModel,
)

from .conftest import random_batch, tiny_bert_config, tiny_config

ALL_CLASSES = [TinyBertModel, TinyBertForSequenceClassification, TinyBertForTokenClassification, TinyBertForMaskedLM]


def build(model_class, **config_overrides):
    torch.manual_seed(0)
    return model_class(tiny_config(**config_overrides)).eval()


@pytest.mark.parametrize(
    ("model_class", "output_name", "shape"),
    [
        (TinyBertModel, "last_hidden_state", (3, 7, 32)),
        (TinyBertModel, "pooler_output", (3, 32)),
        (TinyBertForSequenceClassification, "logits", (3, 2)),
        (TinyBertForTokenClassification, "logits", (3, 7, 2)),
        (TinyBertForMaskedLM, "logits", (3, 7, 99)),
    ],
)
def test_head_output_shapes(model_class, output_name, shape):
    outputs = build(model_class)(**random_batch())
    assert tuple(getattr(outputs, output_name).shape) == shape


@pytest.mark.parametrize("model_class", ALL_CLASSES)
def test_distillation_outputs(model_class):
    model = build(model_class, fit_size=48)
    outputs = model(
        **random_batch(),
        output_hidden_states=True,
        output_attentions=True,
        output_attention_scores=True,
        output_fit_hidden_states=True,
    )
    assert len(outputs.hidden_states) == 3  # embeddings + 2 layers
    assert [tuple(h.shape) for h in outputs.fit_hidden_states] == [(3, 7, 48)] * 3
    assert [tuple(a.shape) for a in outputs.attentions] == [(3, 4, 7, 7)] * 2
    assert [tuple(s.shape) for s in outputs.attention_scores] == [(3, 4, 7, 7)] * 2
    projection = model.base_model.fit_dense
    torch.testing.assert_close(outputs.fit_hidden_states[1], projection(outputs.hidden_states[1]))


def test_nothing_extra_is_returned_unless_asked():
    outputs = build(TinyBertModel, fit_size=48)(**random_batch())
    assert outputs.hidden_states is None and outputs.attentions is None
    assert outputs.attention_scores is None and outputs.fit_hidden_states is None


def test_fit_hidden_states_are_the_hidden_states_when_widths_match():
    outputs = build(TinyBertModel)(**random_batch(), output_fit_hidden_states=True)
    assert outputs.hidden_states is None  # not asked for, though computed for the projection
    assert len(outputs.fit_hidden_states) == 3
    torch.testing.assert_close(outputs.fit_hidden_states[-1], outputs.last_hidden_state)


def test_attention_scores_are_pre_softmax_and_pre_mask():
    batch = random_batch()
    outputs = build(TinyBertModel)(**batch, output_attentions=True, output_attention_scores=True)
    mask = batch["attention_mask"][:, None, None, :].bool()
    for scores, probs in zip(outputs.attention_scores, outputs.attentions, strict=True):
        expected = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
        torch.testing.assert_close(probs, expected)
    # scores are finite everywhere, padded keys included: the loss masks them, not a large negative number
    assert all(torch.isfinite(s).all() for s in outputs.attention_scores)


def test_padding_does_not_leak_into_real_tokens():
    model = build(TinyBertModel)
    batch = random_batch()
    changed = {key: value.clone() for key, value in batch.items()}
    changed["input_ids"][batch["attention_mask"] == 0] = 42
    for implementation in ("eager", "sdpa"):
        model.set_attn_implementation(implementation)
        real = batch["attention_mask"].bool()
        torch.testing.assert_close(model(**batch).last_hidden_state[real], model(**changed).last_hidden_state[real])


def test_sdpa_and_eager_agree_and_sdpa_is_the_default():
    model = build(TinyBertForSequenceClassification)
    assert model.config._attn_implementation == "sdpa"
    batch = random_batch()
    sdpa_logits = model(**batch).logits
    model.set_attn_implementation("eager")
    torch.testing.assert_close(model(**batch).logits, sdpa_logits, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_matches_bert_with_copied_weights(implementation):
    torch.manual_seed(0)
    bert = BertModel(tiny_bert_config(num_hidden_layers=2)).eval()
    model = TinyBertModel(tiny_config()).eval()
    bert.set_attn_implementation(implementation)
    model.set_attn_implementation(implementation)
    result = model.load_state_dict(bert.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    batch = random_batch()
    with torch.no_grad():
        expected = bert(**batch, output_hidden_states=True)
        actual = model(**batch, output_hidden_states=True)
    for expected_state, actual_state in zip(expected.hidden_states, actual.hidden_states, strict=True):
        torch.testing.assert_close(actual_state, expected_state, atol=1e-5, rtol=0)
    torch.testing.assert_close(actual.pooler_output, expected.pooler_output, atol=1e-5, rtol=0)


def test_per_layer_shapes_build_smaller_layers_and_run():
    model = build(
        TinyBertModel, attention_head_size=8, layer_num_attention_heads=[4, 1], layer_intermediate_sizes=[37, 5]
    )
    layer = model.encoder.layer[1]
    assert tuple(layer.attention.self.query.weight.shape) == (8, 32)
    assert tuple(layer.attention.output.dense.weight.shape) == (32, 8)
    assert tuple(layer.intermediate.dense.weight.shape) == (5, 32)
    outputs = model(**random_batch(), output_attention_scores=True)
    assert [s.shape[1] for s in outputs.attention_scores] == [4, 1]
    assert torch.isfinite(outputs.last_hidden_state).all()


class TestSequenceClassificationLosses:
    def test_single_label_is_cross_entropy(self):
        model = build(TinyBertForSequenceClassification, num_labels=3)
        labels = torch.tensor([0, 2, 1])
        outputs = model(**random_batch(), labels=labels)
        assert model.config.problem_type == "single_label_classification"
        torch.testing.assert_close(outputs.loss, torch.nn.functional.cross_entropy(outputs.logits, labels))

    def test_multi_label_is_binary_cross_entropy(self):
        model = build(TinyBertForSequenceClassification, num_labels=3)
        labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
        outputs = model(**random_batch(), labels=labels)
        assert model.config.problem_type == "multi_label_classification"
        expected = torch.nn.functional.binary_cross_entropy_with_logits(outputs.logits, labels)
        torch.testing.assert_close(outputs.loss, expected)

    def test_regression_is_mse(self):
        model = build(TinyBertForSequenceClassification, num_labels=1)
        labels = torch.tensor([0.5, -1.0, 2.0])
        outputs = model(**random_batch(), labels=labels)
        assert model.config.problem_type == "regression"
        torch.testing.assert_close(outputs.loss, torch.nn.functional.mse_loss(outputs.logits.squeeze(-1), labels))

    def test_explicit_problem_type_wins(self):
        model = build(TinyBertForSequenceClassification, num_labels=2, problem_type="multi_label_classification")
        labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        outputs = model(**random_batch(), labels=labels)
        expected = torch.nn.functional.binary_cross_entropy_with_logits(outputs.logits, labels)
        torch.testing.assert_close(outputs.loss, expected)

    def test_labels_outside_num_labels_are_a_clear_error(self):
        model = build(TinyBertForSequenceClassification, num_labels=2)
        with pytest.raises(ValueError, match=r"Labels must lie in \[0, 2\)"):
            model(**random_batch(), labels=torch.tensor([0, 1, 2]))


def test_token_classification_loss_ignores_minus_100():
    model = build(TinyBertForTokenClassification, num_labels=3)
    batch = random_batch()
    labels = torch.randint(0, 3, (3, 7)).masked_fill(batch["attention_mask"] == 0, -100)
    outputs = model(**batch, labels=labels)
    real = labels != -100
    expected = torch.nn.functional.cross_entropy(outputs.logits[real], labels[real])
    torch.testing.assert_close(outputs.loss, expected)


def test_masked_lm_decoder_is_tied_to_word_embeddings():
    model = build(TinyBertForMaskedLM)
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    batch = random_batch()
    labels = torch.full_like(batch["input_ids"], -100)
    labels[:, 1] = batch["input_ids"][:, 1]
    outputs = model(**batch, labels=labels)
    expected = torch.nn.functional.cross_entropy(outputs.logits[:, 1], labels[:, 1])
    torch.testing.assert_close(outputs.loss, expected)


def test_tuple_outputs_when_return_dict_is_false():
    model = build(TinyBertForSequenceClassification)
    as_tuple = model(**random_batch(), return_dict=False)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], model(**random_batch()).logits)


class TestBadInput:
    def test_token_ids_outside_vocabulary(self):
        model = build(TinyBertModel)
        with pytest.raises(ValueError, match=r"Token ids must lie in \[0, 99\).*\[5, 120\]"):
            model(input_ids=torch.tensor([[5, 120]]))
        with pytest.raises(ValueError, match="Token ids must lie"):
            model(input_ids=torch.tensor([[-1, 5]]))

    def test_sequence_longer_than_position_table(self):
        model = build(TinyBertModel)
        with pytest.raises(ValueError, match="65 tokens but the model's position table holds 64"):
            model(input_ids=torch.ones(1, 65, dtype=torch.long))

    def test_attention_mask_of_the_wrong_shape(self):
        model = build(TinyBertModel)
        with pytest.raises(ValueError, match=r"`attention_mask` must have the inputs' shape"):
            model(input_ids=torch.ones(2, 5, dtype=torch.long), attention_mask=torch.ones(2, 4))

    def test_both_or_neither_of_ids_and_embeddings(self):
        model = build(TinyBertModel)
        with pytest.raises(ValueError, match="exactly one of `input_ids` and `inputs_embeds`"):
            model()


def test_gradient_checkpointing_trains_and_matches_plain_gradients():
    batch = random_batch()
    labels = torch.tensor([0, 1, 1])
    gradients = []
    for checkpointing in (False, True):
        model = build(TinyBertForSequenceClassification).train()
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            assert model.is_activation_checkpointing
        model(**batch, labels=labels).loss.backward()
        gradients.append(model.bert.encoder.layer[0].attention.self.query.weight.grad.clone())
    torch.testing.assert_close(gradients[1], gradients[0])

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.slow
def test_torch_compile_of_the_base_model_runs_on_cpu():
    model = build(TinyBertModel)
    batch = random_batch()
    with torch.no_grad():
        expected = model(**batch).last_hidden_state
        compiled = torch.compile(model)
        actual = compiled(**batch).last_hidden_state
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-4)
