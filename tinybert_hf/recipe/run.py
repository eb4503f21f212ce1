"""`run_recipe`: the whole TinyBERT recipe, every step in order, into one output directory.

It checks every input before it writes anything, runs the steps of [`~tinybert_hf.recipe.steps`] (each skipped
when finished and resumed when interrupted, see [`~tinybert_hf.utils.step_runner`]), evaluates every model, and
writes `results.json`, the chart, the student's card and, when asked, pushes the student.

The arguments it is given are never changed: what it resolves from them (a `max_length` lowered to the teacher's
position table, the full Hub repository id) goes into a copy, which is what `results.json` records.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

from datasets import DatasetDict
from transformers import (
    AutoConfig,
    AutoTokenizer,
    PreTrainedModel,
    set_seed,
)
from transformers.utils import logging

from ..data.loading import eval_set_name, load_task_splits
from ..data.tasks import TASKS
from ..data.tokenization import label_names, tokenize, tokenize_splits
from ..evaluation.speed_and_size import parameter_count
from ..hub.model_card import RESULTS_NAME, card_was_edited, write_model_card
from ..utils.atomic import atomic_directory, write_text
from ..utils.processes import (
    is_main_process,
    launch_mixed_precision,
    launched_processes,
    main_process_first,
    on_main_process,
    process_state,
)
from ..utils.safe_loading import load_pretrained
from ..utils.step_runner import finished_step
from .arguments import AUTO, RecipeArguments
from .checks import check_teacher, check_teacher_architecture, general_student_path, teacher_source
from .output_directory import check_shared_with_every_process, dataset_digest, prepare_output_dir
from .steps import (
    augment_training_data,
    build_student,
    distil,
    evaluate_model,
    finetune_baseline,
    finetune_teacher,
    hub_repository,
    load_eval_sets,
    load_teacher,
    model_class,
    prepare_transfer_text,
    recover_on_transfer_text,
    stage_learning_rate,
    trainer_hub_arguments,
    transfer_rows,
)

logger = logging.get_logger(__name__)


def prepare_data(args: RecipeArguments) -> tuple[DatasetDict, list[str], object]:
    """The task's splits (cut to `max_train_samples`), its label names, and the teacher's tokenizer (the data is
    tokenized with [`fitted_to_teacher`]'s `max_length`)."""
    data = load_task_splits(args)
    tokenizer = AutoTokenizer.from_pretrained(teacher_source(args))
    return data, label_names(data, args.task), tokenizer


def fitted_to_teacher(args: RecipeArguments, teacher_config) -> RecipeArguments:
    """`args`, or a copy whose `max_length` is lowered to the teacher's position table when it is longer, with a
    warning (longer rows are truncated): `args` itself is never changed."""
    positions = getattr(teacher_config, "max_position_embeddings", None)
    if positions is None or args.max_length <= positions:
        return args
    logger.warning(
        f"`max_length={args.max_length}` is longer than the teacher's position table ({positions} positions): "
        f"sequences are truncated to {positions} tokens."
    )
    return dataclasses.replace(args, max_length=positions)


def quantize_student(student_dir: Path, args: RecipeArguments) -> tuple[PreTrainedModel, Path]:
    """The int8 ONNX student beside `student_dir` (`<student_dir>-int8`, reused when already written from the same
    weights with the same int8 options), loaded for evaluation and timing with as many ONNX Runtime threads as torch
    uses."""
    import torch

    from ..quantization.arguments import QuantizeArguments
    from ..quantization.onnx_int8 import default_int8_directory, load_int8_model, quantize_saved_model, weights_digest

    int8_dir = default_int8_directory(student_dir)
    options = QuantizeArguments(
        model=str(student_dir),
        output_dir=str(int8_dir),
        engine=args.int8_engine,
        activations=args.int8_activations,
        weight_type=args.int8_weight_type,
        exporter=args.int8_exporter,
        per_channel=args.int8_per_channel,
        reduce_range=args.int8_reduce_range,
    )
    record_path = int8_dir / "quantization.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    settings = record.get("settings", {})
    onnx_options = ("activations", "exporter", "per_channel", "reduce_range")
    chosen = ("engine",) + (onnx_options if options.engine == "onnxruntime" else ())
    # reused only if made from these very weights the same way (a retrained student gets a new int8 copy)
    if (
        record.get("source_weights_sha256") != weights_digest(student_dir)
        or any(settings.get(name, "onnxruntime" if name == "engine" else None) != getattr(options, name)
               for name in chosen)
        or (options.engine == "onnxruntime" and options.weight_type not in ("auto", settings.get("weight_type")))
    ):  # fmt: skip
        quantize_saved_model(options)
    return load_int8_model(int8_dir, args.task, threads=torch.get_num_threads()), int8_dir


@dataclasses.dataclass(frozen=True)
class CheckedInputs:
    """Everything a run reads, loaded and checked before anything is written: the arguments as resolved (Hub id,
    `max_length` fitted to the teacher), the task data, label names and teacher tokenizer, the held-out sets and the
    transfer text."""

    args: RecipeArguments
    data: DatasetDict
    names: list[str]
    tokenizer: object
    eval_sets: dict
    transfer: object | None


def _single_texts(data: DatasetDict, args: RecipeArguments) -> bool:
    """Whether the task's rows are one text each (what the 'joined' transfer text and augmentation work on)."""
    return not TASKS[args.task].token_level and "text_pair" not in data["train"].column_names


def warn_unused_options(args: RecipeArguments) -> None:
    """Say so when an option the user gave has nothing to act on: nothing given is dropped in silence."""
    if args.eval_label_map and not args.eval_files:
        logger.warning("`--eval_label_map` renames the labels of `--eval_files`, and none are given: it is unused.")
    named = [source for source in args.transfer_text if source != AUTO]
    if named and args.transfer_rows == 0 and not args.recovery_steps:
        logger.warning(f"`--transfer_rows 0` turns transfer off: the transfer text {named} is unused.")


def check_inputs(args: RecipeArguments) -> CheckedInputs:
    """Check and load every input of a run (a refused run leaves no `run.json` behind to block the corrected
    command); optional dependencies and the Hub token fail here too, not after the training."""
    launch_mixed_precision()  # one the launcher was told to use and this machine cannot train in fails now
    warn_unused_options(args)
    if args.int8:
        from ..onnx.export import require_onnx

        require_onnx()
        if args.int8_engine == "ctranslate2":
            from ..quantization.ctranslate2_int8 import require_ctranslate2

            require_ctranslate2()
    if args.push_to_hub:  # a bad token or name fails now; created once, by the main process
        args = dataclasses.replace(args, hub_model_id=on_main_process(lambda: hub_repository(args), share_result=True))
    source = teacher_source(args)
    source_config = AutoConfig.from_pretrained(source)
    check_teacher_architecture(source_config, source, args.student_init)
    general_student_path(args)
    args = fitted_to_teacher(args, source_config)
    set_seed(args.seed)
    with main_process_first():  # what `datasets` downloads and caches, the main process does first
        data, names, tokenizer = prepare_data(args)
        args = args.resolved_for_task(_single_texts(data, args), token_level=TASKS[args.task].token_level)
        if args.teacher:
            check_teacher(source_config, source, names, args)
        positions = getattr(source_config, "max_position_embeddings", None)
        eval_sets = load_eval_sets(names, tokenizer, args, positions)
        transfer = prepare_transfer_text(tokenizer, args, data["train"], positions)
    return CheckedInputs(args, data, names, tokenizer, eval_sets, transfer)


def run_recipe(args: RecipeArguments) -> dict:
    r"""
    Run every step and write `results.json`, `results.png` and the student directory under `args.output_dir`.

    Under a launcher (`accelerate launch`, `torchrun`) every process runs this: each training step on all of them,
    everything else once, on the main process, while the others wait (see [`~tinybert_hf.utils.processes`]).

    Returns:
        `dict`: the results (also in `results.json`), on every process.
    """
    started = time.perf_counter()
    process_state(args.process_timeout)  # under a launcher, the process group, with the recipe's timeout
    if not is_main_process():  # one process speaks for the run
        logging.get_logger("tinybert_hf").setLevel(logging.ERROR)
    inputs = check_inputs(args)
    args, data, names, tokenizer, transfer = inputs.args, inputs.data, inputs.names, inputs.tokenizer, inputs.transfer
    # what the students learn from, by content: an edited data file must not reuse the students made from it before
    digests = {"train": dataset_digest(data["train"]), "validation": dataset_digest(data["validation"])}
    digests["transfer"] = dataset_digest(transfer)
    output_dir = on_main_process(lambda: prepare_output_dir(args, digests)) or Path(args.output_dir)
    check_shared_with_every_process(output_dir)

    teacher_dir = args.teacher or str(finetune_teacher(data, names, tokenizer, args))
    teacher = load_teacher(teacher_dir, names, args)
    with main_process_first():  # augmented rows are cached under output_dir: made once, read by the others
        tokenized = tokenize_splits(data, tokenizer, args.task, args.max_length)
        train, augmentation = training_rows(data, tokenized, tokenizer, teacher, args)

    student, student_init = initial_student(teacher, names, args, train, tokenizer)
    initial_copy = type(student)(student.config)
    initial_copy.load_state_dict(student.state_dict())
    teacher_layers = student_init.get("teacher_layers")
    if args.recovery_steps:
        student = recover_on_transfer_text(teacher, student, transfer, tokenizer, args, teacher_layers=teacher_layers)
    distilled, timings = distil(
        teacher,
        student,
        train,
        tokenized["validation"],
        tokenizer,
        names,
        args,
        teacher_layers=teacher_layers,
        transfer=transfer_rows(transfer, args),
    )
    if args.recovery_steps:
        timings["recovery_seconds"] = finished_step(output_dir / "student_recovered")["seconds"]
    models = {"teacher": (teacher, Path(teacher_dir)), "student (distilled)": (distilled, output_dir / "student")}
    if args.baseline:
        baseline = finetune_baseline(initial_copy, tokenized["train"], tokenized["validation"], tokenizer, names, args)
        models["student (fine-tuned, no teacher)"] = (baseline, output_dir / "baseline")

    def report() -> dict:
        from .report import measure_and_report  # matplotlib only when a report is made

        if args.int8:
            int8_model, int8_dir = quantize_student(output_dir / "student", args)
            models["student (int8 ONNX)"] = (int8_model, int8_dir)
        results = {
            "settings": asdict(args),
            "working_directory": os.getcwd(),  # relative paths in the settings are relative to it
            "processes": launched_processes(),
            "mixed_precision": launch_mixed_precision(),
            "teacher": teacher_dir,
            "labels": names,
            "splits": {split: data[split].num_rows for split in data},
            "augmentation": augmentation,
            "transfer": _transfer_record(args, transfer) if transfer is not None else None,
            "heldout_sets": {
                name: {"path": eval_set_name(spec)[1], "rows": inputs.eval_sets[name].num_rows}
                for spec, name in zip(args.eval_files, inputs.eval_sets, strict=True)
            },
            "student_init": student_init,
            "timings": timings,
            "models": score_models(models, tokenized, inputs),
        }
        if args.int8:  # the ONNX model holds the student's weights, not torch parameters
            results["models"]["student (int8 ONNX)"]["parameters"] = parameter_count(distilled)
            results["quantization"] = json.loads((int8_dir / "quantization.json").read_text())
        measure_and_report(results, {name: model for name, (model, _) in models.items()}, tokenizer, args)
        results["distillation"] = distillation_record(args, output_dir)
        results["wall_seconds"] = time.perf_counter() - started
        write_results(results, output_dir, args)
        if args.push_to_hub:
            results["hub_commit"] = push_results(output_dir, args)
            write_text(output_dir / "results.json", json.dumps(results, indent=2, default=str))
        return results

    # scored, measured, written and pushed once; the other processes then read what it wrote
    return on_main_process(report) or json.loads((output_dir / "results.json").read_text())


def initial_student(
    teacher: PreTrainedModel, names: list[str], args: RecipeArguments, train, tokenizer
) -> tuple[PreTrainedModel, dict]:
    """[`build_student`]'s student and record. Under several processes the main process alone builds it (pruning
    measures importance once) and saves it to `student_initial/`, which every process then loads: all start from
    the same weights."""
    start = time.perf_counter()
    if launched_processes() == 1:
        student, record = build_student(teacher, names, args, calibration=train, tokenizer=tokenizer)
        return student, {**record, "seconds": time.perf_counter() - start}
    directory = Path(args.output_dir) / "student_initial"

    def build_and_save() -> dict:
        student, record = build_student(teacher, names, args, calibration=train, tokenizer=tokenizer)
        with atomic_directory(directory) as staging:
            student.save_pretrained(staging)
        return {**record, "seconds": time.perf_counter() - start}

    record = on_main_process(build_and_save, share_result=True)
    return load_pretrained(model_class(args.task), directory), record


def training_rows(data: DatasetDict, tokenized: DatasetDict, tokenizer, teacher, args: RecipeArguments) -> tuple:
    """The tokenized training rows, with TinyBERT's augmented variants when augmentation is on (text
    classification only: word replacements would misalign NER tags), and a record of the augmentation (or `None`)."""
    token_level = TASKS[args.task].token_level
    if args.augment and token_level:
        logger.warning("Augmentation is for text classification: word replacements would misalign NER tags.")
    if not args.augment or token_level or args.num_augmentations <= 0 or args.augment_fraction <= 0:
        return tokenized["train"], None
    start = time.perf_counter()
    train_text = augment_training_data(data["train"], tokenizer, teacher, args)
    augmentation = {"rows": train_text.num_rows, "seconds": time.perf_counter() - start}
    return tokenize(train_text, tokenizer, args.task, args.max_length), augmentation


def score_models(models: dict, tokenized: DatasetDict, inputs: CheckedInputs) -> dict:
    """Dev, test and held-out metrics, directory and shape of each model (`{name: (model, directory)}`)."""
    args, names, tokenizer = inputs.args, inputs.names, inputs.tokenizer
    scores = {}
    for name, (model, directory) in models.items():
        scores[name] = {
            "dev": evaluate_model(model, tokenized["validation"], tokenizer, names, args),
            "test": evaluate_model(model, tokenized["test"], tokenizer, names, args),
            "heldout": {
                set_name: evaluate_model(model, rows, tokenizer, names, args)
                for set_name, rows in inputs.eval_sets.items()
            },
            "directory": str(directory),
            "shape": f"{model.config.num_hidden_layers}x{model.config.hidden_size}",
            "model_type": model.config.model_type,  # the card says how to load it (TinyBERT or a stock family)
        }
    return scores


def write_results(results: dict, output_dir: Path, args: RecipeArguments) -> None:
    """`results.json`, and the student directory's copy of it and its card: publishable as it is (a card the user
    edited after an earlier run is kept: `tinybert-hf card` re-renders it on request)."""
    recorded = json.dumps(results, indent=2, default=str)
    write_text(output_dir / "results.json", recorded)
    edited = card_was_edited(output_dir / "student")
    write_text(output_dir / "student" / RESULTS_NAME, recorded)
    if edited:
        logger.warning(f"Keeping the edited {output_dir / 'student' / 'README.md'}; `tinybert-hf card` re-renders it.")
    else:
        write_model_card(output_dir / "student", results, repo_id=args.hub_model_id)


def push_results(output_dir: Path, args: RecipeArguments) -> str:
    """Push the finished student with its card; returns the commit URL. A failed push says how to retry it."""
    from ..errors import PushError
    from ..hub.push import push_student

    try:
        # Trainer's checkpoint pushes (hub_strategy other than 'end') upload its pickled training_args.bin
        stale = ("training_args.bin",) if trainer_hub_arguments(args) else ()
        pushed = push_student(output_dir / "student", args.hub_model_id, delete_from_repo=stale)
    except PushError as error:
        raise PushError(
            f"{error}\nThe student is saved in {output_dir / 'student'}; push it again with "
            f"`tinybert-hf push --model {output_dir / 'student'} --repo_id {args.hub_model_id}`."
        ) from None
    logger.info(f"Student pushed: {pushed.commit_url}")
    return pushed.commit_url


def _transfer_record(args: RecipeArguments, transfer) -> dict:
    """What the run learnt from beyond the labelled rows: `rows` is what stage 2 used (a source may hold fewer
    snippets than `rows_asked`)."""
    return {
        "text": args.transfer_text,
        "rows": min(args.transfer_rows, transfer.num_rows),
        "rows_asked": args.transfer_rows,
        "in_intermediate": args.transfer_in_intermediate,
        "recovery_steps": args.recovery_steps,
    }


def distillation_record(args: RecipeArguments, output_dir: Path) -> dict:
    """The stages as they ran, for the card: epochs and learning rate, and what each stage's trainer optimized (loss
    weights, attention loss, layer mapping, temperature), read from the stage's own record rather than defaults."""
    stages = []
    if args.intermediate_epochs > 0:
        record = finished_step(output_dir / "student_intermediate")
        stage = {"name": "intermediate", "epochs": args.intermediate_epochs, "learning_rate": args.learning_rate}
        stages.append({**stage, **_recorded(record, "loss_weights", "attention_loss", "layer_mapping")})
    record = finished_step(output_dir / "student")
    stage = {"name": "prediction", "epochs": args.prediction_epochs, "learning_rate": stage_learning_rate(args, None)}
    stages.append(
        {**stage, **_recorded(record, "loss_weights", "temperature"), "quantization_aware": args.quantization_aware}
    )
    return {"stages": stages, "l1_penalty": args.l1_penalty, "l2_penalty": args.l2_penalty}


def _recorded(record: dict, *keys: str) -> dict:
    """`keys` of a step's record (a step finished by an earlier version may lack them)."""
    return {key: record[key] for key in keys if key in record}
