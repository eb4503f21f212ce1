"""Where a distillation step's time goes, what teacher caching saves, and peak memory.

Teacher: the packaged MiniLM (6 x 384, 12 heads) with a 2-label head; student: TinyBERT4 (4 x 312, 12 heads,
FFN 1200, fit_size 384); batch 32, sequence 64, fp32, 2 CPU threads. Figures are ratios measured in one run:

1. `DistillationTrainer`, intermediate stage (embedding + attention + hidden): seconds per step split into teacher
   forward, student forward + loss + backward, optimizer step and everything else (data loading, collation,
   logging, callbacks: the trainer's own overhead), next to a hand-written loop doing the same work.
2. Prediction stage, one epoch with the teacher running against one epoch reading cached `teacher_logits`, plus
   the one-off cost of filling the cache.
3. Peak resident memory of each scenario, each run in a fresh subprocess.

Run: `python benchmarks/distillation_step.py` (about 3 minutes); `--steps` and `--rows` shrink it.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from datasets import Dataset
from transformers import BertForSequenceClassification, TrainerCallback

from tinybert_hf import TinyBertConfig, TinyBertForSequenceClassification
from tinybert_hf.data.packaged import packaged_teacher_path
from tinybert_hf.distillation.arguments import DistillationTrainingArguments
from tinybert_hf.distillation.losses import attention_score_mse, hidden_state_mse
from tinybert_hf.distillation.teacher_cache import add_teacher_logits
from tinybert_hf.distillation.trainer import DistillationTrainer

BATCH, SEQ = 32, 64


def models() -> tuple[BertForSequenceClassification, TinyBertForSequenceClassification]:
    torch.manual_seed(0)
    teacher = BertForSequenceClassification.from_pretrained(str(packaged_teacher_path()), num_labels=2).eval()
    config = TinyBertConfig.from_teacher_config(
        teacher.config, num_hidden_layers=4, hidden_size=312, num_attention_heads=12, intermediate_size=1200
    )
    return teacher, TinyBertForSequenceClassification(config)


def data(rows: int) -> Dataset:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(1000, 30000, (rows, SEQ), generator=generator)
    input_ids[:, 0], input_ids[:, -1] = 101, 102  # [CLS] ... [SEP]
    return Dataset.from_dict(
        {
            "input_ids": input_ids.tolist(),
            "attention_mask": [[1] * SEQ] * rows,
            "labels": torch.randint(0, 2, (rows,), generator=generator).tolist(),
        }
    )


def arguments(stage: str, steps: int | None = None) -> DistillationTrainingArguments:
    return DistillationTrainingArguments(
        output_dir="/tmp/tinybert_hf_benchmark",
        stage=stage,
        per_device_train_batch_size=BATCH,
        max_steps=steps or -1,
        num_train_epochs=1,
        learning_rate=1e-4,
        logging_steps=10,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


class StepTimer(TrainerCallback):
    """Wall time between successive optimizer steps, and inside each: the optimizer step itself."""

    def __init__(self):
        self.step_ends, self.optimizer_seconds, self._optimizer_start = [], [], 0.0

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self._optimizer_start = time.perf_counter()

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.optimizer_seconds.append(time.perf_counter() - self._optimizer_start)

    def on_step_end(self, args, state, control, **kwargs):
        self.step_ends.append(time.perf_counter())


class TimedDistillationTrainer(DistillationTrainer):
    """Records the seconds of each teacher forward pass and each `training_step` (student work + teacher)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher_seconds, self.training_step_seconds = [], []

    def _teacher_forward(self, *args, **kwargs):
        start = time.perf_counter()
        result = super()._teacher_forward(*args, **kwargs)
        self.teacher_seconds.append(time.perf_counter() - start)
        return result

    def training_step(self, *args, **kwargs):
        start = time.perf_counter()
        loss = super().training_step(*args, **kwargs)
        self.training_step_seconds.append(time.perf_counter() - start)
        return loss


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def scenario_trainer_step(steps: int, warmup: int) -> dict:
    teacher, student = models()
    timer = StepTimer()
    trainer = TimedDistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=arguments("intermediate", steps + warmup),
        train_dataset=data(BATCH * (steps + warmup)),
        callbacks=[timer],
    )
    trainer.train()
    step = [later - earlier for earlier, later in zip(timer.step_ends, timer.step_ends[1:], strict=False)][warmup:]
    teacher_s = median(trainer.teacher_seconds[warmup + 1 :])
    training_step = median(trainer.training_step_seconds[warmup + 1 :])
    optimizer = median(timer.optimizer_seconds[warmup + 1 :])
    step_s = median(step)
    return {
        "step": step_s,
        "teacher_forward": teacher_s,
        "student_forward_backward": training_step - teacher_s,
        "optimizer": optimizer,
        "everything_else": step_s - training_step - optimizer,
    }


