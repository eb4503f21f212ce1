"""int8 students against the fp32 student: throughput, latency, accuracy and size, with and without QAT.

From a finished recipe run (`tinybert-hf distill`, whose `results.json`, `teacher/`, `student_intermediate/` and
`student/` it reads), this benchmark

1. quantizes the distilled student after training (PTQ: ONNX export, ORT fusion, dynamic int8);
2. reruns stage 2 from the same stage-1 student with the same data, seed and epochs, but fake-quantized
   (quantization-aware distillation, `--quantization_aware`), then quantizes that student the same way;
3. evaluates every model on the dev and test splits;
4. checks the fp32 ONNX graphs (as exported, and fused) against PyTorch on every test sentence, batched by 1, 8
   and 64 rows of similar length;
5. times, side by side in one process, round by round (these machines are noisy): the PyTorch fp32 student, its
   fp32 ONNX graph (fused), and the int8 graph, at batch 1 and batch 32, sequence 64, 2 threads; and, when torchao
   is installed, its int8 configurations on the same student (the alternative the int8 path was chosen against);
6. zeroes 30/50/70% of the student's linear weights by magnitude (unstructured) and reports accuracy, speed and
   size, to show what sparsity does and does not buy on a dense CPU runtime.

Writes `benchmarks/results/quantization.{json,md}`.

Run: `python benchmarks/quantization.py --recipe_dir outputs/tinybert`.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import fields
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

import tinybert_hf  # noqa: F401  (registers the TinyBERT classes)
from tinybert_hf.data.loading import load_task_splits
from tinybert_hf.data.tokenization import label_names, tokenize, tokenize_splits
from tinybert_hf.evaluation.speed_and_size import compare_speed, size_on_disk_mb, timing_batch
from tinybert_hf.onnx.export import export_saved_model
from tinybert_hf.onnx.modeling_onnx import OnnxModelForSequenceClassification
from tinybert_hf.pruning.magnitude import magnitude_prune, sparsity_report
from tinybert_hf.quantization.arguments import QuantizeArguments
from tinybert_hf.quantization.onnx_int8 import fuse_onnx, quantize_saved_model
from tinybert_hf.recipe.arguments import RecipeArguments
from tinybert_hf.recipe.report import SPEED_TEXT
from tinybert_hf.recipe.steps import augment_training_data, distil_prediction_layer, evaluate_model

RESULTS = Path(__file__).parent / "results" / "quantization"
THREADS = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe_dir", required=True, help="Output directory of a finished `tinybert-hf distill`.")
    parser.add_argument("--output_dir", default="outputs/benchmark_quantization")
    parser.add_argument("--repeats", type=int, default=12, help="Timing rounds (batch 32; batch 1 runs 3x more).")
    options = parser.parse_args()
    torch.set_num_threads(THREADS)
    recipe_dir, output_dir = Path(options.recipe_dir), Path(options.output_dir)
    settings = json.loads((recipe_dir / "results.json").read_text())["settings"]
    known = {item.name for item in fields(RecipeArguments)}
    args = RecipeArguments(
        **{
            **{key: value for key, value in settings.items() if key in known},
            "output_dir": str(output_dir),
            "teacher": str(recipe_dir / "teacher"),
        }
    )
    set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(recipe_dir / "student")
    data = load_task_splits(args)
    names = label_names(data, args.task)
    tokenized = tokenize_splits(data, tokenizer, args.task, args.max_length)
    teacher = AutoModelForSequenceClassification.from_pretrained(recipe_dir / "teacher").eval()

    # 1. post-training quantization of the distilled student
    student_dir = recipe_dir / "student"
    ptq_dir = output_dir / "student-int8"
    quantize_saved_model(QuantizeArguments(model=str(student_dir), output_dir=str(ptq_dir)))

    # 2. quantization-aware stage 2 from the same stage-1 student, same data and budget
    qat_dir = output_dir / "student-qat"
    start = time.perf_counter()
    train = tokenized["train"]
    if args.augment:
        train = tokenize(
            augment_training_data(data["train"], tokenizer, teacher, args), tokenizer, args.task, args.max_length
        )
    intermediate = AutoModelForSequenceClassification.from_pretrained(recipe_dir / "student_intermediate")
    distil_prediction_layer(
        teacher,
        intermediate,
        train,
        tokenized["validation"],
        tokenizer,
        names,
        args,
        qat_dir,
        args.prediction_epochs,
        quantization_aware=True,
    )
    tokenizer.save_pretrained(qat_dir)
    qat_seconds = time.perf_counter() - start
    qat_int8_dir = output_dir / "student-qat-int8"
    quantize_saved_model(QuantizeArguments(model=str(qat_dir), output_dir=str(qat_int8_dir)))

    # 3. quality
    student = AutoModelForSequenceClassification.from_pretrained(student_dir).eval()
    qat_student = AutoModelForSequenceClassification.from_pretrained(qat_dir).eval()
    onnx_fp32_dir = export_saved_model(student_dir, output_dir / "student-onnx")
    fuse_onnx(onnx_fp32_dir / "model.onnx", onnx_fp32_dir / "model.onnx")  # the graph the int8 one starts from
    models = {
        "PyTorch fp32": (student, student_dir),
        "ONNX fp32 (fused)": (
            OnnxModelForSequenceClassification.from_pretrained(onnx_fp32_dir, threads=THREADS),
            onnx_fp32_dir,
        ),
        "ONNX int8 (PTQ)": (OnnxModelForSequenceClassification.from_pretrained(ptq_dir, threads=THREADS), ptq_dir),
        "PyTorch fp32, QAT stage 2": (qat_student, qat_dir),
        "ONNX int8 (QAT + PTQ)": (
            OnnxModelForSequenceClassification.from_pretrained(qat_int8_dir, threads=THREADS),
            qat_int8_dir,
        ),
    }
    # ONNX fp32 against PyTorch on real test sentences, batched at several sizes (rows sorted by length)
    unfused_dir = export_saved_model(student_dir, output_dir / "student-onnx-unfused")
    unfused = OnnxModelForSequenceClassification.from_pretrained(unfused_dir, threads=THREADS)
    parity = {
        "ONNX fp32 (as exported)": fp32_parity(student, unfused, tokenized["test"], tokenizer),
        "ONNX fp32 (fused)": fp32_parity(student, models["ONNX fp32 (fused)"][0], tokenized["test"], tokenizer),
    }

    rows = {}
    for name, (model, directory) in models.items():
        rows[name] = {
            "dev": evaluate_model(model, tokenized["validation"], tokenizer, names, args)["accuracy"],
            "test": evaluate_model(model, tokenized["test"], tokenizer, names, args)["accuracy"],
            "size_mb": size_on_disk_mb(directory),
        }

    # 4. speed, side by side (the QAT graph has the PTQ graph's shape and kernels; both are timed anyway)
    speed_models = {name: model for name, (model, _) in models.items() if name != "PyTorch fp32, QAT stage 2"}
    torchao_rows = torchao_models(student)
    speed_models.update(torchao_rows)
    batch = timing_batch(tokenizer, 32, 64, SPEED_TEXT)
    single = timing_batch(tokenizer, 1, 64, SPEED_TEXT)
    speed = compare_speed(speed_models, batch, single, repeats=options.repeats)
    reference = speed["PyTorch fp32"]
    for name, measured in speed.items():
        row = rows.setdefault(name, {})
        row["throughput_b32"] = measured["throughput"]
        row["latency_b1_ms"] = measured["latency_ms"]
        row["speedup_b32"] = measured["throughput"] / reference["throughput"]
        row["speedup_b1"] = reference["latency_ms"] / measured["latency_ms"]

    # 5. unstructured magnitude sparsity of the fp32 student
    sparse_rows = []
    sparse_models = {"0%": student}
    for share in (0.3, 0.5, 0.7):
        sparse = magnitude_prune(student, share).eval()
        report = sparsity_report(sparse)
        sparse_models[f"{share:.0%}"] = sparse
        sparse_rows.append(
            {
                "sparsity": share,
                "linear_sparsity": report["linear_sparsity"],
                "overall_sparsity": report["overall_sparsity"],
                "dense_mb": report["dense_mb"],
                "compressed_mb": report["compressed_mb"],
                "test": evaluate_model(sparse, tokenized["test"], tokenizer, names, args)["accuracy"],
            }
        )
    dense_report = sparsity_report(student)
    sparse_speed = compare_speed(sparse_models, batch, single, repeats=3)
    for row in sparse_rows:
        row["speedup_b32"] = sparse_speed[f"{row['sparsity']:.0%}"]["throughput"] / sparse_speed["0%"]["throughput"]

    summary = {
        "recipe_dir": str(recipe_dir),
        "teacher_test": evaluate_model(teacher, tokenized["test"], tokenizer, names, args)["accuracy"],
        "threads": THREADS,
        "qat_stage2_seconds": qat_seconds,
        "prediction_epochs": args.prediction_epochs,
        "models": rows,
        "fp32_parity_on_test": parity,
        "sparsity": {"dense": {k: dense_report[k] for k in ("dense_mb", "compressed_mb")}, "rows": sparse_rows},
        "versions": {
            "torch": torch.__version__,
            "onnxruntime": json.loads((ptq_dir / "quantization.json").read_text())["onnxruntime"],
        },
    }
    write(summary)


def fp32_parity(student, onnx_model, test, tokenizer) -> dict:
    """Largest |ONNX - PyTorch| logit difference over the whole test split, per batch size."""
    columns = ("input_ids", "attention_mask", "token_type_ids")
    result = {}
    for batch_size in (1, 8, 64):
        largest = 0.0
        for start in range(0, test.num_rows, batch_size):
            rows = test[start : start + batch_size]
            batch = tokenizer.pad({name: rows[name] for name in columns}, return_tensors="pt")
            with torch.inference_mode():
                difference = (student(**batch).logits - onnx_model(**batch).logits).abs().max()
            largest = max(largest, float(difference))
        result[f"batch {batch_size}"] = largest
    lengths = [len(ids) for ids in test["input_ids"]]
    result["tokens per row"] = f"{min(lengths)}-{max(lengths)}"
    return result


def torchao_models(student) -> dict:
    """torchao's int8 configurations on the same student, when torchao is installed (it is not a dependency)."""
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_
    except ImportError:
        return {}
    models = {}
    for name, config in (
        ("torchao int8 dynamic", Int8DynamicActivationInt8WeightConfig()),
        ("torchao int8 weight-only + compile", Int8WeightOnlyConfig()),
    ):
        model = copy.deepcopy(student)
        quantize_(model, config)
        models[name] = torch.compile(model) if "compile" in name else model
    return models


