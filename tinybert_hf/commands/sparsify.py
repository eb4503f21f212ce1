"""`tinybert-hf sparsify`: a saved student with its smallest attention and FFN weights zeroed (magnitude pruning),
measured.

`output_dir/sparse/` holds the student with its smallest attention and FFN weights zeroed, its tokenizer and
`sparsity.json`; `output_dir/sparsity.json` the sparsity, sizes and dev/test metrics before and after.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from transformers.utils import logging

from ..evaluation.speed_and_size import size_on_disk_mb
from ..pruning.magnitude import magnitude_prune, sparsity_report
from ..recipe.arguments import RecipeArguments
from ..recipe.run_records import SavedModelData
from ..recipe.steps import model_class
from ..utils.atomic import atomic_directory, write_text
from ..utils.safe_loading import load_pretrained
from .arguments import SparsifyArguments

logger = logging.get_logger(__name__)


def sparsify_saved_model(sparsify_args: SparsifyArguments, args: RecipeArguments) -> dict:
    r"""
    Zero the smallest linear weights of a saved model, save it to `<output_dir>/sparse`, and record its sparsity,
    sizes and dev/test metrics next to the source's in `<output_dir>/sparsity.json`.

    Returns:
        `dict`: what `sparsity.json` holds.
    """
    task = SavedModelData(sparsify_args.model, args)  # magnitude pruning reads no data: any split scores it
    logger.warning(f"Data: {task.description}.")
    args = task.args
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    source = load_pretrained(model_class(args.task), sparsify_args.model, allow_pickle=args.allow_pickle).eval()
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
            **task.scores(model),
        }
    write_text(sparse_dir / "sparsity.json", json.dumps(record, indent=2, default=str))
    write_text(output_dir / "sparsity.json", json.dumps(record, indent=2, default=str))
    return record


def run(sparsify_arguments: SparsifyArguments, arguments: RecipeArguments) -> None:
    record = sparsify_saved_model(sparsify_arguments, arguments)
    for name, entry in record["models"].items():
        print(
            f"{name:>7}: {100 * entry['linear_sparsity']:.1f}% of layer weights zero "
            f"({100 * entry['overall_sparsity']:.1f}% of all), {_score(entry)}, "
            f"{entry['size_mb']} MB on disk, {entry['compressed_mb']} MB compressed"
        )
    print(f"saved to {Path(arguments.output_dir) / 'sparse'}; {record['note']}")


def _score(entry: dict) -> str:
    """The test score, else the dev score (the data given may hold either split alone)."""
    split = "test" if "test" in entry else "dev"
    return f"{split} score {100 * entry[split]['score']:.1f}"
