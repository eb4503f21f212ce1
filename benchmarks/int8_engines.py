"""int8 engines for the distilled student, side by side: speed on fixed and real batches, latency, faithfulness.

From a finished recipe run (`tinybert-hf distill`; its `student/` and `results.json`), this benchmark builds

- the int8 graph before issue 21 (dynamo export, ONNX Runtime's `quantize_dynamic`: one activation scale per
  batch, per-tensor weights), served as given;
- the same with the TorchScript export (attention fused);
- ours: per-row int8 on the TorchScript export (the default), on the dynamo export, and per-tensor int8 with
  per-channel weights, each served with length buckets;
- CTranslate2 int8 (the student loaded as a BERT encoder, its classifier applied in numpy) when `ctranslate2` is
  installed (`pip install -c constraints.txt ctranslate2`), which skips padding by itself;
- the PyTorch fp32 student, the reference of "predictions equal".

and measures, in one process, round by round across engines (A B C A B C: these machines are noisy), on
`--threads` threads:

- `fixed`: 32 copies of one 64-token text, no padding (seq/s);
- `real`: the first `--sentences` test sentences in batches of 32, each padded to 64 tokens as a server receives
  them (seq/s; CTranslate2 gets the same sentences unpadded, as it is served);
- `b1 fixed`: batch-1 latency on the 64-token text, `b1 real`: on each of 64 real sentences, unpadded (median ms);
- predictions equal to the fp32 student's, on those sentences and on the whole test split, test accuracy, and the
  largest logit change.

Writes `benchmarks/results/int8_engines.{json,md}`.

Run: `python benchmarks/int8_engines.py --recipe_dir outputs/tinybert`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import tinybert_hf  # noqa: F401  (registers the TinyBERT classes)
from tinybert_hf.data.loading import load_task_splits
from tinybert_hf.evaluation.speed_and_size import size_on_disk_mb
from tinybert_hf.onnx.cpu_features import cpu_features
from tinybert_hf.onnx.modeling_onnx import OnnxModelForSequenceClassification
from tinybert_hf.quantization.arguments import QuantizeArguments
from tinybert_hf.quantization.onnx_int8 import quantize_saved_model
from tinybert_hf.recipe.arguments import RecipeArguments
from tinybert_hf.recipe.report import SPEED_TEXT

RESULTS = Path(__file__).parent / "results" / "int8_engines"
BATCH, LENGTH = 32, 64
# name -> (QuantizeArguments overrides, length buckets)
ORT_ENGINES = {
    "ORT int8 per tensor, dynamo (before)": (
        {"activations": "per_tensor", "exporter": "dynamo", "per_channel": False, "op_types": "MatMul,Gather"},
        False,
    ),
    "ORT int8 per tensor, TorchScript (attention fused)": (
        {"activations": "per_tensor", "per_channel": False},
        False,
    ),
    "ours: per row, TorchScript, length buckets (default)": ({}, True),
    "ours: per row, dynamo, length buckets": ({"exporter": "dynamo"}, True),
    "ours: per tensor, per channel, TorchScript, length buckets": ({"activations": "per_tensor"}, True),
}
REFERENCE = "PyTorch fp32"


class Engine:
    """One way to compute the student's logits: `logits(padded batch)`, `logits_unpadded(list of id lists)`."""

    def __init__(self, name, padded, unpadded=None, directory=None):
        self.name, self.padded, self.directory = name, padded, directory
        self.unpadded = unpadded or (lambda ids: padded(pad(ids, max(len(row) for row in ids))))


def pad(ids: list[list[int]], length: int) -> dict[str, np.ndarray]:
    """Right-padded `(batch, length)` int64 arrays of `ids` (pad id 0)."""
    input_ids = np.zeros((len(ids), length), np.int64)
    mask = np.zeros_like(input_ids)
    for row, tokens in enumerate(ids):
        input_ids[row, : len(tokens)] = tokens
        mask[row, : len(tokens)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}


def torch_engine(name, model) -> Engine:
    def padded(batch):
        with torch.inference_mode():
            return model(**{key: torch.from_numpy(value) for key, value in batch.items()}).logits.numpy()

    return Engine(name, padded)


