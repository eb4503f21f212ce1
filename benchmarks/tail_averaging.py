"""Tail averaging of stage 2 (as SWA does): does the uniform average of the student's weights over the second half of
the prediction stage hold up better off the training distribution than the last step's weights?

    python benchmarks/tail_averaging.py --teacher outputs/tinybert/teacher --seeds 1,0,2

runs the recipe on its defaults (`--int8 false`, the held-out sets of `benchmarks/heldout_sets.py` scored) once per
seed, one process per run, with stage 2's weights averaged over every step from half of its steps on and swapped in
when it ends. The start (half), the weighting (uniform) and the interval (every step) were fixed before any run, and
not tuned. The same seeds of the default are in `benchmarks/results/generalization.json` (variant `default`): the
code path is otherwise the same, deterministic one. Writes `benchmarks/results/tail_averaging.json`; finished runs
under `--work_dir` are kept and read again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generalization import aggregate, summarize  # noqa: E402
from heldout_sets import eval_file_options, write_heldout_sets  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "tail_averaging.json"


def distil_with_tail_average(argv: list[str]) -> int:
    """`tinybert-hf distill argv` with stage 2's trainer (the one given a dev set) averaging its tail."""
    import torch
    from transformers import TrainerCallback

    import tinybert_hf.recipe.steps as steps
    from tinybert_hf.commands.cli import main

    class TailAverage(TrainerCallback):
        """Sums the floating-point weights after every step from `start_fraction` of the steps on (fp32 copies, one
        model's size) and writes their mean into the model when training ends."""

        def __init__(self, start_fraction: float = 0.5):
            self.start_fraction, self.sum, self.count = start_fraction, None, 0

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step < self.start_fraction * state.max_steps:
                return
            with torch.no_grad():
                now = model.state_dict()  # not `state`: that is the TrainerState this callback is given
                weights = {k: v.detach().float().clone() for k, v in now.items() if v.is_floating_point()}
                if self.sum is None:
                    self.sum = weights
                else:
                    for key, value in weights.items():
                        self.sum[key] += value
            self.count += 1

        def on_train_end(self, args, state, control, model=None, **kwargs):
            if not self.count:
                return
            with torch.no_grad():
                current = model.state_dict()
                for key, value in self.sum.items():
                    current[key].copy_((value / self.count).to(current[key].dtype))
            print(f"tail average of {self.count} steps swapped in", flush=True)

    class TailAveragedTrainer(steps.DistillationTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if self.eval_dataset is not None:  # stage 2; stage 1 trains without a dev set
                self.add_callback(TailAverage())

    steps.DistillationTrainer = TailAveragedTrainer
    return main(argv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", required=True, help="The main job's teacher (`outputs/tinybert/teacher`).")
    parser.add_argument("--seeds", default="1,0,2")
    parser.add_argument("--heldout_dir", default="heldout", help="Where the held-out sets are (written if missing).")
    parser.add_argument("--work_dir", default="outputs/benchmark_tail_averaging")
    parser.add_argument("--note", action="append", default=[], help="A line for the report's notes (repeatable).")
    options = parser.parse_args()
    heldout = eval_file_options(write_heldout_sets(options.heldout_dir))  # kept when already there
    work = Path(options.work_dir)
    recipe_options = ["--data_seed", "0", "--int8", "false"]
    rows = []
    for seed in map(int, options.seeds.split(",")):
        output = work / f"seed{seed}"
        if not (output / "results.json").is_file():  # a finished run is kept: rerunning reads it again
            command = [
                sys.executable, __file__, "--distill", "distill", "--teacher", options.teacher,
                "--output_dir", str(output), "--seed", str(seed), *recipe_options, *heldout,
            ]  # fmt: skip
            print(f"[{time.strftime('%H:%M:%S')}] seed {seed}", flush=True)
            work.mkdir(parents=True, exist_ok=True)
            with open(work / f"seed{seed}.log", "w") as log:
                subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT)
        rows.append(summarize("tail-average", seed, recipe_options, json.loads((output / "results.json").read_text())))
        print(json.dumps({key: rows[-1][key] for key in ("seed", "test", "imdb", "tweets")}), flush=True)
    report = {"teacher": options.teacher, "runs": rows, "over_seeds": aggregate(rows), "notes": options.note}
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--distill"]:
        raise SystemExit(distil_with_tail_average(sys.argv[2:]))
    main()
