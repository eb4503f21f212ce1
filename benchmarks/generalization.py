"""How well students hold up off their training distribution: the recipe's variants side by side, one teacher.

    python benchmarks/generalization.py --teacher outputs/tinybert/teacher

runs `tinybert-hf distill` (the recipe itself, one process per run) for each variant below from the same
fine-tuned teacher, with the same data split (`--data_seed 0`, the teacher's), and scores every model on the
Rotten Tomatoes test split (in-domain) and on two held-out sets it never trains or selects on: 2,000 IMDB reviews
and 3,000 tweets (`benchmarks/heldout_sets.py`). Variants:

- `before`: the recipe as it was before transfer text (no transfer rows, no recovery);
- `transfer`: + stage 2 also learns the teacher's soft labels on `--transfer_rows` snippets of the packaged
  general English text (news articles, health tweets); `transfer-4x`: four times as many (does more help?);
- `recovery`: + `--recovery_steps` of intermediate-layer distillation on that text right after the cut;
- `stage1-longer`: no recovery, but stage 1 runs longer by the time `recovery` spent recovering (the equal-wall-time
  control for it; measured, not guessed);
- `both`: transfer + recovery; `transfer-both-stages`: transfer rows in stage 1 too;
- `anchored`: stage 2 keeps stage 1's intermediate losses beside the prediction loss (the teacher runs live);
- `mse-transfer`: transfer, with stage 2's loss an MSE on the logits rather than the soft cross-entropy;
- `joined`: stage 2 also learns the teacher on 4,000 asked (3,308 held) snippets of the `joined` source: the
  training texts joined into longer passages (in-domain text at every length up to the cut, labels unused);
- `joined-noaug`: 3,000 joined snippets instead of TinyBERT's augmented rows (about the same time);
- `joined-noaug-frozen`: that, with the student's word embeddings frozen in both stages;
- `default`: the recipe's defaults as they are now (whatever the variants above showed best);
- `default-temperature-2`: the defaults with stage 2's temperature at 2 (softer teacher labels);
- `default-both-stages`: the defaults with the transfer rows in stage 1 too; `default-stage1-longer`: stage 1 for
  0.8 epoch instead of 0.3; `default-prediction-lr`: stage 2 at half the learning rate (5e-5);
- `default-general`: the defaults' 2,000 transfer rows drawn from the joined text and the packaged general text
  (news articles, health tweets), a third from each; `default-wikipedia`: the same 2,000 rows from the joined text
  and the packaged Wikipedia articles (`gensim`'s shortened export), half from each;
- `default-domain-text`: the same 2,000 rows drawn from the joined text and a user's unlabelled text of both
  held-out domains (`write_domain_text`: other IMDB reviews, neutral tweets of the same corpus; never a held-out
  row), a third from each: what a user who has unlabelled traffic of where the student is deployed gets;
  `default-domain-text-3000`: that text with 3,000 rows, 1,000 from each source.

`--seeds 0,1,2` reruns the variants named in `--seeded` with each training seed (data split fixed), for the mean
and spread, after every variant ran with the first seed; only the seeded variants write the int8 student (the
check that it stays within a point of the fp32 one). A figure on 2,000 rows has a 95% interval of about +-1.8
points (binomial), on 1,255 about +-2.1: a difference between variants is taken as real only if it is larger than
that and than the seeds' spread.

Writes `benchmarks/results/generalization.{json,md}`. Wall times are the recipe's own (`wall_seconds`), teacher
fine-tuning excluded (the teacher is given); every run is measured on the same machine, one after another.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from heldout_sets import eval_file_options, write_domain_text, write_heldout_sets  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "generalization"
BEFORE = {"transfer_rows": 0, "recovery_steps": 0}  # the recipe before transfer text
SETS = ("test", "imdb", "tweets")


def variant_options(
    name: str, transfer_rows: int, recovery_steps: int, stage1_epochs: float | None, domain_text: list[str] = ()
) -> list[str]:
    """The `tinybert-hf distill` options of one variant: the `before` settings with the variant's changes (or
    today's defaults with them); `domain_text`: the unlabelled IMDB and tweets files of `write_domain_text`."""
    changes = {
        "before": {},
        "transfer": {"transfer_rows": transfer_rows},
        "transfer-4x": {"transfer_rows": 4 * transfer_rows},
        "recovery": {"recovery_steps": recovery_steps},
        "stage1-longer": {"intermediate_epochs": stage1_epochs},
        "both": {"transfer_rows": transfer_rows, "recovery_steps": recovery_steps},
        "transfer-both-stages": {"transfer_rows": transfer_rows, "transfer_in_intermediate": "true"},
        "anchored": {"prediction_intermediate_losses": "true"},
        "mse-transfer": {"transfer_rows": transfer_rows, "prediction_loss": "mse"},
        "joined": {"transfer_text": "joined", "transfer_rows": 4000},
        "joined-noaug": {"transfer_text": "joined", "transfer_rows": 3000, "augment": "false"},
        "joined-noaug-frozen": {
            "transfer_text": "joined",
            "transfer_rows": 3000,
            "augment": "false",
            "freeze_word_embeddings": "true",
        },  # fmt: skip
    }
    on_the_defaults = {  # changes to today's defaults
        "default": {},
        "default-temperature-2": {"temperature": 2},
        "default-both-stages": {"transfer_in_intermediate": "true"},
        "default-stage1-longer": {"intermediate_epochs": 0.8},
        "default-general": {"transfer_text": ["joined", "general"]},  # the same 2,000 rows, a third of each source
        "default-wikipedia": {"transfer_text": ["joined", "wikipedia"]},  # the same 2,000 rows, half of each source
        "default-prediction-lr": {"prediction_learning_rate": 5e-5},
        # a user's unlabelled traffic of both held-out domains beside the joined text, the same 2,000 rows in all
        "default-domain-text": {"transfer_text": ["joined", *map(str, domain_text)]},
        # that text with 3,000 rows, 1,000 of each source (3,000 joined rows were what measured on IMDB)
        "default-domain-text-3000": {"transfer_text": ["joined", *map(str, domain_text)], "transfer_rows": 3000},
    }
    settings = on_the_defaults[name] if name in on_the_defaults else {**BEFORE, **changes[name]}
    options = []
    for key, value in settings.items():  # a list is one option with several values (`--transfer_text a b`)
        options += [f"--{key}", *map(str, value if isinstance(value, list) else [value])]
    return options


