"""The recipe's steps, each also a function of its own (the `tinybert-hf` subcommands and `examples/` call them):
fine-tune the teacher, augment, build the student (cut from the teacher, a subset of its layers, random or general),
recover it on transfer text, distil it in TinyBERT's two stages, fine-tune the no-teacher baseline, evaluate.

Every training step runs through [`~tinybert_hf.utils.step_runner.run_training_step`]: reused when finished,
resumed from its newest complete checkpoint when interrupted, saved whole or not at all.
"""

from __future__ import annotations

import copy
from pathlib import Path

import transformers
from datasets import Dataset, DatasetDict, concatenate_datasets
from transformers import (
    AutoConfig,
    AutoModelForMaskedLM,
    AutoTokenizer,
    DataCollatorWithPadding,
    PreTrainedModel,
    Trainer,
    TrainingArguments,
    set_seed,
)
from transformers.utils import logging

from ..data.augmentation import AugmentationConfig, TinyBertAugmenter, load_word_vectors
from ..data.loading import eval_set_name, load_eval_set, parse_label_map
from ..data.packaged import packaged_teacher_path
from ..data.tasks import TASKS
from ..data.tokenization import data_collator, sort_by_length, tokenize
from ..data.transfer_text import JOINED, load_transfer_text, mix_transfer_rows
from ..distillation.arguments import DistillationTrainingArguments
from ..distillation.attention_capture import attention_recording_error
from ..distillation.hidden_projection import detach_hidden_projection
from ..distillation.layer_mapping import layer_mapping_option, resolve_layer_mapping
from ..distillation.teacher_cache import add_teacher_logits
from ..distillation.trainer import DistillationTrainer, check_same_vocabulary
from ..errors import BadInputError
from ..evaluation.metrics import compute_metrics_for
from ..evaluation.scoring import score
from ..models.tinybert.configuration_tinybert import TinyBertConfig
from ..models.tinybert.conversion import TINYBERT_CLASS_BY_HEAD, student_from_teacher_layers, uniform_layer_subset
from ..models.tinybert.modeling_tinybert import TinyBertPreTrainedModel
from ..pruning.structured import apply_plan, calibration_batches, prune, whole_layers_plan
from ..quantization.quantization_aware import add_fake_quantization, remove_fake_quantization
from ..utils.processes import (
    cpu_process_group_needed,
    deepspeed_launch,
    launch_mixed_precision,
    launched_processes,
    main_process_first,
    sharded_launch,
)
from ..utils.safe_loading import load_pretrained
from ..utils.step_runner import finished_step, run_training_step
from .arguments import RecipeArguments
from .checks import check_teacher, general_student_path, teacher_source

logger = logging.get_logger(__name__)


def _has_accelerator() -> bool:
    """Whether a GPU (or another accelerator) is here: host memory is pinned only then (that only speeds up copies
    to an accelerator; asked for without one, torch warns on every data loader)."""
    import torch

    return torch.accelerator.is_available()


def trainer_teacher(teacher: PreTrainedModel) -> PreTrainedModel:
    """The teacher to give a `DistillationTrainer`. Under ZeRO-3 or FSDP the trainer shards it in place, so it gets
    a copy: the recipe's own stays whole, for the logits the main process caches alone and the reports after."""
    return copy.deepcopy(teacher) if sharded_launch() else teacher


