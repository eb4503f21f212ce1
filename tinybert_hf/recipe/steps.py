"""The whole TinyBERT recipe: fine-tune a teacher, augment, distil in two stages, evaluate and report.

Each step writes its own directory under `output_dir`, whole or not at all (assembled under a hidden name and
renamed into place with its `stage_done.json`). A rerun with the same output directory and settings reuses finished
steps and resumes an interrupted one from its newest complete Trainer checkpoint, so a run killed at any point ends
with the same models as one never interrupted; `run.json` records the settings, and a directory holding another run
or another model is refused unless `--overwrite_output_dir`. The steps are also functions of their own, which the
`tinybert-hf` subcommands and `examples/` call.

```
output_dir/
  teacher/                fine-tuned teacher (skipped when --teacher is a fine-tuned model)
  run.json                the settings the directory's models are made with (checked on every rerun)
  cache/                  augmented data, teacher logits (of the training rows and the transfer text)
  student_recovered/      after recovery on the transfer text (--recovery_steps): the cut layers' general features
  student_intermediate/   after stage 1 (embedding + attention + hidden losses)
  student/                after stage 2 (prediction layer), best on the dev split: the deliverable
  checkpoints/<step>/     Trainer checkpoints of the running step (for resuming; removed when the step is done)
  baseline/               the same student architecture fine-tuned on hard labels only (for comparison)
  results.json            every figure of the final table, with the settings that produced it
  results.png             the chart
```
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from datasets import Dataset, DatasetDict, concatenate_datasets
from transformers import (
    AutoConfig,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    PreTrainedModel,
    Trainer,
    TrainingArguments,
    set_seed,
)
from transformers.utils import logging

from ..data.augmentation import AugmentationConfig, TinyBertAugmenter, load_word_vectors
from ..data.loading import SPLITS, eval_set_name, load_eval_set, load_task_splits, parse_label_map
from ..data.packaged import packaged_teacher_path
from ..data.transfer_text import load_transfer_text, mix_transfer_rows
from ..distillation.teacher_cache import add_teacher_logits
from ..distillation.trainer import (
    STAGE_WEIGHTS,
    DistillationTrainer,
    DistillationTrainingArguments,
    check_same_vocabulary,
)
from ..errors import BadInputError, OutputDirectoryError
from ..evaluation.metrics import accuracy_and_f1, entity_f1
from ..evaluation.speed_and_size import parameter_count
from ..hub.model_card import RESULTS_NAME, card_was_edited, write_model_card
from ..models.tinybert.configuration_tinybert import TinyBertConfig
from ..models.tinybert.conversion import student_from_teacher_layers, uniform_layer_subset
from ..models.tinybert.modeling_tinybert import (
    TinyBertForSequenceClassification,
    TinyBertForTokenClassification,
    TinyBertPreTrainedModel,
)
from ..pruning.structured import calibration_batches, prune
from ..quantization.quantization_aware import add_fake_quantization, remove_fake_quantization
from ..utils.atomic import DONE_MARKER, atomic_directory, last_complete_checkpoint, write_text
from ..utils.safe_loading import load_pretrained
from .arguments import STUDENT_INITS, TEXT_TASK, TOKEN_TASK, RecipeArguments
from .run_records import load_data_for_model

logger = logging.get_logger(__name__)

RUN_RECORD = "run.json"
# what the recipe writes under output_dir: what `--overwrite_output_dir` removes (nothing else is touched)
RECIPE_OUTPUTS = (
    "teacher", "cache", "student_recovered", "student_intermediate", "student", "student-int8", "baseline",
    "checkpoints", "results.json", "results.png", RUN_RECORD,
)  # fmt: skip
# settings that change no model: a rerun may change them and still reuse and resume the directory's steps
SETTINGS_OUTSIDE_MODELS = (
    "output_dir", "overwrite_output_dir", "allow_pickle", "baseline", "int8", "push_to_hub",
    "hub_model_id", "hub_strategy", "hub_private_repo", "speed_batch_size", "speed_seq_length",
    "eval_files", "eval_label_map", "eval_max_length",
)  # fmt: skip
# the teachers the recipe's students are cut from or copy layers of: BERT's parameter layout
RECIPE_TEACHER_TYPES = ("bert", "tinybert")


# ---- steps ---------------------------------------------------------------------------------------------------------


def _save(trainer: Trainer, directory: Path, record: dict) -> None:
    """Weights, config, code and tokenizer of the trained model with its `stage_done.json` record, renamed into place
    only when complete (a kill meanwhile leaves the step unfinished, never half-written). Not Trainer's pickled
    `training_args.bin`: the settings are in `results.json`, and a model directory should hold nothing that loading
    would have to unpickle. The step's checkpoints, which only served resuming it, are removed."""
    with atomic_directory(directory) as staging:
        # `_internal_call`: with push_to_hub, Trainer would also push its checkpoint directory here; the recipe
        # pushes the finished student itself, with its card
        trainer.save_model(str(staging), _internal_call=True)
        (staging / "training_args.bin").unlink(missing_ok=True)
        write_text(staging / DONE_MARKER, json.dumps(record, indent=2))
    shutil.rmtree(trainer.args.output_dir, ignore_errors=True)
    with contextlib.suppress(OSError):  # `checkpoints/` itself once no step has any left
        Path(trainer.args.output_dir).parent.rmdir()


def _train(trainer: Trainer) -> None:
    """`trainer.train()`, resumed from the step's newest complete checkpoint when an earlier run was interrupted."""
    checkpoint = last_complete_checkpoint(trainer.args.output_dir)
    if checkpoint:
        logger.warning(f"Resuming from {checkpoint}, where an earlier run of this step stopped.")
    trainer.train(resume_from_checkpoint=checkpoint)


def _done(directory: Path) -> dict | None:
    marker = directory / DONE_MARKER
    return json.loads(marker.read_text()) if marker.is_file() else None


def _layer_mapping(teacher_layers: list[int] | None) -> str:
    """`DistillationTrainingArguments.layer_mapping` for the teacher layer of each student layer (default: uniform)."""
    return ",".join(map(str, teacher_layers)) if teacher_layers else "uniform"


