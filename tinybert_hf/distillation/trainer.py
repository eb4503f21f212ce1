"""TinyBERT distillation as a `transformers.Trainer`: swap in `DistillationTrainer`, pass a teacher.

The objective: embedding, attention (TinyBERT's score MSE, a KL on attention distributions, or MiniLMv2's
head-count-agnostic Q-Q/K-K/V-V relations), hidden-state, prediction and hard-label parts over TinyBERT's layer
mapping, against a frozen teacher placed by Accelerate and never wrapped for gradient sync.

Gradient accumulation and several processes give the update of the equivalent single large batch: every loss part
is a mean over its own unit (examples, real tokens, real query-key pairs or labels), so each micro-batch's part is
weighted by its share of the units in the whole accumulation window, counted over all processes.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import nullcontext
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import torch
from datasets import Dataset
from transformers import PreTrainedModel, Trainer
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import ModelOutput, logging

from ..data.tasks import task_of_model_class
from ..errors import BadInputError, NonFiniteLossError
from ..models.tinybert.modeling_tinybert import TinyBertPreTrainedModel
from ..utils.atomic import is_complete_checkpoint, last_complete_checkpoint
from ..utils.layers import prunable_linears
from .arguments import DistillationTrainingArguments
from .attention_capture import (
    AttentionRecord,
    attention_recording_error,
    record_attention,
)
from .hidden_projection import attach_hidden_projection, load_projection, save_projection, split_projection
from .layer_mapping import resolve_layer_mapping
from .losses import (
    attention_kl,
    attention_relation_kl,
    attention_score_mse,
    hidden_state_mse,
    kl_divergence,
    logits_mse,
    soft_cross_entropy,
)
from .teacher_cache import TEACHER_LOGITS_COLUMN, TeacherLogitsCollator, accepted_inputs, forward_input_names
from .teacher_placement import prepare_teacher

logger = logging.get_logger(__name__)

# the tags of every card of a distilled student: Trainer's card of DistillationTrainer, and the recipe's
CARD_TAGS = ("tinybert", "knowledge-distillation", "tinybert-hf")

# What each loss part averages over, counted per batch by `_batch_units` (a loss part a subclass adds is taken to
# be a mean over examples).
UNITS = ("examples", "tokens", "token_pairs", "labels")


class DistillationTrainer(Trainer):
    r"""
    [`Trainer`] whose loss is TinyBERT's distillation objective against a frozen teacher.

    Override [`~DistillationTrainer.compute_loss_parts`] to add or replace a loss term: it receives the student
    and teacher outputs and returns a dict of named scalar losses, which are weighted, summed and logged
    (`examples/custom_loss_term.py` shows one).

    When the prediction-layer losses are the only ones on and the dataset has a `teacher_logits` column (see
    [`~tinybert_hf.distillation.teacher_cache.add_teacher_logits`]), the teacher does not run: its cached logits are
    used.

    Rows labelled -100 are unlabelled (transfer text, see [`~tinybert_hf.data.transfer_text.mix_transfer_rows`]): the
    distillation losses learn the teacher on them like on any row, the hard-label loss and the label checks skip
    them, so the student can follow the teacher beyond the labelled set.

    Reliability: `train(resume_from_checkpoint=True)` resumes from the newest checkpoint Trainer finished writing
    (bitwise the uninterrupted run on CPU, after a SIGKILL too); a NaN or infinite loss part stops training with a
    [`~tinybert_hf.errors.NonFiniteLossError`] naming the part and the step (`stop_on_nonfinite_loss`); an empty
    dataset, labels outside `num_labels`, tokenizers with other vocabularies (`teacher_processing_class`) and
    incompatible teacher/student shapes fail before the first step; batches longer than either model's position
    table are cut to it with a warning.

    Args:
        model ([`TinyBertPreTrainedModel`]):
            The student (a TinyBERT class: intermediate losses need its attention scores and projections).
        args ([`DistillationTrainingArguments`]):
            Training arguments and loss weights.
        teacher_model ([`PreTrainedModel`]):
            The teacher, any BERT-family encoder with the same vocabulary; frozen and kept in eval mode.
        teacher_processing_class ([`PreTrainedTokenizerBase`], *optional*):
            The teacher's tokenizer, when it may differ from the student's (`processing_class`): both must map text
            to the same token ids, which is checked at construction.
        kwargs:
            Everything else [`Trainer`] takes (datasets, collator, callbacks, ...).
    """

    def __init__(
        self,
        model: TinyBertPreTrainedModel | None = None,
        args: DistillationTrainingArguments | None = None,
        teacher_model: PreTrainedModel | None = None,
        teacher_processing_class=None,
        **kwargs,
    ):
        if teacher_model is None:
            raise ValueError("`teacher_model` is required: pass the fine-tuned (or pretrained) teacher to distil.")
        if not isinstance(args, DistillationTrainingArguments):
            raise ValueError("`args` must be a `DistillationTrainingArguments`, which carries the loss weights.")
        self.loss_weights = args.loss_weights()
        self.layer_mapping = self._check_compatibility(model, teacher_model, args)
        # what the teacher's forward takes (MPNet, DistilBERT and RoBERTa-family teachers take no token types)
        self._teacher_input_names = forward_input_names(teacher_model)
        self._student_input_names = forward_input_names(model) if model is not None else None
        if teacher_processing_class is not None and kwargs.get("processing_class") is not None:
            check_same_vocabulary(teacher_processing_class, kwargs["processing_class"])
        super().__init__(model=model, args=args, **kwargs)

        # Frozen, never wrapped for gradient sync; sharded like the student under FSDP and DeepSpeed ZeRO-3.
        self.teacher_model = prepare_teacher(teacher_model, self.accelerator)
        # compute_loss normalizes each part over the whole accumulation window: Trainer must not divide again
        self.loss_is_scaled_for_ga = True
        self._window_units: torch.Tensor | None = None  # (len(UNITS),) summed over the window and processes
        self._windows_since_log = 0
        self._loss_part_sums = {"train": defaultdict(float), "eval": defaultdict(float)}
        self._eval_batches = 0
        self._eval_prefix: str | None = None  # set while `evaluate` runs
        self._warned_truncation = False
        # the shorter of the two position tables (None when neither model has one), for `_fit_position_tables`
        limits = [getattr(config, "max_position_embeddings", None) for config in (model.config, teacher_model.config)]
        self._position_limit = min((value for value in limits if value), default=None)
        padding_side = getattr(self.processing_class, "padding_side", "right")
        self.data_collator = TeacherLogitsCollator(self.data_collator, padding_side=padding_side)

    def _check_compatibility(
        self, student: PreTrainedModel, teacher: PreTrainedModel, args: DistillationTrainingArguments
    ) -> list[int] | None:
        """Fail at construction, naming both values and the fix, instead of deep inside the first step."""
        weights = self.loss_weights
        student_config, teacher_config = student.config, teacher.config
        if student_config.vocab_size != teacher_config.vocab_size:
            raise BadInputError(
                f"The student's vocabulary has {student_config.vocab_size} tokens but the teacher's has "
                f"{teacher_config.vocab_size}: both must read the same token ids. Build the student with "
                "`TinyBertConfig.from_teacher_config(teacher.config)`."
            )
        intermediate = weights["embedding"] or weights["attention"] or weights["hidden"]
        if not intermediate:
            mapping = None
        else:
            tinybert = isinstance(student, TinyBertPreTrainedModel)
            mapping = resolve_layer_mapping(
                args.layer_mapping, teacher_config.num_hidden_layers, student_config.num_hidden_layers
            )
            student_width, teacher_width = student_config.hidden_size, teacher_config.hidden_size
            if not tinybert and (weights["embedding"] or weights["hidden"]) and student_width != teacher_width:
                attach_hidden_projection(student, teacher_width)  # a stock-family student has no fit_dense
            projected = student_width == teacher_width or not tinybert or student_config.fit_size == teacher_width
            if weights["attention"] and not tinybert:
                unsupported = attention_recording_error(student, scores=args.attention_loss != "relation")
                if unsupported:
                    raise BadInputError(f"The student cannot take the attention loss: {unsupported}")
            if (weights["embedding"] or weights["hidden"]) and not projected:
                raise BadInputError(
                    f"The student is {student_width} wide and the teacher {teacher_width}, but the student's "
                    f"`fit_size` is {student_config.fit_size}: set `fit_size={teacher_width}` so fit_dense projects "
                    "student states to the teacher's width."
                )
            if weights["attention"]:
                unsupported = attention_recording_error(teacher, scores=args.attention_loss != "relation")
                if unsupported:
                    raise BadInputError(f"The teacher cannot take the attention loss: {unsupported}")
                if args.attention_loss == "relation":  # relations compare any head counts, over relation heads
                    self._check_relation_heads(student_config, teacher_config, mapping, args.relation_heads)
                else:
                    self._check_same_heads(student_config, teacher_config, mapping)
        if weights["prediction"]:
            teacher_labels = getattr(teacher_config, "num_labels", None)
            if task_of_model_class(type(teacher).__name__) is None:
                raise BadInputError(
                    f"The prediction-layer loss needs a teacher with a task head, got {type(teacher).__name__}; "
                    "fine-tune the teacher first or use stage='intermediate'."
                )
            if teacher_labels != student_config.num_labels:
                raise BadInputError(
                    f"The teacher predicts {teacher_labels} labels and the student {student_config.num_labels}; "
                    "build the student config from the teacher's (`TinyBertConfig.from_teacher_config`)."
                )
        return mapping

    @staticmethod
    def _check_same_heads(student_config, teacher_config, mapping: list[int]) -> None:
        for student_layer, teacher_layer in enumerate(mapping):
            student_heads = _heads_of_layer(student_config, student_layer)
            teacher_heads = teacher_config.num_attention_heads
            if student_heads != teacher_heads:
                raise BadInputError(
                    f"Student layer {student_layer} has {student_heads} attention heads and teacher layer "
                    f"{teacher_layer} has {teacher_heads}; TinyBERT's attention loss compares head by head. "
                    "Give the student the teacher's head count or set `attention_loss_weight=0`."
                )

    @staticmethod
    def _check_relation_heads(student_config, teacher_config, mapping: list[int], relation_heads: int | None) -> None:
        relation_heads = relation_heads or student_config.num_attention_heads
        for student_layer, teacher_layer in enumerate(mapping):
            widths = {
                f"student layer {student_layer}": _attention_width(student_config, student_layer),
                f"teacher layer {teacher_layer}": _attention_width(teacher_config, teacher_layer),
            }
            indivisible = {name: width for name, width in widths.items() if width % relation_heads}
            if indivisible:
                raise BadInputError(
                    f"The attention-relation loss splits attention widths {widths} into {relation_heads} relation "
                    f"heads, which does not divide {indivisible}; set `relation_heads` to a common divisor."
                )

    def _set_signature_columns_if_needed(self) -> None:
        """Keep the cached `teacher_logits` column that `remove_unused_columns` would drop (forward lacks it)."""
        super()._set_signature_columns_if_needed()
        if TEACHER_LOGITS_COLUMN not in self._signature_columns:
            self._signature_columns.append(TEACHER_LOGITS_COLUMN)

    def train(self, resume_from_checkpoint: str | bool | None = None, *args, **kwargs):
        """[`Trainer.train`]. `resume_from_checkpoint=True` resumes from the newest checkpoint Trainer *finished*
        writing (one cut short by a kill is skipped and removed, see
        [`~tinybert_hf.utils.atomic.last_complete_checkpoint`]); a path must be a complete checkpoint. The
        accumulation-window counts live only while it runs."""
        if resume_from_checkpoint is True:
            resume_from_checkpoint = last_complete_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(f"No complete checkpoint to resume from in {self.args.output_dir}.")
        elif resume_from_checkpoint and not is_complete_checkpoint(resume_from_checkpoint):
            raise ValueError(
                f"{resume_from_checkpoint} is not a complete Trainer checkpoint (no trainer_state.json, or truncated "
                "weights): it was cut short while it was written. Resume from an earlier one, or pass "
                "`resume_from_checkpoint=True` to pick the newest complete one."
            )
        self._check_training_data()
        try:
            return super().train(resume_from_checkpoint, *args, **kwargs)
        finally:
            self._window_units, self._windows_since_log = None, 0

    def _check_training_data(self) -> None:
        """Fail before the first step, naming the problem, on an empty dataset or labels the student cannot predict
        (which would otherwise surface as an index error deep in a loss, or a device-side assert on GPU)."""
        dataset = self.train_dataset
        if not isinstance(dataset, Dataset):  # streams (general distillation) have no length to check
            return
        if len(dataset) == 0:
            raise BadInputError("The training dataset has no rows: there is nothing to distil.")
        column = next((name for name in ("labels", "label") if name in dataset.column_names), None)
        config = self.accelerator.unwrap_model(self.model).config
        num_labels = getattr(config, "num_labels", None)
        if (
            column is None
            or not num_labels
            or num_labels == 1
            or config.problem_type in ("regression", "multi_label_classification")
        ):
            return
        values = dataset.with_format("arrow")[column]
        while pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
            values = pc.list_flatten(values)
        if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):  # 'positive': ids needed
            example = values[0].as_py() if len(values) else None
            raise BadInputError(
                f"The training labels ({column!r}) are {values.type} values (e.g. {example!r}), but the student "
                f"predicts class ids 0..{num_labels - 1}: map them to ids first, e.g. "
                f"`dataset = dataset.class_encode_column({column!r})` (ids in sorted name order; give the config the "
                "matching `id2label`)."
            )
        values = values.filter(pc.not_equal(values, -100))  # ignored positions (token tasks)
        if len(values) == 0:
            return
        extremes = pc.min_max(values)
        low, high = extremes["min"].as_py(), extremes["max"].as_py()
        if low < 0 or high >= num_labels:
            raise BadInputError(
                f"The training labels ({column!r}) run from {low} to {high}, but the student predicts {num_labels} "
                f"labels (0..{num_labels - 1}): give the student (and teacher) `num_labels` covering every label, or "
                "fix the labels."
            )

    def _save_checkpoint(self, model, trial) -> None:
        """[`Trainer._save_checkpoint`], refused when the weights are no longer finite: the last good checkpoint is
        then still the newest one (and rotation does not delete it)."""
        if self.args.stop_on_nonfinite_loss:
            broken = _nonfinite_parameters(model)
            if broken:
                raise NonFiniteLossError(
                    f"The student's weights are NaN or infinite at step {self.state.global_step} ({broken[0]}, "
                    f"{len(broken)} tensors): the checkpoint was not saved. {self._recovery_hint()}"
                )
        super()._save_checkpoint(model, trial)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """[`Trainer._save`]; a stock-family student's attached `fit_dense` goes to `fit_dense.safetensors`, beside
        (not inside) the weights its Auto classes load."""
        student = self.accelerator.unwrap_model(self.model)
        if isinstance(student, TinyBertPreTrainedModel) or "fit_dense" not in student._modules:
            return super()._save(output_dir, state_dict)
        model_state, projection_state = split_projection(student.state_dict() if state_dict is None else state_dict)
        super()._save(output_dir, model_state)
        if self.args.should_save:
            save_projection(projection_state, output_dir if output_dir is not None else self.args.output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        load_projection(self.accelerator.unwrap_model(model or self.model), resume_from_checkpoint)

    def _check_finite(self, parts: dict[str, torch.Tensor], model) -> None:
        """Stop before a NaN or infinite loss part reaches the gradients (one host sync per micro-batch).

        With several processes the parts of every process are gathered first (one all-gather of `(processes,
        parts)` floats), so that all of them stop together with the same message: a process that raised alone
        would leave the others waiting in their next collective until the process group's timeout."""
        values = torch.stack([value.detach().float().reshape(()) for value in parts.values()])
        if self.args.world_size > 1:
            values = self.accelerator.gather(values.unsqueeze(0)).reshape(self.args.world_size, len(parts))
        else:
            values = values.unsqueeze(0)
        finite = torch.isfinite(values)
        if bool(finite.all()):
            return
        rank = int((~finite).any(dim=1).nonzero()[0])  # the first process with a non-finite part
        where = f" on process {rank}" if self.args.world_size > 1 else ""
        named = zip(parts, values[rank], strict=True)
        bad = ", ".join(f"{name} loss is {value.item()}" for name, value in named if not torch.isfinite(value)) + where
        broken = _nonfinite_parameters(model)
        cause = (
            f" The student's weights were already non-finite ({broken[0]}, {len(broken)} tensors): the previous "
            "update diverged."
            if broken
            else ""
        )
        raise NonFiniteLossError(
            f"Distillation stopped: the {bad} at step {self.state.global_step + 1} (epoch {self.state.epoch or 0:.2f})"
            f"; this step changed no weight.{cause} {self._recovery_hint()}"
        )

    def _recovery_hint(self) -> str:
        last = last_complete_checkpoint(self.args.output_dir, remove_incomplete=False)
        where = f"The last good checkpoint is {last}." if last else "No checkpoint was saved before it."
        return (
            f"{where} Lower the learning rate, clip gradients (`max_grad_norm`), train in fp32 or bf16 rather than "
            "fp16, or check the batch's inputs."
        )

    def get_batch_samples(self, epoch_iterator, num_batches: int, device: torch.device):
        """Also count every loss part's units over the accumulation window and all processes (one all-reduce)."""
        batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        if batch_samples:
            units = sum(_batch_units(batch).to(device) for batch in batch_samples)
            self._window_units = self.accelerator.reduce(units, reduction="sum") if self.args.world_size > 1 else units
            self._windows_since_log += 1
        return batch_samples, num_items_in_batch

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Weighted sum of the loss parts; each part is also accumulated for logging.

        In training each part is weighted by this micro-batch's share of its units in the accumulation window (all
        processes), and the sum is multiplied by the number of processes (DDP averages gradients), so accumulated
        micro-batches on any number of processes give the gradient of the one large batch.
        """
        weights, attention_loss = self.loss_weights, self.args.attention_loss
        intermediate = bool(weights["embedding"] or weights["attention"] or weights["hidden"])
        relation = bool(weights["attention"]) and attention_loss == "relation"
        inputs = self._fit_position_tables(inputs)
        model_inputs = dict(inputs)
        labels = model_inputs.pop("labels", None)
        cached_logits = model_inputs.pop(TEACHER_LOGITS_COLUMN, None)
        student = self.accelerator.unwrap_model(model)
        tinybert = isinstance(student, TinyBertPreTrainedModel)
        scores = bool(weights["attention"]) and not relation
        student_recording = (
            record_attention(student, scores=scores and not tinybert, projections=relation)
            if relation or (scores and not tinybert)
            else nullcontext()
        )
        with student_recording as student_attention:
            # labels only when the hard-label loss is on; a base-model student (general distillation) takes none
            student_inputs = {**model_inputs, "labels": labels} if weights["hard_label"] else model_inputs
            if tinybert:
                student_outputs = model(
                    **student_inputs,
                    output_hidden_states=intermediate,
                    output_attention_scores=scores,
                    output_fit_hidden_states=bool(weights["embedding"] or weights["hidden"]),
                )
            else:  # a stock-family student: scores recorded, hidden states projected by the attached fit_dense
                student_inputs = accepted_inputs(student_inputs, self._student_input_names)
                student_outputs = _EncoderStudentOutput.of(
                    model(**student_inputs, output_hidden_states=intermediate),
                    student_attention if scores else None,
                    student._modules.get("fit_dense"),
                )
        if cached_logits is not None and not intermediate:
            teacher_outputs, teacher_attention = SequenceClassifierOutput(logits=cached_logits), None
        else:
            teacher_outputs, teacher_attention = self._teacher_forward(
                model_inputs,
                hidden_states=intermediate,
                scores=bool(weights["attention"]) and not relation,
                projections=relation,
            )
        parts = self.compute_loss_parts(
            student_outputs,
            teacher_outputs,
            inputs,
            teacher_attention=teacher_attention,
            student_attention=student_attention,
        )
        split = "train" if model.training else "eval"
        if split == "train" and self.args.stop_on_nonfinite_loss:
            self._check_finite(parts, model)
        if split == "train" and self._window_units is not None:
            batch_units = _batch_units(inputs).to(self._window_units.device)
            shares = batch_units / self._window_units.clamp(min=1)
            parts = {
                name: value * shares[UNITS.index(self._unit_of(name, attention_loss))] for name, value in parts.items()
            }
        else:
            self._eval_batches += split == "eval"
        loss = sum(weights.get(name, 1.0) * value for name, value in parts.items())
        for name, value in parts.items():
            # a device tensor: reading it back (a host sync) waits until `log`, not every step
            self._loss_part_sums[split][name] += value.detach().float()
        if split == "train" and self._window_units is not None:
            loss = loss * self.accelerator.num_processes
        if split == "train" and (self.args.l1_penalty or self.args.l2_penalty):
            # after the process scaling: DDP's gradient average then counts it once; each micro-batch of the
            # accumulation window adds its share, so one optimizer step sees the penalty once
            penalty = weight_penalty(model, self.args.l1_penalty, self.args.l2_penalty)
            share = 1.0 / self.args.gradient_accumulation_steps
            loss = loss + share * penalty
            self._loss_part_sums["train"]["weight_penalty"] += share * penalty.detach().float() / self.args.world_size
        if not return_outputs:
            return loss
        # Only the logits go to evaluation: Trainer would otherwise gather every hidden state and score tensor.
        if getattr(student_outputs, "logits", None) is None:  # a base-model student (general distillation)
            return loss, {"loss": loss}
        return loss, type(student_outputs)(loss=loss, logits=student_outputs.logits)

    def _fit_position_tables(self, inputs: dict) -> dict:
        """Cut a batch longer than the student's or the teacher's position table down to it (warning once): BERT's
        absolute positions end there, and beyond them either model would fail."""
        limit = self._position_limit
        length = inputs["input_ids"].shape[1]
        if limit is None or length <= limit:
            return inputs
        if not self._warned_truncation:
            logger.warning(
                f"Batches of {length} tokens are longer than the position table ({limit} positions): truncated to "
                f"{limit} tokens. Tokenize with `truncation=True, max_length={limit}` to choose how."
            )
            self._warned_truncation = True
        # (batch, seq, ...) tensors are cut along seq; per-example ones (labels of a text task) are left alone
        return {
            name: value[:, :limit]
            if torch.is_tensor(value) and value.dim() >= 2 and value.shape[1] == length
            else value
            for name, value in inputs.items()
        }

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Trainer computes an evaluation loss only for labelled batches; the distillation loss needs no labels, so
        unlabelled batches (general distillation, augmented text) get it too."""
        if self.label_names and all(inputs.get(name) is not None for name in self.label_names):
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss, outputs = self.compute_loss(model, inputs, return_outputs=True)
        return loss.detach(), None if prediction_loss_only else outputs.get("logits"), None

    def _unit_of(self, part: str, attention_loss: str) -> str:
        """What the loss part `part` is a mean over (see `UNITS`)."""
        if part in ("embedding", "hidden"):
            return "tokens"
        if part == "attention":
            return "token_pairs" if attention_loss == "mse" else "tokens"
        if part == "prediction":
            return "tokens" if self._token_level_prediction else "examples"
        if part == "hard_label":
            return "labels"
        return "examples"

    @property
    def _token_level_prediction(self) -> bool:
        task = task_of_model_class(type(self.accelerator.unwrap_model(self.model)).__name__)
        return task is not None and task.token_level

    @torch.no_grad()
    def _teacher_forward(
        self, model_inputs: dict, hidden_states: bool, scores: bool, projections: bool
    ) -> tuple[object, AttentionRecord | None]:
        self.teacher_model.eval()
        model_inputs = accepted_inputs(model_inputs, self._teacher_input_names)
        if not (scores or projections):
            return self.teacher_model(**model_inputs, output_hidden_states=hidden_states), None
        # the recording switches the attention implementation of the model itself, not of a wrapper around it
        teacher = self.accelerator.unwrap_model(self.teacher_model)
        with record_attention(teacher, scores=scores, projections=projections) as record:
            outputs = self.teacher_model(**model_inputs, output_hidden_states=hidden_states)
        return outputs, record

    def compute_loss_parts(
        self,
        student_outputs,
        teacher_outputs,
        inputs: dict,
        teacher_attention: AttentionRecord | None = None,
        student_attention: AttentionRecord | None = None,
    ) -> dict[str, torch.Tensor]:
        r"""
        The named, unweighted loss terms of one batch. Override to add or replace terms; a new name gets weight 1
        unless `self.loss_weights` names it, and should be a mean over the batch's examples (so that gradient
        accumulation weights it right).

        Args:
            student_outputs: the student's output (with `hidden_states`, `attention_scores`, `fit_hidden_states`
                when the intermediate losses are on, and `loss` when the hard-label loss is).
            teacher_outputs: the teacher's output (`hidden_states`, `logits`); only `logits` when they come from the
                `teacher_logits` cache.
            inputs (`dict`): the batch (`attention_mask`, `labels`, ...).
            teacher_attention ([`AttentionRecord`], *optional*): the teacher's pre-softmax scores per layer (score
                losses) or its per-head queries, keys and values (relation loss).
            student_attention ([`AttentionRecord`], *optional*): the student's queries, keys and values (relation
                loss; the score losses read `student_outputs.attention_scores`).

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
        if weights["attention"] and self.args.attention_loss == "relation":
            parts["attention"] = self._relation_loss(student_attention, teacher_attention, mask)
        elif weights["attention"]:
            attention_loss = attention_score_mse if self.args.attention_loss == "mse" else attention_kl
            parts["attention"] = sum(
                attention_loss(student_outputs.attention_scores[m], teacher_attention.scores[t], mask)
                for m, t in enumerate(self.layer_mapping)
            )
        if weights["prediction"]:
            parts["prediction"] = self._prediction_loss(student_outputs.logits, teacher_outputs.logits, inputs)
        if weights["hard_label"]:
            parts["hard_label"] = self._hard_label_loss(student_outputs, inputs)
        return parts

    def _hard_label_loss(self, student_outputs, inputs: dict) -> torch.Tensor:
        """The student's loss on the gold labels. For single-label classification it is the cross-entropy summed
        over labelled rows (tokens) divided by their count, which equals the model's own mean, but is 0 (with zero
        gradients, not NaN) for a micro-batch of unlabelled transfer rows only (every label -100)."""
        labels, logits = inputs.get("labels"), getattr(student_outputs, "logits", None)
        config = self.model.config
        single_label = config.num_labels > 1 and config.problem_type in (None, "single_label_classification")
        if labels is None or logits is None or labels.is_floating_point() or not single_label:
            return student_outputs.loss
        flat = labels.reshape(-1)
        total = torch.nn.functional.cross_entropy(
            logits.reshape(flat.shape[0], -1).float(), flat, ignore_index=-100, reduction="sum"
        )
        return total / flat.ne(-100).sum().clamp(min=1)

    def _relation_loss(self, student: AttentionRecord, teacher: AttentionRecord, mask) -> torch.Tensor:
        """MiniLMv2: Q-Q, K-K and V-V relation KL summed, over every mapped layer pair."""
        relation_heads = self.args.relation_heads or self.model.config.num_attention_heads
        total = 0.0
        for m, t in enumerate(self.layer_mapping):
            for student_states, teacher_states in (
                (student.queries[m], teacher.queries[t]),
                (student.keys[m], teacher.keys[t]),
                (student.values[m], teacher.values[t]),
            ):
                # (batch, heads, seq, head_size) -> (batch, seq, heads * head_size)
                total = total + attention_relation_kl(
                    student_states.transpose(1, 2).flatten(2),
                    teacher_states.transpose(1, 2).flatten(2),
                    mask,
                    num_relation_heads=relation_heads,
                )
        return total

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
        if self.args.prediction_loss == "mse":  # mean over examples (tokens) of the mean over labels
            return logits_mse(student_logits, teacher_logits)
        return soft_cross_entropy(student_logits, teacher_logits, self.args.temperature)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """[`Trainer.evaluate`], with the mean of each loss part as `<metric_key_prefix>_loss_<part>`."""
        outer_prefix, self._eval_prefix = self._eval_prefix, metric_key_prefix
        self._loss_part_sums["eval"].clear()  # e.g. left by `predict`, which logs nothing
        self._eval_batches = 0
        try:
            return super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        finally:
            self._eval_prefix = outer_prefix

    def create_model_card(self, *args, tags: str | list[str] | None = None, **kwargs) -> None:
        """[`Trainer.create_model_card`] (written when `push_to_hub` pushes), tagged `tinybert` and
        `knowledge-distillation`. The recipe's students get the full card of `tinybert_hf.hub.model_card` instead."""
        tags = [tags] if isinstance(tags, str) else list(tags or [])
        super().create_model_card(*args, tags=[*tags, *(tag for tag in CARD_TAGS if tag not in tags)], **kwargs)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean of each loss part since the last log, over all processes: `loss_<part>` in training,
        `<metric_key_prefix>_loss_<part>` in evaluation. Runs on every process, as Trainer's own loss gathering."""
        split = "train" if self._eval_prefix is None else "eval"
        sums = self._loss_part_sums[split]
        if sums:
            names = list(sums)
            # train: window shares sum to one mean per optimizer step; eval: one mean per batch
            count = self._windows_since_log if split == "train" else self._eval_batches
            totals = torch.stack([torch.as_tensor(sums[name], device=self.args.device) for name in names])
            totals = torch.cat([totals, torch.tensor([float(count)], device=self.args.device)])
            if self.args.world_size > 1:
                totals = self.accelerator.reduce(totals, reduction="sum")
            values = totals.tolist()
            # train: shares of the global window, summed over processes, one mean per window that every process
            # counted; eval: one mean per batch on each process
            divisor = max(values[-1] / self.args.world_size if split == "train" else values[-1], 1)
            prefix = "" if split == "train" else f"{self._eval_prefix}_"
            for name, total in zip(names, values[:-1], strict=True):
                logs[f"{prefix}loss_{name}"] = round(total / divisor, 6)
        sums.clear()
        if split == "train":
            self._windows_since_log = 0
        else:
            self._eval_batches = 0
        super().log(logs, start_time)