def run_variant(name: str, options: list[str], seed: int, teacher: str, heldout: list[str], work: Path) -> dict:
    output = work / f"{name}-seed{seed}"
    results_file, options_file = output / "results.json", output / "benchmark_options.json"
    if results_file.is_file() and options_file.is_file():  # what the kept run ran with (e.g. `--int8 false`)
        options = json.loads(options_file.read_text())
    if not results_file.is_file():  # a finished run is kept: rerunning the benchmark resumes it
        command = [
            sys.executable, "-m", "tinybert_hf", "distill", "--teacher", teacher, "--output_dir", str(output),
            "--seed", str(seed), "--data_seed", "0", *options, *heldout,
        ]  # fmt: skip
        print(f"[{time.strftime('%H:%M:%S')}] {name} seed {seed}: {' '.join(options) or '(defaults)'}", flush=True)
        with open(work / f"{name}-seed{seed}.log", "w") as log:
            subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, env=os.environ)
        options_file.write_text(json.dumps(options))
    return summarize(name, seed, options, json.loads(results_file.read_text()))


def summarize(name: str, seed: int, options: list[str], results: dict) -> dict:
    models = results["models"]
    teacher, student, int8 = models["teacher"], models["student (distilled)"], models.get("student (int8 ONNX)")

    def accuracy(entry: dict, which: str) -> float:
        return entry["test"]["accuracy"] if which == "test" else entry["heldout"][which]["accuracy"]

    row = {"variant": name, "seed": seed, "options": options, "wall_seconds": round(results["wall_seconds"], 1)}
    row["timings"] = {key: round(value, 1) for key, value in results["timings"].items()}
    row["intermediate_epochs"] = results["settings"]["intermediate_epochs"]
    for which in SETS:
        score = accuracy(student, which)
        row[which] = {
            "teacher": round(100 * accuracy(teacher, which), 2),
            "student": round(100 * score, 2),
            "percent_of_teacher": round(100 * score / accuracy(teacher, which), 2),
        }
        if int8:
            row[which]["int8"] = round(100 * accuracy(int8, which), 2)
            row[which]["int8_minus_student"] = round(100 * (accuracy(int8, which) - score), 2)
    return row


def aggregate(rows: list[dict]) -> dict:
    """Mean and standard deviation over seeds of one variant."""
    summary = {"seeds": [row["seed"] for row in rows]}
    summary["wall_seconds"] = statistics.mean(row["wall_seconds"] for row in rows)
    for which in SETS:
        values = [row[which]["percent_of_teacher"] for row in rows]
        summary[which] = {
            "percent_mean": round(statistics.mean(values), 2),
            "percent_sd": round(statistics.stdev(values), 2) if len(values) > 1 else None,
            "student_mean": round(statistics.mean(row[which]["student"] for row in rows), 2),
        }
    return summary


