"""Offline metrics: accuracy/macro-F1 and entity-level F1 with seqeval's default (conlleval) span rules."""

import time

import pytest
import torch

from tinybert_hf.evaluation.metrics import accuracy_and_f1, entity_f1, entity_spans
from tinybert_hf.evaluation.speed_and_size import compare_speed, speed_noise


def test_accuracy_and_macro_f1_by_hand():
    # class 0: tp 1, predicted 1, actual 2 -> 2/3; class 1: tp 2, predicted 3, actual 2 -> 4/5
    assert accuracy_and_f1([0, 1, 1, 1], [0, 0, 1, 1], num_labels=2) == {
        "accuracy": 0.75,
        "f1": round((2 / 3 + 0.8) / 2, 4),
    }
    # a class never predicted nor present counts as 0 in the macro average, like sklearn's zero_division=0
    assert accuracy_and_f1([0, 0], [0, 0], num_labels=2)["f1"] == 0.5


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        (["B-per", "I-per", "O", "B-loc"], {("per", 0, 2), ("loc", 3, 4)}),
        (["I-per", "I-per", "O"], {("per", 0, 2)}),  # I- after O starts an entity
        (["B-per", "I-loc", "I-loc"], {("per", 0, 1), ("loc", 1, 3)}),  # a type change starts a new one
        (["B-per", "B-per"], {("per", 0, 1), ("per", 1, 2)}),
        (["O", "O"], set()),
    ],
)
def test_entity_spans_follow_conlleval(tags, spans):
    assert entity_spans(tags) == spans


def test_entity_f1_counts_exact_type_and_boundaries():
    references = [["B-per", "I-per", "O", "B-loc"], ["B-org", "O"]]
    predictions = [["B-per", "O", "O", "B-loc"], ["B-org", "B-org"]]
    # predicted: per(0,1) x, loc ok, org ok, org(1,2) x -> precision 2/4; actual 3 -> recall 2/3
    assert entity_f1(predictions, references) == {"precision": 0.5, "recall": 0.6667, "f1": 0.5714}
    assert entity_f1([["O"]], [["O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_a_speed_measurement_on_a_busy_machine_is_flagged():
    quiet = {"teacher": {"spread": 0.04}, "student": {"spread": 0.1}}
    assert speed_noise(quiet, load_average=1.2, cpus=2) is None
    busy = {"teacher": {"spread": 0.04}, "student": {"spread": 0.6}}
    assert speed_noise(busy, load_average=1.2, cpus=2) == "repeats of one measurement differ by up to 60% (student)"
    assert speed_noise(quiet, load_average=3.5, cpus=2) == "load average 3.5 on 2 cores"


def test_compare_speed_reports_the_spread_of_its_repeats():
    class Sleeper(torch.nn.Module):  # each call takes 1 ms more than the last: a known spread
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, input_ids):
            if input_ids.shape[0] > 1:  # only the batch calls are the throughput repeats
                self.calls += 1
                time.sleep(0.005 * self.calls)

    batch, single = {"input_ids": torch.zeros(4, 2)}, {"input_ids": torch.zeros(1, 2)}
    speed = compare_speed({"sleeper": Sleeper()}, batch, single, repeats=3)
    # batch calls 2, 3, 4 after the warm-up take 10, 15, 20 ms: the slowest left out, (15 - 10) / 15
    assert speed["sleeper"]["spread"] == pytest.approx(1 / 3, abs=0.15)
