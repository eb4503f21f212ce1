"""Pre-softmax scores recorded from stock transformers teachers through the attention registry."""

import pytest
import torch
from transformers import BertModel, MPNetConfig, MPNetModel, RobertaConfig, RobertaModel

from tinybert_hf import TinyBertModel
from tinybert_hf.distillation.attention_capture import record_attention
from tinybert_hf.distillation.losses import attention_score_mse

from .conftest import random_batch, tiny_bert_config, tiny_config


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


def test_teacher_outside_the_registry_is_a_clear_error():
    config = MPNetConfig(vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4)
    with (
        pytest.raises(ValueError, match="MPNetModel does not run its attention through"),
        record_attention(MPNetModel(config)),
    ):
        pass
