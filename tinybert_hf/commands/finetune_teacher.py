"""`tinybert-hf finetune-teacher`: only the recipe's first step, the fine-tuned teacher."""

from __future__ import annotations

from transformers import AutoConfig

from ..recipe.arguments import RecipeArguments
from ..recipe.checks import teacher_source
from ..recipe.run import fitted_to_teacher, prepare_data
from ..recipe.steps import finetune_teacher


def run(arguments: RecipeArguments) -> None:
    arguments = fitted_to_teacher(arguments, AutoConfig.from_pretrained(teacher_source(arguments)))
    data, names, tokenizer = prepare_data(arguments)
    print(f"teacher saved to {finetune_teacher(data, names, tokenizer, arguments)}")
