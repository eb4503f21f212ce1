"""The recipe itself on two CPU processes against one: the README's main job (`tinybert-hf distill`, every default),
as one process with 2 threads and as `torchrun --nproc_per_node 2` with 1 thread each (the same 2 cores).

    python benchmarks/distributed_distillation.py [--work_dir DIR] [-- extra recipe options]

Each run is the whole recipe, from fine-tuning the teacher to the int8 student and the card, in its own output
directory under `--work_dir`, one after the other on an otherwise quiet machine. `--batch_size` is the whole batch
of a step, split across the processes, so both take the same steps. Writes `benchmarks/results/distributed.{json,md}`:
dev / test / held-out accuracy of the teacher, the student and the int8 student, and the wall time of each step.
A finished run directory is reused (delete it to measure again).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MODELS = ("teacher", "student (distilled)", "student (int8 ONNX)")
STEPS = ("teacher", "augmentation", "student_init", "student_intermediate", "student", "total")


def command(processes: int, output_dir: Path, extra: list[str]) -> list[str]:
    recipe = ["tinybert_hf", "distill", "--output_dir", str(output_dir), *extra]
    if processes == 1:
        return [sys.executable, "-m", *recipe]
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    return [torchrun, "--nproc_per_node", str(processes), "--master_port", "29531", "-m", *recipe]


def run_directory(work_dir: Path, processes: int) -> Path:
    return work_dir / f"{processes}-process{'es' if processes > 1 else ''}"


def run(processes: int, work_dir: Path, extra: list[str]) -> dict:
    output_dir = run_directory(work_dir, processes)
    if not (output_dir / "results.json").is_file():
        threads = str(max(1, (os.cpu_count() or 2) // processes))
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": threads, "TOKENIZERS_PARALLELISM": "false"}
        started = time.perf_counter()
        with open(work_dir / f"{output_dir.name}.log", "w") as log:
            subprocess.run(command(processes, output_dir, extra), env=env, stdout=log, stderr=log, check=True)
        (output_dir / "benchmark_seconds.txt").write_text(f"{time.perf_counter() - started}\n")
    results = json.loads((output_dir / "results.json").read_text())
    results["benchmark_seconds"] = float((output_dir / "benchmark_seconds.txt").read_text())
    return results


def step_seconds(results: dict) -> dict:
    timings, output_dir = results["timings"], Path(results["settings"]["output_dir"])
    teacher = output_dir / "teacher" / "stage_done.json"
    return {
        "teacher": json.loads(teacher.read_text())["seconds"] if teacher.is_file() else None,
        "augmentation": (results.get("augmentation") or {}).get("seconds"),
        "student_init": results["student_init"].get("seconds"),
        "student_intermediate": timings.get("intermediate_seconds"),
        "student": timings.get("prediction_seconds"),
        "total": results["benchmark_seconds"],
    }


def table(runs: dict) -> list[str]:
    heldout = sorted({name for results in runs.values() for name in results.get("heldout_sets", {})})
    lines = [
        "| run | model | dev | test | " + " | ".join(heldout) + (" | " if heldout else "") + "% of teacher (test) |",
        "|---|---|---|---|" + "---|" * len(heldout) + "---|",
    ]
    for run_name, results in runs.items():
        teacher = results["models"]["teacher"]["test"]["accuracy"]
        for model in MODELS:
            scores = results["models"].get(model)
            if scores is None:
                continue
            cells = [f"{100 * scores['dev']['accuracy']:.1f}", f"{100 * scores['test']['accuracy']:.1f}"]
            cells += [f"{100 * scores['heldout'][name]['accuracy']:.1f}" for name in heldout]
            share = 100 * scores["test"]["accuracy"] / teacher
            lines.append(f"| {run_name} | {model} | " + " | ".join(cells) + f" | {share:.1f}% |")
    lines += ["", "Wall time of each step (seconds):", "", "| run | " + " | ".join(STEPS) + " |",
              "|---|" + "---|" * len(STEPS)]  # fmt: skip
    for run_name, results in runs.items():
        seconds = step_seconds(results)
        cells = ["" if seconds[step] is None else f"{seconds[step]:.0f}" for step in STEPS]
        lines.append(f"| {run_name} | " + " | ".join(cells) + " |")
    one, two = (runs[name]["benchmark_seconds"] for name in runs)
    lines += ["", f"Two processes take {two / one:.2f}x the wall time of one."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work_dir", default=str(ROOT / "outputs" / "distributed"))
    parser.add_argument("extra", nargs="*", help="recipe options for both runs (after `--`)")
    options = parser.parse_args()
    work_dir = Path(options.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    runs = {}
    for processes in (1, 2):
        name = f"{processes} process{'es' if processes > 1 else ''}"
        print(f"{name}: {' '.join(command(processes, run_directory(work_dir, processes), options.extra))}", flush=True)
        runs[name] = run(processes, work_dir, options.extra)
    lines = [
        "# The recipe on two CPU processes against one",
        "",
        f"Command: `{' '.join(['python benchmarks/distributed_distillation.py', *options.extra])}`",
        "",
        "The README's main job (`tinybert-hf distill`, every default), one process with 2 threads against `torchrun "
        "--nproc_per_node 2` with 1 thread each, on the same 2 cores, one after the other. Accuracy in %.",
        "",
        *table(runs),
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {
        name: {
            "processes": results.get("processes", 1),
            "models": {model: results["models"][model] for model in MODELS if model in results["models"]},
            "steps_seconds": step_seconds(results),
        }
        for name, results in runs.items()
    }
    (RESULTS / "distributed.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    (RESULTS / "distributed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
