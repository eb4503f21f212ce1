"""Length buckets: the cheapest split of a padded batch, right-padding detection, and ONNX serving that runs the
groups and gives the rows back in order, equal to running the batch as given."""

import itertools

import numpy as np
import pytest
import torch

from tinybert_hf import TinyBertForSequenceClassification, TinyBertForTokenClassification
from tinybert_hf.onnx.length_buckets import length_groups, row_lengths
from tinybert_hf.onnx.modeling_onnx import OnnxModel
from tinybert_hf.quantization.arguments import QuantizeArguments
from tinybert_hf.quantization.onnx_int8 import quantize_saved_model

from .conftest import tiny_config


def cost(groups, lengths, overhead):
    return sum(len(group) * lengths[group].max() + overhead for group in groups)


@pytest.mark.parametrize("seed", range(5))
def test_the_groups_cost_no_more_than_any_split_of_the_sorted_rows(seed):
    lengths = np.random.default_rng(seed).integers(1, 64, 9)
    groups = length_groups(lengths, run_overhead=16)
    assert sorted(np.concatenate(groups).tolist()) == list(range(9))  # every row once
    ordered = np.argsort(lengths, kind="stable")
    best = min(
        cost(np.split(ordered, cuts), lengths, 16)
        for count in range(9)
        for cuts in itertools.combinations(range(1, 9), count)
    )  # every contiguous split of the sorted order
    assert cost(groups, lengths, 16) == best
    assert len(length_groups(lengths, run_overhead=10_000)) == 1  # a run costing more than all padding: one group
    assert all(len(group) <= 2 for group in length_groups(lengths, max_rows=2))


def test_only_right_padded_masks_are_cut():
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    assert row_lengths(mask).tolist() == [3, 4, 1]
    assert row_lengths(np.array([[0, 1, 1, 1], [1, 1, 1, 1]])) is None  # left padding
    assert row_lengths(np.array([[1, 0, 1, 0]])) is None  # a hole


def padded_batch(lengths, width, seed=0):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, 99, (len(lengths), width), generator=generator)
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    return {"input_ids": input_ids * mask, "attention_mask": mask, "token_type_ids": torch.zeros_like(mask)}


@pytest.mark.parametrize("model_class", [TinyBertForSequenceClassification, TinyBertForTokenClassification])
def test_bucketed_serving_equals_the_batch_as_given(tmp_path, tiny_tokenizer, model_class):
    torch.manual_seed(0)
    model = model_class(tiny_config(num_labels=3, initializer_range=0.2)).eval()
    model.save_pretrained(tmp_path / "student")
    tiny_tokenizer.save_pretrained(tmp_path / "student")
    quantize_saved_model(QuantizeArguments(model=str(tmp_path / "student")))  # per-row int8, the default
    bucketed = OnnxModel.from_pretrained(tmp_path / "student-int8")
    as_given = OnnxModel.from_pretrained(tmp_path / "student-int8", length_buckets=False)
    assert bucketed.length_buckets and not as_given.length_buckets
    calls = []
    run = bucketed.session.run
    bucketed.session = type(
        "Recorder", (), {"run": lambda self, names, feeds: calls.append(feeds) or run(names, feeds)}
    )()
    lengths = [40, 3, 38, 5, 4, 39, 64, 2]
    batch = padded_batch(lengths, 64)
    got, expected = bucketed(**batch).logits, as_given(**batch).logits
    assert len(calls) > 1 and max(feeds["input_ids"].shape[1] for feeds in calls) == 64
    assert sum(feeds["input_ids"].size for feeds in calls) < 0.7 * batch["input_ids"].numel()  # padding skipped
    assert got.shape == expected.shape
    if model_class is TinyBertForSequenceClassification:
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)  # per-row: a row's result ignores its batch
    else:  # real tokens equal; past a group's longest row, zeros
        mask = batch["attention_mask"].bool()
        torch.testing.assert_close(got[mask], expected[mask], rtol=0, atol=1e-5)
        assert got[1, 10:].abs().sum() == 0
    calls.clear()
    unpadded = padded_batch([7, 7], 7)
    torch.testing.assert_close(bucketed(**unpadded).logits, as_given(**unpadded).logits, rtol=0, atol=0)
    assert len(calls) == 1  # nothing to cut: one run as given
