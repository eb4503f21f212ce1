"""One prepared check for a GPU machine: what no CPU run here can show, in under 8 minutes, as one JSON report.

    python benchmarks/gpu_check.py                       # on the GPU machine: benchmarks/results/gpu_check.json
    python benchmarks/gpu_check.py --device cpu --small  # the same code end to end on CPU (the test suite runs it)

Built in code, nothing downloaded: a BERT-base-shaped teacher (12 x 768, random weights, a 2-label head) and a
TinyBERT4 student (4 x 312, 12 heads, FFN 1200); `--small` shrinks both (4 x 64 and 2 x 32) and the batch.
Sections, each recorded with its figures or with the error it raised (a broken section never hides the others):

1. `mixed_precision`: bf16 and fp16 `DistillationTrainer` steps of every loss (intermediate stage with each
   attention loss, mse / kl / relation; prediction stage with each prediction loss, soft_ce / kl / mse, plus the
   hard-label loss): every logged loss part is finite and the loss falls over `--steps` steps on a fixed batch.
   fp16 needs a GPU (transformers refuses it on CPU): recorded as skipped there.
2. `throughput`: teacher forward (no grad) and student forward + backward (the intermediate losses against the
   teacher's outputs) at batch 64 x 128, in sequences per second, fp32 and bf16 autocast.
3. `trainer_overhead`: seconds per step of `DistillationTrainer` against a hand-written loop doing the same work
   (same models, batch, losses, AdamW), and their ratio.
4. `host_syncs`: device-to-host synchronisations per training step, counted with the profiler
   (`aten::_local_scalar_dense`, the op behind every `.item()` / `bool(tensor)`; on CUDA also the runtime's
   synchronising calls), against the hand-written loop, which has none.
5. `fsdp2`: the student trained for a few steps under FSDP2 (`fully_shard` per `TinyBertLayer` and at the root,
   one process): the loss falls and the gathered weights changed. On GPU through Accelerate (Trainer's `fsdp`
   arguments, what users run); on CPU, where Accelerate refuses FSDP, with `fully_shard` over gloo directly.
6. `recipe`: `run_recipe` on a small slice (a tiny teacher and 64 synthetic rows per split): it finishes, and its
   student scores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import tempfile
import time
import traceback
from pathlib import Path

import torch
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer, TrainerCallback

from tinybert_hf import TinyBertConfig, TinyBertForSequenceClassification
from tinybert_hf.distillation.arguments import DistillationTrainingArguments
from tinybert_hf.distillation.losses import attention_score_mse, hidden_state_mse
from tinybert_hf.distillation.trainer import DistillationTrainer
from tinybert_hf.models.tinybert.conversion import uniform_layer_subset

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "gpu_check.json"
VOCAB = 30522


def shapes(small: bool) -> dict:
    if small:
        return {"teacher": dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128),
                "student": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64),
                "batch": 8, "seq": 32, "vocab": 512}  # fmt: skip
    return {"teacher": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
            "student": dict(hidden_size=312, num_hidden_layers=4, num_attention_heads=12, intermediate_size=1200),
            "batch": 64, "seq": 128, "vocab": VOCAB}  # fmt: skip


def models(size: dict, device: str) -> tuple[BertForSequenceClassification, TinyBertForSequenceClassification]:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=size["vocab"], num_labels=2, initializer_range=0.2, **size["teacher"])
    teacher = BertForSequenceClassification(config).eval().to(device)
    student_config = TinyBertConfig.from_teacher_config(
        teacher.config, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **size["student"]
    )
    return teacher, TinyBertForSequenceClassification(student_config).to(device)


def rows(size: dict, count: int) -> Dataset:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, size["vocab"], (count, size["seq"]), generator=generator)
    return Dataset.from_dict(
        {
            "input_ids": ids.tolist(),
            "attention_mask": [[1] * size["seq"]] * count,
            "labels": torch.randint(0, 2, (count,), generator=generator).tolist(),
        }
    )


def model_inputs(data: Dataset, device: str) -> dict[str, torch.Tensor]:
    """The rows of `data` as one batch of model inputs on `device` (no labels)."""
    return {key: torch.tensor(value, device=device) for key, value in data[:].items() if key != "labels"}


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class LossLog(TrainerCallback):
    def __init__(self):
        self.entries = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.entries.append(dict(logs))


def arguments(output_dir: str, device: str, **values) -> DistillationTrainingArguments:
    options = dict(
        output_dir=output_dir, report_to="none", save_strategy="no", logging_steps=1, learning_rate=1e-3,
        lr_scheduler_type="constant", use_cpu=device == "cpu", seed=0, dataloader_pin_memory=device == "cuda",
    )  # fmt: skip
    return DistillationTrainingArguments(**{**options, **values})


# 1. ---------------------------------------------------------------------------------------------------------------
LOSS_SETTINGS = {
    "intermediate, attention mse": dict(stage="intermediate", attention_loss="mse"),
    "intermediate, attention kl": dict(stage="intermediate", attention_loss="kl"),
    "intermediate, attention relation": dict(stage="intermediate", attention_loss="relation"),
    "prediction, soft_ce + hard label": dict(
        stage="prediction", prediction_loss="soft_ce", hard_label_loss_weight=0.5
    ),
    "prediction, kl": dict(stage="prediction", prediction_loss="kl"),
    "prediction, mse": dict(stage="prediction", prediction_loss="mse"),
}


def mixed_precision(size: dict, device: str, steps: int) -> dict:
    report = {}
    batch = rows(size, size["batch"])  # one fixed batch, seen every step: the loss must fall
    for precision in ("bf16", "fp16"):
        if precision == "fp16" and device == "cpu":
            report[precision] = {"skipped": "fp16 mixed precision needs a GPU (transformers refuses it on CPU)"}
            continue
        results = {}
        for name, setting in LOSS_SETTINGS.items():
            teacher, student = models(size, device)
            log = LossLog()
            with tempfile.TemporaryDirectory() as output_dir:
                args = arguments(output_dir, device, per_device_train_batch_size=size["batch"], max_steps=steps,
                                 **{precision: True}, **setting)  # fmt: skip
                trainer = DistillationTrainer(
                    model=student, teacher_model=teacher, args=args, train_dataset=batch, callbacks=[log]
                )
                trainer.train()
            losses = [entry["loss"] for entry in log.entries]
            parts = {key for entry in log.entries for key in entry if key.startswith("loss_")}
            finite = all(torch.isfinite(torch.tensor(float(entry[key]))) for entry in log.entries for key in parts)
            results[name] = {
                "first_loss": losses[0], "last_loss": losses[-1], "loss_parts": sorted(parts),
                "finite": bool(finite and all(map(torch.isfinite, torch.tensor(losses)))),
                "loss_fell": losses[-1] < losses[0],
            }  # fmt: skip
        report[precision] = results
    return report


# 2. and 3. --------------------------------------------------------------------------------------------------------
def intermediate_loss(student_outputs, teacher_targets: tuple, mapping: list[int]) -> torch.Tensor:
    """The hand-written stage-1 objective: hidden states (through fit_dense) and pre-softmax attention scores."""
    hidden, scores = teacher_targets
    loss = hidden_state_mse(student_outputs.fit_hidden_states[0], hidden[0])
    for index, layer in enumerate(mapping):
        loss = loss + hidden_state_mse(student_outputs.fit_hidden_states[index + 1], hidden[layer + 1])
        loss = loss + attention_score_mse(student_outputs.attention_scores[index], scores[layer])
    return loss


def teacher_outputs(teacher, batch) -> tuple:
    """The teacher's `(hidden states, pre-softmax scores)` per layer, without gradients."""
    from tinybert_hf.distillation.attention_capture import record_attention

    with torch.no_grad(), record_attention(teacher, scores=True) as recorded:
        outputs = teacher(**batch, output_hidden_states=True)
    return outputs.hidden_states, recorded.scores


