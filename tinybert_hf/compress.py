"""Compressing a distilled student further, measured: structured pruning (with optional recovery distillation)
and unstructured magnitude pruning.

`tinybert-hf prune` runs [`prune_saved_model`]:

```
output_dir/
  pruned/            the pruned student (weights, config with the new shapes, tokenizer, pruning.json)
  recovered/         after recovery distillation (prediction stage), when --recovery_epochs > 0
  checkpoints/       Trainer checkpoints of the recovery
  pruning.json       plan, importance method, parameters and dev/test metrics before and after
```

`tinybert-hf sparsify` runs [`sparsify_saved_model`]: `output_dir/sparse/` (the student with its smallest
attention and FFN weights zeroed, tokenizer, `sparsity.json`) and `output_dir/sparsity.json` (sparsity, sizes,
dev/test metrics before and after).

The recovery teacher is `--teacher` when given (the large fine-tuned teacher), else the student before pruning
(Minitron's choice: the unpruned model knows exactly what the pruned one lost).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers import AutoTokenizer, set_seed
from transformers.utils import logging

from .atomic import atomic_directory, write_text
from .measure import parameter_count, size_on_disk_mb
from .pruning import calibration_batches, prune
from .recipe import (
    RecipeArguments,
    _done,
    distil_prediction_layer,
    evaluate_model,
    label_names,
    load_task_splits,
    model_class,
    tokenize_splits,
)
from .safe_loading import load_pretrained
from .sparsity import magnitude_prune, sparsity_report

logger = logging.get_logger(__name__)


@dataclass
class PruneArguments:
    """What `tinybert-hf prune` removes; data, calibration and training options are the recipe's."""

    model: str = field(metadata={"help": "Saved student (or any TinyBERT/BERT task model) to prune."})
    head_ratio: float = field(default=0.0, metadata={"help": "Share of attention heads to remove, in [0, 1)."})
    ffn_ratio: float = field(default=0.0, metadata={"help": "Share of FFN neurons to remove, in [0, 1)."})
    allocation: str = field(
        default="per_layer", metadata={"help": "'per_layer' (same share everywhere) or 'global' (layers differ)."}
    )
    target_layers: int | None = field(default=None, metadata={"help": "Target depth (instead of ratios)."})
    target_hidden_size: int | None = field(default=None, metadata={"help": "Target width (instead of ratios)."})
    target_heads: int | None = field(default=None, metadata={"help": "Target heads per layer (instead of ratios)."})
    target_intermediate_size: int | None = field(default=None, metadata={"help": "Target FFN width."})
    recovery_epochs: float = field(
        default=0.0, metadata={"help": "Epochs of recovery distillation after pruning (0: none)."}
    )


class _TaskData:
    """A saved model's tokenizer and the task's tokenized splits, to measure that model and its compressed copies."""

    def __init__(self, model_path: str, args: RecipeArguments):
        self.args = args
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        data = load_task_splits(args)
        self.names = label_names(data, args)
        self.tokenized = tokenize_splits(data, self.tokenizer, args)

    def dev_and_test(self, model) -> dict[str, dict]:
        """Dev and test metrics of `model`."""
        return {
            split_name: evaluate_model(model, self.tokenized[split], self.tokenizer, self.names, self.args)
            for split_name, split in (("dev", "validation"), ("test", "test"))
        }


