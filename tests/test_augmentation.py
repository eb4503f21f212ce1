"""TinyBERT augmentation: the paper's candidate rules, determinism, casing, stop words, pairs and caching."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import BertForMaskedLM

from tinybert_hf.data import augmentation
from tinybert_hf.data.augmentation import AugmentationConfig, TinyBertAugmenter, load_word_vectors

from .conftest import tiny_bert_config


@pytest.fixture
def masked_lm(tiny_tokenizer):
    """A random MLM whose output bias makes `great` (then `dull`) the top guess for every masked word."""
    torch.manual_seed(0)
    model = BertForMaskedLM(tiny_bert_config(vocab_size=len(tiny_tokenizer)))
    with torch.no_grad():
        model.cls.predictions.bias.zero_()
        model.cls.predictions.bias[tiny_tokenizer.convert_tokens_to_ids("great")] = 100.0
        model.cls.predictions.bias[tiny_tokenizer.convert_tokens_to_ids("dull")] = 90.0
    return model.eval()


def config(**overrides) -> AugmentationConfig:
    values = dict(num_augmentations=4, replace_probability=1.0, top_k=1, seed=0, stop_words=frozenset({"the"}))
    values.update(overrides)
    return AugmentationConfig(**values)


def test_single_piece_words_take_the_masked_lms_top_guess_in_the_original_case(tiny_tokenizer, masked_lm):
    augmenter = TinyBertAugmenter(tiny_tokenizer, masked_lm=masked_lm, config=config())
    # Film, plot, bad: single pieces; "the" is a stop word; "great" cannot be replaced by itself -> "dull"
    variants = augmenter.augment_texts(["Film plot, the BAD great!"])[0]
    assert variants == ["Great great, the GREAT dull!"] * 4


def test_multi_piece_words_take_word_vector_neighbours(tiny_tokenizer, masked_lm, tmp_path):
    vectors = tmp_path / "glove.txt"
    vectors.write_text("films 1 0 0\nmovies 0.9 0.1 0\nbooks 0 1 0\nplots 0 0 1\n", encoding="utf-8")
    augmenter = TinyBertAugmenter(
        tiny_tokenizer, masked_lm=masked_lm, word_vectors=load_word_vectors(vectors), config=config()
    )
    assert tiny_tokenizer.tokenize("films") == ["film", "##s"]
    assert augmenter.augment_texts(["Films"])[0] == ["Movies"] * 4


def test_replace_probability_zero_and_stop_words_change_nothing(tiny_tokenizer, masked_lm):
    unchanged = TinyBertAugmenter(tiny_tokenizer, masked_lm=masked_lm, config=config(replace_probability=0.0))
    assert unchanged.augment_texts(["good film"])[0] == ["good film"] * 4
    all_stop = TinyBertAugmenter(tiny_tokenizer, masked_lm=masked_lm, config=config(stop_words={"good", "film"}))
    assert all_stop.augment_texts(["good film"])[0] == ["good film"] * 4


def test_batched_candidates_equal_one_masked_word_at_a_time(tiny_tokenizer):
    torch.manual_seed(1)
    model = BertForMaskedLM(tiny_bert_config(vocab_size=len(tiny_tokenizer))).eval()
    texts = ["good film", "the plot is dull but the cast is great", "new york"]
    batched = TinyBertAugmenter(tiny_tokenizer, masked_lm=model, config=config(top_k=3, mlm_batch_size=64))
    single = TinyBertAugmenter(tiny_tokenizer, masked_lm=model, config=config(top_k=3, mlm_batch_size=1))
    for ours, theirs in zip(batched.candidates(texts), single.candidates(texts), strict=True):
        assert [options for *_, options in ours] == [options for *_, options in theirs]


def test_embedding_neighbour_fallback_warns_and_gives_candidates(tiny_tokenizer, monkeypatch):
    torch.manual_seed(2)
    encoder = BertForMaskedLM(tiny_bert_config(vocab_size=len(tiny_tokenizer))).bert
    warnings = []
    monkeypatch.setattr(augmentation.logger, "warning", lambda message, *args: warnings.append(message % args))
    augmenter = TinyBertAugmenter(tiny_tokenizer, embedding_model=encoder, config=config(top_k=2))
    assert len(warnings) == 1 and "input-embedding matrix" in warnings[0]
    words = augmenter.candidates(["good films"])[0]
    assert [word for _, _, word, _ in words] == ["good", "films"]
    assert all(len(options) == 2 and "good" not in options[:1] for *_, options in words[:1])
    assert all(option.isalpha() for *_, options in words for option in options)


def test_same_seed_same_variants_whatever_the_batching(tiny_tokenizer, masked_lm):
    rows = Dataset.from_dict({"text": ["good film", "bad plot", "dull cast", "great film"] * 3, "label": [0, 1] * 6})
    augmenter = TinyBertAugmenter(tiny_tokenizer, masked_lm=masked_lm, config=config(top_k=2, replace_probability=0.5))
    first = augmenter.augment_dataset(rows, batch_size=2)
    second = augmenter.augment_dataset(rows, batch_size=5)
    assert first["text"] == second["text"] and first["label"] == second["label"]
    assert sum(not flag for flag in first["augmented"]) == 12 and first.num_rows > 12
    other = TinyBertAugmenter(tiny_tokenizer, masked_lm=masked_lm, config=config(top_k=2, replace_probability=0.5,
                                                                                  seed=1))  # fmt: skip
    assert other.augment_dataset(rows)["text"] != first["text"]


def test_sentence_pairs_change_one_sentence_per_variant(tiny_tokenizer, masked_lm):
    rows = Dataset.from_dict({"text": ["good film"], "text_pair": ["bad plot"], "label": [1]})
    augmenter = TinyBertAugmenter(tiny_tokenizer, masked_lm=masked_lm, config=config(num_augmentations=2))
    out = augmenter.augment_dataset(rows, text_columns=("text", "text_pair")).to_list()
    assert out[0] == {"text": "good film", "text_pair": "bad plot", "label": 1, "augmented": False}
    assert out[1] == {"text": "great great", "text_pair": "bad plot", "label": 1, "augmented": True}
    assert out[2] == {"text": "good film", "text_pair": "great great", "label": 1, "augmented": True}


def test_augmented_data_is_cached_on_disk(tiny_tokenizer, masked_lm, tmp_path):
    rows = Dataset.from_dict({"text": ["good film", "bad plot"], "label": [0, 1]})
    augmenter = TinyBertAugmenter(tiny_tokenizer, masked_lm=masked_lm, config=config())
    first = augmenter.augment_dataset(rows, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("augmented-*.arrow"))) == 1
    augmenter.candidates = None  # a second run must not compute anything
    assert augmenter.augment_dataset(rows, cache_dir=tmp_path)["text"] == first["text"]


def test_bad_settings(tiny_tokenizer, masked_lm, tmp_path):
    with pytest.raises(ValueError, match="needs a candidate source"):
        TinyBertAugmenter(tiny_tokenizer)
    with pytest.raises(ValueError, match="`replace_probability` must be in"):
        AugmentationConfig(replace_probability=1.5)
    augmenter = TinyBertAugmenter(tiny_tokenizer, masked_lm=masked_lm, config=config())
    with pytest.raises(ValueError, match=r"No text column \['sentence'\]"):
        augmenter.augment_dataset(Dataset.from_dict({"text": ["a"]}), text_columns=("sentence",))
    (tmp_path / "bad.txt").write_text("films 1 0\nmovies 1\nbooks 1 x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 3: not a GloVe vector line"):
        load_word_vectors(tmp_path / "bad.txt")


FINGERPRINT = """
import sys
import torch
from transformers import BertTokenizer
from tinybert_hf.data.augmentation import AugmentationConfig, TinyBertAugmenter
tokenizer = BertTokenizer(vocab=sys.argv[1], do_lower_case=True)
vectors = (["good", "bad"], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
print(TinyBertAugmenter(tokenizer, word_vectors=vectors, config=AugmentationConfig()).fingerprint())
"""


def test_the_cache_fingerprint_is_the_same_in_every_process(tiny_tokenizer, tmp_path):
    """The default stop words are a set, whose order follows per-process string hashing: a fingerprint built from
    its repr named a new cache file in every run, so no run ever reused the augmented data."""
    tiny_tokenizer.save_pretrained(tmp_path)
    fingerprints = {
        subprocess.run(
            [sys.executable, "-c", FINGERPRINT, str(tmp_path / "vocab.txt")],
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
            capture_output=True, text=True, check=True,
        ).stdout.splitlines()[-1]  # the last line: libraries may log to stdout on import
        for seed in ("1", "2")
    }  # fmt: skip
    assert len(fingerprints) == 1 and len(fingerprints.pop()) == 32
