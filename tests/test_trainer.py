"""DistillationTrainer: the student moves toward the teacher, parts are logged, bad pairs fail at construction."""

import math

import pytest
import torch
from datasets import Dataset
from transformers import BertForSequenceClassification, BertModel, TrainerCallback

from tinybert_hf import TinyBertConfig, TinyBertForSequenceClassification
from tinybert_hf.distillation.arguments import DistillationTrainingArguments
from tinybert_hf.distillation.trainer import DistillationTrainer
from tinybert_hf.errors import BadInputError, NonFiniteLossError

from .conftest import tiny_bert_config


def teacher_and_student(student_hidden: int = 24, student_layers: int = 2):
    torch.manual_seed(0)
    # a wide initializer gives the random teacher peaked attention and large logits, like a trained one
    teacher = BertForSequenceClassification(tiny_bert_config(num_labels=2, initializer_range=0.2)).eval()
    config = TinyBertConfig.from_teacher_config(
        teacher.config,
        num_hidden_layers=student_layers,
        hidden_size=student_hidden,
        num_attention_heads=4,
        intermediate_size=37,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return teacher, TinyBertForSequenceClassification(config)


def dataset(rows: int = 64, seq: int = 12) -> Dataset:
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(5, 99, (rows, seq), generator=generator)
    attention_mask = torch.ones(rows, seq, dtype=torch.long)
    lengths = torch.randint(4, seq + 1, (rows,), generator=generator)
    for row, length in enumerate(lengths.tolist()):
        attention_mask[row, length:] = 0
        input_ids[row, length:] = 0
    labels = torch.randint(0, 2, (rows,), generator=generator)
    return Dataset.from_dict(
        {"input_ids": input_ids.tolist(), "attention_mask": attention_mask.tolist(), "labels": labels.tolist()}
    )


def arguments(tmp_path, **overrides) -> DistillationTrainingArguments:
    values = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=16,
        learning_rate=5e-3,
        max_steps=40,
        logging_steps=10,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        seed=0,
    )
    values.update(overrides)
    return DistillationTrainingArguments(**values)


def test_intermediate_stage_pulls_the_student_toward_the_teacher(tmp_path):
    teacher, student = teacher_and_student()
    teacher_before = {key: value.clone() for key, value in teacher.state_dict().items()}
    data = dataset()
    args = arguments(tmp_path, stage="intermediate", max_steps=120, logging_steps=30, learning_rate=1e-2)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=data)
    before = trainer.evaluate(eval_dataset=data)
    trainer.train()
    after = trainer.evaluate(eval_dataset=data)
    for part in ("eval_loss_embedding", "eval_loss_attention", "eval_loss_hidden"):
        assert after[part] < 0.25 * before[part], (part, before[part], after[part])
    logged = [entry for entry in trainer.state.log_history if "loss_hidden" in entry]
    assert len(logged) == 4 and "loss_prediction" not in logged[0]
    teacher_after = teacher.state_dict()
    assert all(torch.equal(teacher_before[key], teacher_after[key]) for key in teacher_before)
    assert not teacher.training


def test_prediction_stage_raises_agreement_with_the_teacher(tmp_path):
    teacher, student = teacher_and_student()
    data = dataset(rows=128)
    batch = {key: torch.tensor(data[key]) for key in ("input_ids", "attention_mask")}

    def agreement() -> float:
        student.eval()
        with torch.no_grad():
            return (student(**batch).logits.argmax(-1) == teacher(**batch).logits.argmax(-1)).float().mean().item()

    agreement_before = agreement()
    args = arguments(
        tmp_path, stage="prediction", prediction_loss="kl", temperature=2.0, max_steps=60, per_device_eval_batch_size=8
    )
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=args, train_dataset=data, eval_dataset=data
    )
    before = trainer.evaluate()
    trainer.train()
    after = trainer.evaluate()
    predictions = trainer.predict(data)  # gathers logits only, not hidden states or attention scores
    assert predictions.predictions.shape == (128, 2)
    assert after["eval_loss_prediction"] < 0.2 * before["eval_loss_prediction"]
    assert "eval_loss_attention" not in after
    assert agreement() >= max(0.95, agreement_before)


def test_subclass_adds_a_loss_term(tmp_path):
    class CosineTrainer(DistillationTrainer):
        def compute_loss_parts(self, student_outputs, teacher_outputs, inputs, **attention):
            parts = super().compute_loss_parts(student_outputs, teacher_outputs, inputs, **attention)
            student_last = student_outputs.fit_hidden_states[-1][:, 0]
            teacher_last = teacher_outputs.hidden_states[-1][:, 0]
            parts["cls_cosine"] = 1 - torch.cosine_similarity(student_last, teacher_last, dim=-1).mean()
            return parts

    teacher, student = teacher_and_student()
    trainer = CosineTrainer(
        model=student,
        teacher_model=teacher,
        args=arguments(tmp_path, stage="intermediate", max_steps=20),
        train_dataset=dataset(),
    )
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss_cls_cosine" in entry]
    assert len(logged) == 2 and logged[-1]["loss_cls_cosine"] < logged[0]["loss_cls_cosine"]