def write(summary: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    fp32 = summary["models"]["PyTorch fp32"]
    lines = [
        f"Recipe run {summary['recipe_dir']}; teacher test accuracy {100 * summary['teacher_test']:.1f}; CPU, "
        f"{summary['threads']} threads, sequence 64; speed-ups vs the PyTorch fp32 student, measured side by side.",
        "",
        "| model | dev acc | test acc | test vs fp32 | size MB | size vs fp32 | batch 32 seq/s | speed-up b32 "
        "| batch 1 ms | speed-up b1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in summary["models"].items():
        quality = (
            f"{100 * row['dev']:.1f} | {100 * row['test']:.1f} | {100 * (row['test'] - fp32['test']):+.1f} | "
            f"{row['size_mb']:.1f} | {row['size_mb'] / fp32['size_mb']:.0%}"
            if "test" in row
            else "- | - | - | - | -"
        )
        speed = (
            f"{row['throughput_b32']:.1f} | {row['speedup_b32']:.2f}x | {row['latency_b1_ms']:.1f} | "
            f"{row['speedup_b1']:.2f}x"
            if "throughput_b32" in row
            else "- | - | - | -"
        )
        lines.append(f"| {name} | {quality} | {speed} |")
    sparsity = summary["sparsity"]
    lines += [
        "",
        "Unstructured magnitude pruning of the fp32 student (one global threshold over the layers' attention and "
        f"FFN weights); dense fp32 weights {sparsity['dense']['dense_mb']} MB, "
        f"{sparsity['dense']['compressed_mb']} MB zlib-compressed.",
        "",
        "| layer weights zeroed | of all parameters | test acc | speed vs dense (batch 32) | compressed MB |",
        "|---|---|---|---|---|",
    ]
    for row in sparsity["rows"]:
        lines.append(
            f"| {row['linear_sparsity']:.0%} | {row['overall_sparsity']:.0%} | {100 * row['test']:.1f} | "
            f"{row['speedup_b32']:.2f}x | {row['compressed_mb']} |"
        )
    lines += ["", "ONNX fp32 against PyTorch on the whole test split, largest logit difference:", ""]
    for name, values in summary["fp32_parity_on_test"].items():
        lines.append(
            f"- {name}: "
            + ", ".join(
                f"{key} {value:.1e}" if isinstance(value, float) else f"{key} {value}" for key, value in values.items()
            )
        )
    RESULTS.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