def _pin_memory() -> bool:
    """Pinned host memory only speeds up copies to an accelerator; asked for without one, torch warns on every
    data loader."""
    import torch

    return torch.accelerator.is_available()


def _training_arguments(cls, output_dir: Path, args: RecipeArguments, epochs: float, lr: float, **extra):
    return cls(
        # checkpoints beside the step's directory, not inside it: the step's directory is a clean, shippable model
        output_dir=str(output_dir.parent / "checkpoints" / output_dir.name),
        num_train_epochs=epochs,
        learning_rate=lr,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=128,
        warmup_steps=0.1,
        weight_decay=0.01,
        eval_strategy=extra.pop("eval_strategy", "steps" if args.save_steps else "epoch"),
        save_strategy="steps" if args.save_steps else "epoch",
        save_steps=args.save_steps or 500,
        eval_steps=args.save_steps,
        save_total_limit=1,
        load_best_model_at_end=extra.pop("load_best_model_at_end", True),
        metric_for_best_model=extra.pop("metric_for_best_model", "eval_score"),
        greater_is_better=extra.pop("greater_is_better", True),
        train_sampling_strategy="group_by_length",  # less padding: rows of similar length share a batch
        dataloader_pin_memory=_pin_memory(),
        logging_steps=50,
        report_to="none",
        seed=args.seed,
        save_only_model=False,  # optimizer, scheduler and RNG states too: a killed step resumes exactly
        **extra,
    )


def _distillation_arguments(output_dir: Path, args: RecipeArguments, epochs: float, **extra):
    """Training arguments of a distillation stage: the recipe's, plus its weight penalties."""
    return _training_arguments(
        DistillationTrainingArguments,
        output_dir,
        args,
        epochs,
        args.learning_rate,
        l1_penalty=args.l1_penalty,
        l2_penalty=args.l2_penalty,
        **extra,
    )


def _hub_arguments(args: RecipeArguments) -> dict:
    """Trainer's Hub arguments for stage 2 when its epochs are pushed as they are saved (`hub_strategy` not 'end')."""
    if not args.push_to_hub or args.hub_strategy == "end":
        return {}
    return {
        "push_to_hub": True,
        "hub_model_id": args.hub_model_id,
        "hub_strategy": args.hub_strategy,
        "hub_private_repo": args.hub_private_repo,
    }


def hub_repository(args: RecipeArguments) -> str:
    """Create the student's repository (exist_ok) and return its full id: a bad token or name fails here, before
    any training, and a bare name (default: the output directory's) gets the token owner's namespace, as Trainer."""
    from ..hub.push import create_repository

    name = args.hub_model_id or Path(args.output_dir).absolute().name
    return create_repository(name, private=args.hub_private_repo)


def tokenize(data: DatasetDict | Dataset, tokenizer, args: RecipeArguments, max_length: int | None = None):
    """Token ids (and word-aligned labels for NER: first piece of each word, -100 elsewhere), cut to `max_length`
    (default: `args.max_length`)."""
    # the closures capture only what they use: `datasets` fingerprints them, and the fingerprint names the on-disk
    # caches downstream (teacher logits), which must not change with unrelated settings such as output_dir
    max_length = max_length or args.max_length
    if args.task == TOKEN_TASK:

        def encode(batch):
            encoded = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
            labels = []
            for row, tags in enumerate(batch["ner_tags"]):
                previous, row_labels = None, []
                for word in encoded.word_ids(row):
                    row_labels.append(-100 if word is None or word == previous else tags[word])
                    previous = word
                labels.append(row_labels)
            encoded["labels"] = labels
            return encoded

        columns = ["tokens", "ner_tags"]
    else:
        pair = "text_pair" in (next(iter(data.values())) if isinstance(data, DatasetDict) else data).column_names

        def encode(batch):
            texts = (batch["text"], batch["text_pair"]) if pair else (batch["text"],)
            encoded = tokenizer(*texts, truncation=True, max_length=max_length)
            encoded["labels"] = batch["label"]
            return encoded

        columns = None
    reference = next(iter(data.values())) if isinstance(data, DatasetDict) else data
    remove = [column for column in reference.column_names if column not in (columns or [])] + (columns or [])
    return data.map(encode, batched=True, remove_columns=sorted(set(remove)), desc="Tokenizing")


def tokenize_splits(data: DatasetDict, tokenizer, args: RecipeArguments) -> DatasetDict:
    """Every split tokenized; validation and test ordered by length (batches of similar lengths: less padding,
    same metrics)."""
    tokenized = tokenize(data, tokenizer, args)
    for split in ("validation", "test"):
        tokenized[split] = sort_by_length(tokenized[split])
    return tokenized


def sort_by_length(data: Dataset) -> Dataset:
    """Rows ordered by token count, so evaluation batches pad little (evaluation order changes no metric)."""
    lengths = [len(ids) for ids in data["input_ids"]]
    return data.select(sorted(range(len(lengths)), key=lengths.__getitem__))


def load_eval_sets(names: list[str], tokenizer, args: RecipeArguments, positions: int | None) -> dict[str, Dataset]:
    """The `--eval_files` sets, tokenized (up to `eval_max_length`, within the teacher's `positions`) and ordered
    by length: loaded and checked before any training, so a bad file fails first."""
    if args.eval_files and args.task != TEXT_TASK:
        raise BadInputError("`--eval_files` scores text classification; token classification has none yet.")
    label_map = parse_label_map(args.eval_label_map)
    max_length = min(args.eval_max_length, positions) if positions else args.eval_max_length
    sets = {}
    for spec in args.eval_files:
        name, path = eval_set_name(spec)
        if name in sets:
            raise BadInputError(f"Two `--eval_files` are named {name!r}: give each its own `name=path`.")
        data = load_eval_set(path, names, args.text_column, args.text_pair_column, args.label_column, label_map)
        sets[name] = sort_by_length(tokenize(data, tokenizer, args, max_length=max_length))
    return sets


