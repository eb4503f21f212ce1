"""`tinybert-hf` in a subprocess, end to end on a tiny teacher backbone and small real-format files."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, BertModel, pipeline

from tinybert_hf.commands import cli as cli_module
from tinybert_hf.commands.cli import COMMANDS
from tinybert_hf.errors import BadInputError
from tinybert_hf.hub.push import student_files
from tinybert_hf.onnx.modeling_onnx import onnx_pipeline
from tinybert_hf.recipe.arguments import RecipeArguments

from .conftest import TINY_WORDS, tiny_bert_config
from .hub_servers import TOKEN

ROOT = Path(__file__).resolve().parent.parent


def cli() -> list[str]:
    installed = shutil.which("tinybert-hf", path=str(Path(sys.executable).parent))
    return [installed] if installed else [sys.executable, "-m", "tinybert_hf"]


def run(arguments: list[str], timeout: int = 600, hub: str | None = None) -> subprocess.CompletedProcess:
    """The CLI in a subprocess, offline; with `hub` (a loopback endpoint) the Hub client talks to it instead."""
    env = offline_env()
    if hub:
        env.update(HF_HUB_OFFLINE="0", HF_ENDPOINT=hub, HF_TOKEN=TOKEN)
    result = subprocess.run([*cli(), *arguments], env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def scores_of(evaluated: subprocess.CompletedProcess) -> dict:
    """What `evaluate` printed (DeepSpeed, when installed, logs a line to stdout as it is imported)."""
    return json.loads(evaluated.stdout[evaluated.stdout.index("{") :])


PRINT_LOGITS = """
import sys, torch, tinybert_hf
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1]).eval()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
with torch.no_grad():
    logits = model(**tokenizer(["Good great film", "Dull bad plot"], padding=True, return_tensors="pt")).logits
print("logits", logits.tolist())
"""


def offline_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


@pytest.fixture
def backbone(tmp_path, tiny_tokenizer) -> Path:
    torch.manual_seed(0)
    directory = tmp_path / "backbone"
    BertModel(tiny_bert_config(num_hidden_layers=4)).save_pretrained(directory)
    tiny_tokenizer.save_pretrained(directory)
    return directory


def sentences(count: int, seed: int) -> list[tuple[str, str]]:
    """Texts whose label is whether `good`/`great` outnumber `bad`/`dull`: learnable by a tiny model."""
    generator = torch.Generator().manual_seed(seed)
    words = [word for word in TINY_WORDS if word.isalpha()]
    rows = []
    for _ in range(count):
        chosen = [words[i] for i in torch.randint(len(words), (6,), generator=generator)]
        score = sum(word in ("good", "great") for word in chosen) - sum(word in ("bad", "dull") for word in chosen)
        rows.append((" ".join(chosen).capitalize(), "positive" if score > 0 else "negative"))
    return rows


def assert_card_is_real(path: Path, results: dict) -> str:
    """The card holds the run's numbers, no template placeholder, and metadata huggingface_hub parses."""
    text = path.read_text()
    for leftover in ("{{", "}}", "None", "nan", "TODO"):
        assert leftover not in text, leftover
    student = results["models"]["student (distilled)"]
    for number in (f"{100 * student['test']['accuracy']:.1f}", f"{student['throughput']:.1f}", student["shape"]):
        assert number in text, number
    card = ModelCard.load(path)
    metadata = card.data.to_dict()
    assert {"tinybert", "knowledge-distillation"} <= set(metadata["tags"])
    assert metadata["library_name"] == "transformers" and metadata["pipeline_tag"] == "text-classification"
    _, evaluations = model_index_to_eval_results(metadata["model-index"])  # raises on malformed model-index
    train_file = results["settings"].get("train_file")
    if train_file:  # the card names the files used, never the embedded default it was not distilled on
        assert "rotten_tomatoes" not in text
        assert {e.dataset_name for e in evaluations} == {f"{Path(train_file).name} (local files)"}
    assert {e.metric_type: e.metric_value for e in evaluations} == {
        "accuracy": round(student["test"]["accuracy"], 4),
        "f1": round(student["test"]["f1"], 4),
    }
    return text


