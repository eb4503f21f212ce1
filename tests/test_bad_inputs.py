"""The bad-input table: each case fails early with an error that names the input and the fix, and nothing the user
owns is written over. (Faults during a run, kills and NaNs, are in test_resume.py and test_trainer.py.)"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import (
    AutoConfig,
    BertForSequenceClassification,
    BertModel,
    BertTokenizer,
    GPT2Config,
    GPT2ForSequenceClassification,
)
from transformers.utils import logging as transformers_logging

from tinybert_hf import TinyBertConfig, TinyBertForSequenceClassification
from tinybert_hf.data.loading import load_task_dataset
from tinybert_hf.distillation.arguments import DistillationTrainingArguments
from tinybert_hf.distillation.general_distillation import GeneralDistillationArguments, corpus_stream
from tinybert_hf.distillation.trainer import DistillationTrainer
from tinybert_hf.errors import BadInputError, OutputDirectoryError
from tinybert_hf.recipe.arguments import RecipeArguments
from tinybert_hf.recipe.output_directory import dataset_digest, prepare_output_dir
from tinybert_hf.recipe.run import fitted_to_teacher, warn_unused_options
from tinybert_hf.recipe.steps import build_student, load_teacher

from .conftest import TINY_VOCAB, tiny_bert_config
from .test_cli import cli, offline_env
from .test_trainer import dataset as token_rows
from .test_trainer import teacher_and_student


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def digest(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def csv_files(tmp_path: Path, train: str, dev: str = "text,label\ngood film,pos\n", test: str | None = None):
    test = dev if test is None else test
    return dict(
        train_file=str(write(tmp_path / "train.csv", train)),
        validation_file=str(write(tmp_path / "dev.csv", dev)),
        test_file=str(write(tmp_path / "test.csv", test)),
    )


@pytest.fixture
def library_warnings(caplog):
    """caplog holding tinybert_hf's warnings (transformers' logging does not propagate to the root logger)."""
    transformers_logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING, logger="tinybert_hf"):
            yield caplog
    finally:
        transformers_logging.disable_propagation()


GOOD_TRAIN = "text,label\ngood film,pos\ndull plot,neg\ngreat cast,pos\n"


# ---- data files ------------------------------------------------------------------------------------------------


def test_an_empty_split_is_refused_naming_the_file(tmp_path):
    files = csv_files(tmp_path, "text,label\n")
    with pytest.raises(BadInputError, match=r"The train split \(.*train.csv\) has no rows"):
        load_task_dataset(**files)
    with pytest.raises(BadInputError, match=r"The validation split \(.*dev.csv\) has no rows"):
        load_task_dataset(**csv_files(tmp_path, GOOD_TRAIN, dev="text,label\n"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"text_column": "sentence"}, r"no column 'sentence' for 'text' .*--text_column"),
        ({"label_column": "sentiment"}, r"no column 'sentiment' for 'label' .*--label_column"),
    ],
)
def test_a_missing_column_names_the_columns_there_are(tmp_path, options, message):
    with pytest.raises(BadInputError, match=message):
        load_task_dataset(**csv_files(tmp_path, GOOD_TRAIN), **options)


def test_bytes_that_are_not_utf8_are_located(tmp_path):
    latin1 = "text,label\ngood film,pos\nun film génial,pos\n".encode("latin-1")
    files = csv_files(tmp_path, latin1)
    before = Path(files["train_file"]).read_bytes()
    with pytest.raises(BadInputError, match=r"train.csv is not UTF-8 text: byte 0xe9 at line 3 \(byte 34\)"):
        load_task_dataset(**files)
    assert Path(files["train_file"]).read_bytes() == before
    truncated = "text,label\ngood film,pos\ncaf\u00e9,pos\n".encode()[:-6]  # ends inside the two bytes of é
    with pytest.raises(BadInputError, match="ends in the middle of a character"):
        load_task_dataset(**csv_files(tmp_path, truncated))


def test_a_general_distillation_corpus_is_checked_before_streaming(tmp_path):
    write(tmp_path / "a.txt", "good film\n")
    write(tmp_path / "b.txt", b"good film\ncaf\xe9\n")
    with pytest.raises(BadInputError, match=r"b.txt is not UTF-8 text: byte 0xe9 at line 2"):
        corpus_stream(GeneralDistillationArguments(corpus=str(tmp_path / "*.txt")))
    with pytest.raises(FileNotFoundError, match="No corpus file matches"):
        corpus_stream(GeneralDistillationArguments(corpus=str(tmp_path / "missing*.txt")))


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ("text,label\ngood film,pos\n,neg\n   ,pos\n", r"2 rows of .*train.csv have empty text in column 'text' "
                                                    r"\(lines 3, 4\)"),
        ("text,label\ngood film,pos\ndull plot,\n", r"1 rows of .*train.csv have no label in column 'label' "
                                                  r"\(line 3\)"),
    ],
)  # fmt: skip
def test_empty_texts_and_missing_labels_are_listed(tmp_path, train, message):
    with pytest.raises(BadInputError, match=message):
        load_task_dataset(**csv_files(tmp_path, train))


def test_bad_rows_are_named_by_the_line_the_file_has_them_on(tmp_path):
    # a quoted review spanning two lines and a blank line: the data row index is not the line number minus 2
    train = 'review,label\n"a good\nfilm",pos\n\ndull plot,neg\n  ,pos\nfine,neg\n'
    with pytest.raises(BadInputError, match=r"1 rows of .*train.csv have empty text in column 'review' \(line 6\)"):
        load_task_dataset(**csv_files(tmp_path, train, dev="review,label\ngood,pos\n"), text_column="review")
    rows = [{"text": "good", "label": "pos"}, {"text": " ", "label": "neg"}]
    jsonl = write(tmp_path / "train.jsonl", "\n\n".join(json.dumps(row) for row in rows) + "\n")
    with pytest.raises(BadInputError, match=r"1 rows of .*train.jsonl have empty text in column 'text' \(line 3\)"):
        load_task_dataset(train_file=str(jsonl))
    parquet = tmp_path / "train.parquet"
    Dataset.from_list(rows).to_parquet(parquet)
    with pytest.raises(BadInputError, match=r"\(rows \[1\], 0-based\)"):
        load_task_dataset(train_file=str(parquet))


def test_token_rows_must_have_tokens_and_one_tag_per_token(tmp_path):
    rows = [{"words": ["Paris"], "tags": ["B-LOC"]}, {"words": ["in", "York"], "tags": ["O"]}]
    path = write(tmp_path / "ner.jsonl", "\n".join(json.dumps(row) for row in rows * 10))
    with pytest.raises(BadInputError, match="different number of tokens and tags"):
        load_task_dataset(train_file=str(path), text_column="words", label_column="tags", task="token-classification")


def test_a_label_only_dev_or_test_has_is_refused(tmp_path):
    files = csv_files(tmp_path, GOOD_TRAIN, dev="text,label\ngood film,pos\nso so,neutral\n")
    with pytest.raises(
        BadInputError, match=r"validation split has labels the train split does not have: \['neutral'\]"
    ):
        load_task_dataset(**files)


def test_a_dataset_that_does_not_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="Data file .*missing.csv does not exist"):
        load_task_dataset(train_file=str(tmp_path / "missing.csv"))
    with pytest.raises(FileNotFoundError, match="The data set path ./no/such/dir does not exist"):
        load_task_dataset("./no/such/dir")
    with pytest.raises(FileNotFoundError, match="No data set 'no-such-org/no-such-data'"):
        load_task_dataset("no-such-org/no-such-data")  # offline in the tests: the Hub cannot be reached


# ---- models ----------------------------------------------------------------------------------------------------


def test_a_teacher_without_a_task_head_is_refused_for_the_prediction_stage(tmp_path):
    torch.manual_seed(0)
    BertModel(tiny_bert_config()).save_pretrained(tmp_path / "encoder")
    args = RecipeArguments(output_dir=str(tmp_path / "out"))
    with pytest.raises(
        BadInputError, match=r"has no text-classification head \(architectures: \['BertModel'\]\).*--teacher_backbone"
    ):
        load_teacher(tmp_path / "encoder", ["neg", "pos"], args)
    teacher, student = teacher_and_student()
    with pytest.raises(BadInputError, match="prediction-layer loss needs a teacher with a task head, got BertModel"):
        DistillationTrainer(
            model=student,
            teacher_model=BertModel(teacher.config),
            args=DistillationTrainingArguments(output_dir=str(tmp_path), stage="prediction", report_to="none"),
        )


def test_a_teacher_with_another_label_count_is_refused(tmp_path):
    torch.manual_seed(0)
    BertForSequenceClassification(tiny_bert_config(num_labels=3)).save_pretrained(tmp_path / "teacher")
    with pytest.raises(BadInputError, match=r"predicts 3 labels .* but the data has 2 \(\['neg', 'pos'\]\)"):
        load_teacher(tmp_path / "teacher", ["neg", "pos"], RecipeArguments(output_dir=str(tmp_path / "out")))


def test_labels_outside_num_labels_fail_before_the_first_step(tmp_path):
    teacher, student = teacher_and_student()
    rows = token_rows()
    rows = rows.map(lambda row, index: {"labels": 5 if index == 3 else row["labels"]}, with_indices=True)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=DistillationTrainingArguments(
            output_dir=str(tmp_path), stage="prediction", hard_label_loss_weight=1.0, report_to="none", max_steps=2
        ),
        train_dataset=rows,
    )
    with pytest.raises(BadInputError, match=r"labels \('labels'\) run from 0 to 5, but the student predicts 2 labels"):
        trainer.train()
    assert not any(tmp_path.iterdir())  # stopped before anything was written


def test_string_labels_fail_before_the_first_step_with_the_fix(tmp_path):
    # pyarrow's `not_equal(large_string, int64)` kernel error was what a user's own script got
    teacher, student = teacher_and_student()
    rows = token_rows().map(lambda row: {"labels": ["neg", "pos"][row["labels"]]})
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=DistillationTrainingArguments(output_dir=str(tmp_path), stage="prediction", report_to="none"),
        train_dataset=rows,
    )
    with pytest.raises(
        BadInputError, match=r"are string values \(e.g. '(neg|pos)'\).*class_encode_column\('labels'\)"
    ):
        trainer.train()
    assert not any(tmp_path.iterdir())


def test_an_empty_training_dataset_fails_before_the_first_step(tmp_path):
    teacher, student = teacher_and_student()
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=DistillationTrainingArguments(output_dir=str(tmp_path), stage="intermediate", report_to="none"),
        train_dataset=token_rows().select([]),
    )
    with pytest.raises(BadInputError, match="The training dataset has no rows"):
        trainer.train()


def other_tokenizer(tmp_path: Path) -> BertTokenizer:
    vocabulary = tmp_path / "other_vocab.txt"
    vocabulary.write_text("\n".join([*TINY_VOCAB[:5], *reversed(TINY_VOCAB[5:])]) + "\n")
    return BertTokenizer(vocab=str(vocabulary))


def test_teacher_and_student_tokenizers_must_share_one_vocabulary(tmp_path, tiny_tokenizer):
    teacher, student = teacher_and_student()
    arguments = DistillationTrainingArguments(output_dir=str(tmp_path), stage="intermediate", report_to="none")
    with pytest.raises(BadInputError, match=r"map 12 tokens differently \(e.g. '##s': teacher 15, student 7"):
        DistillationTrainer(
            model=student,
            teacher_model=teacher,
            args=arguments,
            processing_class=other_tokenizer(tmp_path),
            teacher_processing_class=tiny_tokenizer,
        )
    # the same vocabulary passes
    DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=arguments,
        processing_class=tiny_tokenizer,
        teacher_processing_class=tiny_tokenizer,
    )
    # the recipe checks a general student's own tokenizer against the teacher's
    general = tmp_path / "general"
    TinyBertForSequenceClassification(TinyBertConfig.from_teacher_config(teacher.config)).save_pretrained(general)
    other_tokenizer(tmp_path).save_pretrained(general)
    args = RecipeArguments(output_dir=str(tmp_path / "out"), student_init=f"general:{general}")
    with pytest.raises(BadInputError, match="distillation needs one vocabulary"):
        build_student(teacher, ["neg", "pos"], args, tokenizer=tiny_tokenizer)


def test_a_layer_mapping_out_of_range(tmp_path):
    teacher, student = teacher_and_student()
    arguments = DistillationTrainingArguments(
        output_dir=str(tmp_path), stage="intermediate", layer_mapping="1,7", report_to="none"
    )
    with pytest.raises(BadInputError, match=r"refers to teacher layers \[7\], but the teacher has 4 layers \(0..3\)"):
        DistillationTrainer(model=student, teacher_model=teacher, args=arguments)


def test_sequences_longer_than_the_position_table_are_truncated_with_a_warning(tmp_path, library_warnings):
    teacher, student = teacher_and_student()  # both have 64 positions
    long_rows = token_rows(rows=16, seq=80)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=DistillationTrainingArguments(
            output_dir=str(tmp_path), stage="intermediate", report_to="none", max_steps=2, use_cpu=True
        ),
        train_dataset=long_rows,
    )
    trainer.train()
    warnings = [record.message for record in library_warnings.records if "position table" in record.message]
    assert warnings == [
        "Batches of 80 tokens are longer than the position table (64 positions): truncated to 64 tokens. Tokenize "
        "with `truncation=True, max_length=64` to choose how."
    ]
    assert all(torch.isfinite(parameter).all() for parameter in trainer.model.parameters())


def test_the_recipe_lowers_max_length_to_the_teachers_positions(tmp_path, tiny_tokenizer, library_warnings):
    torch.manual_seed(0)
    BertModel(tiny_bert_config()).save_pretrained(tmp_path / "backbone")
    tiny_tokenizer.save_pretrained(tmp_path / "backbone")
    args = RecipeArguments(
        output_dir=str(tmp_path / "out"), teacher_backbone=str(tmp_path / "backbone"), max_length=1000,
        **csv_files(tmp_path, GOOD_TRAIN),
    )  # fmt: skip
    fitted = fitted_to_teacher(args, AutoConfig.from_pretrained(tmp_path / "backbone"))
    assert fitted.max_length == 64
    assert args.max_length == 1000  # the parsed arguments are never changed: the lowered length is a copy's
    assert fitted_to_teacher(fitted, AutoConfig.from_pretrained(tmp_path / "backbone")) is fitted
    assert any(
        "longer than the teacher's position table (64 positions)" in r.message for r in library_warnings.records
    )


def test_options_with_nothing_to_act_on_are_named_in_a_warning(library_warnings):
    warn_unused_options(RecipeArguments(eval_label_map="negative=rotten"))
    warn_unused_options(RecipeArguments(transfer_text=["auto", "traffic.txt"], transfer_rows=0))
    messages = [record.message for record in library_warnings.records]
    assert any("`--eval_label_map` renames the labels of `--eval_files`, and none are given" in m for m in messages)
    assert any("the transfer text ['traffic.txt'] is unused" in message for message in messages)
    library_warnings.clear()
    warn_unused_options(RecipeArguments(eval_files=["a.csv"], eval_label_map="negative=rotten"))
    warn_unused_options(RecipeArguments(transfer_text=["traffic.txt"], transfer_rows=0, recovery_steps=2))
    warn_unused_options(RecipeArguments(transfer_rows=0))  # 'auto' alone names nothing
    assert not library_warnings.records  # recovery reads the transfer text even without transfer rows


# ---- the output directory --------------------------------------------------------------------------------------


def test_the_data_digest_names_the_rows_seen_and_an_edited_file_is_refused(tmp_path):
    rows = Dataset.from_dict({"text": ["a good film", "a bad one", "fine"], "label": [1, 0, 1]})
    same = Dataset.from_dict({"text": ["fine", "a good film", "a bad one"], "label": [1, 1, 0]}).select([1, 2, 0])
    assert dataset_digest(rows) == dataset_digest(same)  # the rows seen, not the table under an indices mapping
    assert dataset_digest(rows.map(lambda row: row)) == dataset_digest(rows)  # another fingerprint, the same rows
    assert dataset_digest(rows) != dataset_digest(rows.select([1, 0, 2]))  # order is part of what is learnt
    edited = Dataset.from_dict({"text": ["a good film", "a bad one", "fine!"], "label": [1, 0, 1]})
    assert dataset_digest(rows) != dataset_digest(edited) and dataset_digest(None) is None

    run = tmp_path / "run"
    digests = {"train": dataset_digest(rows), "transfer": dataset_digest(rows.select([0]))}
    prepare_output_dir(RecipeArguments(output_dir=str(run)), digests)
    (run / "student").mkdir()
    prepare_output_dir(RecipeArguments(output_dir=str(run), int8=False), dict(digests))  # same rows: resumes
    with pytest.raises(OutputDirectoryError, match=r"other rows of the same options: the transfer data changed since"):
        prepare_output_dir(RecipeArguments(output_dir=str(run)), {**digests, "transfer": dataset_digest(edited)})
    with pytest.raises(OutputDirectoryError, match=r"other settings \(student_layers: 4 there, 2 now\)\. Choose"):
        prepare_output_dir(RecipeArguments(output_dir=str(run), student_layers=2), {**digests, "train": "other"})
    assert (run / "student").is_dir()
    # a run recorded before digests existed is checked on its settings alone
    record = json.loads((run / "run.json").read_text())
    del record["settings"]["data"]
    (run / "run.json").write_text(json.dumps(record))
    prepare_output_dir(RecipeArguments(output_dir=str(run)), {**digests, "transfer": dataset_digest(edited)})
    assert json.loads((run / "run.json").read_text())["settings"]["data"]["transfer"] == dataset_digest(edited)


def test_an_output_directory_holding_a_model_or_another_run_is_refused(tmp_path):
    model_dir = tmp_path / "my-model"
    TinyBertForSequenceClassification(TinyBertConfig(**tiny_bert_config().to_dict())).save_pretrained(model_dir)
    before = digest(model_dir)
    with pytest.raises(OutputDirectoryError, match=r"holds a model \(config.json\).*--overwrite_output_dir"):
        prepare_output_dir(RecipeArguments(output_dir=str(model_dir)))
    assert digest(model_dir) == before
    notes = tmp_path / "notes"
    write(notes.mkdir() or notes / "todo.txt", "mine")
    with pytest.raises(OutputDirectoryError, match=r"holds files no tinybert-hf run wrote \(todo.txt\)"):
        prepare_output_dir(RecipeArguments(output_dir=str(notes)))

    run = tmp_path / "run"
    prepare_output_dir(RecipeArguments(output_dir=str(run), student_layers=4))
    (run / "student").mkdir()
    write(run / "student" / "config.json", "{}")
    write(run / "mine.txt", "kept")
    prepare_output_dir(RecipeArguments(output_dir=str(run), student_layers=4, int8=False))  # same models: resumes
    with pytest.raises(OutputDirectoryError, match=r"other settings \(student_layers: 4 there, 2 now\)"):
        prepare_output_dir(RecipeArguments(output_dir=str(run), student_layers=2))
    assert (run / "student" / "config.json").is_file()
    prepare_output_dir(RecipeArguments(output_dir=str(run), student_layers=2, overwrite_output_dir=True))
    assert not (run / "student").exists() and (run / "mine.txt").read_text() == "kept"
    assert json.loads((run / "run.json").read_text())["settings"]["student_layers"] == 2


@pytest.mark.parametrize("option", ["--teacher", "--teacher_backbone"])
def test_a_teacher_of_another_architecture_is_refused_before_any_work(tmp_path, tiny_tokenizer, option):
    torch.manual_seed(0)
    teacher = tmp_path / "gpt2"
    GPT2ForSequenceClassification(
        GPT2Config(vocab_size=99, n_embd=32, n_layer=2, n_head=4, num_labels=2)
    ).save_pretrained(teacher)
    tiny_tokenizer.save_pretrained(teacher)
    result = subprocess.run(
        [*cli(), "distill", "--output_dir", str(tmp_path / "out"), option, str(teacher)],
        env=offline_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"tinybert-hf distill: The teacher {teacher} is a 'gpt2' model, not an encoder the recipe distils "
        "(model_type 'bert', 'tinybert', 'roberta', 'xlm-roberta', 'camembert', 'electra', 'distilbert', "
        "'modernbert', 'mpnet', 'deberta-v2': BERT, MiniLM, TinyBERT, RoBERTa, XLM-R, ELECTRA, DistilBERT, "
        "ModernBERT, MPNet and DeBERTa-v2/v3 checkpoints). Pass one as `--teacher` (fine-tuned) or "
        "`--teacher_backbone` (to fine-tune)."
    )
    assert not (tmp_path / "out").exists()  # refused before the data, augmentation or any record
    missing = subprocess.run(
        [*cli(), "distill", "--output_dir", str(tmp_path / "out"), option, str(tmp_path / "no_such_teacher")],
        env=offline_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert f"`{option} {tmp_path / 'no_such_teacher'}`: no such directory" in missing.stderr


@pytest.mark.parametrize("case", ["data", "option"])
def test_the_cli_prints_one_line_for_a_bad_input(tmp_path, case):
    files = csv_files(tmp_path, "text,label\ngood film,pos\n,neg\n")
    options = [option for split, path in files.items() for option in (f"--{split}", path)]
    if case == "option":
        options += ["--augment_fraction", "2"]
    result = subprocess.run(
        [*cli(), "distill", "--output_dir", str(tmp_path / "out"), "--int8", "false", *options],
        env=offline_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    expected = {
        "data": f"tinybert-hf distill: 1 rows of {files['train_file']} have empty text in column 'text' (line 3)",
        "option": "tinybert-hf distill: `augment_fraction` must be in [0, 1], got 2.0.",
    }
    assert expected[case] in result.stderr
    # nothing recorded: no run.json would refuse the corrected command as "a run made with other settings"
    assert not (tmp_path / "out").exists()


def test_a_misspelt_student_init_is_refused_with_the_closest_one():
    # it used to be read as the path of a general student, and fail only after the teacher was fine-tuned
    from tinybert_hf.recipe.checks import general_student_path

    with pytest.raises(
        BadInputError, match=r"`--student_init prunned-teacher` is not one of .*did you mean 'pruned-teacher'\?"
    ):
        general_student_path(RecipeArguments(student_init="prunned-teacher"))
    assert general_student_path(RecipeArguments(student_init="layer-subset")) is None
    assert general_student_path(RecipeArguments(student_init="general:my-org/general-tinybert")) == (
        "my-org/general-tinybert"
    )  # a Hub id


def test_data_files_with_other_headers_are_one_line(tmp_path):
    # `datasets` ended in a 70-line DatasetGenerationCastError with advice about Hub configurations
    files = csv_files(tmp_path, GOOD_TRAIN, dev="body,label\ngood film,pos\n")
    with pytest.raises(BadInputError, match=r"do not share one set of columns \(.*train.csv: \['text', 'label'\]; "):
        load_task_dataset(**files)


def test_joined_transfer_text_needs_single_training_texts(tiny_tokenizer):
    # the `joined` source joins the training texts; text pairs and token rows have no single text to join
    from tinybert_hf.recipe.steps import prepare_transfer_text

    pairs = Dataset.from_dict({"text": ["a b", "c d"], "text_pair": ["e", "f"], "label": [0, 1]})
    with pytest.raises(BadInputError, match="joins single training texts; a text-classification task with text pairs"):
        prepare_transfer_text(tiny_tokenizer, RecipeArguments(transfer_text=["joined"], transfer_rows=4), pairs)
    tokens = RecipeArguments(task="token-classification", transfer_text=["joined"], transfer_rows=4)
    with pytest.raises(BadInputError, match="with tokens has none"):
        prepare_transfer_text(tiny_tokenizer, tokens, Dataset.from_dict({"tokens": [["a"]], "ner_tags": [[0]]}))
    singles = Dataset.from_dict({"text": [f"word{i} film is good" for i in range(200)], "label": [0, 1] * 100})
    rows = prepare_transfer_text(tiny_tokenizer, RecipeArguments(transfer_text=["joined"], transfer_rows=4), singles)
    assert rows.num_rows == 4 and "labels" not in rows.column_names
    # joined passages are longer than the labelled rows: cut to the teacher's position table (8 here), not past it
    short = prepare_transfer_text(
        tiny_tokenizer, RecipeArguments(transfer_text=["joined"], transfer_rows=4), singles, 8
    )
    assert max(len(ids) for ids in short["input_ids"]) == 8 < max(len(ids) for ids in rows["input_ids"])
