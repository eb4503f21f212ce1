"""TinyBERT distillation as a `transformers.Trainer`: swap in `DistillationTrainer`, pass a teacher.

Status: the objective (embedding, attention, hidden-state, prediction and hard-label parts with TinyBERT's layer
mapping), the frozen teacher, the compatibility checks and per-part logging. Teacher-logit caching, the
attention-relation loss and the distributed and mixed-precision checks arrive in later steps of the trainer issue.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel, Trainer, TrainingArguments
from transformers.utils import logging

from .attention_capture import record_attention, supports_attention_recording
from .losses import (
    attention_kl,
    attention_score_mse,
    hidden_state_mse,
    kl_divergence,
    logits_mse,
    soft_cross_entropy,
)
from .modeling_tinybert import TinyBertPreTrainedModel
from .student_init import uniform_layer_subset

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
    >>> from tinybert_hf.trainer import DistillationTrainingArguments

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
        default="mse", metadata={"help": "'mse' on pre-softmax scores (TinyBERT) or 'kl' on attention distributions."}
    )
    prediction_loss: str = field(
        default="soft_ce",
        metadata={"help": "'soft_ce' (TinyBERT's soft cross-entropy) or 'kl' (T^2-scaled KL); MSE for regression."},
    )

    def __post_init__(self):
        super().__post_init__()
        if self.stage is not None and self.stage not in STAGE_WEIGHTS:
            raise ValueError(f"`stage={self.stage!r}` is not a TinyBERT stage; use one of {sorted(STAGE_WEIGHTS)}.")
        if self.temperature <= 0:
            raise ValueError(f"`temperature` must be positive, got {self.temperature}.")
        if self.attention_loss not in ("mse", "kl"):
            raise ValueError(f"`attention_loss` must be 'mse' or 'kl', got {self.attention_loss!r}.")
        if self.prediction_loss not in ("soft_ce", "kl"):
            raise ValueError(f"`prediction_loss` must be 'soft_ce' or 'kl', got {self.prediction_loss!r}.")
        weights = self.loss_weights()
        negative = {part: weight for part, weight in weights.items() if weight < 0}
        if negative:
            raise ValueError(f"Loss weights must be non-negative, got {negative}.")
        if not any(weights.values()):
            raise ValueError("Every loss weight is 0: nothing would be trained. Set a `stage` or a weight above 0.")
        if self.layer_mapping not in ("uniform", "last"):
            try:
                _parse_layer_list(self.layer_mapping)
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


def _parse_layer_list(text: str) -> list[int]:
    """'1,3,5' -> [1, 3, 5]; raises ValueError on anything else."""
    return [int(index) for index in text.split(",")]


def resolve_layer_mapping(mapping: str | list[int], num_teacher_layers: int, num_student_layers: int) -> list[int]:
    """0-based teacher layer index learnt by each student layer."""
    if mapping == "uniform":
        return uniform_layer_subset(num_teacher_layers, num_student_layers)
    if mapping == "last":
        return list(range(num_teacher_layers - num_student_layers, num_teacher_layers))
    layers = _parse_layer_list(mapping) if isinstance(mapping, str) else list(mapping)
    if len(layers) != num_student_layers:
        raise ValueError(
            f"`layer_mapping` names {len(layers)} teacher layers but the student has {num_student_layers} layers; "
            "give one teacher layer per student layer."
        )
    out_of_range = [index for index in layers if not 0 <= index < num_teacher_layers]
    if out_of_range:
        raise ValueError(
            f"`layer_mapping` refers to teacher layers {out_of_range}, but the teacher has {num_teacher_layers} "
            f"layers (0..{num_teacher_layers - 1})."
        )
    return layers


class DistillationTrainer(Trainer):
    r"""
    [`Trainer`] whose loss is TinyBERT's distillation objective against a frozen teacher.

    Override [`~DistillationTrainer.compute_loss_parts`] to add or replace a loss term: it receives the student
    and teacher outputs and returns a dict of named scalar losses, which are weighted, summed and logged.

    Args:
        model ([`TinyBertPreTrainedModel`]):
            The student (a TinyBERT class: intermediate losses need its attention scores and projections).
        args ([`DistillationTrainingArguments`]):
            Training arguments and loss weights.
        teacher_model ([`PreTrainedModel`]):
            The teacher, any BERT-family encoder with the same vocabulary; frozen and kept in eval mode.
        kwargs:
            Everything else [`Trainer`] takes (datasets, collator, callbacks, ...).
    """

    def __init__(
        self,
        model: TinyBertPreTrainedModel | None = None,
        args: DistillationTrainingArguments | None = None,
        teacher_model: PreTrainedModel | None = None,
        **kwargs,
    ):
        if teacher_model is None:
            raise ValueError("`teacher_model` is required: pass the fine-tuned (or pretrained) teacher to distil.")
        if not isinstance(args, DistillationTrainingArguments):
            raise ValueError("`args` must be a `DistillationTrainingArguments`, which carries the loss weights.")
        self.loss_weights = args.loss_weights()
        self.layer_mapping = self._check_compatibility(model, teacher_model, args)
        super().__init__(model=model, args=args, **kwargs)

        teacher_model.eval()
        teacher_model.requires_grad_(False)
        # Placed like the student but never wrapped for gradient sync: it only runs forward passes.
        self.teacher_model = self.accelerator.prepare_model(teacher_model, evaluation_mode=True)
        self._loss_part_sums = {"train": defaultdict(float), "eval": defaultdict(float)}
        self._loss_part_counts = {"train": defaultdict(int), "eval": defaultdict(int)}

    def _check_compatibility(
        self, student: PreTrainedModel, teacher: PreTrainedModel, args: DistillationTrainingArguments
    ) -> list[int] | None:
        """Fail at construction, naming both values and the fix, instead of deep inside the first step."""
        weights = self.loss_weights
        student_config, teacher_config = student.config, teacher.config
        if student_config.vocab_size != teacher_config.vocab_size:
            raise ValueError(
                f"The student's vocabulary has {student_config.vocab_size} tokens but the teacher's has "
                f"{teacher_config.vocab_size}: both must read the same token ids. Build the student with "
                "`TinyBertConfig.from_teacher_config(teacher.config)`."
            )
        intermediate = weights["embedding"] or weights["attention"] or weights["hidden"]
        if not intermediate:
            mapping = None
        else:
            if not isinstance(student, TinyBertPreTrainedModel):
                raise ValueError(
                    f"Intermediate-layer losses need a TinyBERT student (attention scores, fit_dense), got "
                    f"{type(student).__name__}; use a TinyBert* class or set stage='prediction'."
                )
            mapping = resolve_layer_mapping(
                args.layer_mapping, teacher_config.num_hidden_layers, student_config.num_hidden_layers
            )
            student_width, teacher_width = student_config.hidden_size, teacher_config.hidden_size
            projected = student_width == teacher_width or student_config.fit_size == teacher_width
            if (weights["embedding"] or weights["hidden"]) and not projected:
                raise ValueError(
                    f"The student is {student_width} wide and the teacher {teacher_width}, but the student's "
                    f"`fit_size` is {student_config.fit_size}: set `fit_size={teacher_width}` so fit_dense projects "
                    "student states to the teacher's width."
                )
            if weights["attention"]:
                if not supports_attention_recording(teacher):
                    raise ValueError(
                        f"The teacher ({type(teacher).__name__}) cannot expose pre-softmax attention scores; set "
                        "`attention_loss_weight=0`."
                    )
                for student_layer, teacher_layer in enumerate(mapping):
                    student_heads = student_config.num_attention_heads_of_layer(student_layer)
                    teacher_heads = teacher_config.num_attention_heads
                    if student_heads != teacher_heads:
                        raise ValueError(
                            f"Student layer {student_layer} has {student_heads} attention heads and teacher layer "
                            f"{teacher_layer} has {teacher_heads}; TinyBERT's attention loss compares head by head. "
                            "Give the student the teacher's head count or set `attention_loss_weight=0`."
                        )
        if weights["prediction"]:
            teacher_labels = getattr(teacher_config, "num_labels", None)
            if not type(teacher).__name__.endswith(("ForSequenceClassification", "ForTokenClassification")):
                raise ValueError(
                    f"The prediction-layer loss needs a teacher with a task head, got {type(teacher).__name__}; "
                    "fine-tune the teacher first or use stage='intermediate'."
                )
            if teacher_labels != student_config.num_labels:
                raise ValueError(
                    f"The teacher predicts {teacher_labels} labels and the student {student_config.num_labels}; "
                    "build the student config from the teacher's (`TinyBertConfig.from_teacher_config`)."
                )
        return mapping

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Weighted sum of the loss parts; each part is also accumulated for logging."""
        weights = self.loss_weights
        intermediate = bool(weights["embedding"] or weights["attention"] or weights["hidden"])
        model_inputs = dict(inputs)
        labels = model_inputs.pop("labels", None)
        student_outputs = model(
            **model_inputs,
            labels=labels if weights["hard_label"] else None,
            output_hidden_states=intermediate,
            output_attention_scores=bool(weights["attention"]),
            output_fit_hidden_states=bool(weights["embedding"] or weights["hidden"]),
        )
        teacher_outputs, teacher_scores = self._teacher_forward(model_inputs, intermediate, bool(weights["attention"]))
        parts = self.compute_loss_parts(student_outputs, teacher_outputs, teacher_scores, inputs)
        loss = sum(weights.get(name, 1.0) * value for name, value in parts.items())
        split = "train" if model.training else "eval"
        for name, value in parts.items():
            # a device tensor: reading it back (a host sync) waits until `log`, not every step
            self._loss_part_sums[split][name] += value.detach().float()
            self._loss_part_counts[split][name] += 1
        if not return_outputs:
            return loss
        # Only the logits go to evaluation: Trainer would otherwise gather every hidden state and score tensor.
        return loss, type(student_outputs)(loss=loss, logits=student_outputs.logits)

    @torch.no_grad()
    def _teacher_forward(self, model_inputs: dict, hidden_states: bool, attention_scores: bool):
        self.teacher_model.eval()
        if not attention_scores:
            return self.teacher_model(**model_inputs, output_hidden_states=hidden_states), None
        with record_attention(self.teacher_model) as record:
            outputs = self.teacher_model(**model_inputs, output_hidden_states=hidden_states)
        return outputs, record.scores

    def compute_loss_parts(
        self, student_outputs, teacher_outputs, teacher_attention_scores: list[torch.Tensor] | None, inputs: dict
    ) -> dict[str, torch.Tensor]:
        r"""
        The named, unweighted loss terms of one batch. Override to add or replace terms; a new name gets weight 1
        unless `self.loss_weights` names it.

        Args:
            student_outputs: the student's output (with `hidden_states`, `attention_scores`, `fit_hidden_states`
                when the intermediate losses are on, and `loss` when the hard-label loss is).
            teacher_outputs: the teacher's output (`hidden_states`, `logits`).
            teacher_attention_scores (`list[torch.Tensor]`, *optional*): the teacher's pre-softmax scores per layer.
            inputs (`dict`): the batch (`attention_mask`, `labels`, ...).

        Returns:
            `dict[str, torch.Tensor]`: scalar losses by name.
        """
        weights, mask = self.loss_weights, inputs.get("attention_mask")
        parts = {}
        if weights["embedding"]:
            parts["embedding"] = hidden_state_mse(
                student_outputs.fit_hidden_states[0], teacher_outputs.hidden_states[0], mask
            )
        if weights["hidden"]:
            parts["hidden"] = sum(
                hidden_state_mse(student_outputs.fit_hidden_states[m + 1], teacher_outputs.hidden_states[t + 1], mask)
                for m, t in enumerate(self.layer_mapping)
            )
        if weights["attention"]:
            attention_loss = attention_score_mse if self.args.attention_loss == "mse" else attention_kl
            parts["attention"] = sum(
                attention_loss(student_outputs.attention_scores[m], teacher_attention_scores[t], mask)
                for m, t in enumerate(self.layer_mapping)
            )
        if weights["prediction"]:
            parts["prediction"] = self._prediction_loss(student_outputs.logits, teacher_outputs.logits, inputs)
        if weights["hard_label"]:
            parts["hard_label"] = student_outputs.loss
        return parts

    def _prediction_loss(self, student_logits, teacher_logits, inputs) -> torch.Tensor:
        config = self.model.config
        if config.num_labels == 1 or config.problem_type == "regression":
            return logits_mse(student_logits, teacher_logits)
        if student_logits.dim() == 3:  # token classification: only real tokens, (tokens, num_labels)
            real = inputs["attention_mask"].bool() if "attention_mask" in inputs else None
            if real is not None:
                student_logits, teacher_logits = student_logits[real], teacher_logits[real]
        if self.args.prediction_loss == "kl":
            return kl_divergence(student_logits, teacher_logits, self.args.temperature)
        return soft_cross_entropy(student_logits, teacher_logits, self.args.temperature)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean of each loss part since the last log: `loss_<part>` in training, `eval_loss_<part>`."""
        split = "eval" if any(key.startswith("eval_") for key in logs) else "train"
        prefix = "eval_" if split == "eval" else ""
        for name, total in self._loss_part_sums[split].items():
            logs[f"{prefix}loss_{name}"] = round(float(total) / max(self._loss_part_counts[split][name], 1), 6)
        self._loss_part_sums[split].clear()
        self._loss_part_counts[split].clear()
        super().log(logs, start_time)
