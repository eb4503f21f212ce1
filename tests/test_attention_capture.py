"""Pre-softmax scores recorded from stock transformers teachers through the attention registry, and queries, keys
and values from every common encoder family (from the projection layers where the registry is bypassed)."""

import pytest
import torch
from transformers import (
    BertConfig,
    BertModel,
    DebertaV2Config,
    DebertaV2Model,
    DistilBertConfig,
    DistilBertModel,
    ElectraConfig,
    ElectraModel,
    ModernBertConfig,
    ModernBertModel,
    MPNetConfig,
    MPNetModel,
    RobertaConfig,
    RobertaModel,
    XLMRobertaConfig,
    XLMRobertaModel,
)

from tinybert_hf import TinyBertModel
from tinybert_hf.distillation.attention_capture import record_attention
from tinybert_hf.distillation.losses import attention_score_mse

from .conftest import TINY_SHAPE, random_batch, tiny_bert_config, tiny_config


def bert_teacher() -> BertModel:
    torch.manual_seed(0)
    return BertModel(tiny_bert_config(num_hidden_layers=2)).eval()


def test_recorded_scores_give_the_teachers_attention_probabilities():
    teacher = bert_teacher()
    batch = random_batch()
    with torch.no_grad(), record_attention(teacher) as record:
        recorded_output = teacher(**batch).last_hidden_state
    teacher.set_attn_implementation("eager")
    with torch.no_grad():
        eager = teacher(**batch, output_attentions=True)
    keys = batch["attention_mask"][:, None, None, :].bool()
    assert len(record.scores) == 2
    for scores, probabilities in zip(record.scores, eager.attentions, strict=True):
        torch.testing.assert_close(torch.softmax(scores.masked_fill(~keys, float("-inf")), -1), probabilities)
    torch.testing.assert_close(recorded_output, eager.last_hidden_state, atol=1e-5, rtol=1e-5)


def test_implementation_is_restored_even_on_error():
    teacher = bert_teacher()
    assert teacher.config._attn_implementation == "sdpa"
    with pytest.raises(RuntimeError, match="boom"), record_attention(teacher):
        raise RuntimeError("boom")
    assert teacher.config._attn_implementation == "sdpa"


def test_nothing_is_recorded_outside_the_block():
    teacher = bert_teacher()
    with torch.no_grad(), record_attention(teacher) as record:
        teacher(**random_batch())
    record.clear()
    with torch.no_grad():
        teacher(**random_batch())
    assert record.scores == []


def test_projections_for_relation_losses():
    teacher = bert_teacher()
    with torch.no_grad(), record_attention(teacher, scores=False, projections=True) as record:
        teacher(**random_batch())
    assert record.scores == []
    assert [tuple(q.shape) for q in record.queries] == [(3, 4, 7, 8)] * 2
    assert len(record.keys) == len(record.values) == 2


def test_tinybert_teacher_records_what_it_returns():
    torch.manual_seed(0)
    teacher = TinyBertModel(tiny_config()).eval()
    batch = random_batch()
    with torch.no_grad(), record_attention(teacher) as record:
        teacher(**batch)
    with torch.no_grad():
        returned = teacher(**batch, output_attention_scores=True).attention_scores
    for recorded, expected in zip(record.scores, returned, strict=True):
        torch.testing.assert_close(recorded, expected)


def test_attention_loss_is_zero_for_a_student_copied_from_the_teacher():
    teacher = bert_teacher()
    student = TinyBertModel(tiny_config()).eval()
    student.load_state_dict(teacher.state_dict())
    batch = random_batch()
    with torch.no_grad(), record_attention(teacher) as record:
        teacher(**batch)
    student_scores = student(**batch, output_attention_scores=True).attention_scores
    for student_layer, teacher_layer in zip(student_scores, record.scores, strict=True):
        assert attention_score_mse(student_layer, teacher_layer, batch["attention_mask"]).item() < 1e-10


