"""Task data loaders on the real packaged files and on small local files."""

import json

import pytest
from datasets import ClassLabel

from tinybert_hf.data.loading import (
    encode_labels_as,
    load_evaluation_files,
    load_task_dataset,
    ner_tweets,
    rotten_tomatoes_snippets,
)
from tinybert_hf.errors import BadInputError


@pytest.fixture(scope="module")
def snippets():
    return rotten_tomatoes_snippets(seed=0)


def test_rotten_tomatoes_is_split_by_movie(snippets):
    sizes = {split: snippets[split].num_rows for split in snippets}
    assert sum(sizes.values()) == 7403 + 5405  # every review, no plot summary
    assert 0.75 < sizes["train"] / sum(sizes.values()) < 0.85 and min(sizes.values()) > 1000
    movies = {split: set(snippets[split]["movie_name"]) for split in snippets}
    assert not movies["train"] & movies["validation"] and not movies["train"] & movies["test"]
    assert not movies["validation"] & movies["test"]
    assert snippets["train"].features["label"].names == ["rotten", "fresh"]
    fresh = sum(snippets["train"]["label"]) / sizes["train"]
    assert 0.5 < fresh < 0.65  # 7403 / 12808 = 0.58 overall


def test_rotten_tomatoes_split_depends_on_the_seed_only(snippets):
    again, other = rotten_tomatoes_snippets(seed=0), rotten_tomatoes_snippets(seed=1)
    assert again["test"]["text"] == snippets["test"]["text"]
    assert other["test"]["text"] != snippets["test"]["text"]


def test_ner_tweets():
    data = ner_tweets()
    assert sum(data[split].num_rows for split in data) == 2394
    names = data["train"].features["ner_tags"].feature.names
    assert names[0] == "O" and len(names) == 21 and "B-person" in names
    assert all(len(row["tokens"]) == len(row["ner_tags"]) for row in data["train"])


def test_local_csv_with_string_labels_and_missing_splits(tmp_path):
    rows = ["review,sentiment"] + [f'"text number {i}",{"good" if i % 3 else "bad"}' for i in range(50)]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    data = load_task_dataset(train_file=str(tmp_path / "train.csv"), text_column="review", label_column="sentiment")
    assert {split: data[split].num_rows for split in data} == {"train": 40, "validation": 5, "test": 5}
    assert data["train"].column_names == ["text", "label"]
    assert isinstance(data["train"].features["label"], ClassLabel)
    assert data["train"].features["label"].names == ["bad", "good"]


def test_local_json_pairs(tmp_path):
    import json

    lines = [json.dumps({"s1": f"a {i}", "s2": f"b {i}", "y": i % 2}) for i in range(20)]
    for split in ("train", "validation", "test"):
        (tmp_path / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = load_task_dataset(
        train_file=str(tmp_path / "train.jsonl"), validation_file=str(tmp_path / "validation.jsonl"),
        test_file=str(tmp_path / "test.jsonl"), text_column="s1", text_pair_column="s2", label_column="y",
    )  # fmt: skip
    assert data["test"].num_rows == 20 and data["train"][1] == {"text": "a 1", "text_pair": "b 1", "label": 1}


def test_bad_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_task_dataset(train_file=str(tmp_path / "missing.csv"))
    (tmp_path / "train.csv").write_text("a,b\nx,1\ny,0\n" * 10, encoding="utf-8")
    with pytest.raises(ValueError, match="no column 'text'.*--text_column"):
        load_task_dataset(train_file=str(tmp_path / "train.csv"))
    (tmp_path / "train.xml").write_text("<a/>", encoding="utf-8")
    with pytest.raises(ValueError, match="must share one format"):
        load_task_dataset(train_file=str(tmp_path / "train.xml"))


def test_evaluation_files_alone_are_encoded_as_the_models_labels(tmp_path):
    # a test file without one of the model's classes: names, not the file's own sorted order, decide the ids
    path = tmp_path / "test.csv"
    path.write_text("review,genre\nflood warning,news\nhelp needed,direct\nstorm again,news\n")
    data = load_evaluation_files({"test": str(path)}, text_column="review", label_column="genre")
    assert list(data) == ["test"] and data["test"].features["label"].names == ["direct", "news"]
    encoded = encode_labels_as(data, ["direct", "news", "social"])
    assert encoded["test"]["label"] == [1, 0, 1]
    assert encoded["test"].features["label"].names == ["direct", "news", "social"]
    with pytest.raises(BadInputError, match=r"labels the model does not predict: \['news'\]"):
        encode_labels_as(data, ["direct", "social"])
    ids = tmp_path / "ids.csv"
    ids.write_text("text,label\nflood,1\nhelp,0\n")
    as_ids = encode_labels_as(load_evaluation_files({"test": str(ids)}), ["neg", "pos"])
    assert as_ids["test"]["label"] == [1, 0]  # integer labels are read as the model's ids


def test_recorded_relative_data_paths_are_read_from_where_the_run_ran(tmp_path):
    from tinybert_hf.recipe.run_records import recorded_data_settings

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("text,label\ngood,pos\n")
    student = tmp_path / "out" / "student"
    student.mkdir(parents=True)
    settings = {"train_file": "data/train.csv", "test_file": None, "text_column": "text", "output_dir": "out"}
    record = {"settings": settings, "working_directory": str(tmp_path)}
    (student / "tinybert_results.json").write_text(json.dumps(record))
    recorded = recorded_data_settings(student)  # from the test's own working directory, not tmp_path
    assert recorded == {"train_file": str(tmp_path / "data" / "train.csv"), "test_file": None, "text_column": "text"}
