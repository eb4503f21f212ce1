"""Killed with SIGKILL and resumed, a distillation (and the whole recipe) ends with the same student, bitwise, as
one never interrupted.

Each run is a real subprocess (tests/interrupted_distillation.py) stopped with a real SIGKILL: after a step whose
checkpoint is not yet written, and in the middle of writing a checkpoint (weights on disk, optimizer and trainer
state not). Dropout is on, so the restored RNG states matter, and the student is narrower than the teacher, so its
fit_dense projections train too.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import BertModel

from tinybert_hf.utils.atomic import is_complete_checkpoint

from .conftest import tiny_bert_config
from .test_cli import cli, offline_env, sentences

SCRIPT = Path(__file__).resolve().parent / "interrupted_distillation.py"


def distil(output: Path, *options: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(output), *options], env=offline_env(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def kill_when_paused(output: Path, *options: str) -> None:
    """Start a run, SIGKILL it as soon as it reports the pause point, and check that the signal killed it."""
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(output), *options],
        env=offline_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        for line in process.stdout:
            if line.strip() == "PAUSED":
                break
        else:
            pytest.fail("the run ended without reaching its pause point")
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


def assert_same_weights(reference: Path, resumed: Path, projections: bool = True) -> None:
    expected, actual = load_file(reference / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert expected.keys() == actual.keys()
    if projections:
        assert {"bert.fit_dense.weight", "bert.fit_dense.bias"} <= expected.keys()
    differing = [name for name in expected if not torch.equal(expected[name], actual[name])]
    assert not differing, differing


@pytest.mark.parametrize("stage", ["intermediate", "prediction"])
def test_sigkill_then_resume_gives_the_uninterrupted_student(tmp_path, stage):
    distil(tmp_path / "reference", "--stage", stage)

    # killed after step 5: checkpoint-3 is the newest, steps 4-5 are redone
    after_step = tmp_path / "after_step"
    kill_when_paused(after_step, "--stage", stage, "--pause_after_step", "5")
    assert sorted(path.name for path in (after_step / "checkpoints").iterdir()) == ["checkpoint-3"]
    distil(after_step, "--stage", stage, "--resume")
    assert_same_weights(tmp_path / "reference" / "final", after_step / "final")

    # killed while checkpoint-6 is being written: it is skipped (and removed), the run resumes from checkpoint-3
    in_save = tmp_path / "in_save"
    kill_when_paused(in_save, "--stage", stage, "--pause_in_save", "6")
    cut_short = in_save / "checkpoints" / "checkpoint-6"
    assert (cut_short / "model.safetensors").is_file() and not is_complete_checkpoint(cut_short)
    assert is_complete_checkpoint(in_save / "checkpoints" / "checkpoint-3")
    resumed = distil(in_save, "--stage", stage, "--resume")
    assert "checkpoint-6 was cut short" in resumed.stderr
    assert_same_weights(tmp_path / "reference" / "final", in_save / "final")
    if stage == "prediction":  # one teacher-logit cache, written by the first run and read by the resumed one
        assert len(list((in_save / "cache").glob("teacher-logits-*.arrow"))) == 1
        assert not [path for path in (in_save / "cache").iterdir() if path.name.startswith("tmp")]


def distil_command(tmp_path: Path, output: Path) -> list[str]:
    """The recipe on a tiny backbone with dropout, augmentation and a pruned student; checkpoints every 4 steps."""
    return [
        *cli(), "distill", "--teacher_backbone", str(tmp_path / "backbone"), "--output_dir", str(output),
        "--train_file", str(tmp_path / "train.csv"), "--validation_file", str(tmp_path / "dev.csv"),
        "--test_file", str(tmp_path / "test.csv"), "--text_column", "sentence", "--label_column", "sentiment",
        "--max_length", "16", "--teacher_epochs", "1", "--intermediate_epochs", "1", "--prediction_epochs", "2",
        "--student_init", "pruned-teacher", "--student_layers", "2", "--student_hidden_size", "24",
        "--student_attention_heads", "4", "--student_intermediate_size", "20", "--calibration_samples", "32",
        "--num_augmentations", "2", "--augment_fraction", "0.5", "--batch_size", "16", "--learning_rate", "1e-3",
        "--teacher_learning_rate", "1e-3", "--save_steps", "4", "--int8", "false",
        "--speed_batch_size", "2", "--speed_seq_length", "8",
    ]  # fmt: skip


def kill_when(command: list[str], condition, what: str) -> None:
    """Run `command` and SIGKILL it as soon as `condition()` holds (polled every 20 ms)."""
    process = subprocess.Popen(command, env=offline_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while process.poll() is None and not condition():
            time.sleep(0.02)
        assert process.poll() is None, f"the run ended before {what}"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


def test_a_recipe_killed_at_every_stage_resumes_to_the_same_student(tmp_path, tiny_tokenizer):
    torch.manual_seed(0)
    BertModel(tiny_bert_config(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)).save_pretrained(
        tmp_path / "backbone"
    )
    tiny_tokenizer.save_pretrained(tmp_path / "backbone")
    for split, count in (("train", 96), ("dev", 32), ("test", 32)):
        lines = ["sentence,sentiment"] + [f"{text},{label}" for text, label in sentences(count, seed=len(split))]
        (tmp_path / f"{split}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    reference = subprocess.run(
        distil_command(tmp_path, tmp_path / "reference"), env=offline_env(), capture_output=True, text=True
    )
    assert reference.returncode == 0, reference.stderr[-3000:]

    output = tmp_path / "interrupted"
    command = distil_command(tmp_path, output)
    # 1. while the augmentation and teacher-logit caches are being written (or just after the first is)
    kill_when(command, lambda: any((output / "cache").glob("*")), "the caches were written")
    # 2. between the stages: stage 1 has just been saved
    kill_when(command, lambda: (output / "student_intermediate" / "stage_done.json").is_file(), "stage 1 ended")
    stage_one = (output / "student_intermediate" / "model.safetensors").stat().st_mtime_ns
    # 3. in stage 2, as soon as its first checkpoint directory appears (possibly while it is being written)
    checkpoints = output / "checkpoints" / "student"
    kill_when(command, lambda: any(checkpoints.glob("checkpoint-*")), "stage 2 saved a checkpoint")
    assert not (output / "student").exists()  # no half-written student where the finished one goes
    resumed = subprocess.run(command, env=offline_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    assert (output / "student_intermediate" / "model.safetensors").stat().st_mtime_ns == stage_one  # not redone
    for step in ("teacher", "student_intermediate", "student"):
        # stage 1's student keeps the distillation projection for stage 2; the shipped student does not carry it
        assert_same_weights(tmp_path / "reference" / step, output / step, projections=step == "student_intermediate")
    assert not any(key.startswith("bert.fit_dense") for key in load_file(output / "student" / "model.safetensors"))
    assert not checkpoints.exists()  # a finished step's checkpoints served only resuming
    # the caches the killed runs completed were reused (same names as the reference's: nothing computed twice under
    # another name) and nothing half-written was left or read
    ours = ("augmented-*.arrow", "teacher-logits-*.arrow")
    names = [
        sorted(path.name for pattern in ours for path in (run / "cache").glob(pattern))
        for run in (tmp_path / "reference", output)
    ]
    assert names[0] == names[1] and len(names[0]) == 3
    assert not [path for path in (output / "cache").iterdir() if path.name.startswith("tmp")]
    first, second = (json.loads((run / "results.json").read_text()) for run in (tmp_path / "reference", output))
    scores = [
        {key: run["models"]["student (distilled)"]["test"][key] for key in ("loss", "accuracy", "f1")}
        for run in (first, second)
    ]
    assert scores[0] == scores[1]


def stop_when(command: list[str], condition, stop: signal.Signals) -> subprocess.CompletedProcess:
    """Run `command`, send it `stop` as soon as `condition()` holds, and return how it ended."""
    process = subprocess.Popen(command, env=offline_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while process.poll() is None and not condition():
            time.sleep(0.02)
        assert process.poll() is None, "the run ended before the condition held"
        process.send_signal(stop)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def test_ctrl_c_and_sigterm_say_in_one_line_what_was_kept_and_how_to_resume(tmp_path, tiny_tokenizer):
    torch.manual_seed(0)
    BertModel(tiny_bert_config()).save_pretrained(tmp_path / "backbone")
    tiny_tokenizer.save_pretrained(tmp_path / "backbone")
    for split, count in (("train", 96), ("dev", 32), ("test", 32)):
        lines = ["sentence,sentiment"] + [f"{text},{label}" for text, label in sentences(count, seed=len(split))]
        (tmp_path / f"{split}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = tmp_path / "run"
    command = distil_command(tmp_path, output)
    teacher_checkpoints = output / "checkpoints" / "teacher"
    interrupted = stop_when(command, lambda: any(teacher_checkpoints.glob("checkpoint-*/trainer_state.json")),
                            signal.SIGINT)  # fmt: skip
    assert interrupted.returncode == 130 and "Traceback" not in interrupted.stderr
    last = interrupted.stderr.strip().splitlines()[-1]
    assert last.startswith(f"tinybert-hf distill: stopped by Ctrl-C; kept {teacher_checkpoints}/checkpoint-"), last
    assert last.endswith("of teacher.") and "Run the same command again to resume from checkpoint-" in last

    terminated = stop_when(command, lambda: (output / "teacher" / "stage_done.json").is_file(), signal.SIGTERM)
    assert terminated.returncode == 143 and "Traceback" not in terminated.stderr
    last = terminated.stderr.strip().splitlines()[-1]
    # the finished teacher is named (and a checkpoint of stage 1 too, if it had written one by then)
    assert last.startswith("tinybert-hf distill: stopped by SIGTERM; kept ") and f"{output / 'teacher'}" in last
    assert "Run the same command again to" in last