def _batch_arguments(args: RecipeArguments) -> dict:
    """`args.batch_size` rows per optimizer step whatever the number of processes: with several, each step's batch
    is drawn whole, as one process would draw it, and split across them (Accelerate's `split_batches`; the options
    refuse a batch size that does not split evenly), so the steps are those of the one-process run."""
    processes = launched_processes()
    if processes == 1:
        return {"per_device_train_batch_size": args.batch_size, "per_device_eval_batch_size": 128}
    if deepspeed_launch():
        # DeepSpeed counts a step's batch as micro-batch x processes and refuses split batches: each process draws
        # its share. Same steps and batch sizes as one process; the rows of a step are grouped differently.
        return {"per_device_train_batch_size": args.batch_size // processes, "per_device_eval_batch_size": 128}
    return {
        "per_device_train_batch_size": args.batch_size,
        "per_device_eval_batch_size": 128 // processes * processes or processes,  # split evenly too
        "accelerator_config": {"split_batches": True},
    }


def _training_arguments(cls, output_dir: Path, args: RecipeArguments, epochs: float, lr: float, **extra):
    precision = launch_mixed_precision()  # as `accelerate launch` was told (its DeepSpeed config says so too)
    return cls(
        # checkpoints beside the step's directory, not inside it: the step's directory is a clean, shippable model
        output_dir=str(output_dir.parent / "checkpoints" / output_dir.name),
        num_train_epochs=epochs,
        learning_rate=lr,
        **_batch_arguments(args),
        ddp_timeout=args.process_timeout,
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
        dataloader_pin_memory=_has_accelerator(),
        use_cpu=cpu_process_group_needed(),  # so that a plain `torchrun` on CPUs trains under DDP
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        logging_steps=50,
        report_to="none",
        seed=args.seed,
        save_only_model=False,  # optimizer, scheduler and RNG states too: a killed step resumes exactly
        **extra,
    )


def distillation_training_arguments(output_dir: Path, args: RecipeArguments, epochs: float, **extra):
    """Training arguments of a distillation stage: the recipe's, plus its weight penalties (stage 2 at its own
    learning rate, where one is given)."""
    return _training_arguments(
        DistillationTrainingArguments,
        output_dir,
        args,
        epochs,
        stage_learning_rate(args, extra.get("stage")),
        l1_penalty=args.l1_penalty,
        l2_penalty=args.l2_penalty,
        **extra,
    )


def stage_learning_rate(args: RecipeArguments, stage: str | None) -> float:
    """The learning rate of a distillation stage: `prediction_learning_rate` for stage 2 (`stage` "prediction", or
    None: stage 2 with the intermediate losses kept on) where it is given, else `learning_rate`."""
    if stage != "intermediate" and args.prediction_learning_rate is not None:
        return args.prediction_learning_rate
    return args.learning_rate


def layer_objective(args: RecipeArguments, teacher: PreTrainedModel, student: PreTrainedModel, teacher_layers) -> dict:
    """The layer mapping and attention loss of a distillation step. `--attention_loss auto` is TinyBERT's `mse` on
    pre-softmax scores where the teacher's scores can be recorded and every student layer has the head count of the
    teacher layer it learns from, else MiniLMv2's `relation`, which pairs any head counts and serves teachers whose
    scores hold position terms (MPNet, DeBERTa)."""
    mapping = layer_mapping_option(teacher_layers)
    attention_loss = args.attention_loss
    if attention_loss == "auto":
        layers = resolve_layer_mapping(mapping, teacher.config.num_hidden_layers, student.config.num_hidden_layers)
        heads_of = getattr(
            student.config, "num_attention_heads_of_layer", lambda _: student.config.num_attention_heads
        )
        paired = all(heads_of(layer) == teacher.config.num_attention_heads for layer in range(len(layers)))
        recordable = attention_recording_error(teacher, scores=True) is None and (
            isinstance(student, TinyBertPreTrainedModel) or attention_recording_error(student, scores=True) is None
        )
        attention_loss = "mse" if paired and recordable else "relation"
    return {"layer_mapping": mapping, "attention_loss": attention_loss}


def trainer_hub_arguments(args: RecipeArguments) -> dict:
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

    def build_trainer():
        rows = transfer.select(range(min(transfer.num_rows, args.recovery_steps * args.batch_size)))
        return DistillationTrainer(
            model=student,
            teacher_model=trainer_teacher(teacher),
            args=distillation_training_arguments(
                directory,
                args,
                1.0,
                stage="intermediate",
                **layer_objective(args, teacher, student, teacher_layers),
                max_steps=args.recovery_steps,
                eval_strategy="no",
                load_best_model_at_end=False,
            ),
            train_dataset=rows,
            data_collator=DataCollatorWithPadding(tokenizer),  # unlabelled rows, whatever the task
            processing_class=tokenizer,
        )

    run_training_step(directory, build_trainer, finish=lambda trainer: {"steps": args.recovery_steps})
    return load_pretrained(type(student), directory)


def transfer_rows(transfer: Dataset | None, args: RecipeArguments) -> Dataset | None:
    """The first `transfer_rows` transfer snippets, or `None` when transfer is off."""
    if transfer is None or not args.transfer_rows:
        return None
    return transfer.select(range(min(args.transfer_rows, transfer.num_rows)))


def model_class(task: str, tinybert: bool = False):
    """The class with `task`'s head: transformers' Auto class (any architecture), or the TinyBERT one."""
    head = TASKS[task].head
    return TINYBERT_CLASS_BY_HEAD[head] if tinybert else getattr(transformers, f"AutoModel{head}")


def _drop_load_report(record) -> bool:
    """A logging filter: transformers' load report, and nothing else, is dropped."""
    return "LOAD REPORT" not in record.getMessage()


def finetune_teacher(data: DatasetDict, names: list[str], tokenizer, args: RecipeArguments) -> Path:
    """Fine-tune `teacher_backbone` on the task with a plain Trainer; returns the teacher directory."""
    directory = Path(args.output_dir) / "teacher"
    if finished_step(directory):
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
            model_class(args.task),
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
    tokenized = tokenize(data, tokenizer, args.task, args.max_length)
    run_training_step(
        directory,
        lambda: Trainer(
            model=model,
            args=_training_arguments(
                TrainingArguments, directory, args, args.teacher_epochs, args.teacher_learning_rate
            ),
            train_dataset=tokenized["train"],
            eval_dataset=sort_by_length(tokenized["validation"]),
            data_collator=data_collator(tokenizer, args.task),
            processing_class=tokenizer,
            compute_metrics=compute_metrics_for(names, args.task),
        ),
        finish=lambda trainer: {"backbone": backbone, "dev": trainer.evaluate()},
    )
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
    student_class = model_class(args.task, tinybert=True)
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
        if teacher.config.model_type in ("bert", "tinybert"):
            student = student_from_teacher_layers(teacher, layers=layers, student_class=student_class)
        else:  # another family stays in its class: a plan that keeps these layers whole
            student = apply_plan(teacher, whole_layers_plan(teacher, layers))
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


def freeze_word_embeddings(student: PreTrainedModel, frozen: bool) -> None:
    """Keep (`frozen`) or train the student's word embeddings: the task's rows reach only the words they hold, so
    while the layers above move, a frozen table keeps every other word where the layers were distilled to read it."""
    student.get_input_embeddings().weight.requires_grad_(not frozen)


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

        def build_trainer() -> DistillationTrainer:  # the rows are mixed only when the step runs
            rows = (
                mix_transfer_rows(train, transfer, token_level=TASKS[args.task].token_level)
                if transfer is not None and args.transfer_in_intermediate
                else train
            )
            freeze_word_embeddings(student, args.freeze_word_embeddings)
            return DistillationTrainer(
                model=student,
                teacher_model=trainer_teacher(teacher),
                args=distillation_training_arguments(
                    stage_one,
                    args,
                    args.intermediate_epochs,
                    stage="intermediate",
                    **layer_objective(args, teacher, student, teacher_layers),
                    eval_strategy="no",
                    load_best_model_at_end=False,
                ),
                train_dataset=rows,
                data_collator=data_collator(tokenizer, args.task),
                processing_class=tokenizer,
            )

        done = run_training_step(stage_one, build_trainer, finish=_objective_record)
        student = load_pretrained(type(student), stage_one)
        record["intermediate_seconds"] = done["seconds"]

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
        hub_arguments=trainer_hub_arguments(args),
        transfer=transfer,
        teacher_layers=teacher_layers,
    )
    record["prediction_seconds"] = finished_step(output_dir / "student")["seconds"]
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

    def build_trainer():
        nonlocal validation, transfer
        anchored = args.prediction_intermediate_losses
        cached = train
        # anchored, the teacher runs at every step for its hidden states and gives its logits with them
        if not anchored:
            # on disk under output_dir/cache: a resumed run reads the logits instead of running the teacher again
            # several processes: the main one runs the teacher and writes the cache, the others then read it
            cache = Path(args.output_dir) / "cache"
            with main_process_first():
                cached = add_teacher_logits(train, teacher, batch_size=128, cache_dir=cache)
                validation = add_teacher_logits(validation, teacher, batch_size=128, cache_dir=cache)  # dev loss
                if transfer is not None:
                    transfer = add_teacher_logits(transfer, teacher, batch_size=128, cache_dir=cache)
        if transfer is not None:
            cached = mix_transfer_rows(cached, transfer, token_level=TASKS[args.task].token_level)
        if quantization_aware:
            add_fake_quantization(student, per_channel=args.int8_per_channel, reduce_range=args.int8_reduce_range)
        freeze_word_embeddings(student, args.freeze_word_embeddings)
        return DistillationTrainer(
            model=student,
            teacher_model=trainer_teacher(teacher),
            args=distillation_training_arguments(
                directory,
                args,
                epochs,
                # every part with weight 1 (embedding, attention, hidden, prediction), or the prediction loss alone
                stage=None if anchored else "prediction",
                **layer_objective(args, teacher, student, teacher_layers),
                temperature=args.temperature,
                prediction_loss=args.prediction_loss,
                **(hub_arguments or {}),
            ),
            train_dataset=cached,
            eval_dataset=validation,
            data_collator=data_collator(tokenizer, args.task),
            processing_class=tokenizer,
            compute_metrics=compute_metrics_for(names, args.task),
        )

    def finish(trainer: DistillationTrainer) -> dict:
        dev = trainer.evaluate()  # the best epoch, as it trained (fake-quantized with quantization_aware)
        remove_fake_quantization(trainer.model)
        if isinstance(trainer.model, TinyBertPreTrainedModel):  # the step's output ships: no distillation projection
            trainer.model.remove_distillation_projection()
        else:
            detach_hidden_projection(trainer.model)
        return {"dev": dev, **_objective_record(trainer)}

    run_training_step(directory, build_trainer, finish=finish)
    return load_pretrained(type(student), directory)


