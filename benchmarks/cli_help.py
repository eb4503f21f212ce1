"""How fast `tinybert-hf --help` and `tinybert-hf distill --help` answer, against importing the package.

Each command runs as a fresh process (what a user's shell does), in rounds that alternate the commands (A B C A B C
...) so machine noise hits them alike. Reported: the median and the slowest wall time of each, and the help's
median as a share of `python -c "import tinybert_hf"` (torch, transformers and the Auto registration: what help
used to pay). The goal is help in well under a second.

Run: `python benchmarks/cli_help.py [--rounds 15]`; writes `benchmarks/results/cli_help.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def wall_seconds(command: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    executable = shutil.which("tinybert-hf", path=str(Path(sys.executable).parent))
    if executable is None:
        raise SystemExit("Install the package first (`pip install -e .`): the benchmark times its console script.")
    commands = {
        "tinybert-hf --help": [executable, "--help"],
        "tinybert-hf distill --help": [executable, "distill", "--help"],
        "python -c 'import tinybert_hf'": [sys.executable, "-c", "import tinybert_hf"],
    }
    for command in commands.values():  # warm the file cache: the first start reads every module from disk
        wall_seconds(command)
    times = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, command in commands.items():
            times[name].append(wall_seconds(command))
    package = statistics.median(times["python -c 'import tinybert_hf'"])
    record = {
        "rounds": args.rounds,
        "python": sys.version.split()[0],
        "commands": {
            name: {
                "median_s": round(statistics.median(values), 3),
                "max_s": round(max(values), 3),
                "share_of_package_import": round(statistics.median(values) / package, 3),
            }
            for name, values in times.items()
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cli_help.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        f"Wall time of a fresh process, {args.rounds} interleaved rounds (median, slowest):",
        "",
        "| command | median | slowest | median / package import |",
        "|---|---|---|---|",
    ]
    for name, entry in record["commands"].items():
        share = entry["share_of_package_import"]
        lines.append(f"| `{name}` | {entry['median_s']:.3f} s | {entry['max_s']:.3f} s | {share:.2f} |")
    (RESULTS / "cli_help.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