class TestArguments:
    def test_stage_sets_weights_and_explicit_weights_win(self, tmp_path):
        args = arguments(tmp_path, stage="intermediate", attention_loss_weight=0.5)
        assert args.loss_weights() == {
            "embedding": 1.0, "attention": 0.5, "hidden": 1.0, "prediction": 0.0, "hard_label": 0.0
        }  # fmt: skip

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"stage": "pretraining"}, "is not a TinyBERT stage"),
            ({"temperature": 0.0}, "`temperature` must be positive"),
            ({"attention_loss": "cosine"}, "`attention_loss` must be"),
            ({"layer_mapping": "every other"}, "neither 'uniform', 'last' nor"),
            ({"stage": "prediction", "prediction_loss_weight": 0.0}, "Every loss weight is 0"),
            ({"hidden_loss_weight": -1.0}, "must be non-negative"),
        ],
    )
    def test_bad_arguments(self, tmp_path, overrides, message):
        with pytest.raises(ValueError, match=message):
            arguments(tmp_path, **overrides)


class TestIncompatiblePairs:
    def build(self, tmp_path, teacher, student, **overrides):
        return DistillationTrainer(
            model=student, teacher_model=teacher, args=arguments(tmp_path, **overrides), train_dataset=dataset()
        )

    def test_vocabularies_differ(self, tmp_path):
        teacher, _ = teacher_and_student()
        config = TinyBertConfig(vocab_size=50, hidden_size=32, num_attention_heads=4)
        student = TinyBertForSequenceClassification(config)
        with pytest.raises(ValueError, match="50 tokens but the teacher's has 99"):
            self.build(tmp_path, teacher, student)

    def test_layer_mapping_out_of_range(self, tmp_path):
        teacher, student = teacher_and_student()
        with pytest.raises(ValueError, match=r"teacher layers \[7\], but the teacher has 4 layers"):
            self.build(tmp_path, teacher, student, layer_mapping="1,7")

    def test_missing_projection(self, tmp_path):
        teacher, student = teacher_and_student()
        student.config.fit_size = None
        with pytest.raises(ValueError, match="set `fit_size=32`"):
            self.build(tmp_path, teacher, student)

    def test_head_counts_differ(self, tmp_path):
        teacher, _ = teacher_and_student()
        config = TinyBertConfig.from_teacher_config(teacher.config, num_hidden_layers=2, hidden_size=24,
                                                    num_attention_heads=6, intermediate_size=37)  # fmt: skip
        with pytest.raises(ValueError, match="has 6 attention heads and teacher layer 1 has 4"):
            self.build(tmp_path, teacher, TinyBertForSequenceClassification(config))

    def test_teacher_without_task_head_for_prediction_stage(self, tmp_path):
        teacher, student = teacher_and_student()
        with pytest.raises(ValueError, match="needs a teacher with a task head, got BertModel"):
            self.build(tmp_path, BertModel(teacher.config), student, stage="prediction")

    def test_label_counts_differ(self, tmp_path):
        teacher, student = teacher_and_student()
        teacher = BertForSequenceClassification(tiny_bert_config(num_labels=3))
        with pytest.raises(ValueError, match="teacher predicts 3 labels and the student 2"):
            self.build(tmp_path, teacher, student, stage="prediction")

    def test_label_counts_differ_with_attention_relations(self, tmp_path):
        # the relation loss's own check ran first and once returned early, skipping the prediction loss's checks
        teacher, student = teacher_and_student()
        teacher = BertForSequenceClassification(tiny_bert_config(num_labels=3))
        with pytest.raises(ValueError, match="teacher predicts 3 labels and the student 2"):
            self.build(
                tmp_path, teacher, student, stage="intermediate", prediction_loss_weight=1.0, attention_loss="relation"
            )


def one_update(tmp_path, rows: int, batch_size: int, accumulation: int, **overrides):
    """The student after one SGD step over all `rows` rows, and that step's log entry."""
    teacher, student = teacher_and_student()
    values = dict(
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        logging_steps=1,
        optim="sgd",  # an update proportional to the gradient: Adam's first step would hide a wrong scale
        learning_rate=0.5,
        lr_scheduler_type="constant",
        max_grad_norm=0.0,
    )
    values.update(overrides)
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=arguments(tmp_path, **values), train_dataset=dataset(rows=rows)
    )
    trainer.train()
    return {key: value.detach().clone() for key, value in student.state_dict().items()}, trainer.state.log_history[0]


