"""Cached teacher logits: the values the teacher gives, reused from disk, and a trainer that skips the teacher."""

import pytest
import torch
from datasets import Dataset, load_from_disk
from transformers import BertForTokenClassification, DataCollatorForTokenClassification

from tinybert_hf.distillation.teacher_cache import TEACHER_LOGITS_COLUMN, TeacherLogitsCollator, add_teacher_logits
from tinybert_hf.distillation.trainer import DistillationTrainer

from .conftest import tiny_bert_config
from .test_trainer import arguments, dataset, teacher_and_student


def count_forward_calls(model: torch.nn.Module) -> list[int]:
    calls = [0]
    model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def unpadded(data: Dataset) -> Dataset:
    """Rows cut to their real length, as a tokenizer without padding gives them."""
    return data.map(
        lambda row: {key: row[key][: sum(row["attention_mask"])] for key in ("input_ids", "attention_mask")}
    )


def test_cached_logits_are_the_teachers_on_each_row_alone():
    teacher, _ = teacher_and_student()
    data = unpadded(dataset(rows=10))
    cached = add_teacher_logits(data, teacher, batch_size=4)  # batches pad rows to different lengths
    for row in cached:
        expected = teacher(input_ids=torch.tensor([row["input_ids"]])).logits[0]
        torch.testing.assert_close(torch.tensor(row[TEACHER_LOGITS_COLUMN]), expected, atol=1e-5, rtol=1e-5)
    assert not teacher.training


def test_cache_is_reused_from_disk_and_redone_for_another_teacher(tmp_path):
    teacher, _ = teacher_and_student()
    unpadded(dataset(rows=10)).save_to_disk(str(tmp_path / "data"))
    calls = count_forward_calls(teacher)
    first = add_teacher_logits(load_from_disk(str(tmp_path / "data")), teacher)
    assert calls[0] > 0 and first.cache_files[0]["filename"].startswith(str(tmp_path / "data"))
    calls[0] = 0
    second = add_teacher_logits(load_from_disk(str(tmp_path / "data")), teacher)
    assert calls[0] == 0, "a second run with the same data and teacher must read the cache"
    assert second[TEACHER_LOGITS_COLUMN] == first[TEACHER_LOGITS_COLUMN]
    with torch.no_grad():
        teacher.classifier.bias += 1.0
    third = add_teacher_logits(load_from_disk(str(tmp_path / "data")), teacher)
    assert calls[0] > 0
    assert third[0][TEACHER_LOGITS_COLUMN][0] == pytest.approx(first[0][TEACHER_LOGITS_COLUMN][0] + 1.0, abs=1e-5)


def test_token_logits_are_trimmed_per_row_and_padded_back_by_the_collator():
    torch.manual_seed(0)
    teacher = BertForTokenClassification(tiny_bert_config(num_labels=3)).eval()
    data = unpadded(dataset(rows=6)).remove_columns("labels")
    cached = add_teacher_logits(data, teacher)
    lengths = [len(row["input_ids"]) for row in cached]
    assert [len(row[TEACHER_LOGITS_COLUMN]) for row in cached] == lengths and len(set(lengths)) > 1

    class Tokenizer:  # the two attributes DataCollatorForTokenClassification's padding reads
        pad_token_id, padding_side = 0, "right"

        def pad(self, features, **kwargs):
            longest = max(len(feature["input_ids"]) for feature in features)
            return {
                key: torch.tensor([feature[key] + [0] * (longest - len(feature[key])) for feature in features])
                for key in features[0]
            }

    collator = TeacherLogitsCollator(DataCollatorForTokenClassification(Tokenizer()))
    batch = collator([cached[index] for index in range(6)])
    assert batch[TEACHER_LOGITS_COLUMN].shape == (6, max(lengths), 3)
    full = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(batch[TEACHER_LOGITS_COLUMN][real], full[real], atol=1e-5, rtol=1e-5)
    assert batch[TEACHER_LOGITS_COLUMN][~real].abs().sum() == 0


def test_trainer_uses_the_cache_instead_of_the_teacher(tmp_path):
    teacher, student = teacher_and_student()
    data = dataset(rows=32)
    args = arguments(tmp_path, stage="prediction", temperature=2.0, max_steps=2, logging_steps=1)
    uncached = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=data)
    uncached.train()
    reference = [entry["loss_prediction"] for entry in uncached.state.log_history if "loss_prediction" in entry]

    teacher, student = teacher_and_student()
    cached_data = add_teacher_logits(data, teacher)
    calls = count_forward_calls(teacher)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=cached_data)
    trainer.train()
    logged = [entry["loss_prediction"] for entry in trainer.state.log_history if "loss_prediction" in entry]
    assert calls[0] == 0, "the teacher ran although every row had cached logits"
    assert logged == pytest.approx(reference, rel=1e-4)
