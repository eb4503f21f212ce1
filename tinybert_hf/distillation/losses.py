"""TinyBERT's distillation losses as pure functions of tensors.

Every function takes student and teacher tensors of matching shapes (project the student first with
`fit_dense` when widths differ) and returns a scalar. Padding is excluded with the boolean attention mask, not
with a score threshold, and the attention losses compute in fp32, so fp16/bf16 inputs cannot overflow into
inf/NaN. Conventions:

- `attention_mask`: `(batch, seq)`, 1 (or True) for real tokens, 0 for padding; `None` means no padding.
- hidden states: `(batch, seq, hidden)`; attention scores and probabilities: `(batch, heads, seq, seq)` with
  queries on dim 2 and keys on dim 3; logits: `(batch, num_labels)` or `(batch, seq, num_labels)`.

Relation to the original TinyBERT code (`task_distill.py`): its attention loss is an MSE over all
`(batch, heads, seq, seq)` entries after zeroing entries at or below -100, which removes padded *keys* but keeps
padded *queries* in the sum and in the mean; its hidden-state loss averages over padded positions too; its soft
cross-entropy averages over batch *and* classes. With no padding, [`attention_score_mse`] and
[`hidden_state_mse`] equal the original exactly, and [`soft_cross_entropy`] with `reduction="mean"` equals it on
any input (`tests/test_losses.py` re-derives the original definitions to check this).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _token_mask(attention_mask: torch.Tensor | None, reference: torch.Tensor) -> torch.Tensor:
    """`(batch, seq)` bool mask of real tokens, all True when `attention_mask` is None."""
    if attention_mask is None:
        return torch.ones(reference.shape[0], reference.shape[-2], dtype=torch.bool, device=reference.device)
    return attention_mask.to(device=reference.device, dtype=torch.bool)


def _check_same_shape(student: torch.Tensor, teacher: torch.Tensor, what: str) -> None:
    if student.shape != teacher.shape:
        raise ValueError(
            f"Student and teacher {what} differ in shape: {tuple(student.shape)} vs {tuple(teacher.shape)}. "
            "Project the student with `fit_dense` (set `fit_size` to the teacher's hidden size) or map layers "
            "whose head counts match; the attention-relation loss handles different head counts."
        )


def _masked_row_kl(
    student_log_probs: torch.Tensor, teacher_log_probs: torch.Tensor, real: torch.Tensor
) -> torch.Tensor:
    """KL(teacher || student) of each `(batch, heads, query, :)` row over real keys, averaged over heads and real
    queries; `real` is the `(batch, seq)` token mask."""
    keys = real[:, None, None, :]  # (batch, 1, 1, seq)
    # padded keys: p = 0 contributes 0 (not 0 * -inf = nan)
    kl = torch.where(keys, teacher_log_probs.exp() * (teacher_log_probs - student_log_probs), 0.0).sum(-1)
    queries = real[:, None, :].expand_as(kl)  # (batch, heads, seq)
    return kl[queries].sum() / queries.sum().clamp(min=1)


def hidden_state_mse(
    student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    r"""
    Mean squared error between student and teacher hidden states (or embeddings) over real tokens.

    Args:
        student_hidden (`torch.Tensor` of shape `(batch, seq, hidden)`):
            Student states, already projected to the teacher's width.
        teacher_hidden (`torch.Tensor` of shape `(batch, seq, hidden)`):
            Teacher states.
        attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*):
            Real-token mask; padded positions are left out of sum and mean.

    Returns:
        `torch.Tensor`: scalar, the mean over real tokens and hidden units.

    Example:

    ```python
    >>> import torch
    >>> from tinybert_hf.distillation.losses import hidden_state_mse

    >>> hidden_state_mse(torch.zeros(1, 2, 3), torch.full((1, 2, 3), 2.0))
    tensor(4.)

    ```
    """
    _check_same_shape(student_hidden, teacher_hidden, "hidden states")
    real = _token_mask(attention_mask, student_hidden)  # (batch, seq)
    squared = (student_hidden.float() - teacher_hidden.float()).pow(2)  # (batch, seq, hidden)
    squared = squared.masked_fill(~real[..., None], 0.0)
    count = real.sum() * student_hidden.shape[-1]
    return squared.sum() / count.clamp(min=1)


def attention_score_mse(
    student_scores: torch.Tensor, teacher_scores: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    r"""
    TinyBERT's attention loss: mean squared error between pre-softmax attention scores over real query-key pairs.

    Computed in fp32; padded queries and keys are removed with the boolean mask, so whatever a padded position
    holds (large negative numbers, inf from an fp16 mask) changes nothing.

    Args:
        student_scores (`torch.Tensor` of shape `(batch, heads, seq, seq)`):
            Student pre-softmax scores (`output_attention_scores=True`).
        teacher_scores (`torch.Tensor` of shape `(batch, heads, seq, seq)`):
            Teacher pre-softmax scores, same head count.
        attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*):
            Real-token mask.

    Returns:
        `torch.Tensor`: scalar, the mean over heads and real (query, key) pairs.

    Example:

    ```python
    >>> import torch
    >>> from tinybert_hf.distillation.losses import attention_score_mse

    >>> student, teacher = torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, 9.0], [3.0, 9.0]]]])
    >>> attention_score_mse(student, teacher, attention_mask=torch.tensor([[1, 0]]))  # only (0, 0) is real
    tensor(1.)

    ```
    """
    _check_same_shape(student_scores, teacher_scores, "attention scores")
    real = _token_mask(attention_mask, student_scores)  # (batch, seq)
    pairs = real[:, None, :, None] & real[:, None, None, :]  # (batch, 1, seq, seq)
    difference = torch.where(pairs, student_scores.float() - teacher_scores.float(), 0.0)
    count = pairs.sum() * student_scores.shape[1]
    return difference.pow(2).sum() / count.clamp(min=1)


def attention_kl(
    student_scores: torch.Tensor, teacher_scores: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    r"""
    KL(teacher || student) between the attention distributions of each head and real query, over real keys.

    Takes pre-softmax scores (the softmax is taken here, in fp32, over real keys only), so it needs no
    probabilities from the model; a distribution-level alternative to [`attention_score_mse`] that ignores the
    scores' scale.

    Args:
        student_scores (`torch.Tensor` of shape `(batch, heads, seq, seq)`):
            Student pre-softmax scores.
        teacher_scores (`torch.Tensor` of shape `(batch, heads, seq, seq)`):
            Teacher pre-softmax scores.
        attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*):
            Real-token mask.

    Returns:
        `torch.Tensor`: scalar, the KL summed over keys and averaged over heads and real queries.

    Example:

    ```python
    >>> import torch
    >>> from tinybert_hf.distillation.losses import attention_kl

    >>> scores = torch.randn(2, 3, 4, 4)
    >>> attention_kl(scores, scores).item()
    0.0

    ```
    """
    _check_same_shape(student_scores, teacher_scores, "attention scores")
    real = _token_mask(attention_mask, student_scores)  # (batch, seq)
    keys = real[:, None, None, :]  # (batch, 1, 1, seq)
    student_log_probs = F.log_softmax(student_scores.float().masked_fill(~keys, float("-inf")), dim=-1)
    teacher_log_probs = F.log_softmax(teacher_scores.float().masked_fill(~keys, float("-inf")), dim=-1)
    return _masked_row_kl(student_log_probs, teacher_log_probs, real)


def _relation_log_probs(states: torch.Tensor, keys: torch.Tensor, num_relation_heads: int) -> torch.Tensor:
    """`(batch, seq, width)` -> `(batch, relation_heads, seq, seq)` log-softmax of scaled self dot products, fp32."""
    batch, seq, width = states.shape
    if width % num_relation_heads:
        raise ValueError(
            f"A width of {width} cannot be split into {num_relation_heads} relation heads; choose a number of "
            "relation heads that divides both the student's and the teacher's attention width."
        )
    head_size = width // num_relation_heads
    split = states.float().view(batch, seq, num_relation_heads, head_size).transpose(1, 2)  # (batch, R, seq, d)
    relations = torch.matmul(split, split.transpose(-1, -2)) * head_size**-0.5  # (batch, R, seq, seq)
    return F.log_softmax(relations.masked_fill(~keys, float("-inf")), dim=-1)


def attention_relation_kl(
    student_states: torch.Tensor,
    teacher_states: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    num_relation_heads: int = 12,
) -> torch.Tensor:
    r"""
    MiniLMv2's self-attention relation loss: KL(teacher || student) between the scaled dot-product relations of
    queries with queries (or keys with keys, values with values), split into the same number of relation heads.

    Both models' per-head vectors are concatenated and re-split into `num_relation_heads` heads, so the student
    and teacher may have different head counts and widths (a 16-head teacher and a 12-head student): only the
    `(seq, seq)` relation maps are compared. Computed in fp32 over real queries and keys.

    Args:
        student_states (`torch.Tensor` of shape `(batch, seq, student_width)`):
            The student's queries (or keys, or values), heads concatenated.
        teacher_states (`torch.Tensor` of shape `(batch, seq, teacher_width)`):
            The teacher's, heads concatenated.
        attention_mask (`torch.Tensor` of shape `(batch, seq)`, *optional*):
            Real-token mask.
        num_relation_heads (`int`, *optional*, defaults to 12):
            Relation heads; must divide both widths.

    Returns:
        `torch.Tensor`: scalar, the KL summed over keys and averaged over relation heads and real queries.

    Example:

    ```python
    >>> import torch
    >>> from tinybert_hf.distillation.losses import attention_relation_kl

    >>> teacher = torch.randn(2, 5, 64)  # e.g. 16 heads of 4
    >>> float(attention_relation_kl(teacher[..., :32].repeat(1, 1, 2), teacher, num_relation_heads=4)) > 0
    True
    >>> float(attention_relation_kl(teacher.clone(), teacher, num_relation_heads=4))
    0.0

    ```
    """
    if student_states.shape[:2] != teacher_states.shape[:2]:
        raise ValueError(
            f"Student and teacher states must share batch and sequence sizes, got {tuple(student_states.shape)} "
            f"and {tuple(teacher_states.shape)}."
        )
    real = _token_mask(attention_mask, student_states)  # (batch, seq)
    keys = real[:, None, None, :]  # (batch, 1, 1, seq)
    student_log_probs = _relation_log_probs(student_states, keys, num_relation_heads)
    teacher_log_probs = _relation_log_probs(teacher_states, keys, num_relation_heads)
    return _masked_row_kl(student_log_probs, teacher_log_probs, real)


def soft_cross_entropy(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    reduction: str = "batchmean",
) -> torch.Tensor:
    r"""
    Cross-entropy of the student's tempered distribution against the teacher's: TinyBERT's prediction-layer loss.

    Args:
        student_logits (`torch.Tensor` of shape `(..., num_labels)`):
            Student logits.
        teacher_logits (`torch.Tensor` of shape `(..., num_labels)`):
            Teacher logits (or cached teacher logits).
        temperature (`float`, *optional*, defaults to 1.0):
            Softmax temperature of both distributions.
        reduction (`str`, *optional*, defaults to `"batchmean"`):
            `"batchmean"` sums over classes and averages over examples (the usual cross-entropy);
            `"mean"` averages over examples *and* classes, as the original TinyBERT code does
            (`batchmean / num_labels`).

    Returns:
        `torch.Tensor`: scalar, in fp32.

    Example:

    ```python
    >>> import torch
    >>> from tinybert_hf.distillation.losses import soft_cross_entropy

    >>> logits = torch.zeros(1, 4)  # uniform over 4 classes: entropy log(4)
    >>> round(soft_cross_entropy(logits, logits).item(), 4)
    1.3863

    ```
    """
    _check_same_shape(student_logits, teacher_logits, "logits")
    if temperature <= 0:
        raise ValueError(f"`temperature` must be positive, got {temperature}.")
    teacher_probs = F.softmax(teacher_logits.float() / temperature, dim=-1)
    student_log_probs = F.log_softmax(student_logits.float() / temperature, dim=-1)
    per_element = -teacher_probs * student_log_probs  # (..., num_labels)
    if reduction == "batchmean":
        return per_element.sum(-1).mean()
    if reduction == "mean":
        return per_element.mean()
    raise ValueError(f"`reduction` must be 'batchmean' or 'mean', got {reduction!r}.")


def kl_divergence(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    r"""
    Hinton et al.'s distillation loss: `T^2 * KL(teacher_T || student_T)`, averaged over examples.

    Differs from [`soft_cross_entropy`] by the teacher's entropy (a constant for the student) and the `T^2` factor
    that keeps gradient magnitudes comparable across temperatures.

    Example:

    ```python
    >>> import torch
    >>> from tinybert_hf.distillation.losses import kl_divergence

    >>> logits = torch.randn(3, 5)
    >>> kl_divergence(logits, logits, temperature=2.0).abs().item() < 1e-6
    True

    ```
    """
    _check_same_shape(student_logits, teacher_logits, "logits")
    if temperature <= 0:
        raise ValueError(f"`temperature` must be positive, got {temperature}.")
    # (..., num_labels) -> (examples, num_labels); a single unbatched example is one row
    student_log_probs = F.log_softmax(student_logits.float() / temperature, dim=-1).reshape(
        -1, student_logits.shape[-1]
    )
    teacher_log_probs = F.log_softmax(teacher_logits.float() / temperature, dim=-1).reshape(
        -1, teacher_logits.shape[-1]
    )
    kl = F.kl_div(student_log_probs, teacher_log_probs, log_target=True, reduction="batchmean")
    return kl * temperature**2


def logits_mse(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    r"""
    Mean squared error between student and teacher outputs: the prediction-layer loss for regression tasks.

    Example:

    ```python
    >>> import torch
    >>> from tinybert_hf.distillation.losses import logits_mse

    >>> logits_mse(torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [1.0]]))
    tensor(2.5000)

    ```
    """
    _check_same_shape(student_logits, teacher_logits, "logits")
    return F.mse_loss(student_logits.float(), teacher_logits.float())
