"""The recipe's student initializations, built on a tiny teacher (no training), and a whole tiny run."""

import dataclasses
import json
from dataclasses import asdict

import pytest
import torch
from datasets import Dataset
from transformers import (
    AutoModelForSequenceClassification,
    BertForSequenceClassification,
    BertModel,
    MPNetConfig,
    MPNetModel,
)

from tinybert_hf import TinyBertForSequenceClassification
from tinybert_hf.recipe.arguments import RecipeArguments
from tinybert_hf.recipe.run import run_recipe
from tinybert_hf.recipe.steps import build_student

from .conftest import tiny_bert_config

NAMES = ["negative", "positive"]


@pytest.fixture
def teacher():
    torch.manual_seed(0)
    return BertForSequenceClassification(tiny_bert_config(num_labels=2)).eval()


@pytest.fixture
def calibration():
    generator = torch.Generator().manual_seed(0)
    rows = [torch.randint(5, 99, (int(n),), generator=generator).tolist() for n in torch.randint(3, 12, (40,))]
    return Dataset.from_dict({"input_ids": rows, "labels": [i % 2 for i in range(40)]})


def arguments(tmp_path, **values) -> RecipeArguments:
    shape = dict(student_layers=2, student_hidden_size=24, student_attention_heads=4, student_intermediate_size=20)
    return RecipeArguments(output_dir=str(tmp_path), **{**shape, **values})


def test_pruned_teacher_student_has_the_requested_shape(tmp_path, teacher, calibration):
    for importance in ("activation", "taylor", "magnitude"):
        args = arguments(tmp_path, student_init="pruned-teacher", pruning_importance=importance)
        student, record = build_student(teacher, NAMES, args, calibration=calibration)
        config = student.config
        assert isinstance(student, TinyBertForSequenceClassification)
        assert (config.num_hidden_layers, config.hidden_size, config.head_size, config.intermediate_size) == (
            2, 24, 6, 20,
        )  # fmt: skip
        assert config.fit_size == 32 and record["teacher_layers"] == [1, 3] and record["importance"] == importance
    with pytest.raises(ValueError, match="calibration"):
        build_student(teacher, NAMES, arguments(tmp_path, student_init="pruned-teacher"))


def test_other_initializations(tmp_path, teacher):
    subset, record = build_student(teacher, NAMES, arguments(tmp_path, student_init="teacher_layers"))  # old name
    assert subset.config.hidden_size == 32 and record == {"student_init": "layer-subset", "teacher_layers": [1, 3]}
    random_student, record = build_student(teacher, NAMES, arguments(tmp_path, student_init="random"))
    assert random_student.config.hidden_size == 24 and random_student.config.id2label == {0: "negative", 1: "positive"}
    random_student.save_pretrained(tmp_path / "general")
    for value in (f"general:{tmp_path / 'general'}", str(tmp_path / "general")):
        general, record = build_student(teacher, NAMES, arguments(tmp_path, student_init=value))
        assert general.config.hidden_size == 24 and record["student_init"].startswith("general:")
    with pytest.raises(ValueError, match="no general-distilled student"):
        build_student(teacher, NAMES, arguments(tmp_path, student_init="pruned_teacher"))


def tiny_run(tmp_path, tiny_tokenizer, backbone, **values) -> RecipeArguments:
    """Arguments of a whole recipe run on 24 tiny rows from the saved `backbone` (a task-less encoder)."""
    backbone.save_pretrained(tmp_path / "backbone")
    tiny_tokenizer.save_pretrained(tmp_path / "backbone")
    rows = ["text,label"] + [
        f"{'good film' if i % 2 else 'dull plot'} {i},{'pos' if i % 2 else 'neg'}" for i in range(24)
    ]
    for split in ("train", "dev", "test"):
        (tmp_path / f"{split}.csv").write_text("\n".join(rows) + "\n")
    options = dict(
        teacher_backbone=str(tmp_path / "backbone"), train_file=str(tmp_path / "train.csv"),
        validation_file=str(tmp_path / "dev.csv"), test_file=str(tmp_path / "test.csv"), teacher_epochs=1,
        intermediate_epochs=1, prediction_epochs=1, augment=False, int8=False, batch_size=8, speed_batch_size=2,
        speed_seq_length=8,
    )  # fmt: skip
    return arguments(tmp_path / "run", **{**options, **values})


