"""Accuracy against size when a distilled student loses 0-60% of its attention heads and FFN neurons.

For each share `r` of heads and of neurons removed (the same share in every layer), the student is pruned by each
importance measure and evaluated as is; for the chosen measure it is also recovered by one epoch of prediction-layer
distillation from the teacher (cached logits, the original training split). Parameters and CPU throughput (batch 32 x
64 tokens, 2 threads) are measured side by side with the unpruned student in one run.

Writes `benchmarks/results/pruning_curve.{json,md,png}`.

Run: `python benchmarks/pruning_curve.py --student <distilled student dir> --teacher <fine-tuned teacher dir>`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tinybert_hf.data.loading import load_task_splits
from tinybert_hf.data.tokenization import label_names, tokenize_splits
from tinybert_hf.evaluation.speed_and_size import compare_speed, parameter_count, timing_batch
from tinybert_hf.pruning.structured import calibration_batches, prune
from tinybert_hf.recipe.arguments import RecipeArguments
from tinybert_hf.recipe.report import SPEED_TEXT
from tinybert_hf.recipe.steps import distil_prediction_layer, evaluate_model

RESULTS = Path(__file__).parent / "results" / "pruning_curve"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", help="Distilled student directory.")
    parser.add_argument("--teacher", help="Fine-tuned teacher directory (recovery distillation).")
    parser.add_argument("--ratios", default="0,0.1,0.2,0.3,0.4,0.5,0.6")
    parser.add_argument("--recovered_ratios", default="0.2,0.4,0.6")
    parser.add_argument("--methods", default="activation,taylor,magnitude")
    parser.add_argument("--recovery_method", default="activation")
    parser.add_argument("--recovery_epochs", type=float, default=1.0)
    parser.add_argument("--output_dir", default="outputs/benchmark_pruning_curve")
    parser.add_argument("--replot", action="store_true", help="Only redraw the table and chart from the json.")
    options = parser.parse_args()
    if options.replot:
        write(json.loads(RESULTS.with_suffix(".json").read_text()), options)
        return
    if not options.student or not options.teacher:
        parser.error("--student and --teacher are required (except with --replot)")
    torch.set_num_threads(2)

    args = RecipeArguments(output_dir=options.output_dir, teacher=options.teacher)
    tokenizer = AutoTokenizer.from_pretrained(options.student)
    data = load_task_splits(args)
    names = label_names(data, args.task)
    tokenized = tokenize_splits(data, tokenizer, args.task, args.max_length)
    student = AutoModelForSequenceClassification.from_pretrained(options.student).eval()
    teacher = AutoModelForSequenceClassification.from_pretrained(options.teacher).eval()
    batches = calibration_batches(tokenized["train"], args.calibration_samples, seed=args.seed)
    ratios = [float(r) for r in options.ratios.split(",")]

    rows, models = [], {}
    for method in options.methods.split(","):
        for ratio in ratios:
            start = time.perf_counter()
            pruned, _ = prune(student, batches, head_ratio=ratio, ffn_ratio=ratio, importance=method)
            seconds = time.perf_counter() - start
            rows.append(measure(pruned.eval(), method, ratio, False, seconds, tokenized, tokenizer, names, args))
            if method == options.recovery_method:  # one model per share is enough for the speed comparison
                models[ratio] = pruned.eval()
    for ratio in (float(r) for r in options.recovered_ratios.split(",")):
        pruned, _ = prune(student, batches, head_ratio=ratio, ffn_ratio=ratio, importance=options.recovery_method)
        start = time.perf_counter()
        recovered = distil_prediction_layer(
            teacher,
            pruned.train(),
            tokenized["train"],
            tokenized["validation"],
            tokenizer,
            names,
            args,
            Path(options.output_dir) / f"recovered-{ratio}",
            options.recovery_epochs,
        ).eval()
        seconds = time.perf_counter() - start
        rows.append(
            measure(recovered, options.recovery_method, ratio, True, seconds, tokenized, tokenizer, names, args)
        )

    # Speed of each share, against the unpruned student, side by side in one run (one model per share suffices).
    speed_models = {"0.0": student}
    speed_models.update({str(r): models[r] for r in ratios if r > 0})
    batch = timing_batch(tokenizer, 32, 64, SPEED_TEXT)
    single = timing_batch(tokenizer, 1, 64, SPEED_TEXT)
    speed = compare_speed(speed_models, batch, single, repeats=5)
    for row in rows:
        row["speedup_vs_unpruned"] = speed[str(row["ratio"])]["throughput"] / speed["0.0"]["throughput"]
    teacher_test = evaluate_model(teacher, tokenized["test"], tokenizer, names, args)["accuracy"]
    summary = {"student": options.student, "teacher": options.teacher, "teacher_test": teacher_test, "rows": rows}
    write(summary, options)


def measure(model, method, ratio, recovered, seconds, tokenized, tokenizer, names, args) -> dict:
    return {
        "method": method,
        "ratio": ratio,
        "recovered": recovered,
        "parameters": parameter_count(model),
        "dev": evaluate_model(model, tokenized["validation"], tokenizer, names, args)["accuracy"],
        "test": evaluate_model(model, tokenized["test"], tokenizer, names, args)["accuracy"],
        "seconds": seconds,
    }


def write(summary: dict, options) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    lines = [
        f"Student {summary['student']}; teacher test accuracy {100 * summary['teacher_test']:.1f}.",
        "",
        "| importance | heads & FFN removed | recovery | parameters | dev acc | test acc | speed vs unpruned |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summary["rows"]:
        lines.append(
            f"| {row['method']} | {100 * row['ratio']:.0f}% | {'yes' if row['recovered'] else 'no'} | "
            f"{row['parameters'] / 1e6:.2f}M | {100 * row['dev']:.1f} | {100 * row['test']:.1f} | "
            f"{row['speedup_vs_unpruned']:.2f}x |"
        )
    RESULTS.with_suffix(".md").write_text("\n".join(lines) + "\n")

    figure, axis = plt.subplots(figsize=(7, 4.5))
    series = {}
    for row in summary["rows"]:
        label = f"{row['method']}" + (", recovered" if row["recovered"] else ", no recovery")
        series.setdefault(label, []).append(row)
    for label, points in series.items():
        points = sorted(points, key=lambda row: row["ratio"])
        axis.plot(
            [100 * p["ratio"] for p in points],
            [100 * p["test"] for p in points],
            marker="o",
            linestyle="-" if points[0]["recovered"] else "--",
            label=label,
        )
    axis.axhline(100 * summary["teacher_test"], color="grey", linewidth=0.8, label="teacher")
    for row in summary["rows"]:  # parameter counts along the bottom of the plot
        if row["method"] == options.recovery_method and not row["recovered"]:
            axis.annotate(f"{row['parameters'] / 1e6:.1f}M", (100 * row["ratio"], 0.02),
                          xycoords=("data", "axes fraction"), fontsize=7, ha="center")  # fmt: skip
    axis.set_xlabel("attention heads and FFN neurons removed (%)")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title("Pruning a distilled TinyBERT4 student (parameters along the bottom)", fontsize=10)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(RESULTS.with_suffix(".png"), dpi=120)


if __name__ == "__main__":
    main()
