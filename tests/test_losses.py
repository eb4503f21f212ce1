"""Closed-form checks of every loss, masking, fp16 safety, and parity with the original TinyBERT definitions."""

import math

import pytest
import torch

from tinybert_hf.distillation.losses import (
    attention_kl,
    attention_relation_kl,
    attention_score_mse,
    hidden_state_mse,
    kl_divergence,
    logits_mse,
    soft_cross_entropy,
)

MASK = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])  # second example: last two tokens are padding


def scores(seed: int, shape=(2, 3, 4, 4)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


class TestZeroForIdenticalInputs:
    def test_hidden(self):
        hidden = scores(0, (2, 4, 5))
        assert hidden_state_mse(hidden, hidden, MASK).item() == 0.0

    def test_attention_scores(self):
        assert attention_score_mse(scores(0), scores(0), MASK).item() == 0.0

    def test_attention_kl(self):
        assert attention_kl(scores(0), scores(0), MASK).abs().item() < 1e-7

    def test_kl_divergence(self):
        logits = scores(1, (3, 5))
        assert kl_divergence(logits, logits, temperature=3.0).abs().item() < 1e-6

    def test_logits_mse(self):
        logits = scores(1, (3, 5))
        assert logits_mse(logits, logits).item() == 0.0

    def test_attention_relation(self):
        states = scores(2, (2, 4, 12))
        assert attention_relation_kl(states, states, MASK, num_relation_heads=3).abs().item() < 1e-7


class TestValuesByHand:
    def test_hidden_mse_counts_only_real_tokens(self):
        student = torch.zeros(2, 2, 2)
        teacher = torch.tensor([[[1.0, 1.0], [3.0, 3.0]], [[2.0, 2.0], [100.0, 100.0]]])
        mask = torch.tensor([[1, 1], [1, 0]])
        # real tokens: squared errors 1,1 | 9,9 | 4,4 -> 28 / 6
        assert hidden_state_mse(student, teacher, mask).item() == pytest.approx(28 / 6)

    def test_attention_mse_counts_real_query_key_pairs_and_heads(self):
        student = torch.zeros(1, 2, 2, 2)
        teacher = torch.tensor([[[[1.0, 5.0], [5.0, 5.0]], [[3.0, 5.0], [5.0, 5.0]]]])
        # only (query 0, key 0) is real, in 2 heads: (1 + 9) / 2
        assert attention_score_mse(student, teacher, torch.tensor([[1, 0]])).item() == pytest.approx(5.0)

    def test_attention_kl_by_hand(self):
        student = torch.zeros(1, 1, 1, 2)  # uniform (1/2, 1/2)
        teacher = torch.tensor([[[[math.log(3.0), 0.0]]]])  # (3/4, 1/4)
        expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
        assert attention_kl(student, teacher).item() == pytest.approx(expected, abs=1e-6)

    def test_soft_cross_entropy_by_hand(self):
        student = torch.tensor([[0.0, 0.0]])
        teacher = torch.tensor([[2 * math.log(3.0), 0.0]])  # at T=2: (3/4, 1/4)
        expected = -(0.75 * math.log(0.5) + 0.25 * math.log(0.5))
        assert soft_cross_entropy(student, teacher, temperature=2.0).item() == pytest.approx(expected)
        assert soft_cross_entropy(student, teacher, 2.0, reduction="mean").item() == pytest.approx(expected / 2)

    def test_kl_divergence_by_hand_with_temperature_squared(self):
        student = torch.tensor([[0.0, 0.0]])
        teacher = torch.tensor([[2 * math.log(3.0), 0.0]])
        kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
        assert kl_divergence(student, teacher, temperature=2.0).item() == pytest.approx(4 * kl, rel=1e-5)

    def test_attention_relation_kl_by_hand(self):
        # one relation head of width 1: relation[i, j] = x_i * x_j; the student's are all 0 (uniform rows)
        student = torch.zeros(1, 2, 1)
        teacher = torch.tensor([[[1.0], [0.0]]])  # query 0 sees (1, 0) -> (e, 1) / (e + 1); query 1 uniform
        p = math.e / (math.e + 1)
        expected = (p * math.log(p / 0.5) + (1 - p) * math.log((1 - p) / 0.5) + 0.0) / 2
        assert attention_relation_kl(student, teacher, num_relation_heads=1).item() == pytest.approx(expected)

    def test_attention_relation_ignores_how_heads_are_cut(self):
        """Relations are taken on the concatenated heads: a 4-head and a 2-head model with the same concatenated
        queries are identical to the loss, and the student may be narrower than the teacher."""
        teacher = scores(3, (2, 4, 16))  # e.g. 4 heads of 4, concatenated
        narrow_student = scores(4, (2, 4, 8))  # e.g. 2 heads of 4
        value = attention_relation_kl(narrow_student, teacher, MASK, num_relation_heads=2)
        assert torch.isfinite(value) and value.item() > 0
        # a student whose relations equal the teacher's, written at a different width: both halves duplicated
        per_head = teacher.view(2, 4, 2, 8)
        # twice the width per head: c^2 * 2 * q.k / sqrt(16) equals q.k / sqrt(8) for c = 2 ** -0.25
        widened = torch.cat([per_head, per_head], dim=-1).flatten(2) * 2**-0.25  # (2, 4, 32)
        assert attention_relation_kl(widened, teacher, MASK, num_relation_heads=2).abs().item() < 1e-5

    def test_logits_mse_by_hand(self):
        assert logits_mse(torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [1.0]])).item() == pytest.approx(2.5)