def test_run_recipe_changes_none_of_its_arguments(tmp_path, tiny_tokenizer):
    """What the recipe resolves (a max_length beyond the teacher's 64 positions) goes into the copy results.json
    records: the object the caller parsed is the same after the run, field for field."""
    torch.manual_seed(0)
    args = tiny_run(tmp_path, tiny_tokenizer, BertModel(tiny_bert_config()), student_init="layer-subset",
                    max_length=1000)  # fmt: skip
    before = asdict(args)
    results = run_recipe(args)
    assert asdict(args) == before
    assert results["settings"]["max_length"] == 64 and args.max_length == 1000
    assert json.loads((tmp_path / "run" / "results.json").read_text())["settings"]["max_length"] == 64
    intermediate = results["distillation"]["stages"][0]
    assert intermediate["attention_loss"] == "mse"  # 'auto': the teacher's scores, heads that pair (4 and 4)


def test_an_mpnet_teacher_teaches_a_random_tinybert_student_and_a_pruned_mpnet_one(tmp_path, tiny_tokenizer):
    """The recipe takes an encoder outside BERT's layout. A random student is a TinyBERT: 'auto' picks the relation
    loss (MPNet's scores hold its relative position bias), and the teacher never sees the token types it has no
    table for. A student cut from it stays an MPNet, with its int8 ONNX twin, that the Auto classes load, and the
    fine-tuned teacher of the first run is reused as `--teacher`."""
    torch.manual_seed(0)
    backbone = MPNetModel(MPNetConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=37))  # fmt: skip
    args = tiny_run(tmp_path, tiny_tokenizer, backbone, student_init="random")
    results = run_recipe(args)
    stages = results["distillation"]["stages"]
    assert stages[0]["attention_loss"] == "relation"
    student = results["models"]["student (distilled)"]
    assert 0.0 <= student["test"]["accuracy"] <= 1.0 and student["shape"] == "2x24"
    assert json.loads((tmp_path / "run" / "student" / "config.json").read_text())["model_type"] == "tinybert"

    pruned_args = dataclasses.replace(
        args, output_dir=str(tmp_path / "pruned"), teacher=str(tmp_path / "run" / "teacher"), teacher_backbone=None,
        student_init="pruned-teacher", int8=True,
    )  # fmt: skip
    results = run_recipe(pruned_args)
    assert results["distillation"]["stages"][0]["attention_loss"] == "relation"
    output = tmp_path / "pruned" / "student"
    config = json.loads((output / "config.json").read_text())
    assert config["model_type"] == "mpnet" and config["hidden_size"] == 24 and config["num_hidden_layers"] == 2
    assert not (output / "fit_dense.safetensors").exists()  # the projection served distillation only
    loaded = AutoModelForSequenceClassification.from_pretrained(output)
    assert type(loaded).__name__ == "MPNetForSequenceClassification"
    assert "student (int8 ONNX)" in results["models"]
    assert 0.0 <= results["models"]["student (int8 ONNX)"]["test"]["accuracy"] <= 1.0
    card = (output / "README.md").read_text()
    assert "A 2x24 MPNet student" in card and "trust_remote_code" not in card and "import tinybert_hf" not in card


def test_frozen_word_embeddings_stay_as_initialized_through_both_stages(tmp_path, tiny_tokenizer):
    """A layer-subset student starts from the teacher's word embeddings: frozen, it ships them unchanged while its
    layers train; not frozen (the default), the same run from the same teacher moves them."""
    torch.manual_seed(0)
    backbone = BertModel(tiny_bert_config())
    frozen = run_recipe(tiny_run(tmp_path, tiny_tokenizer, backbone, student_init="layer-subset",
                                 freeze_word_embeddings=True))  # fmt: skip
    assert frozen["settings"]["freeze_word_embeddings"] is True
    run = tmp_path / "run"
    teacher = AutoModelForSequenceClassification.from_pretrained(run / "teacher").get_input_embeddings().weight
    student = AutoModelForSequenceClassification.from_pretrained(run / "student")
    assert torch.equal(student.get_input_embeddings().weight, teacher)

    moved = run_recipe(dataclasses.replace(tiny_run(tmp_path / "moved", tiny_tokenizer, backbone,
                                                    student_init="layer-subset"), teacher=str(run / "teacher"),
                                           teacher_backbone=None))  # fmt: skip
    assert moved["settings"]["freeze_word_embeddings"] is False
    student = AutoModelForSequenceClassification.from_pretrained(tmp_path / "moved" / "run" / "student")
    assert not torch.equal(student.get_input_embeddings().weight, teacher)