def weight_penalty(model: torch.nn.Module, l1: float, l2: float) -> torch.Tensor:
    """`l1 * sum|w| + l2 * sum w^2` over the weights magnitude pruning cuts (`sparsity.prunable_linears`: the
    attention and FFN linears of every layer; not biases, LayerNorms, embeddings, pooler, head or `fit_dense`)."""
    total = 0.0
    for _, module in prunable_linears(model):
        if l1:
            total = total + l1 * module.weight.abs().sum()
        if l2:
            total = total + l2 * module.weight.square().sum()
    return torch.as_tensor(total)


def check_same_vocabulary(teacher_tokenizer, student_tokenizer) -> None:
    r"""
    Raise [`~tinybert_hf.errors.BadInputError`] unless both tokenizers map every token to the same id: the student
    learns from the teacher's outputs on the *same* ids, so a different vocabulary (another model family, cased vs
    uncased) would silently teach it nonsense. The message names the sizes and a few tokens that differ.
    """
    teacher_vocabulary, student_vocabulary = teacher_tokenizer.get_vocab(), student_tokenizer.get_vocab()
    if teacher_vocabulary == student_vocabulary:
        return
    differing = sorted(
        token
        for token in teacher_vocabulary.keys() | student_vocabulary.keys()
        if teacher_vocabulary.get(token) != student_vocabulary.get(token)
    )
    examples = ", ".join(
        f"{token!r}: teacher {teacher_vocabulary.get(token)}, student {student_vocabulary.get(token)}"
        for token in differing[:3]
    )
    raise BadInputError(
        f"The teacher's tokenizer ({len(teacher_vocabulary)} tokens) and the student's ({len(student_vocabulary)}) "
        f"map {len(differing)} tokens differently (e.g. {examples}): distillation needs one vocabulary. Give the "
        "student the teacher's tokenizer."
    )


