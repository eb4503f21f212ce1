"""Property tests (hypothesis) over config values and input shapes: the model classes, the losses and the pruning
either raise their documented `ValueError` or return finite values (and finite gradients) for finite inputs.

Inputs are finite floats within +-1e6 (and temperatures in [0.05, 50]): the range of activations, logits and scores
real models produce; beyond it fp32 arithmetic itself overflows, which the trainer's non-finite-loss guard reports.
Examples are derandomized so CI sees the same cases every run; `TINYBERT_HF_HYPOTHESIS_EXAMPLES` raises their number
for a longer local search.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tinybert_hf import TinyBertConfig
from tinybert_hf.distillation.losses import (
    attention_kl,
    attention_relation_kl,
    attention_score_mse,
    hidden_state_mse,
    kl_divergence,
    logits_mse,
    soft_cross_entropy,
)
from tinybert_hf.models.tinybert.modeling_tinybert import (
    TinyBertForMaskedLM,
    TinyBertForSequenceClassification,
    TinyBertForTokenClassification,
    TinyBertModel,
)
from tinybert_hf.pruning.structured import prune

EXAMPLES = int(os.environ.get("TINYBERT_HF_HYPOTHESIS_EXAMPLES", "150"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAGNITUDE = 1e6


def tensors(draw, shape: tuple[int, ...], scale_max: float = MAGNITUDE) -> torch.Tensor:
    """A float32 tensor of `shape`: random normals times a drawn scale, plus a few drawn extreme entries."""
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([0.0, 1e-6, 1.0, 30.0, 1e3, scale_max]))
    values = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale
    flat = values.view(-1)
    for _ in range(draw(st.integers(0, 3))):
        index = draw(st.integers(0, flat.numel() - 1))
        flat[index] = draw(st.floats(-scale_max, scale_max, allow_nan=False, allow_infinity=False, width=32))
    return values


def masks(draw, batch: int, seq: int) -> torch.Tensor:
    """`(batch, seq)` real-token masks: right padding of drawn lengths, rows with no real token included."""
    lengths = [draw(st.integers(0, seq)) for _ in range(batch)]
    return torch.tensor([[1] * length + [0] * (seq - length) for length in lengths])


def assert_finite_with_gradients(loss: torch.Tensor, *inputs: torch.Tensor) -> None:
    assert loss.dim() == 0 and torch.isfinite(loss), loss
    loss.backward()
    for tensor in inputs:
        assert torch.isfinite(tensor.grad).all()


# ---- losses ----------------------------------------------------------------------------------------------------


@st.composite
def hidden_pairs(draw):
    batch, seq, width = draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 8))
    student = tensors(draw, (batch, seq, width)).requires_grad_()
    teacher = tensors(draw, (batch, seq, width))
    return student, teacher, draw(st.one_of(st.none(), st.just(masks(draw, batch, seq))))


@given(hidden_pairs())
@PROPERTY
def test_hidden_state_mse_is_finite_and_non_negative(pair):
    student, teacher, mask = pair
    loss = hidden_state_mse(student, teacher, mask)
    assert loss >= 0
    assert_finite_with_gradients(loss, student)


@st.composite
def score_pairs(draw):
    batch, heads, seq = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 6))
    student = tensors(draw, (batch, heads, seq, seq), scale_max=1e4).requires_grad_()
    teacher = tensors(draw, (batch, heads, seq, seq), scale_max=1e4)
    mask = masks(draw, batch, seq)
    # padded keys hold what attention masks put there: a large negative number, or -inf from an fp16 mask
    fill = draw(st.sampled_from([-1e4, torch.finfo(torch.float32).min, float("-inf")]))
    teacher = teacher.masked_fill(~mask.bool()[:, None, None, :], fill)
    return student, teacher, mask


@given(score_pairs(), st.sampled_from([attention_score_mse, attention_kl]))
@PROPERTY
def test_attention_losses_are_finite_whatever_padded_keys_hold(pair, loss_function):
    student, teacher, mask = pair
    loss = loss_function(student, teacher, mask)
    assert loss >= -1e-6
    assert_finite_with_gradients(loss, student)


@st.composite
def relation_pairs(draw):
    batch, seq = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    heads = draw(st.integers(1, 4))
    student = tensors(draw, (batch, seq, heads * draw(st.integers(1, 4))), scale_max=1e3).requires_grad_()
    teacher = tensors(draw, (batch, seq, heads * draw(st.integers(1, 4))), scale_max=1e3)
    return student, teacher, masks(draw, batch, seq), heads, draw(st.integers(1, 5))


@given(relation_pairs())
@PROPERTY
def test_attention_relation_kl_is_finite_or_refuses_indivisible_widths(case):
    student, teacher, mask, heads, relation_heads = case
    divides = student.shape[-1] % relation_heads == 0 and teacher.shape[-1] % relation_heads == 0
    if not divides:
        with pytest.raises(ValueError, match="relation heads"):
            attention_relation_kl(student, teacher, mask, num_relation_heads=relation_heads)
        return
    loss = attention_relation_kl(student, teacher, mask, num_relation_heads=relation_heads)
    assert loss >= -1e-5
    assert_finite_with_gradients(loss, student)


@st.composite
def logit_pairs(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    student = tensors(draw, shape).requires_grad_()
    teacher = tensors(draw, shape)
    return student, teacher, draw(st.floats(0.05, 50.0))


@given(logit_pairs(), st.sampled_from(["soft_ce", "kl", "mse"]))
@PROPERTY
def test_prediction_losses_are_finite(pair, name):
    student, teacher, temperature = pair
    if name == "soft_ce":
        loss = soft_cross_entropy(student, teacher, temperature)
    elif name == "kl":
        loss = kl_divergence(student, teacher, temperature)
    else:
        loss = logits_mse(student, teacher)
    assert loss >= -1e-3 * max(1.0, temperature**2)
    assert_finite_with_gradients(loss, student)


@given(st.floats(-10, 0), st.sampled_from([soft_cross_entropy, kl_divergence]))
@PROPERTY
def test_a_temperature_that_is_not_positive_is_the_documented_error(temperature, loss_function):
    logits = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="`temperature` must be positive"):
        loss_function(logits, logits, temperature)


# ---- model classes ---------------------------------------------------------------------------------------------

MODEL_CLASSES = [TinyBertModel, TinyBertForSequenceClassification, TinyBertForTokenClassification, TinyBertForMaskedLM]


def mostly(draw, valid, invalid=(0, -1)):
    """A value of `valid` 29 times in 30, else one of the `invalid` values (so that whole configs are often valid
    and every field is still tried out of range)."""
    return draw(valid) if draw(st.sampled_from([True] * 29 + [False])) else draw(st.sampled_from(invalid))


@st.composite
def configs(draw):
    """Config values, valid or not: a model built from them either works or raises its ValueError."""
    heads = mostly(draw, st.integers(1, 6))
    head_size = draw(st.integers(1, 8))
    values = dict(
        vocab_size=mostly(draw, st.integers(1, 60)),
        # a multiple of the head count, or (1 in 30) a width that may not be
        hidden_size=mostly(draw, st.just(max(heads, 1) * head_size), invalid=(0, -1, 7, 13)),
        num_hidden_layers=mostly(draw, st.integers(1, 3)),
        num_attention_heads=heads,
        intermediate_size=mostly(draw, st.integers(1, 40)),
        max_position_embeddings=mostly(draw, st.integers(1, 24)),
        hidden_dropout_prob=mostly(draw, st.sampled_from([0.0, 0.1, 0.9]), invalid=(1.0, -0.1)),
        attention_probs_dropout_prob=mostly(draw, st.sampled_from([0.0, 0.5]), invalid=(1.0, 2.0)),
        num_labels=draw(st.integers(1, 5)),
    )
    if draw(st.booleans()):
        values["fit_size"] = mostly(draw, st.integers(1, 40))
    return values


@pytest.mark.filterwarnings("error::UserWarning")  # e.g. a loss broadcasting mismatched shapes
@given(configs(), st.sampled_from(MODEL_CLASSES), st.data())
@PROPERTY
def test_model_classes_raise_the_documented_error_or_give_finite_outputs(values, model_class, data):
    config = TinyBertConfig(**values)  # a config holds any values, as a BertConfig does
    torch.manual_seed(0)
    try:
        model = model_class(config)
    except ValueError:
        event("config refused")
        return  # the documented error for invalid config values, given when a model is built from it
    model.train(data.draw(st.booleans()))
    batch = data.draw(st.integers(1, 3))
    seq = data.draw(st.integers(1, config.max_position_embeddings + 3))
    input_ids = torch.randint(0, config.vocab_size, (batch, seq))
    attention_mask = masks(data.draw, batch, seq)
    attention_mask[:, 0] = 1  # every row has one real token ([CLS]), as tokenizers produce
    labels = None
    if model_class is TinyBertForSequenceClassification:
        labels = torch.randint(0, config.num_labels, (batch,))
    elif model_class in (TinyBertForTokenClassification, TinyBertForMaskedLM):
        high = config.num_labels if model_class is TinyBertForTokenClassification else config.vocab_size
        labels = torch.randint(0, high, (batch, seq)).masked_fill(attention_mask == 0, -100)
    kwargs = {"labels": labels} if labels is not None else {}
    if seq > config.max_position_embeddings:
        event("sequence refused")
        with pytest.raises(ValueError, match="position"):
            model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        return
    event("forward")
    outputs = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        output_hidden_states=True,
        output_attention_scores=True,
        output_fit_hidden_states=True,
        **kwargs,
    )
    for name, value in outputs.items():
        for tensor in value if isinstance(value, tuple) else (value,):
            if name == "attention_scores":  # padded keys hold the mask's large negative values, by design
                tensor = tensor.masked_fill(~attention_mask.bool()[:, None, None, :], 0.0)
            assert torch.isfinite(tensor).all(), name
    # Gradients, except where dropout can zero every feature of a token (p ** width not negligible, e.g. width 3 at
    # p = 0.9): BERT's LayerNorm (eps 1e-12) of a constant vector then scales gradients by 1e6 per layer, to inf
    # (found by this test; BERT has the same property, and the trainer's guard stops such a run).
    if labels is not None and (not model.training or config.hidden_dropout_prob**config.hidden_size < 1e-6):
        outputs.loss.backward()
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


# ---- pruning ---------------------------------------------------------------------------------------------------


@st.composite
def pruning_targets(draw):
    """Targets for a 4-layer, 32-wide, 4-head, 37-FFN teacher: mostly reachable, 1 in 30 per field not."""

    def maybe(valid, invalid=(0, -1)):
        return draw(st.one_of(st.none(), st.just(mostly(draw, valid, invalid))))

    shape = dict(
        num_hidden_layers=maybe(st.integers(1, 4), invalid=(0, 5)),
        hidden_size=maybe(st.integers(1, 32), invalid=(0, 40)),
        num_attention_heads=maybe(st.integers(1, 4), invalid=(0, 5)),
        intermediate_size=maybe(st.integers(1, 37), invalid=(0, 45)),
    )
    ratios = dict(
        head_ratio=mostly(draw, st.sampled_from([0.0, 0.25, 0.5]), invalid=(1.0, -0.5)),
        ffn_ratio=mostly(draw, st.sampled_from([0.0, 0.5, 0.9]), invalid=(1.0, 1.5)),
    )
    # a target shape or ratios; both together (refused) 1 time in 10
    mode = draw(st.sampled_from(["shape"] * 9 + ["ratios"] * 9 + ["both"] * 2))
    if mode == "shape":
        ratios = {}
    elif mode == "ratios":
        shape = {}
    return dict(
        **shape,
        **ratios,
        importance=mostly(draw, st.sampled_from(["taylor", "activation", "magnitude"]), invalid=("random-name",)),
        layer_selection=draw(st.sampled_from(["uniform", "importance"])),
    )


@given(pruning_targets())
@settings(PROPERTY, max_examples=max(EXAMPLES // 3, 10))
def test_pruning_raises_the_documented_error_or_gives_the_requested_finite_model(target):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    teacher = BertForSequenceClassification(
        BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=37,
                   max_position_embeddings=32, num_labels=2)
    ).eval()  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    batches = [
        {"input_ids": torch.randint(5, 50, (4, 9), generator=generator), "attention_mask": torch.ones(4, 9).long(),
         "labels": torch.randint(0, 2, (4,), generator=generator)}
    ]  # fmt: skip
    try:
        student, plan = prune(teacher, batches, show_progress=False, **target)
    except ValueError:
        event("target refused")
        return  # the documented error: an impossible or contradictory target
    event("pruned")
    config = student.config
    for name in ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size"):
        if target.get(name) is not None:
            assert getattr(config, name) == target[name], name
    with torch.no_grad():
        logits = student(**{key: value for key, value in batches[0].items() if key != "labels"}).logits
    assert logits.shape == (4, 2) and torch.isfinite(logits).all()