def throughput(size: dict, device: str, repeats: int) -> dict:
    teacher, student = models(size, device)
    inputs = model_inputs(rows(size, size["batch"]), device)
    mapping = uniform_layer_subset(teacher.config.num_hidden_layers, student.config.num_hidden_layers)
    report = {"batch": size["batch"], "seq": size["seq"]}
    for precision in ("fp32", "bf16"):

        def autocast(precision=precision):
            return torch.autocast(device, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()

        def teacher_step():
            with autocast(), torch.no_grad():
                teacher(**inputs)

        def student_step():
            with autocast():
                target = teacher_outputs(teacher, inputs)
                outputs = student(**inputs, output_fit_hidden_states=True, output_attention_scores=True)
                loss = intermediate_loss(outputs, target, mapping)
            loss.backward()
            student.zero_grad(set_to_none=True)

        for name, step in (("teacher_forward", teacher_step), ("student_forward_backward", student_step)):
            step()  # warm-up (kernels chosen, memory allocated)
            synchronize(device)
            start = time.perf_counter()
            for _ in range(repeats):
                step()
            synchronize(device)
            seconds = (time.perf_counter() - start) / repeats
            report[f"{name}_{precision}_seq_per_s"] = size["batch"] / seconds
    return report


class StepTimer(TrainerCallback):
    def __init__(self, device: str, skip: int):
        self.device, self.skip, self.times, self.start = device, skip, [], None

    def on_step_begin(self, args, state, control, **kwargs):
        synchronize(self.device)
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        synchronize(self.device)
        if state.global_step > self.skip:
            self.times.append(time.perf_counter() - self.start)


def hand_written_steps(teacher, student, data: Dataset, device: str, steps: int, skip: int) -> list[float]:
    """The same intermediate-stage steps as the trainer's: fixed batch, AdamW, zero_grad, no logging."""
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3)
    batch = model_inputs(data, device)
    mapping = uniform_layer_subset(teacher.config.num_hidden_layers, student.config.num_hidden_layers)
    student.train()
    times = []
    for step in range(steps):
        synchronize(device)
        start = time.perf_counter()
        target = teacher_outputs(teacher, batch)
        outputs = student(**batch, output_fit_hidden_states=True, output_attention_scores=True)
        intermediate_loss(outputs, target, mapping).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        if step >= skip:
            times.append(time.perf_counter() - start)
    return times