def finetune_baseline(
    student: PreTrainedModel, train: Dataset, validation: Dataset, tokenizer, names, args: RecipeArguments
) -> PreTrainedModel:
    """The same student initialization trained on hard labels only: what distillation is measured against."""
    directory = Path(args.output_dir) / "baseline"
    run_training_step(
        directory,
        lambda: Trainer(
            model=student,
            args=_training_arguments(
                TrainingArguments, directory, args, args.prediction_epochs, stage_learning_rate(args, "prediction")
            ),  # at stage 2's rate: the baseline stands in for it
            train_dataset=train,
            eval_dataset=validation,
            data_collator=data_collator(tokenizer, args.task),
            processing_class=tokenizer,
            compute_metrics=compute_metrics_for(names, args.task),
        ),
    )
    return load_pretrained(type(student), directory)


def _objective_record(trainer: DistillationTrainer) -> dict:
    """What a distillation step optimized, as its trainer ran it: the loss weights, attention loss, teacher layer of
    each student layer (`None` without intermediate losses) and temperature, for the results and the card."""
    return {
        "loss_weights": trainer.loss_weights,
        "attention_loss": trainer.args.attention_loss,
        "layer_mapping": trainer.layer_mapping,
        "temperature": trainer.args.temperature,
    }


def evaluate_model(model: PreTrainedModel, data: Dataset, tokenizer, names, args: RecipeArguments) -> dict:
    """Metrics of `model` on tokenized `data` (no training), in this process alone: the recipe scores its models on
    the main process, whatever the launcher started."""
    return score(model, data, data_collator(tokenizer, args.task), compute_metrics_for(names, args.task))


