"""Two CPU processes against one: TinyBERT's two-stage task distillation on the embedded Rotten Tomatoes task.

    python benchmarks/distributed_distillation.py --teacher outputs/tinybert/teacher

runs, side by side in one invocation, the same distillation (student: 4 of the teacher's layers; stage 1
`--intermediate_epochs`, stage 2 `--prediction_epochs`, best dev epoch kept; no augmentation) as one process with
batch 32 and as `accelerate launch --cpu --num_processes 2 --mpirun_hostfile ...` with 16 per process (the same
global batch), then writes `benchmarks/results/distributed.{json,md}`: first-step losses, dev/test accuracy, time.

`--worker` is the distillation itself (what `accelerate launch` starts in each process).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def worker(options: argparse.Namespace) -> None:
    import torch
    from accelerate import PartialState
    from transformers import AutoModelForSequenceClassification, set_seed

    from tinybert_hf import DistillationTrainer, add_teacher_logits, student_from_teacher_layers, uniform_layer_subset
    from tinybert_hf.data.tokenization import data_collator, tokenize_splits
    from tinybert_hf.evaluation.metrics import compute_metrics_for
    from tinybert_hf.recipe.arguments import RecipeArguments
    from tinybert_hf.recipe.run import prepare_data
    from tinybert_hf.recipe.steps import distillation_training_arguments

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    state = PartialState()
    args = RecipeArguments(teacher=options.teacher, output_dir=options.output_dir, augment=False, int8=False)
    args.batch_size = options.per_device_train_batch_size
    set_seed(args.seed)
    data, names, tokenizer = prepare_data(args)
    tokenized = tokenize_splits(data, tokenizer, args.task, args.max_length)
    teacher = AutoModelForSequenceClassification.from_pretrained(options.teacher).eval()
    layers = uniform_layer_subset(teacher.config.num_hidden_layers, 4)
    student = student_from_teacher_layers(teacher, layers=layers)
    output = Path(options.output_dir)
    started = time.perf_counter()

    stage_one = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=distillation_training_arguments(
            output / "student_intermediate",
            args,
            options.intermediate_epochs,
            stage="intermediate",
            layer_mapping=",".join(map(str, layers)),
            eval_strategy="no",
            load_best_model_at_end=False,
            logging_first_step=True,
        ),  # fmt: skip
        train_dataset=tokenized["train"],
        data_collator=data_collator(tokenizer, args.task),
    )
    stage_one.train()
    with state.main_process_first():  # one process computes (and caches) the teacher's logits, the other reads them
        train = add_teacher_logits(tokenized["train"], teacher, batch_size=128)
        validation = add_teacher_logits(tokenized["validation"], teacher, batch_size=128)
    stage_two = DistillationTrainer(
        model=stage_one.model,
        teacher_model=teacher,
        args=distillation_training_arguments(
            output / "student", args, options.prediction_epochs, stage="prediction", logging_first_step=True
        ),
        train_dataset=train,
        eval_dataset=validation,
        data_collator=data_collator(tokenizer, args.task),
        compute_metrics=compute_metrics_for(names, args.task),
    )
    stage_two.train()
    dev = stage_two.evaluate()  # the best epoch (load_best_model_at_end), gathered over processes
    test = stage_two.evaluate(tokenized["test"], metric_key_prefix="test")
    if state.is_main_process:
        record = {
            "world_size": state.num_processes,
            "per_device_train_batch_size": args.batch_size,
            "first_step_stage_1": stage_one.state.log_history[0],
            "first_step_stage_2": stage_two.state.log_history[0],
            "dev_accuracy": dev["eval_accuracy"],
            "test_accuracy": test["test_accuracy"],
            "seconds": time.perf_counter() - started,
        }
        Path(options.record).write_text(json.dumps(record, indent=2))


def launch(options: argparse.Namespace) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    # Open MPI refuses to start as root unless told; CI containers often run as root
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env.setdefault("MASTER_PORT", "29517")  # where mpirun-started processes meet (not the default 29500)
    work = Path(tempfile.mkdtemp(prefix="distributed-distillation-"))
    hostfile = work / "hostfile"
    hostfile.write_text("localhost slots=2\n")
    script = [str(Path(__file__).resolve()), "--worker", "--teacher", options.teacher]
    epochs = ["--intermediate_epochs", str(options.intermediate_epochs), "--prediction_epochs",
              str(options.prediction_epochs)]  # fmt: skip
    runs = {
        "1 process x 32": [sys.executable, *script, "--per_device_train_batch_size", "32"],
        "2 processes x 16": [
            str(Path(sys.executable).with_name("accelerate")),
            "launch",
            "--cpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mpirun_hostfile",
            str(hostfile),
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            *script,
            "--per_device_train_batch_size",
            "16",
        ],  # fmt: skip
    }
    records = {}
    for name, command in runs.items():
        directory = work / name.split()[0]
        record = directory / "record.json"
        command = [*command, *epochs, "--output_dir", str(directory), "--record", str(record)]
        print(f"{name}: {' '.join(command)}", flush=True)
        subprocess.run(command, env=env, check=True)
        records[name] = json.loads(record.read_text())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "distributed.json").write_text(json.dumps(records, indent=2))
    lines = [
        "| run | world size | stage 1 first-step loss | stage 2 first-step loss | dev acc | test acc | minutes |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, record in records.items():
        lines.append(
            f"| {name} | {record['world_size']} | {record['first_step_stage_1']['loss']:.6f} | "
            f"{record['first_step_stage_2']['loss']:.6f} | {100 * record['dev_accuracy']:.1f} | "
            f"{100 * record['test_accuracy']:.1f} | {record['seconds'] / 60:.1f} |"
        )
    (RESULTS / "distributed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default=str(ROOT / "outputs" / "tinybert" / "teacher"))
    parser.add_argument("--intermediate_epochs", type=float, default=0.3)
    parser.add_argument("--prediction_epochs", type=float, default=1.0)
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--per_device_train_batch_size", type=int, default=32)
    parser.add_argument("--output_dir")
    parser.add_argument("--record")
    options = parser.parse_args()
    worker(options) if options.worker else launch(options)


if __name__ == "__main__":
    main()
