"""The data a saved model is scored or pruned on (`tinybert-hf evaluate`, `prune`, `sparsify`).

A data option the user gives is always used, and only it: `--test_file` alone scores the test file alone. With none,
the data the model's own run recorded (`tinybert_results.json`, or the `pruning.json` / `sparsity.json` of a pruned
or sparsified model) is used, so a
student is scored on the splits it was made with. Only then the embedded default, and the command says so. The data's
labels are encoded as the model's (by name), and data with a label the model does not predict is refused: a 3-label
model is never scored on 2-label movie snippets.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict
from pathlib import Path

from datasets import DatasetDict
from transformers import AutoConfig, AutoTokenizer
from transformers.utils import logging

from ..data.loading import ROTTEN_TOMATOES, encode_labels_as, load_evaluation_files, load_task_splits
from ..data.tasks import TASKS
from ..data.tokenization import tokenize_splits
from ..errors import BadInputError
from ..hub.model_card import RESULTS_NAME
from .arguments import RecipeArguments
from .checks import check_model_reference
from .steps import evaluate_model

logger = logging.get_logger(__name__)

# the options that say where the data comes from: any one given means the user chose the data
DATA_SOURCE_OPTIONS = ("dataset", "train_file", "validation_file", "test_file")
# what else decides which rows a run's splits hold and how they read
DATA_OPTIONS = (
    *DATA_SOURCE_OPTIONS,
    "dataset_config",
    "task",
    "text_column",
    "text_pair_column",
    "label_column",
    "max_length",
    "max_train_samples",
    "seed",
    "data_seed",
)
# what `tinybert-hf prune` / `sparsify` write beside the models they make (with the data options under `data`)
COMPRESSION_RECORDS = ("pruning.json", "sparsity.json")


def recorded_data_settings(model_path: str | Path) -> dict | None:
    """The data options recorded beside a saved model: its run's `tinybert_results.json` settings, or the `data` of
    the `pruning.json` (`sparsity.json`) a pruned (sparsified) model carries; `None` for a model without any."""
    for name, key in ((RESULTS_NAME, "settings"), *((record, "data") for record in COMPRESSION_RECORDS)):
        path = Path(model_path) / name
        if path.is_file():
            record = json.loads(path.read_text())
            recorded = record.get(key)
            if recorded:
                settings = {option: recorded[option] for option in DATA_OPTIONS if option in recorded}
                return _from_where_it_ran(settings, record.get("working_directory"))
    return None


def _from_where_it_ran(settings: dict, working_directory: str | None) -> dict:
    """File options as the run gave them were relative to where it ran: read them from there when they do not
    exist from here."""
    if working_directory is None:
        return settings
    for option in ("train_file", "validation_file", "test_file"):
        value = settings.get(option)
        if value and not Path(value).is_absolute() and not Path(value).exists():
            settings[option] = str(Path(working_directory) / value)
    return settings


def data_arguments_for(model_path: str | Path, args):
    r"""
    `args` with the data options a saved model's run recorded, unless the user gave a data source.

    Returns:
        `tuple`: the arguments to load the data with, and a sentence saying which data that is (for the log).
    """
    given = [option for option in DATA_SOURCE_OPTIONS if getattr(args, option) is not None]
    if given:
        return args, "the data given (" + ", ".join(f"--{option} {getattr(args, option)}" for option in given) + ")"
    recorded = recorded_data_settings(model_path)
    if recorded is None:
        return args, (
            f"the embedded {ROTTEN_TOMATOES if args.task == 'text-classification' else 'NER tweets'} data: no data "
            f"option was given and {model_path} records no run (pass --test_file, --train_file or --dataset)"
        )
    defaults = {field.name: field.default for field in dataclasses.fields(args)}
    # an option the user changed from its default (e.g. --max_length) wins over the record
    updates = {option: value for option, value in recorded.items() if getattr(args, option) == defaults[option]}
    source = ", ".join(f"--{option} {recorded[option]}" for option in DATA_SOURCE_OPTIONS if recorded.get(option))
    return dataclasses.replace(args, **updates), (
        f"the data {model_path}'s run recorded ({source or 'the embedded default'})"
    )


def model_label_names(config) -> list[str] | None:
    """A model's label names in id order, or `None` when they are transformers' placeholders (`LABEL_0`, ...)."""
    names = [config.id2label[index] for index in range(config.num_labels)]
    return None if all(name == f"LABEL_{index}" for index, name in enumerate(names)) else names


def load_data_for_model(model_path: str | Path, config, args) -> tuple[DatasetDict, list[str], object, str]:
    r"""
    The data to score or prune a saved model on (see the module docstring), with labels encoded as the model's.

    Args:
        model_path: the saved model directory (or Hub id).
        config: its config (`num_labels`, `id2label`).
        args: the command's arguments (data options).

    Returns:
        `tuple`: the splits (only the given ones when just `--validation_file`/`--test_file` are given), their label
        names (the model's), the arguments they were loaded with, and which data that is.

    Raises:
        [`~tinybert_hf.errors.BadInputError`]: the data has labels the model does not predict, or as many placeholder
            labels as the model does not.
    """
    args, description = data_arguments_for(model_path, args)
    files = {"validation": args.validation_file, "test": args.test_file}
    if args.dataset is None and args.train_file is None and any(files.values()):
        data = load_evaluation_files(
            {split: path for split, path in files.items() if path},
            args.text_column,
            args.text_pair_column,
            args.label_column,
            args.task,
        )
    else:
        data = load_task_splits(args)
    column = TASKS[args.task].label_column
    feature = next(iter(data.values())).features[column]
    data_names = list(getattr(feature, "feature", feature).names)
    names = model_label_names(config)
    if names is None:  # a model with placeholder labels: only the count can be checked
        if len(data_names) != config.num_labels:
            raise BadInputError(
                f"{model_path} predicts {config.num_labels} labels but the data ({description}) has {len(data_names)} "
                f"({data_names}): score it on data of its own task."
            )
        return data, data_names, args, description
    try:
        return encode_labels_as(data, names, args.task), names, args, description
    except BadInputError as error:
        raise BadInputError(f"{model_path} cannot be scored on {description}: {error}") from None


__all__ = ["data_arguments_for", "load_data_for_model", "model_label_names", "recorded_data_settings"]


class SavedModelData:
    """
    A saved model's config and tokenizer, and the tokenized splits of the data given, else of the data its run
    recorded ([`load_data_for_model`]): what `evaluate`, `prune` and `sparsify` measure a model (and its compressed
    copies) on. `args` are the arguments that data was loaded with; `description` says which data it is.

    Args:
        model_path (`str`): a saved model directory or Hub id.
        args ([`~tinybert_hf.recipe.arguments.RecipeArguments`]): the data options given.
        purpose (`str`, *optional*): what needs training rows (e.g. "Pruning measures what to cut on them"): with
            it, data without a train split is refused; without it, any of the splits will do.
    """

    def __init__(self, model_path: str, args: RecipeArguments, purpose: str | None = None):
        check_model_reference(model_path, "--model")
        self.config = AutoConfig.from_pretrained(model_path)
        data, self.names, self.args, self.description = load_data_for_model(model_path, self.config, args)
        if purpose and "train" not in data:
            raise BadInputError(
                f"{purpose}: give `--train_file` (or `--dataset`), not only `--validation_file`/`--test_file`."
            )
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.tokenized = tokenize_splits(data, self.tokenizer, self.args.task, self.args.max_length)

    def scores(self, model, dev_name: str = "dev") -> dict[str, dict]:
        """Metrics of `model` on each evaluation split there is: the validation split (under `dev_name`; the
        records of `prune` and `sparsify` say `dev`, `evaluate`'s output `validation`) and `test`."""
        return {
            split_name: evaluate_model(model, self.tokenized[split], self.tokenizer, self.names, self.args)
            for split_name, split in ((dev_name, "validation"), ("test", "test"))
            if split in self.tokenized
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