def ctranslate2_engine(student_dir: Path, work_dir: Path, threads: int) -> Engine | None:
    """CTranslate2's int8 encoder on the student's weights as a `BertModel`, or `None` without ctranslate2 (or for
    a pruned student with per-layer shapes, which a BERT spec cannot hold)."""
    try:
        import ctranslate2
        from ctranslate2.converters import TransformersConverter
    except ImportError:
        return None
    from transformers import BertConfig, BertModel

    student = AutoModelForSequenceClassification.from_pretrained(student_dir).eval()
    config = student.config
    if getattr(config, "layer_num_attention_heads", None) or getattr(config, "layer_intermediate_sizes", None):
        return None
    keys = (
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
        "max_position_embeddings", "type_vocab_size", "layer_norm_eps",
    )  # fmt: skip
    # position_embedding_type: CTranslate2's BERT loader asserts it; transformers 5's BertConfig no longer has it
    bert_config = BertConfig(**{key: getattr(config, key) for key in keys}, position_embedding_type="absolute")
    bert = BertModel(bert_config).eval()
    missing, _ = bert.load_state_dict(
        {key.removeprefix("bert."): value for key, value in student.state_dict().items()}, strict=False
    )
    if missing:
        raise ValueError(f"The student's weights do not fill a BertModel: missing {missing}")
    bert_dir, ct2_dir = work_dir / "student-bert", work_dir / "student-ct2-int8"
    bert.save_pretrained(bert_dir)
    AutoTokenizer.from_pretrained(student_dir).save_pretrained(bert_dir)  # the converter reads the vocabulary
    if not (ct2_dir / "model.bin").is_file():
        TransformersConverter(str(bert_dir)).convert(str(ct2_dir), quantization="int8", force=True)
    encoder = ctranslate2.Encoder(str(ct2_dir), device="cpu", compute_type="int8", intra_threads=threads)
    weight = student.classifier.weight.detach().numpy().T  # (hidden, labels)
    bias = student.classifier.bias.detach().numpy()

    def unpadded(ids):
        pooled = np.array(encoder.forward_batch([list(map(int, row)) for row in ids]).pooler_output)
        return pooled @ weight + bias

    def padded(batch):
        lengths = batch["attention_mask"].sum(axis=1)
        return unpadded([row[:length].tolist() for row, length in zip(batch["input_ids"], lengths, strict=True)])

    engine = Engine(f"CTranslate2 {ctranslate2.__version__} int8", padded, unpadded, ct2_dir)
    engine.version = ctranslate2.__version__
    return engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe_dir", required=True, help="Output directory of a finished `tinybert-hf distill`.")
    parser.add_argument("--output_dir", default="outputs/benchmark_int8_engines")
    parser.add_argument("--sentences", type=int, default=512, help="Test sentences for speed and agreement.")
    parser.add_argument("--rounds", type=int, default=5, help="Timing rounds, each over every engine.")
    parser.add_argument("--threads", type=int, default=2)
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    recipe_dir, output_dir = Path(options.recipe_dir), Path(options.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    settings = json.loads((recipe_dir / "results.json").read_text())["settings"]
    known = {item.name for item in fields(RecipeArguments)}
    args = RecipeArguments(**{key: value for key, value in settings.items() if key in known} | {"output_dir": "."})
    student_dir = recipe_dir / "student"
    tokenizer = AutoTokenizer.from_pretrained(student_dir)
    test = load_task_splits(args)["test"]
    all_ids = tokenizer(list(test["text"]), truncation=True, max_length=LENGTH)["input_ids"]
    labels = np.array(test["label"])
    ids = all_ids[: options.sentences]
    real_batches = [pad(ids[start : start + BATCH], LENGTH) for start in range(0, len(ids), BATCH)]
    test_batches = [pad(all_ids[start : start + BATCH], LENGTH) for start in range(0, len(all_ids), BATCH)]
    fixed_ids = tokenizer([SPEED_TEXT], truncation=True, max_length=LENGTH)["input_ids"]
    fixed = pad(fixed_ids * BATCH, LENGTH)
    single = pad(fixed_ids, LENGTH)
    singles = [[row] for row in ids[:64]]

    engines = [torch_engine(REFERENCE, AutoModelForSequenceClassification.from_pretrained(student_dir).eval())]
    engines[0].directory = student_dir
    records = {}
    for name, (overrides, buckets) in ORT_ENGINES.items():
        directory = output_dir / name.split(" (")[0].replace(":", "").replace(",", "").replace(" ", "-").lower()
        records[name] = quantize_saved_model(
            QuantizeArguments(model=str(student_dir), output_dir=str(directory), **overrides)
        )
        model = OnnxModelForSequenceClassification.from_pretrained(
            directory, threads=options.threads, length_buckets=buckets
        )
        engine = torch_engine(name, model)
        engine.directory = directory
        engines.append(engine)
    ct2 = ctranslate2_engine(student_dir, output_dir, options.threads)
    if ct2 is not None:
        engines.append(ct2)

    # faithfulness: the whole test split, in the same padded batches, through every engine
    logits = {engine.name: np.concatenate([engine.padded(batch) for batch in test_batches]) for engine in engines}
    reference = logits[REFERENCE]
    rows = {}
    for engine in engines:
        predictions, expected = logits[engine.name].argmax(-1), reference.argmax(-1)
        head = slice(0, len(ids))  # the sentences the speed is measured on
        rows[engine.name] = {
            "equal_predictions": float(np.mean(predictions[head] == expected[head])),
            "differing": int(np.sum(predictions[head] != expected[head])),
            "equal_predictions_test_split": float(np.mean(predictions == expected)),
            "differing_test_split": int(np.sum(predictions != expected)),
            "test_accuracy": float(np.mean(predictions == labels)),
            "max_logit_change": float(np.abs(logits[engine.name] - reference).max()),
            "mean_logit_change": float(np.abs(logits[engine.name] - reference).mean()),
            "size_mb": round(size_on_disk_mb(engine.directory), 1),
        }

    # speed, round by round across engines
    timings = {engine.name: {"fixed": [], "real": [], "b1 fixed": [], "b1 real": []} for engine in engines}
    for engine in engines:  # warm-up
        engine.padded(fixed)
        engine.padded(real_batches[0])
        engine.unpadded(singles[0])
    load = []
    for _ in range(options.rounds):
        for engine in engines:
            times = timings[engine.name]
            start = time.perf_counter()
            for _ in range(3):
                engine.padded(fixed)
            times["fixed"].append(3 * BATCH / (time.perf_counter() - start))
            start = time.perf_counter()
            for batch in real_batches:
                if engine.name.startswith("CTranslate2"):  # served unpadded
                    lengths = batch["attention_mask"].sum(axis=1)
                    engine.unpadded([row[:n].tolist() for row, n in zip(batch["input_ids"], lengths, strict=True)])
                else:
                    engine.padded(batch)
            times["real"].append(len(ids) / (time.perf_counter() - start))
            for _ in range(10):
                start = time.perf_counter()
                engine.padded(single)
                times["b1 fixed"].append(1000 * (time.perf_counter() - start))
            for sentence in singles[:: max(1, len(singles) // 16)]:
                start = time.perf_counter()
                engine.unpadded(sentence)
                times["b1 real"].append(1000 * (time.perf_counter() - start))
        load.append(os.getloadavg()[0])
    for name, times in timings.items():
        rows[name].update(
            {
                "fixed_seq_per_s": statistics.median(times["fixed"]),
                "real_seq_per_s": statistics.median(times["real"]),
                "b1_fixed_ms": statistics.median(times["b1 fixed"]),
                "b1_real_ms": statistics.median(times["b1 real"]),
                "real_spread": (max(times["real"]) - min(times["real"])) / statistics.median(times["real"]),
            }
        )
    summary = {
        "recipe_dir": str(recipe_dir),
        "sentences": len(ids),
        "test_rows": len(all_ids),
        "real_tokens_per_row": float(np.mean([len(row) for row in ids])),
        "threads": options.threads,
        "rounds": options.rounds,
        "load_average": {"min": min(load), "max": max(load)},
        "cpu": cpu_features(),
        "machine": platform.platform(),
        "versions": {
            "torch": torch.__version__,
            "onnxruntime": next(iter(records.values()))["onnxruntime"],
            "ctranslate2": getattr(ct2, "version", None),
        },
        "engines": rows,
        "int8_settings": {name: record["settings"] for name, record in records.items()},
    }
    write(summary)


def write(summary: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    before = summary["engines"]["ORT int8 per tensor, dynamo (before)"]
    cpu = summary["cpu"]
    lines = [
        f"Recipe run {summary['recipe_dir']}; {summary['sentences']} test sentences "
        f"({summary['real_tokens_per_row']:.1f} real tokens per row), {summary['threads']} threads, "
        f"{summary['rounds']} rounds interleaved across engines, medians; load average "
        f"{summary['load_average']['min']:.1f}-{summary['load_average']['max']:.1f} (other work ran on this "
        f"machine: compare ratios, not absolute times). CPU: {cpu['model']}, {', '.join(cpu['flags'])}; VNNI "
        f"{cpu['vnni']}, ONNX Runtime's uint8 x int8 product saturates: {cpu['u8s8_saturates']}.",
        "",
        "| engine | 32 x 64 tokens, no padding: seq/s | vs before | 32 real sentences padded to 64: seq/s | vs before "
        f"| batch 1, 64 tokens: ms | batch 1, real sentence: ms | predictions equal to fp32 ({summary['sentences']}) "
        f"| differing | differing of all {summary['test_rows']} | test accuracy | largest logit change | size MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in summary["engines"].items():
        lines.append(
            f"| {name} | {row['fixed_seq_per_s']:.0f} | {row['fixed_seq_per_s'] / before['fixed_seq_per_s']:.2f}x | "
            f"{row['real_seq_per_s']:.0f} | {row['real_seq_per_s'] / before['real_seq_per_s']:.2f}x | "
            f"{row['b1_fixed_ms']:.2f} | {row['b1_real_ms']:.2f} | {100 * row['equal_predictions']:.1f}% | "
            f"{row['differing']} | {row['differing_test_split']} | {100 * row['test_accuracy']:.1f} | "
            f"{row['max_logit_change']:.3f} | {row['size_mb']} |"
        )
    RESULTS.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
