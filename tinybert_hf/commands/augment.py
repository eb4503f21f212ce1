"""`tinybert-hf augment`: only the recipe's augmentation of the training split, saved as a data set."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig

from ..recipe.arguments import RecipeArguments
from ..recipe.checks import teacher_source
from ..recipe.run import fitted_to_teacher, prepare_data
from ..recipe.steps import augment_training_data, load_embedding_source


def run(arguments: RecipeArguments) -> None:
    arguments = fitted_to_teacher(arguments, AutoConfig.from_pretrained(teacher_source(arguments)))
    data, _, tokenizer = prepare_data(arguments)
    teacher = load_embedding_source(arguments)
    augmented = augment_training_data(data["train"], tokenizer, teacher, arguments)
    output = Path(arguments.output_dir) / "augmented"
    augmented.save_to_disk(str(output))
    print(f"{augmented.num_rows} rows ({data['train'].num_rows} original) saved to {output}")