def test_roberta_teacher():
    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
    teacher = RobertaModel(config).eval()
    with torch.no_grad(), record_attention(teacher) as record:
        teacher(**random_batch())
    assert [tuple(s.shape) for s in record.scores] == [(3, 4, 7, 7)] * 2


def test_scores_of_a_teacher_outside_the_registry_are_a_clear_error():
    config = MPNetConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4)
    with (
        pytest.raises(ValueError, match=r"MPNetModel adds terms outside q\.k.*attention_loss='relation'"),
        record_attention(MPNetModel(config)),
    ):
        pass


SHAPE = {**TINY_SHAPE, "num_hidden_layers": 2}
# ModernBERT's special tokens default to ids of its 50k vocabulary
MODERNBERT_TOKENS = dict(pad_token_id=0, bos_token_id=2, eos_token_id=3, cls_token_id=2, sep_token_id=3)
# every common encoder family, tiny, built in code: name -> () -> (config, base model class)
FAMILIES = {
    "bert": lambda: (BertConfig(**SHAPE), BertModel),
    "roberta": lambda: (RobertaConfig(**SHAPE), RobertaModel),
    "xlm-roberta": lambda: (XLMRobertaConfig(**SHAPE), XLMRobertaModel),
    "electra": lambda: (ElectraConfig(**SHAPE, embedding_size=16), ElectraModel),
    "distilbert": lambda: (
        DistilBertConfig(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37),
        DistilBertModel,
    ),
    "modernbert": lambda: (
        ModernBertConfig(**SHAPE, global_attn_every_n_layers=1, **MODERNBERT_TOKENS),
        ModernBertModel,
    ),
    "mpnet": lambda: (MPNetConfig(**SHAPE), MPNetModel),
    # DeBERTa-v3's layout: relative attention over shared position keys, both disentangled terms
    "deberta-v2": lambda: (
        DebertaV2Config(
            **SHAPE,
            relative_attention=True,
            pos_att_type=["p2c", "c2p"],
            share_att_key=True,
            position_buckets=8,
            max_relative_positions=16,
            norm_rel_ebd="layer_norm",
        ),
        DebertaV2Model,
    ),  # fmt: skip
}


@pytest.mark.parametrize("family", FAMILIES)
def test_queries_keys_and_values_of_every_encoder_family(family):
    """One (batch, heads, seq, head_size) query, key and value per layer, for the relation loss."""
    torch.manual_seed(0)
    config, model_class = FAMILIES[family]()
    teacher = model_class(config).eval()
    batch = random_batch()
    with torch.no_grad(), record_attention(teacher, scores=False, projections=True) as record:
        teacher(**batch)
    for captured in (record.queries, record.keys, record.values):
        assert [tuple(tensor.shape) for tensor in captured] == [(3, 4, 7, 8)] * 2, family


@pytest.mark.parametrize("family", ["mpnet", "deberta-v2"])
def test_projections_read_from_the_layers_are_the_layers_own(family):
    """Where the registry is bypassed, layer i's recorded queries are its query layer applied to its input (the
    hidden state before it), split per head; DeBERTa's second use of those layers (position keys) is not recorded."""
    torch.manual_seed(0)
    config, model_class = FAMILIES[family]()
    teacher = model_class(config).eval()
    batch = random_batch()
    with torch.no_grad(), record_attention(teacher, scores=False, projections=True) as record:
        hidden = teacher(**batch, output_hidden_states=True).hidden_states
    for layer_index, layer in enumerate(teacher.encoder.layer):
        attention = layer.attention.attn if family == "mpnet" else layer.attention.self
        query_layer = attention.q if family == "mpnet" else attention.query_proj
        with torch.no_grad():
            expected = query_layer(hidden[layer_index]).view(3, 7, 4, 8).transpose(1, 2)
        torch.testing.assert_close(record.queries[layer_index], expected)
    assert not any(handle for handle in query_layer._forward_hooks.values())  # hooks removed after the block