def prepare_transfer_text(tokenizer, args: RecipeArguments) -> Dataset | None:
    """The transfer snippets, tokenized without labels: enough for stage 2's `transfer_rows` and for recovery's
    `recovery_steps` batches (which read the first rows); `None` when both are off."""
    rows = max(args.transfer_rows, args.recovery_steps * args.batch_size)
    if not rows:
        return None
    text = load_transfer_text(args.transfer_text, rows, seed=args.seed)
    max_length = args.transfer_max_length  # the closure captures this only (it names the caches downstream)

    def encode(batch):
        return tokenizer(batch["text"], truncation=True, max_length=max_length)

    return text.map(encode, batched=True, remove_columns=["text"], desc="Tokenizing transfer text")


def recover_on_transfer_text(
    teacher: PreTrainedModel,
    student: PreTrainedModel,
    transfer: Dataset,
    tokenizer,
    args: RecipeArguments,
    teacher_layers: list[int] | None = None,
) -> PreTrainedModel:
    """Distil the student's intermediate layers (embedding, attention, hidden states) on the transfer text for
    `recovery_steps` steps, before the task stages: the layers cut from the teacher regain its general features on
    text unlike the task's (Minitron-style recovery). Saved to `student_recovered/` (reused when finished)."""
    directory = Path(args.output_dir) / "student_recovered"
    if not _done(directory):
        rows = transfer.select(range(min(transfer.num_rows, args.recovery_steps * args.batch_size)))
        trainer = DistillationTrainer(
            model=student,
            teacher_model=teacher,
            args=_distillation_arguments(
                directory,
                args,
                1.0,
                stage="intermediate",
                layer_mapping=_layer_mapping(teacher_layers),
                max_steps=args.recovery_steps,
                eval_strategy="no",
                load_best_model_at_end=False,
            ),
            train_dataset=rows,
            data_collator=DataCollatorWithPadding(tokenizer),  # unlabelled rows, whatever the task
            processing_class=tokenizer,
        )
        start = time.perf_counter()
        _train(trainer)
        _save(trainer, directory, {"seconds": time.perf_counter() - start, "steps": args.recovery_steps})
    return load_pretrained(type(student), directory)


def transfer_rows(transfer: Dataset | None, args: RecipeArguments) -> Dataset | None:
    """The first `transfer_rows` transfer snippets, or `None` when transfer is off."""
    if transfer is None or not args.transfer_rows:
        return None
    return transfer.select(range(min(args.transfer_rows, transfer.num_rows)))


def label_names(data: DatasetDict, args: RecipeArguments) -> list[str]:
    if args.task == TOKEN_TASK:
        return list(data["train"].features["ner_tags"].feature.names)
    return list(data["train"].features["label"].names)


def metric_function(names: list[str], args: RecipeArguments):
    """`compute_metrics` for Trainer: accuracy and macro-F1, or entity F1; `score` is what selects the best model."""

    def compute(prediction):
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        predicted, labels = np.argmax(logits, axis=-1), prediction.label_ids
        if args.task == TOKEN_TASK:
            real = labels != -100
            predicted_tags = [[names[p] for p, keep in zip(row, mask, strict=True) if keep]
                              for row, mask in zip(predicted, real, strict=True)]  # fmt: skip
            reference_tags = [[names[t] for t, keep in zip(row, mask, strict=True) if keep]
                              for row, mask in zip(labels, real, strict=True)]  # fmt: skip
            scores = entity_f1(predicted_tags, reference_tags)
            return {**scores, "score": scores["f1"]}
        scores = accuracy_and_f1(predicted, labels, len(names))
        return {**scores, "score": scores["accuracy"]}

    return compute


def model_class(args: RecipeArguments, tinybert: bool = False):
    if tinybert:
        return TinyBertForTokenClassification if args.task == TOKEN_TASK else TinyBertForSequenceClassification
    return AutoModelForTokenClassification if args.task == TOKEN_TASK else AutoModelForSequenceClassification


def _collator(tokenizer, args: RecipeArguments):
    if args.task == TOKEN_TASK:
        return DataCollatorForTokenClassification(tokenizer)
    return DataCollatorWithPadding(tokenizer)


def _drop_load_report(record) -> bool:
    """A logging filter: transformers' load report, and nothing else, is dropped."""
    return "LOAD REPORT" not in record.getMessage()


def finetune_teacher(data: DatasetDict, names: list[str], tokenizer, args: RecipeArguments) -> Path:
    """Fine-tune `teacher_backbone` on the task with a plain Trainer; returns the teacher directory."""
    directory = Path(args.output_dir) / "teacher"
    if _done(directory):
        logger.warning("Reusing the fine-tuned teacher in %s.", directory)
        return directory
    backbone = args.teacher_backbone or str(packaged_teacher_path())
    set_seed(args.seed)
    # the backbone has no task head: transformers' load report would list the new head as MISSING, which is the
    # point of fine-tuning; only other missing weights are worth a word
    # (a filter, not a raised level: transformers 5 checks its tensor-parallel plan, and lists every layer as "not
    # sharded", exactly when that logger's level is WARNING or above)
    modeling_logger = logging.get_logger("transformers.modeling_utils")
    modeling_logger.addFilter(_drop_load_report)
    try:
        model, loading = load_pretrained(
            model_class(args),
            backbone,
            allow_pickle=args.allow_pickle,
            num_labels=len(names),
            id2label=dict(enumerate(names)),
            label2id={name: index for index, name in enumerate(names)},
            output_loading_info=True,
        )
    finally:
        modeling_logger.removeFilter(_drop_load_report)
    head = {name for name, _ in model.named_parameters() if not name.startswith(f"{model.base_model_prefix}.")}
    missing = sorted(set(loading["missing_keys"]) - head)
    if missing:
        logger.warning(f"{backbone} lacks {len(missing)} weights of the encoder, newly initialized: {missing[:5]}")
    tokenized = tokenize(data, tokenizer, args)
    trainer = Trainer(
        model=model,
        args=_training_arguments(TrainingArguments, directory, args, args.teacher_epochs, args.teacher_learning_rate),
        train_dataset=tokenized["train"],
        eval_dataset=sort_by_length(tokenized["validation"]),
        data_collator=_collator(tokenizer, args),
        processing_class=tokenizer,
        compute_metrics=metric_function(names, args),
    )
    start = time.perf_counter()
    _train(trainer)
    dev = trainer.evaluate()
    _save(trainer, directory, {"seconds": time.perf_counter() - start, "backbone": backbone, "dev": dev})
    return directory