def test_stage_two_trains_at_its_own_learning_rate(tmp_path, tiny_tokenizer):
    """`prediction_learning_rate` is stage 2's alone: at 0 the final student is the stage-1 student, weight for
    weight, while stage 1 (at `learning_rate`) moved the student; the card's record gives each stage its rate."""
    torch.manual_seed(0)
    results = run_recipe(tiny_run(tmp_path, tiny_tokenizer, BertModel(tiny_bert_config()),
                                  student_init="layer-subset", prediction_learning_rate=0.0))  # fmt: skip
    run = tmp_path / "run"
    stage_one = AutoModelForSequenceClassification.from_pretrained(run / "student_intermediate")
    final = AutoModelForSequenceClassification.from_pretrained(run / "student")
    weights, stage_one_weights = final.state_dict(), stage_one.state_dict()
    assert weights.keys() == stage_one_weights.keys()
    assert all(torch.equal(weights[name], stage_one_weights[name]) for name in weights)
    teacher = AutoModelForSequenceClassification.from_pretrained(run / "teacher").get_input_embeddings().weight
    assert not torch.equal(final.get_input_embeddings().weight, teacher)  # stage 1 trained
    stages = {stage["name"]: stage["learning_rate"] for stage in results["distillation"]["stages"]}
    assert stages == {"intermediate": 1e-4, "prediction": 0.0}


def test_auto_transfer_text_and_augmentation_follow_the_task():
    """'auto': single texts learn from 2,000 joined snippets instead of augmented rows; pairs (nothing to join)
    keep augmentation and no transfer rows, tokens neither; text the user names is learnt from (2,000 rows unless
    told otherwise); what the user sets is kept as given."""
    single = RecipeArguments().resolved_for_task(single_texts=True)
    assert (single.transfer_text, single.transfer_rows, single.augment) == (["joined"], 2000, False)
    pairs = RecipeArguments().resolved_for_task(single_texts=False)
    assert (pairs.transfer_text, pairs.transfer_rows, pairs.augment) == (["general"], 0, True)
    tokens = RecipeArguments().resolved_for_task(single_texts=False, token_level=True)
    assert (tokens.transfer_rows, tokens.augment) == (0, False)  # replacements would misalign the tags
    given = RecipeArguments(transfer_text=["auto", "mine.txt"], transfer_rows=50, augment=True)
    resolved = given.resolved_for_task(single_texts=True)
    assert (resolved.transfer_text, resolved.transfer_rows, resolved.augment) == (["mine.txt", "joined"], 50, True)
    assert given.transfer_text == ["auto", "mine.txt"] and given.transfer_rows == 50  # a copy: the caller's is kept
    off = RecipeArguments(transfer_rows=0).resolved_for_task(single_texts=True)
    assert (off.transfer_rows, off.augment) == (0, True)  # no joined rows learnt: augmentation is on again
    # text the user names is used at the default size, in place of augmentation, whatever the task
    traffic = RecipeArguments(transfer_text=["traffic.txt"]).resolved_for_task(single_texts=True)
    assert (traffic.transfer_text, traffic.transfer_rows, traffic.augment) == (["traffic.txt"], 2000, False)
    general = RecipeArguments(transfer_text=["general"]).resolved_for_task(single_texts=False)
    assert (general.transfer_text, general.transfer_rows, general.augment) == (["general"], 2000, False)
    # a named source in any case is that source for every step that checks for it (joined needs the training texts)
    assert RecipeArguments(transfer_text=["Joined", " WIKIPEDIA", "Mine.txt"]).transfer_text == [
        "joined", "wikipedia", "Mine.txt"
    ]  # fmt: skip
