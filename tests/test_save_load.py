"""Save/load round trips, Auto classes, trust_remote_code without the package, pipelines, the fit_dense lifecycle."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertForPreTraining,
    BertForSequenceClassification,
    BertModel,
    pipeline,
)

from tinybert_hf import (
    TinyBertConfig,
    TinyBertForMaskedLM,
    TinyBertForSequenceClassification,
    TinyBertForTokenClassification,
    TinyBertModel,
)

from .conftest import load_without_the_package, random_batch, tiny_bert_config, tiny_config

AUTO_CLASSES = [
    (AutoModel, TinyBertModel),
    (AutoModelForSequenceClassification, TinyBertForSequenceClassification),
    (AutoModelForTokenClassification, TinyBertForTokenClassification),
    (AutoModelForMaskedLM, TinyBertForMaskedLM),
]


def first_output(outputs) -> torch.Tensor:
    return outputs.logits if hasattr(outputs, "logits") else outputs.last_hidden_state


@pytest.mark.parametrize(("auto_class", "model_class"), AUTO_CLASSES)
def test_auto_class_round_trip_gives_identical_outputs(tmp_path, auto_class, model_class):
    torch.manual_seed(0)
    model = model_class(tiny_config(fit_size=48, num_labels=3)).eval()
    batch = random_batch()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert not list(tmp_path.glob("*.bin")), "weights must be saved as safetensors only"
    loaded, info = auto_class.from_pretrained(tmp_path, output_loading_info=True)
    assert type(loaded) is model_class
    assert not info["missing_keys"] and not info["unexpected_keys"]
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(first_output(loaded(**batch)), first_output(model(**batch)), rtol=0, atol=0)
        assert torch.equal(loaded.base_model.fit_dense.weight, model.base_model.fit_dense.weight)


def test_saved_directory_ships_code_and_full_auto_map(tmp_path):
    TinyBertForSequenceClassification(tiny_config()).save_pretrained(tmp_path)
    assert (tmp_path / "modeling_tinybert.py").is_file() and (tmp_path / "configuration_tinybert.py").is_file()
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map["AutoConfig"] == "configuration_tinybert.TinyBertConfig"
    for auto_class, model_class in AUTO_CLASSES:
        assert auto_map[auto_class.__name__] == f"modeling_tinybert.{model_class.__name__}"
    assert isinstance(AutoConfig.from_pretrained(tmp_path), TinyBertConfig)


def test_per_layer_shapes_round_trip(tmp_path):
    config = tiny_config(attention_head_size=8, layer_num_attention_heads=[3, 1], layer_intermediate_sizes=[20, 6])
    torch.manual_seed(0)
    model = TinyBertForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    batch = random_batch()
    torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits, rtol=0, atol=0)


def test_trust_remote_code_loads_without_the_package(tmp_path, tiny_tokenizer):
    torch.manual_seed(0)
    model = TinyBertForSequenceClassification(tiny_config(fit_size=48)).eval()
    model_dir = tmp_path / "student"
    model.save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    assert "REMOTE-CODE-OK TinyBertForSequenceClassification" in load_without_the_package(model, model_dir, tmp_path)


def test_text_classification_pipeline_on_a_saved_student(tmp_path, tiny_tokenizer):
    torch.manual_seed(0)
    config = tiny_config(num_labels=2, id2label={0: "rotten", 1: "fresh"}, label2id={"rotten": 0, "fresh": 1})
    model = TinyBertForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    classifier = pipeline("text-classification", model=str(tmp_path), top_k=None)
    scores = {item["label"]: item["score"] for item in classifier(["the cast is great"])[0]}
    encoded = tiny_tokenizer("the cast is great", return_tensors="pt")
    with torch.no_grad():
        probabilities = model(**encoded).logits.softmax(-1)[0]
    assert scores == pytest.approx({"rotten": probabilities[0].item(), "fresh": probabilities[1].item()}, abs=1e-6)


def test_token_classification_pipeline_on_a_saved_student(tmp_path, tiny_tokenizer):
    torch.manual_seed(0)
    labels = ["O", "B-LOC", "I-LOC"]
    config = tiny_config(id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)})
    model = TinyBertForTokenClassification(config).eval()
    with torch.no_grad():  # make the head say B-LOC for the token "paris" and O elsewhere
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
        model.bert.embeddings.word_embeddings.weight[tiny_tokenizer.convert_tokens_to_ids("paris")] *= 0
    model.save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    tagger = pipeline("token-classification", model=str(tmp_path))
    entities = tagger("the cast paris")
    assert isinstance(entities, list)
    for entity in entities:  # every prediction is one of our labels, with a probability
        assert entity["entity"] in labels and 0.0 <= entity["score"] <= 1.0
    encoded = tiny_tokenizer("the cast paris", return_tensors="pt")
    with torch.no_grad():
        predicted = model(**encoded).logits.argmax(-1)[0, 1:-1].tolist()
    expected_entities = [labels[p] for p in predicted if labels[p] != "O"]
    assert [entity["entity"] for entity in entities] == expected_entities


class TestBertCheckpoints:
    def test_bert_model_checkpoint_loads_with_only_the_new_head_missing(self, tmp_path):
        BertModel(tiny_bert_config()).save_pretrained(tmp_path)
        _, info = TinyBertModel.from_pretrained(tmp_path, output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"]
        _, info = TinyBertForSequenceClassification.from_pretrained(tmp_path, output_loading_info=True)
        assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias"}
        assert not info["unexpected_keys"]

    def test_bert_classifier_checkpoint_loads_completely_and_matches(self, tmp_path):
        torch.manual_seed(0)
        bert = BertForSequenceClassification(tiny_bert_config(num_labels=3)).eval()
        bert.save_pretrained(tmp_path)
        model, info = TinyBertForSequenceClassification.from_pretrained(tmp_path, output_loading_info=True)
        assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys"))
        batch = random_batch()
        with torch.no_grad():
            torch.testing.assert_close(model.eval()(**batch).logits, bert(**batch).logits, atol=1e-5, rtol=0)

    def test_published_tinybert_layout_with_top_level_fit_dense(self, tmp_path):
        """The released TinyBERT general checkpoints: BertForPreTraining keys plus `fit_dense` at the top level."""
        torch.manual_seed(0)
        state = {key: value.clone() for key, value in BertForPreTraining(tiny_bert_config()).state_dict().items()}
        state["fit_dense.weight"], state["fit_dense.bias"] = torch.randn(64, 32), torch.randn(64)
        save_file(state, tmp_path / "model.safetensors")
        config = tiny_bert_config().to_dict()
        del config["model_type"]  # the published config.json has none
        config["fit_size"] = 64
        (tmp_path / "config.json").write_text(json.dumps(config))
        for model_class in (TinyBertForMaskedLM, TinyBertForSequenceClassification, TinyBertModel):
            model, info = model_class.from_pretrained(tmp_path, output_loading_info=True)
            torch.testing.assert_close(model.base_model.fit_dense.weight, state["fit_dense.weight"])
            assert not [key for key in info["missing_keys"] if "classifier" not in key], info
        assert not info["unexpected_keys"] or all(key.startswith("cls.") for key in info["unexpected_keys"])

    def test_checkpoint_with_shapes_that_do_not_fit_is_a_clear_error(self, tmp_path):
        BertModel(tiny_bert_config(hidden_size=48, num_attention_heads=4)).save_pretrained(tmp_path)
        for model_class in (TinyBertModel, TinyBertForSequenceClassification):
            with pytest.raises(RuntimeError, match="does not fit this model's shapes") as error:
                model_class.from_pretrained(tmp_path, config=tiny_config())
            assert "checkpoint (48,) vs model (32,)" in str(error.value)


class TestDistillationProjectionLifecycle:
    """fit_dense only serves distillation losses: inference never runs it; it can be dropped before shipping."""

    def test_inference_outputs_do_not_depend_on_it(self):
        torch.manual_seed(0)
        model = TinyBertForSequenceClassification(tiny_config(fit_size=48)).eval()
        batch = random_batch()
        logits = model(**batch).logits
        model.remove_distillation_projection()
        assert model.bert.fit_dense is None and model.config.fit_size is None
        torch.testing.assert_close(model(**batch).logits, logits, rtol=0, atol=0)

    def test_saved_with_projection_then_dropped_is_smaller_and_loads_clean(self, tmp_path):
        torch.manual_seed(0)
        model = TinyBertForSequenceClassification(tiny_config(fit_size=480)).eval()
        model.save_pretrained(tmp_path / "with")
        assert "bert.fit_dense.weight" in load_file(tmp_path / "with" / "model.safetensors")
        model.remove_distillation_projection()
        model.save_pretrained(tmp_path / "without")
        without = load_file(tmp_path / "without" / "model.safetensors")
        assert not [key for key in without if "fit_dense" in key]
        with_size = (tmp_path / "with" / "model.safetensors").stat().st_size
        without_size = (tmp_path / "without" / "model.safetensors").stat().st_size
        assert with_size - without_size >= (32 * 480 + 480) * 4
        _, info = AutoModelForSequenceClassification.from_pretrained(tmp_path / "without", output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"]

    def test_old_checkpoint_with_projection_loads_into_a_config_without_it(self, tmp_path):
        TinyBertForSequenceClassification(tiny_config(fit_size=48)).save_pretrained(tmp_path)
        config = TinyBertConfig.from_pretrained(tmp_path)
        config.fit_size = None
        model, info = TinyBertForSequenceClassification.from_pretrained(
            tmp_path, config=config, output_loading_info=True
        )
        assert model.bert.fit_dense is None
        assert not info["missing_keys"] and not info["unexpected_keys"]  # the projection is ignored on purpose

    def test_checkpoint_without_projection_into_a_config_with_it_reports_it_missing(self, tmp_path):
        TinyBertForSequenceClassification(tiny_config()).save_pretrained(tmp_path)
        config = TinyBertConfig.from_pretrained(tmp_path)
        config.fit_size = 48
        model, info = TinyBertForSequenceClassification.from_pretrained(
            tmp_path, config=config, output_loading_info=True
        )
        assert set(info["missing_keys"]) == {"bert.fit_dense.weight", "bert.fit_dense.bias"}
        assert tuple(model.bert.fit_dense.weight.shape) == (48, 32)