def trainer_overhead(size: dict, device: str, steps: int) -> dict:
    data = rows(size, size["batch"])
    teacher, student = models(size, device)
    timer = StepTimer(device, skip=2)
    with tempfile.TemporaryDirectory() as output_dir:
        args = arguments(output_dir, device, per_device_train_batch_size=size["batch"], max_steps=steps,
                         stage="intermediate", attention_loss="mse", logging_steps=50)  # fmt: skip
        DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=data,
                            callbacks=[timer]).train()  # fmt: skip
    teacher, student = models(size, device)
    loop = hand_written_steps(teacher, student, data, device, steps, skip=2)
    trainer_step, loop_step = sum(timer.times) / len(timer.times), sum(loop) / len(loop)
    return {"trainer_seconds_per_step": trainer_step, "loop_seconds_per_step": loop_step,
            "trainer_over_loop": trainer_step / loop_step}  # fmt: skip


# 4. ---------------------------------------------------------------------------------------------------------------
SYNC_EVENTS = ("aten::_local_scalar_dense", "cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


def count_syncs(profile) -> dict:
    counts = {name: 0 for name in SYNC_EVENTS}
    for event in profile.events():
        if event.name in counts:
            counts[event.name] += 1
    return counts


@contextlib.contextmanager
def counted_syncs(device: str, counts: dict):
    """Count, into `counts`, the profiler's synchronising events of the block and, on CUDA, the synchronisations
    torch's sync debug mode reports (one warning per device-to-host wait: the figure that matters on a GPU)."""
    import warnings

    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with warnings.catch_warnings(record=True) as caught, profile(activities=activities) as recorded:
        warnings.simplefilter("always")
        if device == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        try:
            yield
        finally:
            if device == "cuda":
                torch.cuda.set_sync_debug_mode(0)
    counts.update(count_syncs(recorded))
    if device == "cuda":
        counts["cuda_sync_debug_warnings"] = sum("synchroniz" in str(warning.message) for warning in caught)


def host_syncs(size: dict, device: str, steps: int) -> dict:
    data = rows(size, size["batch"])
    report = {}
    for stage in ("intermediate", "prediction"):
        teacher, student = models(size, device)
        counts = {}
        with tempfile.TemporaryDirectory() as output_dir:
            args = arguments(output_dir, device, per_device_train_batch_size=size["batch"], max_steps=steps,
                             stage=stage, logging_steps=10_000)  # fmt: skip
            trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=data)
            with counted_syncs(device, counts):
                trainer.train()
        report[f"trainer_{stage}"] = {name: count / steps for name, count in counts.items()}
    teacher, student = models(size, device)
    counts = {}
    with counted_syncs(device, counts):
        hand_written_steps(teacher, student, data, device, steps, skip=0)
    report["hand_written_loop"] = {name: count / steps for name, count in counts.items()}
    report["note"] = (
        "per training step, over the whole train() call (its start and end included). On CPU "
        "aten::_local_scalar_dense also counts AdamW's per-parameter step counters (CPU scalars, no device wait); "
        "on CUDA, cuda_sync_debug_warnings counts the device-to-host waits alone"
    )
    return report