def scenario_plain_loop(steps: int, warmup: int) -> dict:
    """The same work without Trainer: teacher forward (scores recorded), student forward + losses + backward, AdamW."""
    from tinybert_hf.distillation.attention_capture import record_attention

    teacher, student = models()
    student.train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4)
    rows = data(BATCH * (steps + warmup)).with_format("torch")
    mapping = [1, 2, 4, 5]  # TinyBERT's uniform mapping of 4 student layers onto 6 (0-based)
    times = []
    for index in range(steps + warmup):
        start = time.perf_counter()
        batch = rows[index * BATCH : (index + 1) * BATCH]
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        with torch.no_grad(), record_attention(teacher) as record:
            teacher_out = teacher(**inputs, output_hidden_states=True)
        out = student(**inputs, output_hidden_states=True, output_attention_scores=True, output_fit_hidden_states=True)
        mask = inputs["attention_mask"]
        loss = hidden_state_mse(out.fit_hidden_states[0], teacher_out.hidden_states[0], mask)
        for m, t in enumerate(mapping):
            loss = loss + hidden_state_mse(out.fit_hidden_states[m + 1], teacher_out.hidden_states[t + 1], mask)
            loss = loss + attention_score_mse(out.attention_scores[m], record.scores[t], mask)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    return {"step": median(times[warmup:])}


def scenario_prediction_epoch(rows: int, cached: bool) -> dict:
    teacher, student = models()
    dataset = data(rows)
    fill = 0.0
    if cached:
        start = time.perf_counter()
        dataset = add_teacher_logits(dataset, teacher, batch_size=BATCH)
        fill = time.perf_counter() - start
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=arguments("prediction"), train_dataset=dataset
    )
    start = time.perf_counter()
    trainer.train()
    return {"epoch": time.perf_counter() - start, "cache_fill": fill}


def run_scenario(name: str, options: argparse.Namespace) -> dict:
    torch.set_num_threads(options.threads)
    if name == "trainer_step":
        result = scenario_trainer_step(options.steps, options.warmup)
    elif name == "plain_loop":
        result = scenario_plain_loop(options.steps, options.warmup)
    else:
        result = scenario_prediction_epoch(options.rows, cached=name == "prediction_cached")
    # ru_maxrss is in KiB on Linux: the peak of this whole process
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


SCENARIOS = ("trainer_step", "plain_loop", "prediction_teacher", "prediction_cached")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="Timed steps of the step-split scenarios.")
    parser.add_argument("--warmup", type=int, default=3, help="Untimed first steps.")
    parser.add_argument("--rows", type=int, default=1024, help="Rows of the prediction-stage epoch.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scenario", choices=SCENARIOS, help=argparse.SUPPRESS)
    parser.add_argument("--output", default=None, help="Also write the figures to this JSON file.")
    options = parser.parse_args()
    if options.scenario:
        print(json.dumps(run_scenario(options.scenario, options)))
        return

    results = {}
    for name in SCENARIOS:
        settings = {"--steps": options.steps, "--warmup": options.warmup, "--rows": options.rows}
        settings["--threads"] = options.threads
        command = [sys.executable, __file__, "--scenario", name]
        command += [str(part) for option, value in settings.items() for part in (option, value)]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"scenario {name} failed:\n{completed.stderr[-3000:]}")
        results[name] = json.loads(completed.stdout.strip().splitlines()[-1])
        print(f"{name}: done", file=sys.stderr)

    step = results["trainer_step"]
    print(f"\nDistillation step, intermediate stage, batch {BATCH} x {SEQ}, {options.threads} threads (median s)")
    print(f"{'part':<34}{'seconds':>9}{'share':>8}")
    for part in ("teacher_forward", "student_forward_backward", "optimizer", "everything_else"):
        print(f"{part:<34}{step[part]:>9.4f}{step[part] / step['step']:>8.1%}")
    print(f"{'step (DistillationTrainer)':<34}{step['step']:>9.4f}")
    plain = results["plain_loop"]["step"]
    print(f"{'step (hand-written loop)':<34}{plain:>9.4f}   trainer / loop = {step['step'] / plain:.3f}")

    teacher_epoch, cached = results["prediction_teacher"], results["prediction_cached"]
    print(f"\nPrediction stage, one epoch of {options.rows} rows")
    print(f"  teacher running      {teacher_epoch['epoch']:8.2f} s")
    print(
        f"  cached logits        {cached['epoch']:8.2f} s   ({teacher_epoch['epoch'] / cached['epoch']:.2f}x faster)"
    )
    print(f"  filling the cache    {cached['cache_fill']:8.2f} s   (once)")
    print("\nPeak resident memory (MiB): " + ", ".join(f"{n} {r['peak_rss_mib']:.0f}" for n, r in results.items()))
    if options.output:
        Path(options.output).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