def prune_saved_model(prune_args: PruneArguments, args: RecipeArguments) -> dict:
    r"""
    Prune a saved model on calibration rows of the task's training split, optionally recover by distillation, and
    record parameters and dev/test metrics of each model in `<output_dir>/pruning.json`.

    Returns:
        `dict`: what `pruning.json` holds.
    """
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    set_seed(args.seed)
    task = _TaskData(prune_args.model, args)
    tokenizer, tokenized = task.tokenizer, task.tokenized
    source = load_pretrained(model_class(args), prune_args.model, allow_pickle=args.allow_pickle).eval()

    start = time.perf_counter()
    batches = calibration_batches(
        tokenized["train"], args.calibration_samples, pad_token_id=source.config.pad_token_id or 0, seed=args.seed
    )
    pruned, plan = prune(
        source,
        batches,
        num_hidden_layers=prune_args.target_layers,
        hidden_size=prune_args.target_hidden_size,
        num_attention_heads=prune_args.target_heads,
        intermediate_size=prune_args.target_intermediate_size,
        head_ratio=prune_args.head_ratio,
        ffn_ratio=prune_args.ffn_ratio,
        importance=args.pruning_importance,
        layer_selection=args.layer_selection,
        allocation=prune_args.allocation,
    )
    pruning_seconds = time.perf_counter() - start
    pruned_dir = output_dir / "pruned"
    with atomic_directory(pruned_dir) as staging:
        pruned.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    record = {
        "source": prune_args.model,
        "importance": args.pruning_importance,
        "arguments": asdict(prune_args),
        "plan": plan.summary(),
        "pruning_seconds": pruning_seconds,
        "models": {},
    }
    write_text(pruned_dir / "pruning.json", json.dumps({**record, "kept": plan.to_dict()}, indent=2))

    models = {"source": source, "pruned": pruned.eval()}
    if prune_args.recovery_epochs > 0:
        teacher = (
            load_pretrained(model_class(args), args.teacher, allow_pickle=args.allow_pickle).eval()
            if args.teacher
            else source
        )
        recovered_dir = output_dir / "recovered"
        recovered = distil_prediction_layer(
            teacher,
            pruned.train(),
            tokenized["train"],
            tokenized["validation"],
            tokenizer,
            task.names,
            args,
            recovered_dir,
            prune_args.recovery_epochs,
        )
        tokenizer.save_pretrained(recovered_dir)
        (recovered_dir / "pruning.json").write_text((pruned_dir / "pruning.json").read_text())
        record["recovery"] = {"teacher": args.teacher or prune_args.model, "seconds": _done(recovered_dir)["seconds"]}
        models["recovered"] = recovered.eval()
    for name, model in models.items():
        record["models"][name] = {"parameters": parameter_count(model), **task.dev_and_test(model)}
    (output_dir / "pruning.json").write_text(json.dumps(record, indent=2, default=str))
    return record


@dataclass
class SparsifyArguments:
    """What `tinybert-hf sparsify` zeroes; data options are the recipe's (for the dev/test metrics)."""

    model: str = field(metadata={"help": "Saved student to sparsify (read only)."})
    sparsity: float = field(default=0.5, metadata={"help": "Share of the attention/FFN weights set to zero."})
    scope: str = field(
        default="global", metadata={"help": "'global' (one magnitude threshold) or 'per_layer' (same share each)."}
    )


def sparsify_saved_model(sparsify_args: SparsifyArguments, args: RecipeArguments) -> dict:
    r"""
    Zero the smallest linear weights of a saved model, save it to `<output_dir>/sparse`, and record its sparsity,
    sizes and dev/test metrics next to the source's in `<output_dir>/sparsity.json`.

    Returns:
        `dict`: what `sparsity.json` holds.
    """
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    task = _TaskData(sparsify_args.model, args)
    source = load_pretrained(model_class(args), sparsify_args.model, allow_pickle=args.allow_pickle).eval()
    sparse = magnitude_prune(source, sparsify_args.sparsity, sparsify_args.scope)
    sparse_dir = output_dir / "sparse"
    with atomic_directory(sparse_dir) as staging:
        sparse.save_pretrained(staging)
        task.tokenizer.save_pretrained(staging)
    record = {
        "source": sparsify_args.model,
        "arguments": asdict(sparsify_args),
        "note": "Zeros are stored densely: dense CPU kernels run no faster and the safetensors file is no smaller; "
        "compressed_mb is what a sparse or compressed format could save.",
        "models": {},
    }
    for name, model, directory in (("source", source, Path(sparsify_args.model)), ("sparse", sparse, sparse_dir)):
        report = sparsity_report(model)
        if name == "source":
            del report["per_layer"]
        record["models"][name] = {
            **report,
            "size_mb": round(size_on_disk_mb(directory), 1),
            **task.dev_and_test(model),
        }
    write_text(sparse_dir / "sparsity.json", json.dumps(record, indent=2, default=str))
    (output_dir / "sparsity.json").write_text(json.dumps(record, indent=2, default=str))
    return record


__all__ = ["PruneArguments", "SparsifyArguments", "prune_saved_model", "sparsify_saved_model"]
