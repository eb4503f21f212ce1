"""`DistillationTrainingArguments`: [`TrainingArguments`] plus the distillation objective, and the loss weights of
TinyBERT's stages."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments
from transformers.utils import logging

from ..utils.processes import cpu_process_group_needed
from .layer_mapping import parse_layer_list

logger = logging.get_logger(__name__)


LOSS_PARTS = ("embedding", "attention", "hidden", "prediction", "hard_label")


# Weights of each TinyBERT stage (Jiao et al., 2020): intermediate layers first, then the prediction layer.
STAGE_WEIGHTS = {
    "general": {"embedding": 1.0, "attention": 1.0, "hidden": 1.0, "prediction": 0.0, "hard_label": 0.0},
    "intermediate": {"embedding": 1.0, "attention": 1.0, "hidden": 1.0, "prediction": 0.0, "hard_label": 0.0},
    "prediction": {"embedding": 0.0, "attention": 0.0, "hidden": 0.0, "prediction": 1.0, "hard_label": 0.0},
}


DEFAULT_WEIGHTS = {"embedding": 1.0, "attention": 1.0, "hidden": 1.0, "prediction": 1.0, "hard_label": 0.0}


@dataclass
class DistillationTrainingArguments(TrainingArguments):
    r"""
    [`TrainingArguments`] plus the distillation objective. Weights left unset come from `stage`.

    Example:

    ```python
    >>> from tinybert_hf import DistillationTrainingArguments

    >>> args = DistillationTrainingArguments(output_dir="out", stage="prediction", temperature=2.0, report_to="none")
    >>> args.loss_weights()
    {'embedding': 0.0, 'attention': 0.0, 'hidden': 0.0, 'prediction': 1.0, 'hard_label': 0.0}

    ```
    """

    stage: str | None = field(
        default=None,
        metadata={
            "help": "TinyBERT recipe stage setting the loss weights: 'general' or 'intermediate' (embedding + "
            "attention + hidden), 'prediction' (logits). Unset: all four distillation parts with weight 1."
        },
    )
    temperature: float = field(default=1.0, metadata={"help": "Softmax temperature of the prediction loss."})
    embedding_loss_weight: float | None = field(default=None, metadata={"help": "Weight of the embedding MSE."})
    attention_loss_weight: float | None = field(default=None, metadata={"help": "Weight of the attention loss."})
    hidden_loss_weight: float | None = field(default=None, metadata={"help": "Weight of the hidden-state MSE."})
    prediction_loss_weight: float | None = field(
        default=None, metadata={"help": "Weight of the prediction-layer loss against the teacher's logits."}
    )
    hard_label_loss_weight: float | None = field(
        default=None, metadata={"help": "Weight of the student's own loss on the gold labels."}
    )
    layer_mapping: str = field(
        default="uniform",
        metadata={
            "help": "Teacher layer learnt by each student layer: 'uniform' (TinyBERT's), 'last' (the top layers) "
            "or 0-based teacher layer indices, one per student layer, e.g. '1,3,5'."
        },
    )
    attention_loss: str = field(
        default="mse",
        metadata={
            "help": "'mse' on pre-softmax scores (TinyBERT), 'kl' on attention distributions, or 'relation' "
            "(MiniLMv2's Q-Q/K-K/V-V relations, for teachers whose head count differs from the student's)."
        },
    )
    relation_heads: int | None = field(
        default=None,
        metadata={
            "help": "Relation heads of the 'relation' attention loss; must divide both models' attention widths. "
            "Unset: the student's number of attention heads."
        },
    )
    prediction_loss: str = field(
        default="soft_ce",
        metadata={
            "help": "'soft_ce' (TinyBERT's soft cross-entropy), 'kl' (T^2-scaled KL) or 'mse' (on the logits "
            "themselves, which keeps their scale where a softmax saturates); MSE for regression whatever is set."
        },
    )
    l1_penalty: float = field(
        default=0.0,
        metadata={
            "help": "Coefficient of sum(|w|) over the attention and FFN weights of the student's layers, added once "
            "per optimizer step: drives weights to zero before magnitude pruning for sparse runtimes."
        },
    )
    l2_penalty: float = field(
        default=0.0, metadata={"help": "Coefficient of sum(w^2) over the same weights (a coupled L2 penalty)."}
    )
    stop_on_nonfinite_loss: bool = field(
        default=True,
        metadata={
            "help": "Stop with a `NonFiniteLossError` naming the loss part and the step when a training loss part "
            "is NaN or infinite (before it reaches the weights), and refuse to save a checkpoint whose weights are."
        },
    )

    def __post_init__(self):
        if cpu_process_group_needed():  # plain `torchrun` on CPUs: else each process would train alone, silently
            self.use_cpu = True
        super().__post_init__()
        if self.dataloader_pin_memory and not torch.accelerator.is_available():
            # pinned memory only speeds copies to an accelerator; without one torch warns on every data loader
            self.dataloader_pin_memory = False
        if self.stage is not None and self.stage not in STAGE_WEIGHTS:
            raise ValueError(f"`stage={self.stage!r}` is not a TinyBERT stage; use one of {sorted(STAGE_WEIGHTS)}.")
        if self.temperature <= 0:
            raise ValueError(f"`temperature` must be positive, got {self.temperature}.")
        if self.attention_loss not in ("mse", "kl", "relation"):
            raise ValueError(f"`attention_loss` must be 'mse', 'kl' or 'relation', got {self.attention_loss!r}.")
        if self.relation_heads is not None and self.relation_heads < 1:
            raise ValueError(f"`relation_heads` must be at least 1, got {self.relation_heads}.")
        if self.prediction_loss not in ("soft_ce", "kl", "mse"):
            raise ValueError(f"`prediction_loss` must be 'soft_ce', 'kl' or 'mse', got {self.prediction_loss!r}.")
        if self.l1_penalty < 0 or self.l2_penalty < 0:
            raise ValueError(f"Weight penalties must be non-negative, got l1={self.l1_penalty}, l2={self.l2_penalty}.")
        weights = self.loss_weights()
        negative = {part: weight for part, weight in weights.items() if weight < 0}
        if negative:
            raise ValueError(f"Loss weights must be non-negative, got {negative}.")
        if not any(weights.values()):
            raise ValueError("Every loss weight is 0: nothing would be trained. Set a `stage` or a weight above 0.")
        if self.layer_mapping not in ("uniform", "last"):
            try:
                parse_layer_list(self.layer_mapping)
            except ValueError as error:
                raise ValueError(
                    f"`layer_mapping={self.layer_mapping!r}` is neither 'uniform', 'last' nor comma-separated "
                    "teacher layer indices such as '1,3,5'."
                ) from error

    def loss_weights(self) -> dict[str, float]:
        """Weight of each loss part: explicit `*_loss_weight` values, the rest from `stage`."""
        preset = STAGE_WEIGHTS.get(self.stage, DEFAULT_WEIGHTS)
        explicit = {part: getattr(self, f"{part}_loss_weight") for part in LOSS_PARTS}
        return {part: preset[part] if explicit[part] is None else explicit[part] for part in LOSS_PARTS}
