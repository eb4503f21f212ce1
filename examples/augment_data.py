"""Step 2 on its own: TinyBERT data augmentation of the training split, saved in `datasets` format.

Candidates come from `--masked_lm` (any AutoModelForMaskedLM, e.g. bert-base-uncased) and `--word_vectors` (a
GloVe file); offline with neither, from neighbours in the teacher's input embeddings (logged).

Run:
    python examples/augment_data.py --output_dir outputs/rt --num_augmentations 4
    python examples/augment_data.py --masked_lm bert-base-uncased --word_vectors glove.6B.300d.txt --output_dir out
"""

from pathlib import Path

from transformers import HfArgumentParser

from tinybert_hf.recipe.arguments import RecipeArguments
from tinybert_hf.recipe.run import prepare_data
from tinybert_hf.recipe.steps import augment_training_data, load_embedding_source


def main() -> None:
    (arguments,) = HfArgumentParser(RecipeArguments).parse_args_into_dataclasses()
    data, _, tokenizer = prepare_data(arguments)
    augmented = augment_training_data(data["train"], tokenizer, load_embedding_source(arguments), arguments)
    output = Path(arguments.output_dir) / "augmented"
    augmented.save_to_disk(str(output))
    for row in augmented.select(range(data["train"].num_rows, min(augmented.num_rows, data["train"].num_rows + 3))):
        print("variant:", row["text"])
    print(f"{augmented.num_rows} rows ({data['train'].num_rows} original) saved to {output}")


if __name__ == "__main__":
    main()
