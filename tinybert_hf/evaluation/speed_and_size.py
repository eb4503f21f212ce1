"""Size and CPU speed of models, measured side by side in one process (these machines are noisy)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch


def parameter_count(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def size_on_disk_mb(directory: str | Path) -> float:
    """Megabytes of the weight files (safetensors, ONNX, bin; a CTranslate2 engine's ctranslate2/model.bin) in a saved
    model directory."""
    patterns = ("*.safetensors", "*.onnx", "*.bin", "ctranslate2/*.bin")
    return sum(path.stat().st_size for pattern in patterns for path in Path(directory).glob(pattern)) / 1e6


def timing_batch(tokenizer, batch_size: int, seq_length: int, text: str) -> dict[str, torch.Tensor]:
    """`batch_size` copies of `text`, padded or truncated to exactly `seq_length` tokens."""
    return tokenizer(
        [text] * batch_size, padding="max_length", truncation=True, max_length=seq_length, return_tensors="pt"
    )


@torch.inference_mode()
def compare_speed(
    models: dict[str, torch.nn.Module], batch: dict[str, torch.Tensor], single: dict[str, torch.Tensor], repeats: int
) -> dict[str, dict[str, float]]:
    r"""
    Throughput (sequences/s on `batch`) and latency (median ms on the one-row `single`) of each model, measured
    round by round across models so machine noise hits them all alike.

    Returns:
        `dict[str, dict[str, float]]`: per model, `throughput` and `latency_ms`.
    """
    elapsed = {name: [] for name in models}
    latency = {name: [] for name in models}
    for model in models.values():  # warm-up
        model.eval()
        model(**batch)
        model(**single)
    for _ in range(repeats):
        for name, model in models.items():
            start = time.perf_counter()
            model(**batch)
            elapsed[name].append(time.perf_counter() - start)
            for _ in range(3):
                start = time.perf_counter()
                model(**single)
                latency[name].append(time.perf_counter() - start)
    rows = batch["input_ids"].shape[0]
    return {
        name: {
            "throughput": rows * len(elapsed[name]) / sum(elapsed[name]),
            "latency_ms": 1000 * statistics.median(latency[name]),
            "spread": _spread(elapsed[name]),
        }
        for name in models
    }


def _spread(times: list[float]) -> float:
    """How far apart the repeats of one measurement are, relative to their median, leaving out the slowest one (a
    single late repeat happens on a quiet machine too; measured there: 0.07-0.14 without it, up to 0.30 with it)."""
    ordered = sorted(times)
    kept = ordered[:-1] if len(ordered) > 2 else ordered
    return (kept[-1] - kept[0]) / statistics.median(ordered)


NOISY_SPREAD = 0.25  # repeats of one batch further apart than this (relative to their median): not a quiet machine


def speed_noise(speed: dict[str, dict[str, float]], load_average: float, cpus: int) -> str | None:
    r"""
    Why the figures of [`compare_speed`] cannot be trusted, or `None` on a quiet machine: repeats that spread by
    more than `NOISY_SPREAD`, or a load average above the machine's cores (other work competed for them).

    Args:
        speed: what [`compare_speed`] returned.
        load_average (`float`): the 1-minute load average while it ran (`os.getloadavg()[0]`).
        cpus (`int`): the machine's cores.
    """
    name, worst = max(((name, entry["spread"]) for name, entry in speed.items()), key=lambda item: item[1])
    reasons = []
    if worst > NOISY_SPREAD:
        reasons.append(f"repeats of one measurement differ by up to {100 * worst:.0f}% ({name})")
    if load_average > cpus:
        reasons.append(f"load average {load_average:.1f} on {cpus} cores")
    return "; ".join(reasons) or None
