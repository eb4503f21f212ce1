"""Weight averaging of the stage-1 and final students (as WiSE-FT does for fine-tuned models): does it keep more of
the teacher off the training distribution at no cost in-domain?

    python benchmarks/weight_averaging.py --run_dir outputs/tinybert --heldout_dir heldout

takes a finished main-job run (`teacher/`, `student_intermediate/` after stage 1, `student/` after stage 2; the
default data split) and scores `alpha * final + (1 - alpha) * stage 1` for alpha 0.0, 0.1, ..., 1.0 on the dev
split, the test split and the held-out sets of `benchmarks/heldout_sets.py`, as % of the teacher. The rule to pick
alpha was fixed before any held-out figure was seen, and reads the dev split only: the smallest alpha whose dev
accuracy is at least the final student's less 0.5 point. Writes `benchmarks/results/weight_averaging.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from transformers import AutoConfig, AutoModelForSequenceClassification

import tinybert_hf  # noqa: F401  (registers the TinyBERT classes)
from tinybert_hf.data.tokenization import tokenize
from tinybert_hf.recipe.arguments import RecipeArguments
from tinybert_hf.recipe.run import prepare_data
from tinybert_hf.recipe.steps import evaluate_model, load_eval_sets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from heldout_sets import LABEL_MAP_FOR_ROTTEN_TOMATOES, write_heldout_sets  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "weight_averaging.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run_dir", default="outputs/tinybert")
    parser.add_argument("--heldout_dir", default="heldout", help="Where the held-out sets are (written if missing).")
    options = parser.parse_args()
    run = Path(options.run_dir)
    heldout = write_heldout_sets(options.heldout_dir)  # kept when already there
    args = RecipeArguments(
        eval_files=[f"{name}={path}" for name, path in heldout.items()], eval_label_map=LABEL_MAP_FOR_ROTTEN_TOMATOES
    )
    data, names, tokenizer = prepare_data(args)
    sets = {split: tokenize(data[split], tokenizer, args.task, args.max_length) for split in ("validation", "test")}
    positions = AutoConfig.from_pretrained(run / "teacher").max_position_embeddings  # as the recipe cuts them
    sets.update(load_eval_sets(names, tokenizer, args, positions))

    def accuracies(model) -> dict[str, float]:
        return {name: evaluate_model(model, rows, tokenizer, names, args)["accuracy"] for name, rows in sets.items()}

    teacher = accuracies(AutoModelForSequenceClassification.from_pretrained(run / "teacher").eval())
    stage_one = AutoModelForSequenceClassification.from_pretrained(run / "student_intermediate").state_dict()
    student = AutoModelForSequenceClassification.from_pretrained(run / "student").eval()
    # copies: load_state_dict below writes into the live tensors a state_dict returns. Stage 1 also holds
    # `fit_dense` (its hidden-state projection), which the shipped student has not.
    final = {key: value.clone() for key, value in student.state_dict().items()}
    rows = {}
    for step in range(11):
        alpha = step / 10
        student.load_state_dict(
            {
                key: alpha * value + (1 - alpha) * stage_one[key] if value.is_floating_point() else value
                for key, value in final.items()
            }
        )
        scores = accuracies(student)
        rows[alpha] = {
            name: {"accuracy": round(100 * score, 2), "percent_of_teacher": round(100 * score / teacher[name], 2)}
            for name, score in scores.items()
        }
        print(alpha, {name: row["percent_of_teacher"] for name, row in rows[alpha].items()}, flush=True)
    dev_final = rows[1.0]["validation"]["accuracy"]
    chosen = min(alpha for alpha, row in rows.items() if row["validation"]["accuracy"] >= dev_final - 0.5)
    teacher_percent = {name: round(100 * score, 2) for name, score in teacher.items()}
    report = {"run_dir": str(run), "teacher": teacher_percent, "alphas": rows, "chosen_on_dev": chosen}
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    print(f"alpha chosen on the dev split: {chosen}: {rows[chosen]}")


if __name__ == "__main__":
    main()