@pytest.mark.parametrize(
    "objective",
    [
        {"stage": "intermediate"},  # token and query-key-pair means
        {"stage": "intermediate", "attention_loss": "kl"},
        {"stage": "prediction", "hard_label_loss_weight": 0.5},  # example and label means
    ],
    ids=["intermediate-mse", "intermediate-kl", "prediction-hard-label"],
)
def test_gradient_accumulation_gives_the_update_of_the_large_batch(tmp_path, objective):
    """16 rows of random lengths 4..12: micro-batches hold different numbers of real tokens, so averaging
    micro-batch means (what Trainer does for a loss it does not know) would give a different update."""
    _, untouched = teacher_and_student()
    large, large_log = one_update(tmp_path, rows=16, batch_size=16, accumulation=1, **objective)
    changed = [key for key in large if not torch.equal(large[key], untouched.state_dict()[key])]
    assert len(changed) > 10
    for batch_size, accumulation in ((8, 2), (4, 4)):
        accumulated, accumulated_log = one_update(
            tmp_path, rows=16, batch_size=batch_size, accumulation=accumulation, **objective
        )
        for key in large:
            torch.testing.assert_close(accumulated[key], large[key], rtol=1e-5, atol=1e-6, msg=key)
        for key, value in large_log.items():
            if key.startswith("loss"):
                assert accumulated_log[key] == pytest.approx(value, rel=1e-5), key


def test_relation_loss_transfers_attention_across_head_counts(tmp_path):
    """Teacher: 4 heads of 8; student: 2 heads of 12. TinyBERT's score losses cannot pair these heads."""
    teacher, _ = teacher_and_student()
    config = TinyBertConfig.from_teacher_config(teacher.config, num_hidden_layers=2, hidden_size=24,
                                                num_attention_heads=2, intermediate_size=37,
                                                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # fmt: skip
    student = TinyBertForSequenceClassification(config)
    data = dataset()
    args = arguments(
        tmp_path, attention_loss="relation", relation_heads=2, attention_loss_weight=1.0, embedding_loss_weight=0.0,
        hidden_loss_weight=0.0, prediction_loss_weight=0.0, max_steps=120, logging_steps=30, learning_rate=1e-2,
    )  # fmt: skip
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=data)
    before = trainer.evaluate(eval_dataset=data)["eval_loss_attention"]
    trainer.train()
    after = trainer.evaluate(eval_dataset=data)["eval_loss_attention"]
    assert after < 0.5 * before, (before, after)
    assert student.config._attn_implementation == "sdpa"  # recording switched back


@pytest.mark.parametrize("family", ["mpnet", "deberta-v2"])
def test_relation_loss_from_teachers_outside_the_attention_registry(tmp_path, family):
    """MPNet and DeBERTa-v3 compute attention themselves: their queries, keys and values are read from their
    projection layers, and a TinyBERT student learns their relations; their pre-softmax scores hold position terms
    a student cannot match, so score losses are refused before any step, naming the loss that works."""
    from .test_attention_capture import FAMILIES

    torch.manual_seed(0)
    config, model_class = FAMILIES[family]()
    config.initializer_range = 0.2  # peaked attention, as in a trained teacher
    teacher = model_class(config).eval()
    shape = dict(num_hidden_layers=2, hidden_size=24, num_attention_heads=2, intermediate_size=37)
    student_config = TinyBertConfig.from_teacher_config(
        teacher.config, **shape, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    student = TinyBertForSequenceClassification(student_config)
    data = dataset().remove_columns("labels")
    weights = dict(attention_loss_weight=1.0, embedding_loss_weight=0.0, hidden_loss_weight=0.0,
                   prediction_loss_weight=0.0)  # fmt: skip
    with pytest.raises(BadInputError, match=r"adds terms outside q\.k.*attention_loss='relation'"):
        DistillationTrainer(
            model=student, teacher_model=teacher, args=arguments(tmp_path, **weights), train_dataset=data
        )
    args = arguments(tmp_path, attention_loss="relation", relation_heads=2, max_steps=80, logging_steps=20,
                     learning_rate=1e-2, **weights)  # fmt: skip
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=data)
    before = trainer.evaluate(eval_dataset=data)["eval_loss_attention"]
    trainer.train()
    after = trainer.evaluate(eval_dataset=data)["eval_loss_attention"]
    assert math.isfinite(before) and after < 0.7 * before, (before, after)


