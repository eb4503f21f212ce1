"""`tinybert-hf evaluate`: dev, test and held-out metrics of a saved model, on the data given or the data its run
recorded."""

from __future__ import annotations

import json

from transformers import (
    AutoConfig,
    AutoTokenizer,
)
from transformers.utils import logging

from ..data.loading import SPLITS
from ..data.tokenization import tokenize
from ..recipe.arguments import RecipeArguments
from ..recipe.checks import check_model_reference
from ..recipe.run_records import load_data_for_model
from ..recipe.steps import evaluate_model, load_eval_sets, model_class
from ..utils.safe_loading import load_pretrained
from .arguments import EvaluateArguments

logger = logging.get_logger(__name__)


def evaluate_saved_model(model_path: str, args: RecipeArguments) -> dict[str, dict]:
    """Dev and test metrics of a saved model directory (or Hub id), with its own tokenizer, on the data given, else
    the data its run recorded ([`~tinybert_hf.recipe.run_records.load_data_for_model`]; `"data"` says which), and
    under `"heldout"` its metrics on each `--eval_files` set."""
    check_model_reference(model_path, "--model")
    config = AutoConfig.from_pretrained(model_path)
    data, names, args, description = load_data_for_model(model_path, config, args)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    eval_sets = load_eval_sets(names, tokenizer, args, getattr(config, "max_position_embeddings", None))
    model = load_pretrained(model_class(args.task), model_path, allow_pickle=args.allow_pickle, config=config)
    tokenized = tokenize(data, tokenizer, args.task, args.max_length)
    scores = {"data": description}
    for split in (split for split in SPLITS[1:] if split in tokenized):
        scores[split] = evaluate_model(model, tokenized[split], tokenizer, names, args)
    if eval_sets:
        scores["heldout"] = {
            name: evaluate_model(model, rows, tokenizer, names, args) for name, rows in eval_sets.items()
        }
    return scores


def run(evaluate_arguments: EvaluateArguments, arguments: RecipeArguments) -> None:
    print(json.dumps(evaluate_saved_model(evaluate_arguments.model, arguments), indent=2))