def load_teacher(path: str | Path, names: list[str], args: RecipeArguments) -> PreTrainedModel:
    """The fine-tuned teacher in eval mode, checked first ([`check_teacher`])."""
    config = AutoConfig.from_pretrained(path)
    check_teacher(config, path, names, args)
    return load_pretrained(model_class(args.task), path, allow_pickle=args.allow_pickle, config=config).eval()


def load_embedding_source(args: RecipeArguments) -> PreTrainedModel:
    """The encoder whose input embeddings give augmentation candidates offline: the teacher, else its backbone."""
    from transformers import AutoModel

    return load_pretrained(AutoModel, teacher_source(args), allow_pickle=args.allow_pickle)


def within_positions(max_length: int, positions: int | None) -> int:
    """`max_length`, lowered to the teacher's position table (`positions`, when it has one): rows tokenized longer
    would index past it."""
    return min(max_length, positions) if positions else max_length


def prepare_transfer_text(
    tokenizer, args: RecipeArguments, train: Dataset | None = None, positions: int | None = None
) -> Dataset | None:
    """The transfer snippets, tokenized without labels (up to `transfer_max_length`, within the teacher's
    `positions`): enough for stage 2's `transfer_rows` and for recovery's `recovery_steps` batches (which read the
    first rows); `None` when both are off. `train` (the task's training split) gives the texts of the `joined`
    source, whose passages are longer than the labelled rows."""
    rows = max(args.transfer_rows, args.recovery_steps * args.batch_size)
    if not rows:
        return None
    training_texts = None
    if JOINED in args.transfer_text:
        if TASKS[args.task].token_level or (train is not None and "text_pair" in train.column_names):
            raise BadInputError(
                f"The transfer text '{JOINED}' joins single training texts; a {args.task} task with "
                f"{'tokens' if TASKS[args.task].token_level else 'text pairs'} has none: give unlabelled text instead."
            )
        training_texts = train["text"] if train is not None else None
    text = load_transfer_text(args.transfer_text, rows, seed=args.seed, training_texts=training_texts)
    if text.num_rows < rows:
        logger.warning(
            f"The transfer text {args.transfer_text} holds {text.num_rows} snippets, fewer than the {rows} asked."
        )
    # The closure captures this int only (it names the caches downstream).
    max_length = within_positions(args.transfer_max_length, positions)

    def encode(batch):
        return tokenizer(batch["text"], truncation=True, max_length=max_length)

    return text.map(encode, batched=True, remove_columns=["text"], desc="Tokenizing transfer text")


def load_eval_sets(names: list[str], tokenizer, args: RecipeArguments, positions: int | None) -> dict[str, Dataset]:
    """The `--eval_files` sets, tokenized (up to `eval_max_length`, within the teacher's `positions`) and ordered
    by length: loaded and checked before any training, so a bad file fails first."""
    if args.eval_files and TASKS[args.task].token_level:
        raise BadInputError("`--eval_files` scores text classification; token classification has none yet.")
    label_map = parse_label_map(args.eval_label_map)
    max_length = within_positions(args.eval_max_length, positions)
    sets = {}
    for spec in args.eval_files:
        name, path = eval_set_name(spec)
        if name in sets:
            raise BadInputError(f"Two `--eval_files` are named {name!r}: give each its own `name=path`.")
        data = load_eval_set(path, names, args.text_column, args.text_pair_column, args.label_column, label_map)
        sets[name] = sort_by_length(tokenize(data, tokenizer, args.task, max_length))
    return sets
