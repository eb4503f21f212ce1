import json
import re

import pytest
from transformers import AutoConfig, BertConfig, DebertaV2Config, RobertaConfig

from tinybert_hf import TinyBertConfig, TinyBertForSequenceClassification, TinyBertModel

from .conftest import tiny_config


def test_defaults_are_tinybert4():
    config = TinyBertConfig()
    shape = (config.num_hidden_layers, config.hidden_size, config.intermediate_size, config.num_attention_heads)
    assert shape == (4, 312, 1200, 12)
    assert config.model_type == "tinybert"
    assert config.fit_size is None and not config.has_fit_dense
    assert config.head_size == 26


def test_from_teacher_config_keeps_what_ties_student_to_teacher():
    teacher = BertConfig(
        vocab_size=1234, max_position_embeddings=128, type_vocab_size=3, pad_token_id=7, hidden_size=768, num_labels=3
    )
    student = TinyBertConfig.from_teacher_config(teacher)
    assert (student.vocab_size, student.max_position_embeddings, student.type_vocab_size) == (1234, 128, 3)
    assert student.pad_token_id == 7
    assert student.id2label == teacher.id2label and student.num_labels == 3
    assert (student.num_hidden_layers, student.hidden_size, student.intermediate_size) == (4, 312, 1200)
    assert student.fit_size == 768 and student.has_fit_dense


def test_from_teacher_config_same_width_needs_no_projection_and_takes_overrides():
    teacher = BertConfig(hidden_size=384, num_attention_heads=12)
    student = TinyBertConfig.from_teacher_config(
        teacher, num_hidden_layers=3, hidden_size=384, intermediate_size=1536, hidden_dropout_prob=0.2
    )
    assert student.fit_size is None and not student.has_fit_dense
    assert student.hidden_dropout_prob == 0.2 and student.intermediate_size == 1536


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hidden_size": 30, "num_attention_heads": 4}, "not a multiple of `num_attention_heads`"),
        ({"num_hidden_layers": 0}, "`num_hidden_layers` must be a positive integer"),
        ({"hidden_dropout_prob": 1.5}, "`hidden_dropout_prob` must be in"),
        ({"hidden_act": "swishy"}, "`hidden_act='swishy'` is not a known activation"),
        ({"fit_size": 0}, "`fit_size` must be the teacher's hidden size"),
        ({"layer_intermediate_sizes": [10]}, "has 1 entries but the model has 2 layers"),
        ({"layer_intermediate_sizes": [10, 0]}, "every entry of `layer_intermediate_sizes`"),
        ({"layer_num_attention_heads": [4, 2]}, "needs an explicit `attention_head_size`"),
        ({"position_embedding_type": "relative_key"}, "absolute position embeddings"),
        ({"is_decoder": True}, "bidirectional encoder"),
    ],
)
def test_inconsistent_config_is_a_clear_value_error_when_a_model_is_built(overrides, message):
    config = tiny_config(**overrides)  # built and kept as given, as a BertConfig would be
    assert all(getattr(config, name) == value for name, value in overrides.items())
    for model_class in (TinyBertModel, TinyBertForSequenceClassification):
        with pytest.raises(ValueError, match=re.escape(message)):
            model_class(config)
    with pytest.raises(ValueError, match=re.escape(message)):
        config.check_model_shapes()


def test_a_config_is_edited_freely_and_checked_when_the_model_is_built():
    config = tiny_config()
    config.hidden_size = 30  # no longer a multiple of the 4 heads: fine while editing
    config.num_attention_heads = 5
    model = TinyBertModel(config)  # 30 = 5 x 6
    assert model.config.head_size == 6


def test_keeps_every_field_of_bert_config():
    """TinyBertConfig accepts what BertConfig accepts: every BERT field converts, and survives a round trip."""
    bert = BertConfig(use_cache=False, bos_token_id=5, eos_token_id=6, classifier_dropout=0.3)
    tiny = TinyBertConfig(**bert.to_dict())
    missing = [name for name in bert.to_dict() if not hasattr(tiny, name)]
    assert not missing, missing
    for name in ("use_cache", "bos_token_id", "eos_token_id", "classifier_dropout", "hidden_size"):
        assert getattr(tiny, name) == getattr(bert, name), name


def test_per_layer_shapes_describe_pruned_layers():
    config = tiny_config(attention_head_size=8, layer_num_attention_heads=[4, 2], layer_intermediate_sizes=[37, 11])
    assert [config.num_attention_heads_of_layer(i) for i in range(2)] == [4, 2]
    assert [config.intermediate_size_of_layer(i) for i in range(2)] == [37, 11]
    assert config.head_size == 8


def test_save_load_round_trip_keeps_every_field(tmp_path):
    config = tiny_config(
        fit_size=64, attention_head_size=8, layer_num_attention_heads=[4, 2], layer_intermediate_sizes=[37, 11]
    )
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "tinybert"
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, TinyBertConfig)
    for field in ("fit_size", "attention_head_size", "layer_num_attention_heads", "layer_intermediate_sizes"):
        assert getattr(loaded, field) == getattr(config, field)


def test_bert_config_loads_as_tinybert_config(tmp_path):
    BertConfig(hidden_size=48, num_attention_heads=6, num_hidden_layers=3, intermediate_size=50).save_pretrained(
        tmp_path
    )
    config = TinyBertConfig.from_pretrained(tmp_path)
    assert (config.hidden_size, config.num_attention_heads, config.num_hidden_layers) == (48, 6, 3)
    config.save_pretrained(tmp_path / "converted")
    assert json.loads((tmp_path / "converted" / "config.json").read_text())["model_type"] == "tinybert"


def test_wrong_model_type_is_refused_by_config_and_models(tmp_path):
    RobertaConfig(hidden_size=32, num_attention_heads=4, num_hidden_layers=1, intermediate_size=37).save_pretrained(
        tmp_path
    )
    with pytest.raises(ValueError, match="holds a `roberta` model"):
        TinyBertConfig.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="holds a `roberta` model"):
        TinyBertModel.from_pretrained(tmp_path)


def test_a_teacher_without_token_types_gives_a_student_with_one():
    """DeBERTa-v3 has `type_vocab_size=0` (no token-type table): the student reads every token as type 0."""
    student = TinyBertConfig.from_teacher_config(DebertaV2Config(vocab_size=99, hidden_size=32, type_vocab_size=0))
    assert student.type_vocab_size == 1
    TinyBertModel(student)  # builds: the config describes a model
