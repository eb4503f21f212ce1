"""The whole recipe on two CPU processes (gloo), as real subprocesses: `torchrun`, `accelerate launch`, two
"machines" on loopback, DeepSpeed ZeRO-2 and ZeRO-3, a SIGKILL of one rank then the same command again, and a NaN
on one rank.

The reference is the one-process run of the same command. `--batch_size` is the batch of a whole step, split
across the processes, so both take the same steps. With a given teacher (no fine-tuning) and no dropout, the
students' test losses agree within 1e-6 and their weights within 1e-4 (measured: 3e-8, except the attention key
biases, 8e-6: their true gradient is zero, as softmax ignores them, and AdamW scales the rounding noise the
all-reduce leaves there up to steps of the order of the learning rate). Fine-tuning the teacher is left out of the
comparison for the same reason: transformers' Trainer moves every near-zero-gradient weight that way (1e-4 after 6
steps), and the student cut from it then differs by more. Under DeepSpeed the gradients are summed by
reduce-scatter in another order, and the test losses agree within 1e-5 (measured: ZeRO-2 9e-7, ZeRO-3 1.0e-6; the
weights 6e-6 and 1.4e-5, again in the key biases).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import BertForSequenceClassification

from .conftest import free_port, run_process_tree, tiny_bert_config, tiny_tokenizer_in

ROOT = Path(__file__).resolve().parent.parent
STEPS = ("student_intermediate", "student")


def environment() -> dict:
    return {
        **os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
        "PYTHONFAULTHANDLER": "1",  # a process that aborts (SIGABRT from C++) prints where its Python was
    }  # fmt: skip


def launcher(name: str) -> list[str]:
    """The command that starts `python -m tinybert_hf` on two processes."""
    scripts = Path(sys.executable).parent
    if name == "torchrun":
        return [str(scripts / "torchrun"), "--nproc_per_node", "2", "--master_port", str(free_port()), "-m"]
    if name.startswith("deepspeed"):  # the example config as it ships (bf16 for GPUs), told to run in fp32 on CPUs
        if importlib.util.find_spec("deepspeed") is None:
            if os.environ.get("CI"):
                raise AssertionError("DeepSpeed is installed by the README's test command")
            pytest.skip("DeepSpeed is not installed (the README's test command installs it)")
        config = ROOT / "examples" / "accelerate_configs" / f"deepspeed_{name.split()[1]}.yaml"
        return [
            str(scripts / "accelerate"), "launch", "--config_file", str(config), "--main_process_port",
            str(free_port()), "--mixed_precision", "no", "-m",
        ]  # fmt: skip
    return [
        str(scripts / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--main_process_port", str(free_port()), "--mixed_precision", "no", "--dynamo_backend", "no", "-m",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def task(tmp_path_factory, shared_tokenizer):
    """A tiny fine-tuned teacher (no dropout), its data, and the one-process run of the recipe on them."""
    root = tmp_path_factory.mktemp("distributed_recipe")
    torch.manual_seed(0)
    config = tiny_bert_config(
        num_labels=2, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1}, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, initializer_range=0.2,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(root / "teacher")
    shared_tokenizer.save_pretrained(root / "teacher")
    rows = ["text,label"] + [
        f"{'good film' if i % 2 else 'dull plot'} {i},{'pos' if i % 2 else 'neg'}" for i in range(48)
    ]
    for split in ("train", "dev", "test"):
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    options = [
        "--teacher", str(root / "teacher"), "--train_file", str(root / "train.csv"), "--validation_file",
        str(root / "dev.csv"), "--test_file", str(root / "test.csv"), "--intermediate_epochs", "1",
        "--prediction_epochs", "2", "--augment", "false", "--int8", "false", "--batch_size", "8",
        "--student_init", "layer-subset", "--student_layers", "2", "--save_steps", "2",
        "--speed_batch_size", "2", "--speed_seq_length", "8",
    ]  # fmt: skip
    one = run([sys.executable, "-m", "tinybert_hf", "task-distill", "--output_dir", str(root / "one"), *options])
    return root, options, one


@pytest.fixture(scope="module")
def shared_tokenizer(tmp_path_factory):
    """conftest's tiny tokenizer, for the module's one teacher."""
    return tiny_tokenizer_in(tmp_path_factory.mktemp("vocab"))


def run(command: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    completed = run_process_tree(command, timeout=timeout, cwd=ROOT, env=environment())
    assert completed.returncode == 0, completed.stderr[-4000:]
    return completed


def assert_same_student(reference: Path, output: Path, loss_tolerance: float = 1e-6) -> None:
    for step in STEPS:
        ours, theirs = (
            load_file(output / step / "model.safetensors"),
            load_file(reference / step / "model.safetensors"),
        )
        assert ours.keys() == theirs.keys()
        for name, tensor in theirs.items():
            torch.testing.assert_close(ours[name], tensor, rtol=0, atol=1e-4, msg=f"{step}: {name}")
    first, second = (json.loads((run / "results.json").read_text()) for run in (reference, output))
    assert first["processes"] == 1 and second["processes"] == 2
    for model in ("teacher", "student (distilled)"):
        ours, theirs = second["models"][model]["test"], first["models"][model]["test"]
        assert ours["accuracy"] == theirs["accuracy"]
        assert ours["loss"] == pytest.approx(theirs["loss"], abs=loss_tolerance)


def assert_written_once(output: Path, stdout: str) -> None:
    """Every step finished in place, nothing left half-written or to resume from, one summary for the run."""
    assert stdout.count(f"Saved in {output}:") == 1, stdout
    for step in ("student_initial", *STEPS):  # the student cut once, by the main process, for all
        assert (output / step / ("stage_done.json" if step in STEPS else "model.safetensors")).is_file(), step
    assert not list(output.glob(".*.partial")) and not (output / "checkpoints").exists()
    assert json.loads((output / "results.json").read_text())["settings"]["output_dir"] == str(output)


@pytest.mark.parametrize("name", ["torchrun", "accelerate launch", "deepspeed zero2", "deepspeed zero3"])
def test_two_processes_write_once_and_train_the_one_process_student(task, name):
    """Under ZeRO-3 the trainer shards the teacher and student; the recipe still caches logits, scores and writes
    the card with whole models, on the main process alone."""
    root, options, _ = task
    output = root / name.replace(" ", "-")
    completed = run([*launcher(name), "tinybert_hf", "task-distill", "--output_dir", str(output), *options])
    assert_written_once(output, completed.stdout)
    assert_same_student(root / "one", output, loss_tolerance=1e-5 if name.startswith("deepspeed") else 1e-6)


def test_bf16_under_deepspeed_on_cpus_is_refused_before_any_work(task):
    """The example DeepSpeed config says bf16, which transformers' Trainer trains under DeepSpeed only on GPUs: the
    run stops at once with one line that says what to add, and leaves nothing that would block the fixed command."""
    root, options, _ = task
    output = root / "bf16"
    command = [*launcher("deepspeed zero2"), "tinybert_hf", "task-distill", "--output_dir", str(output), *options]
    command.remove("--mixed_precision")
    command.remove("no")
    completed = run_process_tree(command, timeout=120, cwd=ROOT, env=environment())
    assert completed.returncode != 0
    expected = "tinybert-hf task-distill: The launch asks for bf16 mixed precision under DeepSpeed"
    lines = [line for line in completed.stderr.splitlines() if line.startswith("tinybert-hf")]
    assert lines and all(line.startswith(expected) and "--mixed_precision no" in line for line in lines), lines
    assert completed.stderr.count("Traceback") == 1  # the launcher's own report that a process failed, no other
    assert not (output / "run.json").exists()


def test_two_machines_on_loopback_run_the_recipe(task):
    """`torchrun --nnodes 2 --nproc_per_node 1` twice, as two machines would start it, rendezvous on 127.0.0.1."""
    root, options, _ = task
    output, port = root / "two-machines", str(free_port())
    torchrun = str(Path(sys.executable).parent / "torchrun")
    machine = [torchrun, "--nnodes", "2", "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", port]
    recipe = ["-m", "tinybert_hf", "task-distill", "--output_dir", str(output), *options]
    machines = [
        subprocess.Popen([*machine, "--node_rank", str(rank), *recipe], cwd=ROOT, env=environment(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        for rank in (0, 1)
    ]  # fmt: skip
    try:
        outputs = [started.communicate(timeout=300) for started in machines]
    finally:
        for started in machines:
            kill_session(started)
    report = "\n".join(
        f"machine {rank} (exit {started.returncode}):\n{stdout[-2000:]}\n{stderr[-3000:]}"
        for rank, (started, (stdout, stderr)) in enumerate(zip(machines, outputs, strict=True))
    )
    assert all(started.returncode == 0 for started in machines), report
    assert_written_once(output, outputs[0][0])
    assert "Saved in" not in outputs[1][0]  # the second machine's process is not the main one
    assert_same_student(root / "one", output)


def kill_session(process: subprocess.Popen) -> None:
    """SIGKILL a launcher started with `start_new_session` and every process it started, if any is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def process_of_rank(launcher_pid: int, rank: int) -> int | None:
    """The pid of the launched process whose `RANK` is `rank` (read from /proc), or `None` yet."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        if parent == launcher_pid and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


def test_a_sigkill_of_one_rank_then_the_same_command_resumes(task):
    root, options, _ = task
    output = root / "killed"
    recipe = ["tinybert_hf", "task-distill", "--output_dir", str(output), *options]
    process = subprocess.Popen(
        [*launcher("torchrun"), *recipe], cwd=ROOT, env=environment(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    checkpoints = output / "checkpoints" / "student"
    try:
        while process.poll() is None and not any(checkpoints.glob("checkpoint-*/trainer_state.json")):
            time.sleep(0.02)
        assert process.poll() is None, "the run ended before stage 2 saved a checkpoint"
        rank_one = process_of_rank(process.pid, 1)
        assert rank_one is not None
        os.kill(rank_one, signal.SIGKILL)
        process.wait(timeout=120)  # torchrun stops the other rank and fails
    finally:
        kill_session(process)
    assert process.returncode != 0
    assert (output / "student_intermediate" / "stage_done.json").is_file() and not (output / "student").exists()
    stage_one = (output / "student_intermediate" / "model.safetensors").stat().st_mtime_ns
    resumed = run([*launcher("torchrun"), *recipe])  # the same command (on a free port)
    assert "Resuming from" in resumed.stderr
    assert (output / "student_intermediate" / "model.safetensors").stat().st_mtime_ns == stage_one  # not redone
    assert_written_once(output, resumed.stdout)
    assert_same_student(root / "one", output)


def test_a_nan_on_one_rank_stops_both_ranks_with_the_guards_message():
    torchrun = str(Path(sys.executable).parent / "torchrun")
    start = time.perf_counter()
    completed = run_process_tree(
        [torchrun, "--nproc_per_node", "2", "--master_port", str(free_port()),
         str(ROOT / "tests" / "nonfinite_on_one_rank.py")],
        timeout=240, cwd=ROOT, env=environment(),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    assert completed.returncode != 0
    message = "NonFiniteLossError: Distillation stopped: the hidden loss is nan on process 1 at step 3"
    for rank in (0, 1):
        assert f"rank {rank} stopped: {message}" in completed.stdout, (
            completed.stdout[-3000:] + completed.stderr[-3000:]
        )
    assert "finished" not in completed.stdout
    assert seconds < 120  # start-up included; a rank left waiting would sit in gloo's 30-minute timeout