# 5. ---------------------------------------------------------------------------------------------------------------
def fsdp2(size: dict, device: str, steps: int) -> dict:
    if device == "cuda":
        return _fsdp2_through_accelerate(size, steps)
    return _fsdp2_with_fully_shard(size, steps)


def _single_process_group_environment() -> None:
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1", MASTER_ADDR="127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        from socket import socket

        with socket() as probe:
            probe.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(probe.getsockname()[1])


def _fsdp2_through_accelerate(size: dict, steps: int) -> dict:
    _single_process_group_environment()
    teacher, student = models(size, "cuda")
    before = {name: value.detach().clone() for name, value in student.state_dict().items()}
    log = LossLog()
    with tempfile.TemporaryDirectory() as output_dir:
        args = arguments(
            output_dir, "cuda", per_device_train_batch_size=size["batch"], max_steps=steps, stage="intermediate",
            bf16=True, fsdp="full_shard",
            fsdp_config={"version": 2, "transformer_layer_cls_to_wrap": ["TinyBertLayer"],
                         "reshard_after_forward": True},
        )  # fmt: skip
        trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args,
                                      train_dataset=rows(size, size["batch"]), callbacks=[log])  # fmt: skip
        trainer.train()
        wrapped = type(trainer.model_wrapped).__name__
        weights = trainer.accelerator.get_state_dict(trainer.model_wrapped)
    changed = sum(not torch.equal(weights[name].cpu().float(), value.cpu().float()) for name, value in before.items()
                  if name in weights)  # fmt: skip
    losses = [entry["loss"] for entry in log.entries]
    return {"how": "Trainer fsdp=full_shard, fsdp_config version 2 (Accelerate)", "wrapped_class": wrapped,
            "first_loss": losses[0], "last_loss": losses[-1], "loss_fell": losses[-1] < losses[0],
            "tensors_changed": changed, "tensors": len(before)}  # fmt: skip


def _fsdp2_with_fully_shard(size: dict, steps: int) -> dict:
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    _single_process_group_environment()
    started_group = not dist.is_initialized()
    if started_group:
        dist.init_process_group("gloo")
    try:
        teacher, student = models(size, "cpu")
        for layer in student.bert.encoder.layer:
            fully_shard(layer)
        fully_shard(student)
        before = {name: value.full_tensor().clone() for name, value in student.state_dict().items()}
        data = rows(size, size["batch"])
        batch = model_inputs(data, "cpu")
        mapping = uniform_layer_subset(teacher.config.num_hidden_layers, student.config.num_hidden_layers)
        optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3)
        losses = []
        for _ in range(steps):
            target = teacher_outputs(teacher, batch)
            outputs = student(**batch, output_fit_hidden_states=True, output_attention_scores=True)
            loss = intermediate_loss(outputs, target, mapping)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss))
        after = {name: value.full_tensor() for name, value in student.state_dict().items()}
        changed = sum(not torch.equal(after[name], value) for name, value in before.items())
        return {"how": "torch fully_shard per TinyBertLayer and at the root, gloo, 1 process (Accelerate sets FSDP "
                "up only on GPUs)", "wrapped_class": type(student).__name__, "first_loss": losses[0],
                "last_loss": losses[-1], "loss_fell": losses[-1] < losses[0], "tensors_changed": changed,
                "tensors": len(before)}  # fmt: skip
    finally:
        if started_group:
            dist.destroy_process_group()