def test_relation_heads_must_divide_both_widths(tmp_path):
    teacher, _ = teacher_and_student()
    config = TinyBertConfig.from_teacher_config(teacher.config, num_hidden_layers=2, hidden_size=24,
                                                num_attention_heads=2, intermediate_size=37)  # fmt: skip
    args = arguments(tmp_path, stage="intermediate", attention_loss="relation", relation_heads=3)
    with pytest.raises(ValueError, match=r"into 3 relation heads, which does not divide \{'teacher layer 1': 32\}"):
        DistillationTrainer(
            model=TinyBertForSequenceClassification(config), teacher_model=teacher, args=args, train_dataset=dataset()
        )


def test_bf16_on_cpu_gives_finite_losses(tmp_path):
    teacher, student = teacher_and_student()
    args = arguments(tmp_path, bf16=True, max_steps=20, logging_steps=10, hard_label_loss_weight=1.0)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=dataset())
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss_attention" in entry]
    parts = ("loss", "loss_embedding", "loss_attention", "loss_hidden", "loss_prediction", "loss_hard_label")
    assert len(logged) == 2
    for entry in logged:
        assert all(math.isfinite(entry[part]) for part in parts), entry
    assert logged[-1]["loss"] < logged[0]["loss"]


def test_unlabelled_evaluation_still_reports_the_distillation_loss(tmp_path):
    """Trainer skips the loss of batches without labels; general distillation evaluates on unlabelled text."""
    teacher, student = teacher_and_student()
    unlabelled = dataset(rows=16).remove_columns("labels")
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=arguments(tmp_path, stage="intermediate"), train_dataset=unlabelled
    )
    metrics = trainer.evaluate(eval_dataset=unlabelled)
    parts = sum(metrics[f"eval_loss_{part}"] for part in ("embedding", "attention", "hidden"))
    assert metrics["eval_loss"] == pytest.approx(parts, rel=1e-5)
    assert trainer.evaluate(eval_dataset=unlabelled, metric_key_prefix="dev")["dev_loss_hidden"] > 0


class Poison(TrainerCallback):
    """Fill `tensor` with `value` at the end of step `step` (a fault injected into a running distillation)."""

    def __init__(self, step: int, tensor: torch.Tensor, value: float):
        self.step, self.tensor, self.value = step, tensor, value

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            with torch.no_grad():
                self.tensor.fill_(self.value)


def _guarded_trainer(tmp_path, poison) -> DistillationTrainer:
    teacher, student = teacher_and_student()
    args = arguments(tmp_path, stage="intermediate", max_steps=8, save_strategy="steps", save_steps=2)
    tensor = poison(teacher, student)
    return DistillationTrainer(
        model=student, teacher_model=teacher, args=args, train_dataset=dataset(), callbacks=[Poison(3, *tensor)]
    )


def test_a_nan_loss_part_stops_training_naming_the_part_and_the_step(tmp_path):
    # the teacher's last layer outputs NaN from step 4 on: only the hidden-state loss (layer 3 is mapped) sees it
    trainer = _guarded_trainer(
        tmp_path, lambda teacher, _: (teacher.bert.encoder.layer[3].output.dense.bias, math.nan)
    )
    with pytest.raises(
        NonFiniteLossError, match=r"the hidden loss is nan at step 4 .*this step changed no weight"
    ) as error:
        trainer.train()
    message = str(error.value)
    assert "attention loss" not in message and "embedding loss" not in message
    assert f"The last good checkpoint is {tmp_path / 'checkpoint-2'}" in message
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint-2"]
    saved = TinyBertForSequenceClassification.from_pretrained(tmp_path / "checkpoint-2")
    assert all(torch.isfinite(parameter).all() for parameter in saved.parameters())
    # the student in memory never took a step on the NaN loss either
    assert all(torch.isfinite(parameter).all() for parameter in trainer.model.parameters())


def test_diverged_weights_are_never_saved_as_a_checkpoint(tmp_path):
    # an update that overflows the weights (inf) at step 4, which is a save step: the save is refused
    trainer = _guarded_trainer(tmp_path, lambda _, student: (student.classifier.weight, math.inf))
    trainer.callback_handler.callbacks[-1].step = 4
    with pytest.raises(NonFiniteLossError, match=r"weights are NaN or infinite at step 4 \(classifier.weight"):
        trainer.train()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint-2"]


def test_the_guard_can_be_turned_off(tmp_path):
    teacher, student = teacher_and_student()
    args = arguments(tmp_path, stage="intermediate", max_steps=4, stop_on_nonfinite_loss=False)
    poison = Poison(1, teacher.bert.encoder.layer[3].output.dense.bias, math.nan)
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=args, train_dataset=dataset(), callbacks=[poison]
    )
    trainer.train()  # Trainer's own behaviour: the NaN goes into the weights
    assert not all(torch.isfinite(parameter).all() for parameter in trainer.model.parameters())