class TestMasking:
    """Whatever padded positions hold changes nothing."""

    @staticmethod
    def scramble_padding(tensor: torch.Tensor, value: float) -> torch.Tensor:
        changed = tensor.clone()
        if tensor.dim() == 3:  # (batch, seq, hidden)
            changed[1, 2:] = value
        else:  # (batch, heads, seq, seq): padded queries and padded keys
            changed[1, :, 2:, :] = value
            changed[1, :, :, 2:] = value
        return changed

    @pytest.mark.parametrize("value", [1e4, -1e4, float("-inf"), 123.0])
    def test_attention_losses(self, value):
        student, teacher = scores(0), scores(1)
        for loss in (attention_score_mse, attention_kl):
            expected = loss(student, teacher, MASK)
            torch.testing.assert_close(loss(self.scramble_padding(student, value), teacher, MASK), expected)
            torch.testing.assert_close(loss(student, self.scramble_padding(teacher, value), MASK), expected)

    @pytest.mark.parametrize("value", [1e4, -1e4, 123.0])
    def test_attention_relation(self, value):
        student, teacher = scores(0, (2, 4, 6)), scores(1, (2, 4, 12))
        expected = attention_relation_kl(student, teacher, MASK, num_relation_heads=3)
        changed = attention_relation_kl(self.scramble_padding(student, value), teacher, MASK, num_relation_heads=3)
        torch.testing.assert_close(changed, expected)
        changed = attention_relation_kl(student, self.scramble_padding(teacher, value), MASK, num_relation_heads=3)
        torch.testing.assert_close(changed, expected)

    def test_hidden_loss(self):
        student, teacher = scores(0, (2, 4, 5)), scores(1, (2, 4, 5))
        expected = hidden_state_mse(student, teacher, MASK)
        torch.testing.assert_close(hidden_state_mse(self.scramble_padding(student, 1e3), teacher, MASK), expected)


class TestLowPrecision:
    def test_fp16_attention_scores_with_min_value_mask_stay_finite(self):
        """A stock fp16 mask puts finfo(fp16).min at padded keys; squaring that in fp16 overflows to inf."""
        student, teacher = scores(0).half(), scores(1).half()
        minimum = torch.finfo(torch.float16).min
        student[1, :, :, 2:], teacher[1, :, :, 2:] = minimum, 0.0
        for loss in (attention_score_mse, attention_kl):
            value = loss(student, teacher, MASK)
            assert torch.isfinite(value) and value.dtype == torch.float32
        expected = attention_score_mse(scores(0), scores(1), MASK)
        torch.testing.assert_close(attention_score_mse(student, teacher, MASK), expected, atol=1e-2, rtol=1e-2)

    def test_bf16_logits(self):
        student, teacher = scores(0, (4, 3)).bfloat16(), scores(1, (4, 3)).bfloat16()
        assert torch.isfinite(soft_cross_entropy(student, teacher, 2.0))
        assert torch.isfinite(kl_divergence(student, teacher, 2.0))