def augment_training_data(train: Dataset, tokenizer, teacher: PreTrainedModel, args: RecipeArguments) -> Dataset:
    """Original rows plus TinyBERT-augmented variants of `augment_fraction` of them (cached under output_dir)."""
    config = AugmentationConfig(
        num_augmentations=args.num_augmentations,
        replace_probability=args.replace_probability,
        top_k=args.top_k,
        seed=args.seed,
        max_length=args.max_length,
    )
    masked_lm = (
        load_pretrained(AutoModelForMaskedLM, args.masked_lm, allow_pickle=args.allow_pickle)
        if args.masked_lm
        else None
    )
    mlm_tokenizer = AutoTokenizer.from_pretrained(args.masked_lm) if args.masked_lm else tokenizer
    vectors = load_word_vectors(args.word_vectors) if args.word_vectors else None
    augmenter = TinyBertAugmenter(
        mlm_tokenizer,
        masked_lm=masked_lm,
        word_vectors=vectors,
        embedding_model=None if masked_lm is not None and vectors is not None else teacher,
        config=config,
    )
    chosen = train.shuffle(seed=args.seed).select(range(round(args.augment_fraction * train.num_rows)))
    columns = ("text", "text_pair") if "text_pair" in train.column_names else ("text",)
    augmented = augmenter.augment_dataset(chosen, text_columns=columns, cache_dir=Path(args.output_dir) / "cache")
    variants = augmented.filter(lambda row: row["augmented"], desc="Keeping variants").remove_columns("augmented")
    return concatenate_datasets([train, variants.cast(train.features)])


def build_student(
    teacher: PreTrainedModel,
    names: list[str],
    args: RecipeArguments,
    calibration: Dataset | None = None,
    tokenizer=None,
) -> tuple[PreTrainedModel, dict]:
    """The student before distillation: pruned from the teacher, a subset of its layers, random, or a general
    student. `calibration` (tokenized training rows) is what 'pruned-teacher' measures importance on; `tokenizer`
    (the teacher's) is checked against a general student's own tokenizer.

    Returns the student and a record of how it was made (`teacher_layers`: the teacher layer each student layer
    was cut from, which stage 1 then distils it towards)."""
    student_class = model_class(args, tinybert=True)
    labels = {"id2label": dict(enumerate(names)), "label2id": {name: index for index, name in enumerate(names)}}
    set_seed(args.seed)
    shape = {
        "num_hidden_layers": args.student_layers,
        "hidden_size": args.student_hidden_size,
        "num_attention_heads": args.student_attention_heads,
        "intermediate_size": args.student_intermediate_size,
    }
    if args.student_init == "layer-subset":
        layers = uniform_layer_subset(teacher.config.num_hidden_layers, args.student_layers)
        student = student_from_teacher_layers(teacher, layers=layers, student_class=student_class)
        return student, {"student_init": args.student_init, "teacher_layers": layers}
    if args.student_init == "pruned-teacher":
        if calibration is None:
            raise ValueError("'pruned-teacher' measures importance on training data: pass `calibration`.")
        batches = calibration_batches(
            calibration, args.calibration_samples, pad_token_id=teacher.config.pad_token_id or 0, seed=args.seed
        )
        student, plan = prune(
            teacher,
            batches,
            importance=args.pruning_importance,
            layer_selection=args.layer_selection,
            **shape,
        )
        logger.info(f"Student pruned from the teacher: {plan.summary()}")
        record = {"student_init": args.student_init, "teacher_layers": plan.layers, "pruning": plan.summary()}
        return student, {**record, "importance": args.pruning_importance, "layer_selection": args.layer_selection}
    if args.student_init == "random":
        config = TinyBertConfig.from_teacher_config(teacher.config, **shape, **labels)
        return student_class(config), {"student_init": args.student_init}
    path = general_student_path(args)
    has_tokenizer = any((Path(path) / name).is_file() for name in ("tokenizer.json", "vocab.txt"))
    if tokenizer is not None and has_tokenizer:  # a general student trained with another vocabulary reads other ids
        check_same_vocabulary(tokenizer, AutoTokenizer.from_pretrained(path))
    student = load_pretrained(student_class, path, allow_pickle=args.allow_pickle, num_labels=len(names), **labels)
    return student, {"student_init": args.student_init}


def distil(
    teacher: PreTrainedModel,
    student: PreTrainedModel,
    train: Dataset,
    validation: Dataset,
    tokenizer,
    names: list[str],
    args: RecipeArguments,
    teacher_layers: list[int] | None = None,
    transfer: Dataset | None = None,
) -> tuple[PreTrainedModel, dict]:
    """TinyBERT's task distillation: stage 1 (intermediate layers), then stage 2 (prediction layer, cached teacher
    logits), keeping the stage-2 epoch that scores best on the dev split. Returns the student and timings.

    `teacher_layers` maps each student layer to a teacher layer in stage 1 (default: the uniform mapping); a student
    cut from the teacher learns from the layers it was cut from. `transfer` (tokenized unlabelled rows) joins
    stage 2's rows, with the teacher's soft labels as their only target, and stage 1's with
    `transfer_in_intermediate`."""
    output_dir = Path(args.output_dir)
    record = {}
    stage_one = output_dir / "student_intermediate"
    if args.intermediate_epochs > 0:
        if _done(stage_one):
            student = load_pretrained(type(student), stage_one)
        else:
            trainer = DistillationTrainer(
                model=student,
                teacher_model=teacher,
                args=_distillation_arguments(
                    stage_one,
                    args,
                    args.intermediate_epochs,
                    stage="intermediate",
                    layer_mapping=_layer_mapping(teacher_layers),
                    eval_strategy="no",
                    load_best_model_at_end=False,
                ),
                train_dataset=mix_transfer_rows(train, transfer, token_level=args.task == TOKEN_TASK)
                if transfer is not None and args.transfer_in_intermediate
                else train,
                data_collator=_collator(tokenizer, args),
                processing_class=tokenizer,
            )
            start = time.perf_counter()
            _train(trainer)
            _save(trainer, stage_one, {"seconds": time.perf_counter() - start})
        record["intermediate_seconds"] = _done(stage_one)["seconds"]

    student = distil_prediction_layer(
        teacher,
        student,
        train,
        validation,
        tokenizer,
        names,
        args,
        output_dir / "student",
        args.prediction_epochs,
        quantization_aware=args.quantization_aware,
        hub_arguments=_hub_arguments(args),
        transfer=transfer,
        teacher_layers=teacher_layers,
    )
    record["prediction_seconds"] = _done(output_dir / "student")["seconds"]
    return student, record


