"""`tinybert-hf card`: (re-)render a student's model card from its `tinybert_results.json`."""

from __future__ import annotations

from ..hub.model_card import write_model_card
from .arguments import CardArguments


def run(arguments: CardArguments) -> None:
    print(f"model card written to {write_model_card(arguments.model, repo_id=arguments.repo_id)}")
