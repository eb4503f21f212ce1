"""`tinybert-hf evaluate`: dev, test and held-out metrics of a saved model, on the data given or the data its run
recorded."""

from __future__ import annotations

import json

from transformers.utils import logging

from ..recipe.arguments import RecipeArguments
from ..recipe.run_records import SavedModelData
from ..recipe.steps import evaluate_model, load_eval_sets, model_class
from ..utils.safe_loading import load_pretrained
from .arguments import EvaluateArguments

logger = logging.get_logger(__name__)


def evaluate_saved_model(model_path: str, args: RecipeArguments) -> dict[str, dict]:
    """Dev and test metrics of a saved model directory (or Hub id), with its own tokenizer, on the data given, else
    the data its run recorded ([`~tinybert_hf.recipe.run_records.SavedModelData`]; `"data"` says which), and
    under `"heldout"` its metrics on each `--eval_files` set."""
    data = SavedModelData(model_path, args)
    positions = getattr(data.config, "max_position_embeddings", None)
    eval_sets = load_eval_sets(data.names, data.tokenizer, data.args, positions)
    model = load_pretrained(
        model_class(data.args.task), model_path, allow_pickle=data.args.allow_pickle, config=data.config
    )
    scores = {"data": data.description, **data.scores(model, dev_name="validation")}
    if eval_sets:
        scores["heldout"] = {
            name: evaluate_model(model, rows, data.tokenizer, data.names, data.args)
            for name, rows in eval_sets.items()
        }
    return scores


def run(evaluate_arguments: EvaluateArguments, arguments: RecipeArguments) -> None:
    print(json.dumps(evaluate_saved_model(evaluate_arguments.model, arguments), indent=2))