# 6. ---------------------------------------------------------------------------------------------------------------
def recipe(device: str) -> dict:
    from tinybert_hf.recipe.arguments import RecipeArguments
    from tinybert_hf.recipe.run import run_recipe

    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "dull", "film", "plot", "very", "a"]
        (root / "vocab.txt").write_text("\n".join(words) + "\n")
        tokenizer = BertTokenizer(vocab=str(root / "vocab.txt"), do_lower_case=True)
        torch.manual_seed(0)
        config = BertConfig(vocab_size=len(words), hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                            intermediate_size=128, max_position_embeddings=64, num_labels=2,
                            id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})  # fmt: skip
        BertForSequenceClassification(config).save_pretrained(root / "teacher")
        tokenizer.save_pretrained(root / "teacher")
        lines = ["text,label"] + [f"{'very good film' if i % 2 else 'a dull plot'},{'pos' if i % 2 else 'neg'}"
                                  for i in range(64)]  # fmt: skip
        for split in ("train", "dev", "test"):
            (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
        args = RecipeArguments(
            output_dir=str(root / "run"), teacher=str(root / "teacher"), train_file=str(root / "train.csv"),
            validation_file=str(root / "dev.csv"), test_file=str(root / "test.csv"), intermediate_epochs=1,
            prediction_epochs=2, augment=False, int8=False, batch_size=16, student_layers=2,
            student_hidden_size=32, student_attention_heads=4, student_intermediate_size=64,
            speed_batch_size=4, speed_seq_length=16,
        )  # fmt: skip
        start = time.perf_counter()
        results = run_recipe(args)
        seconds = time.perf_counter() - start
    student = results["models"]["student (distilled)"]
    return {"seconds": seconds, "student_test_accuracy": student["test"]["accuracy"],
            "teacher_test_accuracy": results["models"]["teacher"]["test"]["accuracy"],
            "ran_on": "cuda" if torch.cuda.is_available() else "cpu"}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--small", action="store_true", help="tiny models and batch (the test suite's CPU run)")
    parser.add_argument("--steps", type=int, default=20, help="training steps of each loss check")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT))
    parser.add_argument("--sections", default="mixed_precision,throughput,trainer_overhead,host_syncs,fsdp2,recipe")
    options = parser.parse_args()
    if options.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here: pass --device cpu to run the check on CPU")
    size = shapes(options.small)
    started = time.perf_counter()
    report = {
        "device": torch.cuda.get_device_name(0) if options.device == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "small": options.small, "steps": options.steps,
        "teacher": size["teacher"], "student": size["student"],
    }  # fmt: skip
    sections = {
        "mixed_precision": lambda: mixed_precision(size, options.device, options.steps),
        "throughput": lambda: throughput(size, options.device, repeats=3 if options.small else 10),
        "trainer_overhead": lambda: trainer_overhead(size, options.device, steps=max(options.steps, 6)),
        "host_syncs": lambda: host_syncs(size, options.device, steps=5),
        "fsdp2": lambda: fsdp2(size, options.device, steps=max(options.steps // 2, 4)),
        "recipe": lambda: recipe(options.device),
    }
    for name in options.sections.split(","):
        start = time.perf_counter()
        try:
            report[name] = sections[name]()
        except Exception as error:  # noqa: BLE001 - recorded in the report: one broken section must not hide the rest
            report[name] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-3000:]}
        report[name + "_seconds"] = time.perf_counter() - start
        print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)
    report["seconds"] = time.perf_counter() - started
    Path(options.output).parent.mkdir(parents=True, exist_ok=True)
    Path(options.output).write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(f"Wrote {options.output} ({report['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
