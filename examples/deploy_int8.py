"""Ship a distilled student as int8 ONNX and serve it: quantize, load, classify, compare with the fp32 student.

Run after the main job (`tinybert-hf distill`), or on any saved TinyBERT/BERT classification student:

```bash
python examples/deploy_int8.py --student outputs/tinybert/student --texts "a warm, funny film" "a dull mess"
```

The same steps on the command line: `tinybert-hf quantize --model outputs/tinybert/student`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import tinybert_hf  # noqa: F401  (registers the TinyBERT classes with the Auto classes)
from tinybert_hf.evaluation.speed_and_size import size_on_disk_mb
from tinybert_hf.onnx.modeling_onnx import OnnxModelForSequenceClassification, onnx_pipeline
from tinybert_hf.quantization.arguments import QuantizeArguments
from tinybert_hf.quantization.onnx_int8 import default_int8_directory, quantize_saved_model

DEFAULT_TEXTS = [
    "a quietly moving film about grief, with a great cast",
    "the plot is a mess and the jokes never land",
    "it is not a bad film, just a forgettable one",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", default="outputs/tinybert/student", help="Saved student directory.")
    parser.add_argument("--texts", nargs="+", default=DEFAULT_TEXTS, help="Texts to classify.")
    parser.add_argument(
        "--per_channel",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="One int8 weight scale per output channel (--no-per_channel: one per tensor).",
    )
    options = parser.parse_args()

    student_dir = Path(options.student)
    int8_dir = default_int8_directory(student_dir)
    if not (int8_dir / "quantization.json").is_file():  # the main job already wrote it
        quantize_saved_model(QuantizeArguments(model=str(student_dir), per_channel=options.per_channel))
    print(
        f"fp32 student {size_on_disk_mb(student_dir):.1f} MB -> "
        f"int8 ONNX {size_on_disk_mb(int8_dir):.1f} MB in {int8_dir}"
    )

    # serving: a transformers pipeline on ONNX Runtime
    classifier = onnx_pipeline(int8_dir)
    for text, prediction in zip(options.texts, classifier(options.texts), strict=True):
        print(f"{prediction['label']:>10} {prediction['score']:.3f}  {text}")

    # the same texts through the fp32 PyTorch student and the int8 model: do they agree, and how fast is each?
    tokenizer = AutoTokenizer.from_pretrained(student_dir)
    batch = tokenizer(options.texts, padding=True, return_tensors="pt")
    fp32 = AutoModelForSequenceClassification.from_pretrained(student_dir).eval()
    int8 = OnnxModelForSequenceClassification.from_pretrained(int8_dir)
    timings = {}
    with torch.inference_mode():
        for name, model in (("fp32 PyTorch", fp32), ("int8 ONNX", int8)):
            model(**batch)  # warm-up
            start = time.perf_counter()
            logits = model(**batch).logits
            timings[name] = (time.perf_counter() - start, logits)
    agree = (timings["fp32 PyTorch"][1].argmax(-1) == timings["int8 ONNX"][1].argmax(-1)).float().mean()
    largest = (timings["fp32 PyTorch"][1] - timings["int8 ONNX"][1]).abs().max()
    print(f"predictions agree on {agree:.0%} of the texts; largest logit difference {largest:.3f}")
    for name, (seconds, _) in timings.items():
        print(f"{name}: {1000 * seconds:.1f} ms for {len(options.texts)} texts (one run; see benchmarks/ for speed)")


if __name__ == "__main__":
    main()