def distil_prediction_layer(
    teacher: PreTrainedModel,
    student: PreTrainedModel,
    train: Dataset,
    validation: Dataset,
    tokenizer,
    names: list[str],
    args: RecipeArguments,
    directory: Path,
    epochs: float,
    quantization_aware: bool = False,
    hub_arguments: dict | None = None,
    transfer: Dataset | None = None,
    teacher_layers: list[int] | None = None,
) -> PreTrainedModel:
    """TinyBERT's stage 2 (and the recovery after pruning): the student learns the teacher's cached soft labels;
    the epoch that scores best on the dev split is saved to `directory` (reused when already finished).

    With `quantization_aware`, the student trains (and is scored on dev) through fake-quantized linear layers and
    embeddings matching `args.int8_per_channel` / `args.int8_reduce_range`; the saved weights are plain fp32.
    `hub_arguments` (Trainer's `push_to_hub`, `hub_model_id`, ...) push the stage's epochs as they are saved.
    `transfer` (tokenized unlabelled rows) gets the teacher's logits cached too and joins the training rows.
    With `args.prediction_intermediate_losses`, the intermediate losses stay on beside the prediction loss (the
    teacher then runs at every step, over `teacher_layers`, and no logits are cached)."""
    if not _done(directory):
        start = time.perf_counter()
        anchored = args.prediction_intermediate_losses
        cached = train
        # anchored, the teacher runs at every step for its hidden states and gives its logits with them
        if not anchored:
            # on disk under output_dir/cache: a resumed run reads the logits instead of running the teacher again
            cache = Path(args.output_dir) / "cache"
            cached = add_teacher_logits(train, teacher, batch_size=128, cache_dir=cache)
            validation = add_teacher_logits(validation, teacher, batch_size=128, cache_dir=cache)  # dev loss
            if transfer is not None:
                transfer = add_teacher_logits(transfer, teacher, batch_size=128, cache_dir=cache)
        if transfer is not None:
            cached = mix_transfer_rows(cached, transfer, token_level=args.task == TOKEN_TASK)
        if quantization_aware:
            add_fake_quantization(student, per_channel=args.int8_per_channel, reduce_range=args.int8_reduce_range)
        trainer = DistillationTrainer(
            model=student,
            teacher_model=teacher,
            args=_distillation_arguments(
                directory,
                args,
                epochs,
                # every part with weight 1 (embedding, attention, hidden, prediction), or the prediction loss alone
                stage=None if anchored else "prediction",
                layer_mapping=_layer_mapping(teacher_layers),
                temperature=args.temperature,
                prediction_loss=args.prediction_loss,
                **(hub_arguments or {}),
            ),
            train_dataset=cached,
            eval_dataset=validation,
            data_collator=_collator(tokenizer, args),
            processing_class=tokenizer,
            compute_metrics=metric_function(names, args),
        )
        _train(trainer)
        dev = trainer.evaluate()  # the best epoch, as it trained (fake-quantized with quantization_aware)
        remove_fake_quantization(trainer.model)
        if isinstance(trainer.model, TinyBertPreTrainedModel):  # the step's output ships: no distillation projection
            trainer.model.remove_distillation_projection()
        _save(trainer, directory, {"seconds": time.perf_counter() - start, "dev": dev})
    return load_pretrained(type(student), directory)


def finetune_baseline(
    student: PreTrainedModel, train: Dataset, validation: Dataset, tokenizer, names, args: RecipeArguments
) -> PreTrainedModel:
    """The same student initialization trained on hard labels only: what distillation is measured against."""
    directory = Path(args.output_dir) / "baseline"
    if not _done(directory):
        trainer = Trainer(
            model=student,
            args=_training_arguments(TrainingArguments, directory, args, args.prediction_epochs, args.learning_rate),
            train_dataset=train,
            eval_dataset=validation,
            data_collator=_collator(tokenizer, args),
            processing_class=tokenizer,
            compute_metrics=metric_function(names, args),
        )
        start = time.perf_counter()
        _train(trainer)
        _save(trainer, directory, {"seconds": time.perf_counter() - start})
    return load_pretrained(type(student), directory)


def evaluate_model(model: PreTrainedModel, data: Dataset, tokenizer, names, args: RecipeArguments) -> dict:
    """Metrics of `model` on tokenized `data` (no training)."""
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir="/tmp/tinybert_hf_eval",
            per_device_eval_batch_size=128,
            dataloader_pin_memory=_pin_memory(),
            report_to="none",
        ),
        data_collator=_collator(tokenizer, args),
        processing_class=tokenizer,
        compute_metrics=metric_function(names, args),
    )
    metrics = trainer.evaluate(eval_dataset=data)
    # Trainer's bookkeeping (`epoch` 0 of a model it did not train, timings) is no metric of the model
    bookkeeping = ("epoch", "runtime", "model_preparation_time")
    metrics = {key.removeprefix("eval_"): value for key, value in metrics.items() if not key.endswith("_per_second")}
    return {key: value for key, value in metrics.items() if key not in bookkeeping}