class TestParityWithOriginalTinyBert:
    """The original definitions, re-derived from the TinyBERT paper and task_distill.py's behaviour.

    Attention: the scores carry an additive -10000 mask on padded keys; entries <= -100 are zeroed in both
    student and teacher, then MSE is averaged over every (batch, head, query, key) entry. Hidden states:
    MSE over every entry, padded positions included. Prediction: -(softmax(t/T) * log_softmax(s/T)), averaged
    over every (example, class) entry.
    """

    @staticmethod
    def original_attention_loss(student, teacher, attention_mask):
        additive = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
        student, teacher = student + additive, teacher + additive
        student = torch.where(student <= -1e2, torch.zeros_like(student), student)
        teacher = torch.where(teacher <= -1e2, torch.zeros_like(teacher), teacher)
        return ((student - teacher) ** 2).mean()

    @staticmethod
    def original_soft_cross_entropy(student_logits, teacher_logits, temperature):
        likelihood = torch.log_softmax(student_logits / temperature, dim=-1)
        targets = torch.softmax(teacher_logits / temperature, dim=-1)
        return (-targets * likelihood).mean()

    def test_attention_without_padding_equals_the_original(self):
        student, teacher = scores(0), scores(1)
        full = torch.ones(2, 4, dtype=torch.long)
        original = self.original_attention_loss(student, teacher, full)
        torch.testing.assert_close(attention_score_mse(student, teacher, full), original)

    def test_attention_with_padding_differs_only_by_what_the_original_counted(self):
        """The original also sums padded *queries* and divides by all entries; make padded query rows agree so
        they add nothing, and the two values differ exactly by the ratio of the counts."""
        student, teacher = scores(0), scores(1)
        teacher[1, :, 2:, :] = student[1, :, 2:, :]
        original = self.original_attention_loss(student, teacher, MASK)
        heads, seq = student.shape[1], student.shape[2]
        real_pairs = (4 * 4 + 2 * 2) * heads
        ours = attention_score_mse(student, teacher, MASK)
        torch.testing.assert_close(ours * real_pairs, original * (2 * heads * seq * seq))

    def test_hidden_without_padding_equals_the_original(self):
        student, teacher = scores(0, (2, 4, 5)), scores(1, (2, 4, 5))
        original = ((student - teacher) ** 2).mean()
        torch.testing.assert_close(hidden_state_mse(student, teacher), original)

    @pytest.mark.parametrize("temperature", [1.0, 2.0])
    def test_soft_cross_entropy_mean_reduction_equals_the_original(self, temperature):
        student, teacher = scores(0, (6, 3)), scores(1, (6, 3))
        original = self.original_soft_cross_entropy(student, teacher, temperature)
        torch.testing.assert_close(soft_cross_entropy(student, teacher, temperature, reduction="mean"), original)
        torch.testing.assert_close(soft_cross_entropy(student, teacher, temperature), original * 3)


class TestBadInput:
    def test_shape_mismatch_names_both_shapes_and_the_fix(self):
        with pytest.raises(ValueError, match=r"\(2, 4, 5\) vs \(2, 4, 6\).*fit_dense"):
            hidden_state_mse(torch.zeros(2, 4, 5), torch.zeros(2, 4, 6))
        with pytest.raises(ValueError, match="attention-relation loss handles different head counts"):
            attention_score_mse(torch.zeros(1, 2, 3, 3), torch.zeros(1, 4, 3, 3))

    def test_relation_heads_must_divide_the_width(self):
        with pytest.raises(ValueError, match="width of 10 cannot be split into 4 relation heads"):
            attention_relation_kl(torch.zeros(1, 3, 10), torch.zeros(1, 3, 8), num_relation_heads=4)

    def test_non_positive_temperature(self):
        with pytest.raises(ValueError, match="`temperature` must be positive"):
            soft_cross_entropy(torch.zeros(1, 2), torch.zeros(1, 2), temperature=0.0)

    def test_unknown_reduction(self):
        with pytest.raises(ValueError, match="`reduction` must be"):
            soft_cross_entropy(torch.zeros(1, 2), torch.zeros(1, 2), reduction="sum")