def test_distill_runs_the_recipe_pushes_and_resumes_finished_steps(tmp_path, backbone, hub_servers):
    for split, count in (("train", 96), ("dev", 32), ("test", 32)):
        lines = ["sentence,sentiment"] + [f"{text},{label}" for text, label in sentences(count, seed=len(split))]
        (tmp_path / f"{split}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = tmp_path / "out"
    arguments = [
        "distill", "--teacher_backbone", str(backbone), "--output_dir", str(output),
        "--train_file", str(tmp_path / "train.csv"), "--validation_file", str(tmp_path / "dev.csv"),
        "--test_file", str(tmp_path / "test.csv"), "--text_column", "sentence", "--label_column", "sentiment",
        "--max_length", "16", "--teacher_epochs", "2", "--intermediate_epochs", "1", "--prediction_epochs", "2",
        "--student_init", "layer-subset", "--student_layers", "2",
        "--augment", "true", "--num_augmentations", "2", "--batch_size", "16", "--learning_rate", "1e-3",
        "--teacher_learning_rate", "1e-3", "--speed_batch_size", "4", "--speed_seq_length", "16", "--baseline", "true",
    ]  # fmt: skip
    repo_id = "tinybert-test/recipe-student"
    hub_options = ["--push_to_hub", "--hub_model_id", repo_id, "--hub_strategy", "every_save"]
    first = run([*arguments, *hub_options], hub=hub_servers.upload_endpoint)
    assert "student (distilled)" in first.stdout and "student (fine-tuned, no teacher)" in first.stdout
    # it ends with where everything is, and says nothing a user need not act on
    student_dir, int8_dir = output / "student", output / "student-int8"
    assert first.stdout.rstrip().splitlines()[-5:] == [
        f"Saved in {output}:",
        f"  student       {student_dir}  (`import tinybert_hf`, then "
        f'`AutoModelForSequenceClassification.from_pretrained("{student_dir}")` or `pipeline`; without the package, '
        "pass `trust_remote_code=True`; its model card is README.md there)",
        f'  int8 student  {int8_dir}  (`tinybert_hf.onnx.modeling_onnx.onnx_pipeline("{int8_dir}")`)',
        f"  results       {output / 'results.json'} (every figure and setting), {output / 'results.png'} (the chart)",
        f"  pushed to     the Hub repository {repo_id}",
    ]
    noises = (
        "pin_memory",
        "LOAD REPORT",
        "MISSING",
        "not sharded",
        "torchvision",
        "[torch.onnx]",
        "LeafSpec",
        "axis name",
    )
    for noise in noises:
        assert noise not in first.stdout + first.stderr, noise
    assert TOKEN not in first.stdout + first.stderr
    results = json.loads((output / "results.json").read_text())
    assert results["splits"] == {"train": 96, "validation": 32, "test": 32}
    assert results["augmentation"]["rows"] > 96 and results["labels"] == ["negative", "positive"]
    student = results["models"]["student (distilled)"]
    assert student["shape"] == "2x32" and 0.0 <= student["test"]["accuracy"] <= 1.0
    assert (output / "results.png").stat().st_size > 10_000
    for step in ("teacher", "student_intermediate", "student", "baseline"):
        assert (output / step / "stage_done.json").is_file(), step
    shipped = {path.name for path in (output / "student").iterdir()}
    assert {"model.safetensors", "config.json", "modeling_tinybert.py", "tokenizer.json"} <= shipped
    assert not shipped & {"checkpoints", "training_args.bin", "pytorch_model.bin"}, shipped
    assert {"README.md", "tinybert_results.json"} <= shipped  # the card, and what it was rendered from
    card = assert_card_is_real(output / "student" / "README.md", results)
    assert f'from_pretrained("{repo_id}")' in card

    # Pushed: stage 2's epochs by Trainer's own Hub arguments as they were saved, then the finished student with
    # its card, which olah serves back with identical outputs.
    repository = hub_servers.upload.repository(repo_id)
    history = subprocess.run(["git", "log", "--format=%s"], cwd=repository, capture_output=True, text=True).stdout
    assert "Training in progress, epoch 1" in history and history.startswith("Upload TinyBERT student"), history
    assert (repository / "README.md").read_text() == card
    assert (repository / "model.safetensors").read_bytes() == (output / "student" / "model.safetensors").read_bytes()
    assert not (repository / "training_args.bin").exists()
    for path in repository.rglob("*"):
        assert not path.is_file() or TOKEN.encode() not in path.read_bytes(), path
    loaded = subprocess.run(
        [sys.executable, "-c", PRINT_LOGITS, repo_id],
        env={**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub_servers.download_endpoint,
             "HF_HOME": str(tmp_path / "hf-home"), "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    local = subprocess.run([sys.executable, "-c", PRINT_LOGITS, str(output / "student")], env=offline_env(),
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert loaded.stdout == local.stdout and "logits" in local.stdout
    # Pushing the same student elsewhere renders the card for that repository, unless the user edited the card.
    cards = {op.path_in_repo: op.path_or_fileobj for op in student_files(output / "student", "other-org/copy")}
    assert b'from_pretrained("other-org/copy")' in cards["README.md"]
    (output / "student" / "README.md").write_text(card + "\nEdited by hand.\n")
    cards = {op.path_in_repo: op.path_or_fileobj for op in student_files(output / "student", "other-org/copy")}
    assert Path(cards["README.md"]) == output / "student" / "README.md"  # pushed as edited

    model = AutoModelForSequenceClassification.from_pretrained(output / "student")
    assert type(model).__name__ == "TinyBertForSequenceClassification" and model.config.id2label[1] == "positive"
    classify = pipeline("text-classification", model=str(output / "student"))
    assert classify("Good great film")[0]["label"] in ("negative", "positive")

    weights = (output / "student" / "model.safetensors").stat().st_mtime
    second = run(arguments)  # every step is done: nothing is trained again
    assert (output / "student" / "model.safetensors").stat().st_mtime == weights
    assert "student (distilled)" in second.stdout
    # the rerun re-measured speed, but the card the user edited is kept; `card` renders the new numbers on request
    assert (output / "student" / "README.md").read_text() == card + "\nEdited by hand.\n"
    assert "Keeping the edited" in second.stderr
    (output / "student" / "README.md").unlink()
    run(["card", "--model", str(output / "student")])
    assert_card_is_real(output / "student" / "README.md", json.loads((output / "results.json").read_text()))

    # A student pruned from the fine-tuned teacher to a narrower shape, through the same recipe.
    data_options = arguments[arguments.index("--train_file") : arguments.index("--max_length") + 2]
    pruned_run = tmp_path / "pruned_teacher"
    run(["task-distill", "--teacher", str(output / "teacher"), "--output_dir", str(pruned_run), *data_options,
         "--student_init", "pruned-teacher", "--student_layers", "2", "--student_hidden_size", "24",
         "--student_attention_heads", "4", "--student_intermediate_size", "20", "--calibration_samples", "32",
         "--intermediate_epochs", "1", "--prediction_epochs", "1", "--augment", "false", "--batch_size", "16",
         "--speed_batch_size", "2", "--speed_seq_length", "8"])  # fmt: skip
    pruned_student = AutoModelForSequenceClassification.from_pretrained(pruned_run / "student")
    assert (pruned_student.config.hidden_size, pruned_student.config.head_size) == (24, 6)
    assert json.loads((pruned_run / "results.json").read_text())["settings"]["student_init"] == "pruned-teacher"

    # Compressing the distilled student: half the heads and neurons, then recovery distillation from the teacher.
    compressed = tmp_path / "compressed"
    pruning = run(["prune", "--model", str(output / "student"), "--output_dir", str(compressed), *data_options,
                   "--head_ratio", "0.5", "--ffn_ratio", "0.5", "--recovery_epochs", "1", "--teacher",
                   str(output / "teacher"), "--batch_size", "16"])  # fmt: skip
    assert "recovered" in pruning.stdout
    record = json.loads((compressed / "pruning.json").read_text())
    assert record["plan"]["heads_per_layer"] == [2, 2] and record["plan"]["intermediate_sizes"] == [18, 18]
    sizes = {name: entry["parameters"] for name, entry in record["models"].items()}
    assert sizes["pruned"] == sizes["recovered"] < sizes["source"]
    for directory in ("pruned", "recovered"):
        reloaded = AutoModelForSequenceClassification.from_pretrained(compressed / directory)
        assert reloaded.config.num_attention_heads == 2 and reloaded.config.intermediate_size == 18
        assert (compressed / directory / "tokenizer.json").is_file() and (
            compressed / directory / "pruning.json"
        ).is_file()

    # Without data options, `prune` and `evaluate` use the data the student's run recorded, never the embedded
    # default; every setting that changes a pruning result is in pruning.json.
    subset = tmp_path / "subset"
    pruning = run(["prune", "--model", str(output / "student"), "--output_dir", str(subset), "--head_ratio", "0.5",
                   "--max_train_samples", "40", "--calibration_samples", "16"])  # fmt: skip
    recorded_files = f"--train_file {tmp_path / 'train.csv'}, --validation_file {tmp_path / 'dev.csv'}, --test_file "
    assert f"Data: the data {output / 'student'}'s run recorded ({recorded_files}" in pruning.stderr
    record = json.loads((subset / "pruning.json").read_text())
    assert record["settings"]["max_train_samples"] == 40 and record["settings"]["calibration_samples"] == 16
    assert record["data"]["train_file"] == str(tmp_path / "train.csv") and record["data"]["text_column"] == "sentence"
    recorded = scores_of(run(["evaluate", "--model", str(output / "student")]))
    assert recorded["test"]["accuracy"] == student["test"]["accuracy"]
    assert recorded["data"].startswith(f"the data {output / 'student'}'s run recorded")
    evaluate_test = ["evaluate", "--model", str(output / "student"), "--test_file", str(tmp_path / "test.csv")]
    test_only = scores_of(run([*evaluate_test, "--text_column", "sentence", "--label_column", "sentiment"]))
    assert set(test_only) == {"data", "test"} and test_only["test"]["accuracy"] == student["test"]["accuracy"]
    pruned_scores = scores_of(run(["evaluate", "--model", str(subset / "pruned")]))
    assert pruned_scores["test"]["accuracy"] == record["models"]["pruned"]["test"]["accuracy"]
    (tmp_path / "three.csv").write_text("sentence,sentiment\ngood,positive\nbad,negative\nso so,neutral\n")
    refused = subprocess.run(
        [*cli(), "evaluate", "--model", str(output / "student"), "--test_file", str(tmp_path / "three.csv"),
         "--text_column", "sentence", "--label_column", "sentiment"],
        env=offline_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "data has labels the model does not predict: ['neutral']" in refused.stderr.strip().splitlines()[-1]


def test_token_classification_and_evaluate(tmp_path, backbone):
    generator = torch.Generator().manual_seed(0)
    words = [word for word in TINY_WORDS if word.isalpha()]
    rows = []
    for _ in range(48):
        tokens = [words[i] for i in torch.randint(len(words), (5,), generator=generator)]
        tags = ["B-city" if token in ("paris", "york") else "O" for token in tokens]
        rows.append(json.dumps({"words": tokens, "tags": tags}))
    (tmp_path / "ner.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    output = tmp_path / "ner"
    common = [
        "--task", "token-classification", "--train_file", str(tmp_path / "ner.jsonl"), "--text_column", "words",
        "--label_column", "tags", "--max_length", "16",
    ]  # fmt: skip
    run(["distill", "--teacher_backbone", str(backbone), "--output_dir", str(output), *common,
         "--teacher_epochs", "1", "--intermediate_epochs", "1", "--prediction_epochs", "1",
         "--student_init", "layer-subset", "--student_layers", "2",
         "--baseline", "false", "--speed_batch_size", "2", "--speed_seq_length", "8"])  # fmt: skip
    results = json.loads((output / "results.json").read_text())
    assert set(results["models"]) == {"teacher", "student (distilled)", "student (int8 ONNX)"}
    assert "f1" in results["models"]["student (distilled)"]["test"]
    model = AutoModelForTokenClassification.from_pretrained(output / "student").eval()
    assert model.config.id2label == {0: "B-city", 1: "O"}
    int8 = results["models"]["student (int8 ONNX)"]
    assert int8["parameters"] == results["models"]["student (distilled)"]["parameters"] and "f1" in int8["test"]
    # the int8 tagger serves through a transformers pipeline, one tag per token as the PyTorch student gives
    tagger = onnx_pipeline(output / "student-int8")
    tagged = tagger("paris good york film", ignore_labels=[])
    assert {entry["entity"] for entry in tagged} <= {"B-city", "O"}
    assert [entry["word"] for entry in tagged] == ["paris", "good", "york", "film"]

    evaluated = run(["evaluate", "--model", str(output / "student"), *common])
    scores = json.loads(evaluated.stdout[evaluated.stdout.index("{") :])
    assert scores["test"]["f1"] == results["models"]["student (distilled)"]["test"]["f1"]


def test_transfer_text_recovery_and_heldout_sets(tmp_path, backbone):
    """Stage 2 (and stage 1) also learn the teacher on unlabelled text, recovery runs on it first, and extra
    labelled files are scored for every model (int8 too) without ever being trained on."""
    for split, count in (("train", 64), ("dev", 24), ("test", 24)):
        lines = ["sentence,sentiment"] + [f"{text},{label}" for text, label in sentences(count, seed=len(split))]
        (tmp_path / f"{split}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    held = ["sentence,sentiment"] + [f"{text},{label[:3]}" for text, label in sentences(20, seed=7)]
    (tmp_path / "held.csv").write_text("\n".join(held) + "\n", encoding="utf-8")
    (tmp_path / "unlabelled.txt").write_text(
        "\n".join(f"{text}. {text[::-1]}" for text, _ in sentences(30, seed=9)) + "\n", encoding="utf-8"
    )
    output = tmp_path / "out"
    arguments = [
        "distill", "--teacher_backbone", str(backbone), "--output_dir", str(output),
        "--train_file", str(tmp_path / "train.csv"), "--validation_file", str(tmp_path / "dev.csv"),
        "--test_file", str(tmp_path / "test.csv"), "--text_column", "sentence", "--label_column", "sentiment",
        "--max_length", "16", "--teacher_epochs", "1", "--intermediate_epochs", "1", "--prediction_epochs", "1",
        "--student_init", "pruned-teacher", "--student_layers", "2", "--student_hidden_size", "24",
        "--student_attention_heads", "4", "--student_intermediate_size", "20", "--calibration_samples", "32",
        "--augment", "false", "--batch_size", "16", "--speed_batch_size", "2", "--speed_seq_length", "8",
        "--transfer_text", str(tmp_path / "unlabelled.txt"), "--transfer_rows", "40", "--transfer_max_length", "24",
        "--transfer_in_intermediate", "true", "--recovery_steps", "2",
    ]  # fmt: skip
    heldout = ["--eval_files", f"held={tmp_path / 'held.csv'}", "--eval_label_map", "pos=positive,neg=negative"]
    first = run([*arguments, *heldout])
    results = json.loads((output / "results.json").read_text())
    assert results["heldout_sets"] == {"held": {"path": str(tmp_path / "held.csv"), "rows": 20}}
    assert set(results["models"]) == {"teacher", "student (distilled)", "student (int8 ONNX)"}
    for name, entry in results["models"].items():
        assert 0.0 <= entry["heldout"]["held"]["accuracy"] <= 1.0 and "f1" in entry["heldout"]["held"], name
    assert "Held-out sets, scored only" in first.stdout and "held (20)" in first.stdout
    assert results["transfer"] == {
        "text": [str(tmp_path / "unlabelled.txt")],
        "rows": 30,
        "rows_asked": 40,
        "in_intermediate": True,
        "recovery_steps": 2,
    }  # the file holds 30 snippets: `rows` is what was used, not what was asked
    assert results["timings"]["recovery_seconds"] > 0
    assert json.loads((output / "student_recovered" / "stage_done.json").read_text())["steps"] == 2
    card = (output / "student" / "README.md").read_text()
    assert "### Off the training distribution" in card and "30 unlabelled snippets of `unlabelled.txt`" in card
    assert f"{100 * results['models']['student (distilled)']['heldout']['held']['accuracy']:.1f}" in card
    caches = sorted(path.name for path in (output / "cache").glob("teacher-logits-*.arrow"))
    assert len(caches) == 3  # training rows, dev rows, transfer rows
    # `evaluate` scores the same eval files, with the same figures
    data_options = arguments[arguments.index("--train_file") : arguments.index("--max_length") + 2]
    evaluated = run(["evaluate", "--model", str(output / "student"), *data_options, *heldout])
    scores = json.loads(evaluated.stdout[evaluated.stdout.index("{") :])
    student = results["models"]["student (distilled)"]
    assert scores["heldout"]["held"]["accuracy"] == student["heldout"]["held"]["accuracy"]

    # Eval files change no model: a rerun with another one reuses every step and every cache.
    weights = (output / "student" / "model.safetensors").stat().st_mtime
    (tmp_path / "held2.csv").write_text("\n".join(held[:11]) + "\n", encoding="utf-8")
    run([*arguments, *heldout[:2], f"second={tmp_path / 'held2.csv'}", *heldout[2:]])
    rerun = json.loads((output / "results.json").read_text())
    assert list(rerun["heldout_sets"]) == ["held", "second"] and rerun["heldout_sets"]["second"]["rows"] == 10
    assert (output / "student" / "model.safetensors").stat().st_mtime == weights
    assert sorted(path.name for path in (output / "cache").glob("teacher-logits-*.arrow")) == caches

    # The transfer file edited since: the same options no longer name the same rows, so the students made from the
    # old rows are not reused (nor recorded as made from the new ones); refused in one line, nothing changed.
    with open(tmp_path / "unlabelled.txt", "a", encoding="utf-8") as unlabelled:
        unlabelled.write("\n".join(f"{text} again" for text, _ in sentences(12, seed=11)) + "\n")
    edited = subprocess.run([*cli(), *arguments], env=offline_env(), capture_output=True, text=True, timeout=300)
    assert edited.returncode == 1 and "Traceback" not in edited.stderr
    assert "made from other rows of the same options: the transfer data changed since" in edited.stderr
    assert "--overwrite_output_dir" in edited.stderr
    assert (output / "student" / "model.safetensors").stat().st_mtime == weights
    assert json.loads((output / "results.json").read_text())["transfer"]["rows"] == 30

    # An eval file whose labels the data lacks fails in one line before any training.
    fresh = tmp_path / "fresh"
    refused = subprocess.run(
        [*cli(), *arguments[:4], str(fresh), *arguments[5:], "--eval_files", f"held={tmp_path / 'held.csv'}"],
        env=offline_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "labels the training data does not have: ['neg', 'pos']" in refused.stderr
    assert "--eval_label_map" in refused.stderr and not fresh.exists()


def test_unknown_command_is_an_error():
    result = subprocess.run([*cli(), "shrink"], capture_output=True, text=True, env={**os.environ,
                            "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"tinybert-hf: unknown command 'shrink'; choose one of {', '.join(COMMANDS)} (`tinybert-hf --help` says "
        "what each does)."
    ]
    typo = subprocess.run([*cli(), "distil"], capture_output=True, text=True, env=offline_env())
    assert typo.returncode == 2 and "unknown command 'distil' (did you mean 'distill'?)" in typo.stderr


def help_of(*arguments: str) -> str:
    result = subprocess.run([*cli(), *arguments, "--help"], capture_output=True, text=True, env=offline_env())
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_help_is_plain_text_and_each_command_lists_only_its_own_options():
    overview = help_of()
    assert overview.startswith("usage: tinybert-hf <command> [options]")
    for leftover in ("```", "[`", "`]"):  # Markdown and doc syntax belong to the docs, not the terminal
        assert leftover not in overview
    for command in COMMANDS:
        assert f"\n  {command} " in overview, command
    distill = help_of("distill")
    assert distill.startswith("usage: tinybert-hf distill [-h]") and "`" not in distill
    for option in ("--num_augmentations", "--push_to_hub", "--int8_per_channel", "--eval_files", "--transfer_rows"):
        assert option in distill, option
    # HfArgumentParser gives --no_<flag> the help of --<flag>; ours says what it does
    assert re.search(r"--no_augment, --no-augment\s+Turn off --augment", distill)
    evaluate = help_of("evaluate")
    assert evaluate.startswith("usage: tinybert-hf evaluate [-h] --model MODEL")
    for option in ("--num_augmentations", "--push_to_hub", "--int8", "--teacher_epochs", "--student_init"):
        assert option not in evaluate, option
    assert "--eval_files" in evaluate and "the data the model's run recorded" in " ".join(evaluate.split())
    prune = help_of("prune")
    assert "skips teacher fine-tuning" not in prune
    assert re.search(r"--teacher TEACHER\s+Teacher of the recovery distillation", prune)
    for option in ("--num_augmentations", "--push_to_hub", "--eval_files", "--baseline"):
        assert option not in prune, option
    assert "Turn off --fuse" in help_of("quantize")


def test_each_command_parses_into_the_arguments_its_steps_take():
    (defaults,) = cli_module._parse("distill", [])
    assert defaults == RecipeArguments()  # the groups together are the recipe's arguments, defaults included
    # `--augment` defaults to None (the recipe picks per task) and still reads as a flag, with its `--no_augment`
    for argv, augment in (([], None), (["--augment"], True), (["--no_augment"], False), (["--augment", "no"], False)):
        assert cli_module._parse("distill", argv)[0].augment is augment, argv
    prune, arguments = cli_module._parse(
        "prune", ["--model", "m", "--head_ratio", "0.5", "--teacher", "t", "--max_train_samples", "40"]
    )
    assert prune.model == "m" and (arguments.teacher, arguments.max_train_samples) == ("t", 40)
    with pytest.raises(BadInputError, match=r"`tinybert-hf evaluate` does not take --num_augmentations;"):
        cli_module._parse("evaluate", ["--model", "m", "--num_augmentations", "3"])
    with pytest.raises(BadInputError, match=r"does not take --max_lenght \(did you mean --max_length\?\)"):
        cli_module._parse("distill", ["--max_lenght", "3"])
    with pytest.raises(BadInputError, match=r"`augment_fraction` must be in \[0, 1\], got 2.0"):
        cli_module._parse("distill", ["--augment_fraction", "2"])
    # a unique prefix is not taken for the option (argparse would run `--teacher_epoch 2` as --teacher_epochs)
    with pytest.raises(BadInputError, match=r"does not take --teacher_epoch \(did you mean --teacher_epochs\?\)"):
        cli_module._parse("distill", ["--teacher_epoch", "2"])
    with pytest.raises(BadInputError, match="Nothing to prune: give `--head_ratio`"):
        cli_module._parse("prune", ["--model", "m"])  # it wrote an unchanged copy and called it pruned
    with pytest.raises(BadInputError, match=r"`head_ratio` must be in \[0, 1\) \(the share removed\), got 1"):
        cli_module._parse("prune", ["--model", "m", "--head_ratio", "1"])
    for option, value, message in (
        ("--batch_size", "0", "`batch_size` must be at least 1, got 0."),
        ("--max_train_samples", "0", "`max_train_samples` must be at least 1, got 0."),
        ("--temperature", "0", "`temperature` must be above 0, got 0."),
        ("--student_hidden_size", "310", "12 heads do not divide `student_hidden_size=310`: choose a head count"),
    ):
        with pytest.raises(BadInputError, match=re.escape(message)):
            cli_module._parse("distill", [option, value])


HELP_IMPORTS = """
import sys
sys.argv = ["tinybert-hf", *sys.argv[1:]]  # as the console script starts
from tinybert_hf.commands.cli import main
try:
    main()
except SystemExit:  # argparse ends a command's --help with SystemExit(0)
    pass
print(sorted(name for name in ("torch", "transformers", "datasets") if name in sys.modules))
"""


@pytest.mark.parametrize("command", [[], ["distill"], ["evaluate"], ["prune"], ["quantize"]])
def test_help_imports_neither_torch_nor_transformers(command):
    # what keeps `--help` well under a second (benchmarks/cli_help.py measures it)
    result = subprocess.run(
        [sys.executable, "-c", HELP_IMPORTS, *command, "--help"], capture_output=True, text=True, env=offline_env()
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage: tinybert-hf" in result.stdout and result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["distill", "--pruning_importance", "tayler"], "invalid choice: 'tayler' (choose from 'taylor', "),
        (["distill", "--max_length", "long"], "argument --max_length/--max-length: invalid int value: 'long'"),
        (["evaluate"], "the following arguments are required: --model"),
    ],
)
def test_an_option_argparse_refuses_is_one_line(arguments, message):
    result = subprocess.run([*cli(), *arguments], capture_output=True, text=True, env=offline_env())
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"tinybert-hf {arguments[0]}: ") and message in result.stderr
    assert result.stderr.strip().endswith(f"`tinybert-hf {arguments[0]} --help` lists the options.")