def _nonfinite_parameters(model: torch.nn.Module) -> list[str]:
    """Names of the parameters holding a NaN or an infinity."""
    return [name for name, parameter in model.named_parameters() if not torch.isfinite(parameter).all()]


@dataclass
class _EncoderStudentOutput(ModelOutput):
    """A stock-family student's output in the shape `compute_loss_parts` reads from a TinyBERT student's."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attention_scores: list[torch.Tensor] | None = None
    fit_hidden_states: tuple[torch.Tensor, ...] | None = None

    @classmethod
    def of(cls, outputs, attention: AttentionRecord | None, projection: torch.nn.Module | None):
        hidden_states = getattr(outputs, "hidden_states", None)
        fit = hidden_states
        if hidden_states is not None and projection is not None:
            fit = tuple(projection(state) for state in hidden_states)
        return cls(
            loss=getattr(outputs, "loss", None),
            logits=getattr(outputs, "logits", None),
            hidden_states=hidden_states,
            attention_scores=None if attention is None else attention.scores,
            fit_hidden_states=fit,
        )


def _heads_of_layer(config, layer: int) -> int:
    """Attention heads of one layer (pruned TinyBERT layers differ; a stock config has one count)."""
    if hasattr(config, "num_attention_heads_of_layer"):
        return config.num_attention_heads_of_layer(layer)
    return config.num_attention_heads


def _attention_width(config, layer: int) -> int:
    """Width of one layer's concatenated attention heads (pruned TinyBERT layers differ)."""
    if hasattr(config, "num_attention_heads_of_layer"):
        return config.num_attention_heads_of_layer(layer) * config.head_size
    return config.hidden_size


def _batch_units(inputs: dict) -> torch.Tensor:
    """`(len(UNITS),)` float64: examples, real tokens, real (query, key) pairs and non-ignored labels."""
    input_ids = inputs["input_ids"]
    mask = inputs.get("attention_mask")
    if mask is None:
        lengths = torch.full((input_ids.shape[0],), input_ids.shape[1], device=input_ids.device)
    else:
        lengths = mask.sum(-1)
    lengths = lengths.double()
    labels = inputs.get("labels")
    labels_count = labels.ne(-100).sum().double() if labels is not None else lengths.new_zeros(())
    return torch.stack(
        [lengths.new_tensor(float(input_ids.shape[0])), lengths.sum(), lengths.pow(2).sum(), labels_count]
    )
