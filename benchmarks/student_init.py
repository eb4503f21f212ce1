"""Which starting weights make the best TinyBERT4 student, with the same distillation budget for every one.

Every student is distilled by the recipe (`tinybert_hf.recipe.run.run_recipe`) from the same fine-tuned teacher, on
the same augmented data, with the same stages, losses, epochs and seed; only `student_init` (and, for the layer subset,
the width it must keep) differs:

- `pruned-teacher:<importance>`: TinyBERT4 (4 x 312, 12 heads of 26, FFN 1200) cut from the teacher by structured
  pruning (uniform layer choice; heads, head widths, neurons and channels by importance);
- `random`: TinyBERT4 with random weights;
- `layer-subset`: 4 of the teacher's layers at the teacher's width (4 x 384; there is no 312-wide layer to copy).

Each run writes `<output_dir>/<name>/results.json`; the teacher and student throughputs inside it are measured side
by side in that run. The summary (test accuracy, share of the teacher, throughput ratio, wall time) goes to
`benchmarks/results/student_init.{json,md}`.

`--before_training` instead measures the dev accuracy of each starting point as it is, before any distillation
(every importance measure, uniform or importance-ranked layers): `benchmarks/results/student_init_untrained.md`.

Run: `python benchmarks/student_init.py --teacher <fine-tuned teacher dir>` (about 10 minutes per student on 2 CPU
cores); without `--teacher` the recipe fine-tunes the packaged MiniLM first.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from tinybert_hf.recipe.arguments import RecipeArguments
from tinybert_hf.recipe.run import run_recipe

TINYBERT4 = {"student_layers": 4, "student_hidden_size": 312, "student_attention_heads": 12}
INITS = {
    "pruned-teacher:activation": {"student_init": "pruned-teacher", "pruning_importance": "activation", **TINYBERT4},
    "pruned-teacher:taylor": {"student_init": "pruned-teacher", "pruning_importance": "taylor", **TINYBERT4},
    "pruned-teacher:magnitude": {"student_init": "pruned-teacher", "pruning_importance": "magnitude", **TINYBERT4},
    "random": {"student_init": "random", **TINYBERT4},
    "layer-subset": {"student_init": "layer-subset", "student_layers": 4},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", help="Fine-tuned teacher directory (else fine-tuned first).")
    parser.add_argument("--inits", default="pruned-teacher:taylor,pruned-teacher:activation,random,layer-subset")
    parser.add_argument("--intermediate_epochs", type=float, default=1.0)
    parser.add_argument("--prediction_epochs", type=float, default=2.0)
    parser.add_argument("--output_dir", default="outputs/benchmark_student_init")
    parser.add_argument("--results", default=str(Path(__file__).parent / "results" / "student_init"))
    parser.add_argument("--before_training", action="store_true", help="Only score the untrained starting points.")
    options = parser.parse_args()

    root = Path(options.output_dir)
    if options.before_training:
        score_untrained(options.teacher, Path(options.results).with_name("student_init_untrained.md"))
        return
    teacher = options.teacher
    if teacher is None:  # one fine-tuned teacher shared by every student
        args = RecipeArguments(output_dir=str(root / "shared"))
        from tinybert_hf.recipe.run import prepare_data
        from tinybert_hf.recipe.steps import finetune_teacher

        data, names, tokenizer = prepare_data(args)
        teacher = str(finetune_teacher(data, names, tokenizer, args))
    summary = {"teacher": teacher, "budget": vars(options), "students": {}}
    for name in options.inits.split(","):
        directory = root / name.replace(":", "-")
        args = RecipeArguments(
            output_dir=str(directory),
            teacher=teacher,
            intermediate_epochs=options.intermediate_epochs,
            prediction_epochs=options.prediction_epochs,
            **INITS[name],
        )
        started = time.perf_counter()
        results = run_recipe(args)
        shutil.rmtree(directory / "checkpoints", ignore_errors=True)
        teacher_row, student_row = results["models"]["teacher"], results["models"]["student (distilled)"]
        summary["teacher_test"] = teacher_row["test"]["accuracy"]
        summary["students"][name] = {
            "shape": student_row["shape"],
            "dev": student_row["dev"]["accuracy"],
            "test": student_row["test"]["accuracy"],
            "test_share_of_teacher": student_row["test"]["accuracy"] / teacher_row["test"]["accuracy"],
            "dev_share_of_teacher": student_row["dev"]["accuracy"] / teacher_row["dev"]["accuracy"],
            "speedup": student_row["throughput"] / teacher_row["throughput"],
            "parameters": student_row["parameters"],
            "student_init_seconds": results["student_init"]["seconds"],
            "distillation_seconds": results["timings"]["intermediate_seconds"]
            + results["timings"]["prediction_seconds"],
            "wall_seconds": time.perf_counter() - started,
        }
        write(summary, Path(options.results))


def score_untrained(teacher_dir: str, path: Path) -> None:
    """Dev accuracy of every TinyBERT4 starting point before distillation (pruning is the only step)."""
    from transformers import AutoModelForSequenceClassification

    from tinybert_hf.data.tokenization import sort_by_length, tokenize
    from tinybert_hf.pruning.structured import calibration_batches, prune
    from tinybert_hf.recipe.run import prepare_data
    from tinybert_hf.recipe.steps import evaluate_model

    args = RecipeArguments(teacher=teacher_dir)
    data, names, tokenizer = prepare_data(args)
    tokenized = tokenize(data, tokenizer, args.task, args.max_length)
    dev = sort_by_length(tokenized["validation"])
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir).eval()
    batches = calibration_batches(tokenized["train"], args.calibration_samples, seed=args.seed)
    shape = {"num_hidden_layers": 4, "hidden_size": 312, "num_attention_heads": 12, "intermediate_size": 1200}
    teacher_dev = evaluate_model(teacher, dev, tokenizer, names, args)["accuracy"]
    lines = [
        f"TinyBERT4 (4 x 312) cut from the teacher, before any training; teacher dev accuracy "
        f"{100 * teacher_dev:.1f}; importance measured on {args.calibration_samples} training rows.",
        "",
        "| importance | layers | kept teacher layers | dev acc | % of teacher (dev) | pruning s |",
        "|---|---|---|---|---|---|",
    ]
    for method in ("activation", "taylor", "magnitude"):
        for selection in ("uniform", "importance") if method != "magnitude" else ("uniform",):
            started = time.perf_counter()
            student, plan = prune(teacher, batches, importance=method, layer_selection=selection, **shape)
            seconds = time.perf_counter() - started
            accuracy = evaluate_model(student.eval(), dev, tokenizer, names, args)["accuracy"]
            lines.append(
                f"| {method} | {selection} | {plan.layers} | {100 * accuracy:.1f} | "
                f"{100 * accuracy / teacher_dev:.1f} | {seconds:.0f} |"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def write(summary: dict, stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    lines = [
        f"Teacher test accuracy {100 * summary['teacher_test']:.1f}. Budget for every student: "
        f"{summary['budget']['intermediate_epochs']} intermediate + {summary['budget']['prediction_epochs']} "
        "prediction epochs.",
        "",
        "| student init | shape | dev acc | test acc | % of teacher (test) | speed vs teacher | init s | distil s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in summary["students"].items():
        lines.append(
            f"| {name} | {row['shape']} | {100 * row['dev']:.1f} | {100 * row['test']:.1f} | "
            f"{100 * row['test_share_of_teacher']:.1f} | {row['speedup']:.2f}x | {row['student_init_seconds']:.0f} | "
            f"{row['distillation_seconds']:.0f} |"
        )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