def evaluate_saved_model(model_path: str, args: RecipeArguments) -> dict[str, dict]:
    """Dev and test metrics of a saved model directory (or Hub id), with its own tokenizer, on the data given, else
    the data its run recorded ([`~tinybert_hf.recipe.run_records.load_data_for_model`]; `"data"` says which), and
    under `"heldout"` its metrics on each `--eval_files` set."""
    check_model_reference(model_path, "--model")
    config = AutoConfig.from_pretrained(model_path)
    data, names, args, description = load_data_for_model(model_path, config, args)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    eval_sets = load_eval_sets(names, tokenizer, args, getattr(config, "max_position_embeddings", None))
    model = load_pretrained(model_class(args), model_path, allow_pickle=args.allow_pickle, config=config)
    tokenized = tokenize(data, tokenizer, args)
    scores = {"data": description}
    for split in (split for split in SPLITS[1:] if split in tokenized):
        scores[split] = evaluate_model(model, tokenized[split], tokenizer, names, args)
    if eval_sets:
        scores["heldout"] = {
            name: evaluate_model(model, rows, tokenizer, names, args) for name, rows in eval_sets.items()
        }
    return scores


def prepare_data(args: RecipeArguments) -> tuple[DatasetDict, list[str], object]:
    """The task's splits (cut to `max_train_samples`), its label names, and the teacher's tokenizer. A `max_length`
    beyond the teacher's position table is lowered to it, with a warning (longer rows are truncated)."""
    data = load_task_splits(args)
    source = teacher_source(args)
    tokenizer = AutoTokenizer.from_pretrained(source)
    positions = getattr(AutoConfig.from_pretrained(source), "max_position_embeddings", None)
    if positions is not None and args.max_length > positions:
        logger.warning(
            f"`max_length={args.max_length}` is longer than the teacher's position table ({positions} positions): "
            f"sequences are truncated to {positions} tokens."
        )
        args.max_length = positions
    return data, label_names(data, args), tokenizer


def check_teacher_architecture(config, path: str | Path) -> None:
    """Refuse, before any work, a teacher (or backbone) of an architecture the recipe cannot distil: its students
    are cut from, or copy layers of, a BERT-layout encoder (`DistillationTrainer` in a script takes more)."""
    model_type = getattr(config, "model_type", None)
    if model_type not in RECIPE_TEACHER_TYPES:
        raise BadInputError(
            f"The teacher {path} is a {model_type!r} model; the recipe distils BERT-architecture encoders "
            f"(model_type {' or '.join(map(repr, RECIPE_TEACHER_TYPES))}: BERT, MiniLM and TinyBERT checkpoints). "
            "Pass one as `--teacher` (fine-tuned) or `--teacher_backbone` (to fine-tune)."
        )


def check_teacher(config, path: str | Path, names: list[str], args: RecipeArguments) -> None:
    """Refuse a fine-tuned teacher without the task's head (stage 2 learns its predictions) or with another number
    of labels than the data has; warn when its labels are named differently."""
    check_teacher_architecture(config, path)
    head = "ForTokenClassification" if args.task == TOKEN_TASK else "ForSequenceClassification"
    architectures = getattr(config, "architectures", None) or []
    if not any(name.endswith(head) for name in architectures):
        raise BadInputError(
            f"The teacher {path} has no {args.task} head (architectures: {architectures or 'none recorded'}), and the "
            "prediction stage learns from the teacher's predictions. Pass it as `--teacher_backbone` to have the "
            "recipe fine-tune it first (or run `tinybert-hf finetune-teacher`)."
        )
    if config.num_labels != len(names):
        raise BadInputError(
            f"The teacher {path} predicts {config.num_labels} labels ({list(config.id2label.values())}) but the data "
            f"has {len(names)} ({names}): distil a teacher fine-tuned on these labels."
        )
    teacher_names = [config.id2label[index] for index in range(config.num_labels)]
    if teacher_names != names and not all(name == f"LABEL_{index}" for index, name in enumerate(teacher_names)):
        logger.warning(f"The teacher's labels {teacher_names} are named differently from the data's {names}.")


def load_teacher(path: str | Path, names: list[str], args: RecipeArguments) -> PreTrainedModel:
    """The fine-tuned teacher in eval mode, checked first ([`check_teacher`])."""
    config = AutoConfig.from_pretrained(path)
    check_teacher(config, path, names, args)
    return load_pretrained(model_class(args), path, allow_pickle=args.allow_pickle, config=config).eval()


def model_settings(args: RecipeArguments) -> dict:
    """The settings that decide what the recipe's models are (all but `SETTINGS_OUTSIDE_MODELS`), JSON-normalized."""
    settings = {key: value for key, value in asdict(args).items() if key not in SETTINGS_OUTSIDE_MODELS}
    return json.loads(json.dumps(settings, default=str))


def prepare_output_dir(args: RecipeArguments) -> Path:
    r"""
    Create `args.output_dir`, or check that what it holds was made with these settings (its finished steps are then
    reused and an interrupted one resumes), and record the settings in `run.json`.

    Raises:
        [`~tinybert_hf.errors.OutputDirectoryError`]: the directory holds a run made with other settings, a model, or
            other files, and `overwrite_output_dir` is off. With it, the recipe's own outputs there
            (`RECIPE_OUTPUTS`) are deleted; nothing else is.
    """
    output_dir = Path(args.output_dir)
    settings = model_settings(args)
    conflict = _output_dir_conflict(output_dir, settings)
    if conflict and not args.overwrite_output_dir:
        raise OutputDirectoryError(
            f"{output_dir} {conflict}. Choose another `--output_dir`, or pass `--overwrite_output_dir true` to delete "
            "the recipe's outputs there and start over."
        )
    if conflict:
        logger.warning(f"{output_dir} {conflict}: deleting the recipe's outputs there (`--overwrite_output_dir`).")
        for name in RECIPE_OUTPUTS:
            path = output_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_text(output_dir / RUN_RECORD, json.dumps({"settings": settings}, indent=2))
    # `datasets` writes a cache under a temporary name and renames it when complete: these are from killed runs
    for leftover in (output_dir / "cache").glob("tmp*"):
        logger.info(f"Removing {leftover}, a cache file an interrupted run left half-written.")
        leftover.unlink()
    return output_dir


