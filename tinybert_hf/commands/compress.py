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
import os
import time
from dataclasses import asdict
from pathlib import Path

from transformers import AutoConfig, AutoTokenizer, set_seed
from transformers.utils import logging

from ..errors import BadInputError
from ..evaluation.speed_and_size import parameter_count, size_on_disk_mb
from ..pruning.magnitude import magnitude_prune, sparsity_report
from ..pruning.structured import calibration_batches, prune
from ..recipe.arguments import PruneArguments, RecipeArguments, SparsifyArguments
from ..recipe.run_records import DATA_OPTIONS, load_data_for_model
from ..recipe.steps import (
    _done,
    check_model_reference,
    distil_prediction_layer,
    evaluate_model,
    model_class,
    tokenize_splits,
)
from ..utils.atomic import atomic_directory, write_text
from ..utils.safe_loading import load_pretrained

logger = logging.get_logger(__name__)


class _TaskData:
    """A saved model's tokenizer and the tokenized splits of the data given, else of the data its run recorded
    ([`~tinybert_hf.recipe.run_records.load_data_for_model`]), to measure that model and its compressed copies.
    `args` are the arguments that data was loaded with; `description` says which data it is."""

    def __init__(self, model_path: str, args: RecipeArguments):
        check_model_reference(model_path, "--model")
        config = AutoConfig.from_pretrained(model_path)
        data, self.names, self.args, self.description = load_data_for_model(model_path, config, args)
        if "train" not in data:
            raise BadInputError(
                "Pruning measures what to cut on training rows: give `--train_file` (or `--dataset`), not only "
                "`--validation_file`/`--test_file`."
            )
        logger.warning(f"Data: {self.description}.")
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.tokenized = tokenize_splits(data, self.tokenizer, self.args)

    def dev_and_test(self, model) -> dict[str, dict]:
        """Dev and test metrics of `model`."""
        return {
            split_name: evaluate_model(model, self.tokenized[split], self.tokenizer, self.names, self.args)
            for split_name, split in (("dev", "validation"), ("test", "test"))
        }

    def settings(self) -> dict:
        """Every option the data, the cut and the recovery were made with (JSON-normalized), and under `data` the
        data options, which `tinybert-hf evaluate` of the pruned model reads back."""
        settings = json.loads(json.dumps(asdict(self.args), default=str))
        return {
            "settings": settings,
            "data": {option: settings[option] for option in DATA_OPTIONS},
            "working_directory": os.getcwd(),  # relative paths in both are relative to it
        }


def prune_saved_model(prune_args: PruneArguments, args: RecipeArguments) -> dict:
    r"""
    Prune a saved model on calibration rows of the task's training split, optionally recover by distillation, and
    record parameters and dev/test metrics of each model in `<output_dir>/pruning.json`.

    Returns:
        `dict`: what `pruning.json` holds.
    """
    set_seed(args.seed)
    task = _TaskData(prune_args.model, args)
    args = task.args
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    tokenizer, tokenized = task.tokenizer, task.tokenized
    source = load_pretrained(model_class(args), prune_args.model, allow_pickle=args.allow_pickle).eval()

    start = time.perf_counter()
    batches = calibration_batches(
        tokenized["train"], args.calibration_samples, pad_token_id=source.config.pad_token_id or 0, seed=args.seed
    )
    try:
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
    except ValueError as error:  # a shape this model cannot take (heads that do not divide the width, ...)
        raise BadInputError(f"Cannot prune {prune_args.model} to the shape asked: {error}") from None
    pruning_seconds = time.perf_counter() - start
    pruned_dir = output_dir / "pruned"
    with atomic_directory(pruned_dir) as staging:
        pruned.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    record = {
        "source": prune_args.model,
        "importance": args.pruning_importance,
        "arguments": asdict(prune_args),
        **task.settings(),
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


def sparsify_saved_model(sparsify_args: SparsifyArguments, args: RecipeArguments) -> dict:
    r"""
    Zero the smallest linear weights of a saved model, save it to `<output_dir>/sparse`, and record its sparsity,
    sizes and dev/test metrics next to the source's in `<output_dir>/sparsity.json`.

    Returns:
        `dict`: what `sparsity.json` holds.
    """
    task = _TaskData(sparsify_args.model, args)
    args = task.args
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    source = load_pretrained(model_class(args), sparsify_args.model, allow_pickle=args.allow_pickle).eval()
    sparse = magnitude_prune(source, sparsify_args.sparsity, sparsify_args.scope)
    sparse_dir = output_dir / "sparse"
    with atomic_directory(sparse_dir) as staging:
        sparse.save_pretrained(staging)
        task.tokenizer.save_pretrained(staging)
    record = {
        "source": sparsify_args.model,
        "arguments": asdict(sparsify_args),
        **task.settings(),
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