def write(report: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.with_suffix(".json").write_text(json.dumps(report, indent=2))
    teacher = report["runs"][0]
    lines = [
        "# Generalization: % of the teacher in-domain and on held-out sets",
        "",
        f"Teacher: {report['teacher']}; its accuracy: in-domain test {teacher['test']['teacher']}, "
        f"IMDB {teacher['imdb']['teacher']}, tweets {teacher['tweets']['teacher']}. Student: the recipe's TinyBERT4 "
        "(4 x 312) pruned from it. `wall` is the recipe's own time with the teacher given (no teacher fine-tuning).",
        "",
        "| variant | seed | in-domain | IMDB | tweets | int8 - fp32 (test / IMDB / tweets) | wall | options |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["runs"]:
        cells = " | ".join(f"{row[w]['student']} ({row[w]['percent_of_teacher']}%)" for w in SETS)
        gaps = " / ".join(f"{row[w]['int8_minus_student']:+.1f}" if "int8" in row[w] else "-" for w in SETS)
        wall = f"{row['wall_seconds'] / 60:.1f} min" + (" (earlier)" if row.get("earlier") else "")
        lines.append(
            f"| {row['variant']} | {row['seed']} | {cells} | {gaps} | {wall} | "
            f"`{' '.join(row['options']) or '(defaults)'}` |"
        )
    lines += ["", "Over seeds (mean +- standard deviation of % of the teacher):", ""]
    lines += ["| variant | seeds | in-domain | IMDB | tweets | wall |", "|---|---|---|---|---|---|"]
    for name, summary in report["over_seeds"].items():
        cells = " | ".join(
            f"{summary[w]['percent_mean']}%" + (f" +- {summary[w]['percent_sd']}" if summary[w]["percent_sd"] else "")
            for w in SETS
        )
        lines.append(f"| {name} | {summary['seeds']} | {cells} | {summary['wall_seconds'] / 60:.1f} min |")
    lines += ["", *(f"- {note}" for note in report.get("notes", []))]
    RESULTS.with_suffix(".md").write_text("\n".join(lines) + "\n")


def kept_runs(options: argparse.Namespace, earlier: dict, runs: list[dict]) -> list[dict]:
    """With `--keep_runs`, the earlier report's runs this invocation does not make, marked `earlier`."""
    if not (options.keep_runs and earlier):
        return []
    made = {(row["variant"], row["seed"]) for row in runs}
    return [{**row, "earlier": True} for row in earlier["runs"] if (row["variant"], row["seed"]) not in made]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="The fine-tuned teacher every student is distilled from.")
    parser.add_argument("--variants", default="before,transfer,recovery,stage1-longer,anchored,both")
    parser.add_argument("--seeded", default="before,transfer", help="Variants also run with every seed of --seeds.")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--transfer_rows", type=int, default=8000)
    parser.add_argument("--recovery_steps", type=int, default=200)
    parser.add_argument("--work_dir", default="outputs/benchmark_generalization")
    parser.add_argument(
        "--keep_runs",
        action="store_true",
        help="Keep the runs already in the results file that this invocation does not make (an earlier session's: "
        "their accuracies compare, from the same deterministic teacher; their wall times only within that session).",
    )
    parser.add_argument("--note", action="append", default=[], help="A line for the report's notes (repeatable).")
    options = parser.parse_args()
    # read before the first write below replaces the file
    earlier = json.loads(RESULTS.with_suffix(".json").read_text()) if RESULTS.with_suffix(".json").is_file() else {}
    work = Path(options.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    heldout = eval_file_options(write_heldout_sets(work / "heldout"))
    domain_text = write_domain_text(work / "heldout")
    runs, stage1_epochs = [], None
    # every variant with the first seed, then the other seeds of the seeded ones (a long benchmark gives the
    # comparison first, the spread after)
    first, *others = options.seeds.split(",")
    order = [(name, first) for name in options.variants.split(",")]
    order += [(name, seed) for seed in others for name in options.seeded.split(",")]
    for name, seed in order:
        if name == "stage1-longer" and stage1_epochs is None:  # recovery's time, added to stage 1
            by_name = {row["variant"]: row for row in runs}
            before, recovery = by_name["before"], by_name["recovery"]
            per_epoch = before["timings"]["intermediate_seconds"] / before["intermediate_epochs"]
            extra = recovery["timings"]["recovery_seconds"] / per_epoch
            stage1_epochs = round(before["intermediate_epochs"] + extra, 2)
        variant = variant_options(name, options.transfer_rows, options.recovery_steps, stage1_epochs, domain_text)
        if name not in options.seeded.split(","):
            variant = [*variant, "--int8", "false"]  # the int8 check is the seeded (default) variants'
        runs.append(run_variant(name, variant, int(seed), options.teacher, heldout, work))
        # the kept runs go into every write: a benchmark stopped midway (and rerun) loses none of them
        write({"teacher": options.teacher, "runs": kept_runs(options, earlier, runs) + runs, "over_seeds": {}})
    notes = earlier.get("notes", []) if options.keep_runs and earlier else []
    runs = kept_runs(options, earlier, runs) + runs
    notes = [*notes, *(note for note in options.note if note not in notes)]
    names = dict.fromkeys(row["variant"] for row in runs)
    over_seeds = {name: aggregate([row for row in runs if row["variant"] == name]) for name in names}
    write({"teacher": options.teacher, "runs": runs, "over_seeds": over_seeds, "notes": notes})
    print(RESULTS.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
