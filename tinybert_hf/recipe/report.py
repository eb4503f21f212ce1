"""The recipe's final table and chart: quality, parameters, size on disk, CPU latency and throughput, side by side."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..evaluation.speed_and_size import compare_speed, parameter_count, size_on_disk_mb, speed_noise, timing_batch
from ..hub.model_card import quality_keys

SPEED_TEXT = "a quietly moving film about grief and the small comforts of routine, with a great cast " * 8


def measure_and_report(results: dict, models: dict[str, torch.nn.Module], tokenizer, args) -> None:
    """Add size and speed to `results["models"]`, print the table, and write `results.png`."""
    batch = timing_batch(tokenizer, args.speed_batch_size, args.speed_seq_length, SPEED_TEXT)
    single = timing_batch(tokenizer, 1, args.speed_seq_length, SPEED_TEXT)
    speed = compare_speed(models, batch, single, repeats=5)
    reference = speed["teacher"]["throughput"]
    for name, model in models.items():
        entry = results["models"][name]
        entry.setdefault("parameters", parameter_count(model))
        entry["size_mb"] = round(size_on_disk_mb(entry["directory"]), 1)
        entry["throughput"] = round(speed[name]["throughput"], 1)
        entry["latency_ms"] = round(speed[name]["latency_ms"], 2)
        entry["speedup"] = round(speed[name]["throughput"] / reference, 2)
    results["speed_setup"] = {
        "threads": torch.get_num_threads(),
        "batch_size": args.speed_batch_size,
        "seq_length": args.speed_seq_length,
        "dtype": "fp32 (int8 where named)",
        "device": "cpu",
        "noise": speed_noise(speed, os.getloadavg()[0], os.cpu_count() or 1),
    }
    print(format_table(results))
    write_chart(results, Path(args.output_dir) / "results.png")


def format_table(results: dict) -> str:
    """The table a person reads at a glance (test split quality, % of the teacher, size, speed)."""
    first, second = quality_keys(results)
    teacher_score = results["models"]["teacher"]["test"]["score"]
    setup = results["speed_setup"]
    lines = [
        f"Test split ({results['splits']['test']} rows); speed: CPU, {setup['threads']} threads, "
        f"batch {setup['batch_size']} x seq {setup['seq_length']} (throughput), batch 1 (latency), "
        f"{setup['dtype']}",
        f"{'model':<34}{'shape':>7}{first:>10}{second:>8}{'% teacher':>11}{'params':>9}{'disk MB':>9}"
        f"{'ms/seq':>8}{'seq/s':>8}{'speedup':>9}",
    ]
    lines.append("-" * len(lines[-1]))
    for name, entry in results["models"].items():
        test = entry["test"]
        lines.append(
            f"{name:<34}{entry['shape']:>7}{100 * test[first]:>10.1f}{100 * test[second]:>8.1f}"
            f"{100 * test['score'] / teacher_score:>10.1f}%{entry['parameters'] / 1e6:>8.1f}M{entry['size_mb']:>9.1f}"
            f"{entry['latency_ms']:>8.1f}{entry['throughput']:>8.1f}{entry['speedup']:>8.2f}x"
        )
    if setup.get("noise"):
        lines.append(
            f"Speed measured on a busy machine ({setup['noise']}): the ms/seq, seq/s and speedup figures are not "
            "to be quoted. Rerun the same command on a quiet machine (finished steps are reused) to measure again."
        )
    lines += heldout_lines(results)
    return "\n".join(lines)


def heldout_lines(results: dict) -> list[str]:
    """The held-out block of the table (`--eval_files`): each model's accuracy (or score) per set and its % of the
    teacher's on that set; empty without eval files."""
    sets = results.get("heldout_sets") or {}
    if not sets:
        return []
    first, _ = quality_keys(results)
    teacher = results["models"]["teacher"]["heldout"]
    titles = [f"{name} ({info['rows']})" for name, info in sets.items()]
    header = f"{'model':<34}" + "".join(f"{title:>24}" for title in titles)
    lines = [
        "",
        f"Held-out sets, scored only (never trained or selected on): {first}, % of the teacher on the same set",
        header,
        "-" * len(header),
    ]
    for model_name, entry in results["models"].items():
        cells = []
        for name in sets:
            score, reference = entry["heldout"][name], teacher[name]
            cells.append(f"{100 * score[first]:>14.1f}{100 * score['score'] / reference['score']:>9.1f}%")
        lines.append(f"{model_name:<34}" + "".join(cells))
    return lines


def write_chart(results: dict, path: Path) -> None:
    """Three panels (test quality, throughput vs the teacher, size on disk), and one per held-out set."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    first, _ = quality_keys(results)
    names = list(results["models"])
    entries = [results["models"][name] for name in names]
    panels = [
        (f"test {first} (%)", [100 * entry["test"][first] for entry in entries], "{:.1f}"),
        ("CPU throughput vs teacher", [entry["speedup"] for entry in entries], "{:.2f}x"),
        ("size on disk (MB)", [entry["size_mb"] for entry in entries], "{:.0f}"),
    ]
    for set_name in results.get("heldout_sets") or {}:  # accuracy off the training distribution
        teacher_score = results["models"]["teacher"]["heldout"][set_name]["score"]
        panels.append(
            (
                f"{set_name}: % of teacher",
                [100 * entry["heldout"][set_name]["score"] / teacher_score for entry in entries],
                "{:.1f}%",
            )
        )
    figure, axes = plt.subplots(1, len(panels), figsize=(4.3 * len(panels), 3.6))
    colors = ["#555555", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"][: len(names)]
    for axis, (title, values, label) in zip(axes, panels, strict=True):
        bars = axis.barh(range(len(names)), values, color=colors)
        axis.set_yticks(range(len(names)), names if axis is axes[0] else [""] * len(names))
        axis.invert_yaxis()
        axis.set_title(title)
        for bar, value in zip(bars, values, strict=True):
            axis.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, " " + label.format(value), va="center")
        axis.set_xlim(0, max(values) * 1.25)
    figure.suptitle(f"TinyBERT student vs teacher ({results['splits']['test']} test rows)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