def _output_dir_conflict(output_dir: Path, settings: dict) -> str | None:
    """Why `output_dir` cannot take this run's outputs as it is, or `None`."""
    if not output_dir.is_dir() or not any(output_dir.iterdir()):
        return None
    record, results = output_dir / RUN_RECORD, output_dir / "results.json"
    if record.is_file():
        recorded = json.loads(record.read_text())["settings"]
    elif results.is_file():  # a run of an earlier version, which wrote no run.json
        recorded = json.loads(results.read_text()).get("settings", {})
    elif (output_dir / "config.json").is_file():
        return "holds a model (config.json), not a tinybert-hf run"
    else:
        names = sorted(path.name for path in output_dir.iterdir())
        return f"holds files no tinybert-hf run wrote ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})"
    changed = [key for key, value in settings.items() if key in recorded and recorded[key] != value]
    if not changed:
        return None
    differences = "; ".join(f"{key}: {recorded[key]!r} there, {settings[key]!r} now" for key in changed[:5])
    return f"holds a run made with other settings ({differences})"


def general_student_path(args: RecipeArguments) -> str | None:
    """The general-distilled student `--student_init general:<path>` names (`None` for the other inits), refused
    when it names nothing: a misspelt init (`prunned-teacher`) would otherwise be read as a path."""
    if args.student_init in STUDENT_INITS:
        return None
    path = args.student_init.removeprefix("general:")
    if not Path(path).expanduser().exists() and (path.startswith((".", "/", "~")) or path.count("/") != 1):
        close = difflib.get_close_matches(path, STUDENT_INITS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise BadInputError(
            f"`--student_init {path}` is not one of {', '.join(STUDENT_INITS)} and no general-distilled student "
            f"(directory or Hub id) is there: {hint}A general student is given as `general:<path>`."
        )
    return path


def teacher_source(args: RecipeArguments) -> str:
    """The teacher (`--teacher`), else the backbone the recipe fine-tunes into one, else the packaged MiniLM."""
    for option in ("teacher", "teacher_backbone"):
        check_model_reference(getattr(args, option), f"--{option}")
    return args.teacher or args.teacher_backbone or str(packaged_teacher_path())


def check_model_reference(reference: str | None, option: str) -> None:
    """Refuse a local model path that does not exist (transformers would read it as a malformed Hub id): a Hub id is
    `name` or `org/name`, so anything else, or anything starting like a path, must be a directory here."""
    if reference is not None and (Path(reference) / "model.onnx").is_file():
        raise BadInputError(
            f"`{option} {reference}` is an exported ONNX model; this command takes a PyTorch model directory (the "
            "student it was exported from). The recipe's results.json already scores the int8 student."
        )
    if reference is None or Path(reference).expanduser().exists():
        return
    parts = reference.split("/")
    if reference.startswith((".", "/", "~")) or len(parts) > 2 or not all(parts):
        raise FileNotFoundError(
            f"`{option} {reference}`: no such directory (a saved model directory or a Hub model id)."
        )


def load_embedding_source(args: RecipeArguments) -> PreTrainedModel:
    """The encoder whose input embeddings give augmentation candidates offline: the teacher, else its backbone."""
    from transformers import AutoModel

    return load_pretrained(AutoModel, teacher_source(args), allow_pickle=args.allow_pickle)


def quantize_student(student_dir: Path, args: RecipeArguments) -> tuple[PreTrainedModel, Path]:
    """The int8 ONNX student beside `student_dir` (`<student_dir>-int8`, reused when already written from the same
    weights), loaded for evaluation and timing with as many ONNX Runtime threads as torch uses."""
    import torch

    from ..onnx.modeling_onnx import OnnxModelForSequenceClassification, OnnxModelForTokenClassification
    from ..quantization.onnx_int8 import default_int8_directory, quantize_saved_model, weights_digest
    from .arguments import QuantizeArguments

    int8_dir = default_int8_directory(student_dir)
    record = int8_dir / "quantization.json"
    # reused only if made from these very weights (a retrained student gets a new int8 copy)
    if not record.is_file() or json.loads(record.read_text()).get("source_weights_sha256") != weights_digest(
        student_dir
    ):
        quantize_saved_model(
            QuantizeArguments(
                model=str(student_dir),
                output_dir=str(int8_dir),
                per_channel=args.int8_per_channel,
                reduce_range=args.int8_reduce_range,
            )
        )
    onnx_class = OnnxModelForTokenClassification if args.task == TOKEN_TASK else OnnxModelForSequenceClassification
    return onnx_class.from_pretrained(int8_dir, threads=torch.get_num_threads()), int8_dir


def run_recipe(args: RecipeArguments) -> dict:
    r"""
    Run every step and write `results.json`, `results.png` and the student directory under `args.output_dir`.

    Returns:
        `dict`: the results (also in `results.json`).
    """
    from .report import measure_and_report  # matplotlib only when a report is made

    started = time.perf_counter()
    if args.int8:  # fail now, not after the training
        from ..onnx.export import _require_onnx

        _require_onnx()
    if args.push_to_hub:  # fail now on a bad token or name, not after the training
        args.hub_model_id = hub_repository(args)
    # every input is checked before anything is written: a refused run leaves no run.json behind to block the
    # corrected command
    source = teacher_source(args)
    source_config = AutoConfig.from_pretrained(source)
    check_teacher_architecture(source_config, source)
    general_student_path(args)
    set_seed(args.seed)
    data, names, tokenizer = prepare_data(args)
    if args.teacher:
        check_teacher(source_config, source, names, args)
    positions = getattr(source_config, "max_position_embeddings", None)
    eval_sets = load_eval_sets(names, tokenizer, args, positions)  # a bad file fails now, not after training
    transfer = prepare_transfer_text(tokenizer, args)
    output_dir = prepare_output_dir(args)

    teacher_dir = args.teacher or str(finetune_teacher(data, names, tokenizer, args))
    teacher = load_teacher(teacher_dir, names, args)
    tokenized = tokenize_splits(data, tokenizer, args)

    train_text = data["train"]
    augmentation = None
    if args.augment and args.task == TEXT_TASK and args.num_augmentations > 0 and args.augment_fraction > 0:
        start = time.perf_counter()
        train_text = augment_training_data(data["train"], tokenizer, teacher, args)
        augmentation = {"rows": train_text.num_rows, "seconds": time.perf_counter() - start}
    elif args.augment and args.task == TOKEN_TASK:
        logger.warning("Augmentation is for text classification: word replacements would misalign NER tags.")
    train = tokenize(train_text, tokenizer, args) if augmentation else tokenized["train"]

    start = time.perf_counter()
    student, student_init = build_student(teacher, names, args, calibration=train, tokenizer=tokenizer)
    student_init["seconds"] = time.perf_counter() - start
    initial_student = type(student)(student.config)
    initial_student.load_state_dict(student.state_dict())
    recovery = None
    if args.recovery_steps:
        student = recover_on_transfer_text(
            teacher, student, transfer, tokenizer, args, teacher_layers=student_init.get("teacher_layers")
        )
        recovery = _done(output_dir / "student_recovered")
    distilled, timings = distil(
        teacher,
        student,
        train,
        tokenized["validation"],
        tokenizer,
        names,
        args,
        teacher_layers=student_init.get("teacher_layers"),
        transfer=transfer_rows(transfer, args),
    )
    if recovery:
        timings["recovery_seconds"] = recovery["seconds"]
    models = {"teacher": (teacher, Path(teacher_dir)), "student (distilled)": (distilled, output_dir / "student")}
    if args.baseline:
        baseline = finetune_baseline(
            initial_student, tokenized["train"], tokenized["validation"], tokenizer, names, args
        )
        models["student (fine-tuned, no teacher)"] = (baseline, output_dir / "baseline")
    if args.int8:
        int8_model, int8_dir = quantize_student(output_dir / "student", args)
        models["student (int8 ONNX)"] = (int8_model, int8_dir)

    results = {
        "settings": asdict(args),
        "working_directory": os.getcwd(),  # relative paths in the settings are relative to it
        "teacher": teacher_dir,
        "labels": names,
        "splits": {split: data[split].num_rows for split in data},
        "augmentation": augmentation,
        "transfer": {
            "text": args.transfer_text,
            "rows": args.transfer_rows,
            "in_intermediate": args.transfer_in_intermediate,
            "recovery_steps": args.recovery_steps,
        }
        if transfer is not None
        else None,
        "heldout_sets": {
            name: {"path": eval_set_name(spec)[1], "rows": eval_sets[name].num_rows}
            for spec, name in zip(args.eval_files, eval_sets, strict=True)
        },
        "student_init": student_init,
        "timings": timings,
        "models": {},
    }
    for name, (model, directory) in models.items():
        results["models"][name] = {
            "dev": evaluate_model(model, tokenized["validation"], tokenizer, names, args),
            "test": evaluate_model(model, tokenized["test"], tokenizer, names, args),
            "heldout": {
                set_name: evaluate_model(model, rows, tokenizer, names, args) for set_name, rows in eval_sets.items()
            },
            "directory": str(directory),
            "shape": f"{model.config.num_hidden_layers}x{model.config.hidden_size}",
        }
    if args.int8:  # the ONNX model holds the student's weights, not torch parameters
        results["models"]["student (int8 ONNX)"]["parameters"] = parameter_count(distilled)
        results["quantization"] = json.loads((int8_dir / "quantization.json").read_text())
    measure_and_report(results, {name: model for name, (model, _) in models.items()}, tokenizer, args)
    results["distillation"] = distillation_record(args, student_init.get("teacher_layers"), distilled, teacher)
    results["wall_seconds"] = time.perf_counter() - started
    recorded = json.dumps(results, indent=2, default=str)
    write_text(output_dir / "results.json", recorded)
    # the student directory carries what made it, and its card: publishable as it is (a card the user edited after
    # an earlier run is kept: `tinybert-hf card` re-renders it on request)
    edited = card_was_edited(output_dir / "student")
    write_text(output_dir / "student" / RESULTS_NAME, recorded)
    if edited:
        logger.warning(f"Keeping the edited {output_dir / 'student' / 'README.md'}; `tinybert-hf card` re-renders it.")
    else:
        write_model_card(output_dir / "student", results, repo_id=args.hub_model_id)
    if args.push_to_hub:
        from ..errors import PushError
        from ..hub.push import push_student

        try:
            # Trainer's checkpoint pushes (hub_strategy other than 'end') upload its pickled training_args.bin
            stale = ("training_args.bin",) if _hub_arguments(args) else ()
            pushed = push_student(output_dir / "student", args.hub_model_id, delete_from_repo=stale)
            results["hub_commit"] = pushed.commit_url
        except PushError as error:
            raise PushError(
                f"{error}\nThe student is saved in {output_dir / 'student'}; push it again with "
                f"`tinybert-hf push --model {output_dir / 'student'} --repo_id {args.hub_model_id}`."
            ) from None
        logger.info(f"Student pushed: {results['hub_commit']}")
    return results


def distillation_record(args: RecipeArguments, teacher_layers, student, teacher) -> dict:
    """The stages as they ran: epochs, learning rate, loss weights, layer mapping, temperature (for the card)."""
    stages = []
    if args.intermediate_epochs > 0:
        mapping = teacher_layers or uniform_layer_subset(
            teacher.config.num_hidden_layers, student.config.num_hidden_layers
        )
        stages.append(
            {
                "name": "intermediate",
                "epochs": args.intermediate_epochs,
                "learning_rate": args.learning_rate,
                "loss_weights": STAGE_WEIGHTS["intermediate"],
                # stage 1 runs with the trainer's default attention loss
                "attention_loss": DistillationTrainingArguments.__dataclass_fields__["attention_loss"].default,
                "layer_mapping": list(mapping),
            }
        )
    stages.append(
        {
            "name": "prediction",
            "epochs": args.prediction_epochs,
            "learning_rate": args.learning_rate,
            "loss_weights": STAGE_WEIGHTS["prediction"],
            "temperature": args.temperature,
            "quantization_aware": args.quantization_aware,
        }
    )
    return {"stages": stages, "l1_penalty": args.l1_penalty, "l2_penalty": args.l2_penalty}
