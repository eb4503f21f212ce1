"""`tinybert-hf prune`: a distilled student cut further by structured pruning (with optional recovery
distillation), measured.

`tinybert-hf prune` runs [`prune_saved_model`]:

```
output_dir/
  pruned/            the pruned student (weights, config with the new shapes, tokenizer, pruning.json)
  recovered/         after recovery distillation (prediction stage), when --recovery_epochs > 0
  checkpoints/       Trainer checkpoints of the recovery
  pruning.json       plan, importance method, parameters and dev/test metrics before and after
```

The recovery teacher is `--teacher` when given (the large fine-tuned teacher), else the student before pruning
(Minitron's choice: the unpruned model knows exactly what the pruned one lost).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from transformers import set_seed
from transformers.utils import logging

from ..errors import BadInputError
from ..evaluation.speed_and_size import parameter_count
from ..pruning.structured import calibration_batches, prune
from ..recipe.arguments import RecipeArguments
from ..recipe.run_records import SavedModelData
from ..recipe.steps import distil_prediction_layer, model_class
from ..utils.atomic import atomic_directory, write_text
from ..utils.safe_loading import load_pretrained
from ..utils.step_runner import finished_step
from .arguments import PruneArguments

logger = logging.get_logger(__name__)


def prune_saved_model(prune_args: PruneArguments, args: RecipeArguments) -> dict:
    r"""
    Prune a saved model on calibration rows of the task's training split, optionally recover by distillation, and
    record parameters and dev/test metrics of each model in `<output_dir>/pruning.json`.

    Returns:
        `dict`: what `pruning.json` holds.
    """
    set_seed(args.seed)
    task = SavedModelData(prune_args.model, args, purpose="Pruning measures what to cut on training rows")
    logger.warning(f"Data: {task.description}.")
    args = task.args
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    tokenizer, tokenized = task.tokenizer, task.tokenized
    source = load_pretrained(model_class(args.task), prune_args.model, allow_pickle=args.allow_pickle).eval()

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
            load_pretrained(model_class(args.task), args.teacher, allow_pickle=args.allow_pickle).eval()
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
        record["recovery"] = {
            "teacher": args.teacher or prune_args.model,
            "seconds": finished_step(recovered_dir)["seconds"],
        }
        models["recovered"] = recovered.eval()
    for name, model in models.items():
        record["models"][name] = {"parameters": parameter_count(model), **task.scores(model)}
    (output_dir / "pruning.json").write_text(json.dumps(record, indent=2, default=str))
    return record


def run(prune_arguments: PruneArguments, arguments: RecipeArguments) -> None:
    record = prune_saved_model(prune_arguments, arguments)
    for name, entry in record["models"].items():
        score = entry["test"]["score"]
        print(f"{name:>10}: {entry['parameters'] / 1e6:.2f}M parameters, test score {100 * score:.1f}")
    output_dir = Path(arguments.output_dir)
    recovered = f" and {output_dir / 'recovered'}" if "recovery" in record else ""
    print(f"saved to {output_dir / 'pruned'}{recovered}; figures in {output_dir / 'pruning.json'}")
