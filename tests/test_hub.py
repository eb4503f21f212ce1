"""Push -> serve -> load on loopback: the real huggingface_hub client uploads to tests/hub_upload_server.py, olah
serves the committed repository, and fresh processes load it with the package, with `trust_remote_code` alone, and
as a pipeline; failed uploads and token hygiene."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoTokenizer

from tinybert_hf import TinyBertForSequenceClassification
from tinybert_hf.errors import PushError
from tinybert_hf.hub.push import push_student, student_files

from .conftest import free_port, tiny_config
from .hub_servers import TOKEN
from .test_cli import cli

ROOT = Path(__file__).resolve().parent.parent
TEXTS = ["good film", "the plot is dull", "a great cast in paris", "bad"]
CARD = "---\nlibrary_name: transformers\ntags:\n- tinybert\n---\n\n# A tiny test student\n"

LOAD_SCRIPT = textwrap.dedent(
    """
    import sys
    way, repo, expected_file = sys.argv[1:4]
    if way == "package":
        import tinybert_hf  # noqa: F401  (registers model_type "tinybert" with the Auto classes)
    else:
        sys.modules["tinybert_hf"] = None  # any `import tinybert_hf` fails: only the repository's code can load it
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    expected = torch.load(expected_file)
    remote = {"trust_remote_code": True} if way != "package" else {}
    if way == "pipeline":
        classify = pipeline("text-classification", model=repo, top_k=None, **remote)
        scores = torch.tensor([[item["score"] for item in sorted(row, key=lambda item: item["label"])]
                               for row in classify(expected["texts"])])
        torch.testing.assert_close(scores, expected["logits"].softmax(-1), rtol=0, atol=1e-6)
        model = classify.model
    else:
        model = AutoModelForSequenceClassification.from_pretrained(repo, **remote).eval()
        tokenizer = AutoTokenizer.from_pretrained(repo)
        with torch.no_grad():
            logits = model(**tokenizer(expected["texts"], padding=True, return_tensors="pt")).logits
        torch.testing.assert_close(logits, expected["logits"], rtol=0, atol=0)
    print("LOADED", way, type(model).__module__, type(model).__name__)
    """
)


def tree_digest(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(autouse=True)
def loopback_only(hub_servers, monkeypatch):
    """In this process too, every request huggingface_hub makes on its own (e.g. its user-agent registry) goes to
    the loopback server instead of huggingface.co."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub_servers.upload_endpoint)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # CI runs offline, loopback is fine


@pytest.fixture
def student_dir(tmp_path, tiny_tokenizer) -> Path:
    """A saved tiny student with its tokenizer and card, plus files a push must leave behind (pickles, checkpoints)."""
    torch.manual_seed(0)
    config = tiny_config(vocab_size=len(tiny_tokenizer), num_labels=2, id2label={0: "negative", 1: "positive"})
    directory = tmp_path / "student"
    TinyBertForSequenceClassification(config).save_pretrained(directory)
    tiny_tokenizer.save_pretrained(directory)
    (directory / "README.md").write_text(CARD)
    (directory / "training_args.bin").write_bytes(b"pickle")
    (directory / "checkpoint-10").mkdir()
    (directory / "checkpoint-10" / "model.safetensors").write_bytes(b"old")
    return directory


def local_logits(directory: Path) -> torch.Tensor:
    model = TinyBertForSequenceClassification.from_pretrained(directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    with torch.no_grad():
        return model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits


def load_from_olah(way: str, repo_id: str, endpoint: str, tmp_path: Path) -> subprocess.CompletedProcess:
    expected = tmp_path / "expected.pt"
    script = tmp_path / "load_from_hub.py"
    script.write_text(LOAD_SCRIPT)
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_") and key != "PYTHONPATH"}
    if way == "package":
        env["PYTHONPATH"] = str(ROOT)
    # a fresh cache per load: every file comes from olah, nothing from an earlier load
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / f"hf-home-{way}"), TOKENIZERS_PARALLELISM="false")
    result = subprocess.run(
        [sys.executable, str(script), way, repo_id, str(expected)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def committed_files(hub_servers, repo_id: str) -> dict[str, bytes]:
    repository = hub_servers.upload.repository(repo_id)
    names = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", "HEAD"], cwd=repository, capture_output=True, text=True, check=True
    ).stdout.split()
    return {name: (repository / name).read_bytes() for name in names}


def test_pushed_student_is_served_by_olah_and_loads_three_ways(hub_servers, student_dir, tmp_path, caplog):
    before = tree_digest(student_dir)
    torch.save({"texts": TEXTS, "logits": local_logits(student_dir)}, tmp_path / "expected.pt")
    repo_id = "tinybert-test/round-trip"
    with caplog.at_level(logging.DEBUG):
        info = push_student(student_dir, repo_id, token=TOKEN, endpoint=hub_servers.upload_endpoint)
    assert info.oid and info.commit_url.endswith(info.oid)
    assert tree_digest(student_dir) == before  # the local student is only read

    files = committed_files(hub_servers, repo_id)
    expected = {".gitattributes", "README.md", "config.json", "model.safetensors", "configuration_tinybert.py",
                "modeling_tinybert.py", "tokenizer_config.json", "tokenizer.json"}  # fmt: skip
    assert expected <= set(files), set(files)
    assert not {name for name in files if name.endswith(".bin") or name.startswith("checkpoint")}, set(files)
    assert files["model.safetensors"] == (student_dir / "model.safetensors").read_bytes()
    assert files["README.md"] == CARD.encode()  # no run record: the directory's own card goes up as it is
    assert (
        b'"AutoModelForSequenceClassification": "modeling_tinybert.TinyBertForSequenceClassification"'
        in (files["config.json"])
    )
    for content in files.values():
        assert TOKEN.encode() not in content
    assert TOKEN not in caplog.text
    assert set(hub_servers.upload.authorizations) == {f"Bearer {TOKEN}"}

    for way, module in (("package", "tinybert_hf"), ("remote-code", "transformers_modules"),
                        ("pipeline", "transformers_modules")):  # fmt: skip
        result = load_from_olah(way, repo_id, hub_servers.download_endpoint, tmp_path)
        assert f"LOADED {way} {module}" in result.stdout, result.stdout
        assert "TinyBertForSequenceClassification" in result.stdout


def test_cli_push_takes_the_token_from_the_environment_and_never_shows_it(hub_servers, student_dir):
    env = {**os.environ, "HF_ENDPOINT": hub_servers.upload_endpoint, "HF_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    env["HF_HUB_OFFLINE"] = "0"  # the loopback server only
    result = subprocess.run(
        [*cli(), "push", "--model", str(student_dir), "--repo_id", "tinybert-test/from-cli"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pushed" in result.stdout and "tinybert-test/from-cli/commit/" in result.stdout
    assert TOKEN not in result.stdout + result.stderr
    assert "model.safetensors" in committed_files(hub_servers, "tinybert-test/from-cli")


@pytest.mark.parametrize("fault", ["server down", "error mid-commit", "wrong token"])
def test_failed_push_is_a_clear_error_and_leaves_the_student_intact(hub_servers, student_dir, fault):
    before = tree_digest(student_dir)
    endpoint, token = hub_servers.upload_endpoint, TOKEN
    if fault == "server down":
        endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    elif fault == "wrong token":
        token = "hf_wrongTOKEN000000000000000000000000"
    hub_servers.upload.fail_commits = fault == "error mid-commit"
    try:
        with pytest.raises(PushError) as raised:
            push_student(student_dir, "tinybert-test/failing", token=token, endpoint=endpoint)
    finally:
        hub_servers.upload.fail_commits = False
    message = str(raised.value)
    assert "tinybert-test/failing" in message and endpoint in message and "the local student is unchanged" in message
    expected_reason = {"server down": "ConnectError", "error mid-commit": "500", "wrong token": "401"}[fault]
    assert expected_reason in message, message
    assert TOKEN not in message and token not in message
    assert tree_digest(student_dir) == before


def test_cli_failed_push_exits_with_the_reason_and_no_token(hub_servers, student_dir):
    hub_servers.upload.fail_commits = True
    try:
        env = {**os.environ, "HF_ENDPOINT": hub_servers.upload_endpoint, "HF_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
        env["HF_HUB_OFFLINE"] = "0"  # the loopback server only
        result = subprocess.run(
            [*cli(), "push", "--model", str(student_dir), "--repo_id", "tinybert-test/cli-failing"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        hub_servers.upload.fail_commits = False
    assert result.returncode == 1
    assert "Could not push" in result.stderr and "500" in result.stderr and "Traceback" not in result.stderr
    assert TOKEN not in result.stdout + result.stderr


def test_directories_missing_what_a_pushed_model_needs_are_refused_before_any_request(student_dir):
    (student_dir / "README.md").unlink()
    with pytest.raises(FileNotFoundError, match="no model card"):
        student_files(student_dir, "org/name")
    (student_dir / "README.md").write_text(CARD)
    (student_dir / "model.safetensors").rename(student_dir / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="only pickle weights found"):
        student_files(student_dir, "org/name")
    with pytest.raises(FileNotFoundError, match="No student directory"):
        student_files(student_dir / "missing", "org/name")


def test_missing_code_files_and_auto_map_are_added_from_the_package(student_dir):
    for name in ("modeling_tinybert.py", "configuration_tinybert.py"):
        (student_dir / name).unlink()
    config = (student_dir / "config.json").read_text()
    (student_dir / "config.json").write_text(config.replace('"auto_map"', '"old_auto_map"'))
    operations = {operation.path_in_repo: operation for operation in student_files(student_dir, "org/name")}
    code = ROOT / "tinybert_hf" / "models" / "tinybert"  # the package's own copy of the shipped code
    for name in ("modeling_tinybert.py", "configuration_tinybert.py"):
        assert Path(operations[name].path_or_fileobj) == code / name
    pushed_config = operations["config.json"].path_or_fileobj.decode()
    assert '"AutoModel": "modeling_tinybert.TinyBertModel"' in pushed_config


def test_trainer_hub_arguments_push_checkpoints_and_the_model_with_a_tagged_card(hub_servers, tmp_path):
    """DistillationTrainer with Trainer's own `push_to_hub` / `hub_model_id` / `hub_strategy`, in a subprocess."""
    repo_id = "tinybert-test/trainer-push"
    env = {**os.environ, "HF_ENDPOINT": hub_servers.upload_endpoint, "HF_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    env["HF_HUB_OFFLINE"] = "0"  # the loopback server only
    output = tmp_path / "run.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "distributed_distillation.py"), "--output", str(output),
         "--per_device_train_batch_size", "16", "--hub_model_id", repo_id],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert TOKEN not in result.stdout + result.stderr
    repository = hub_servers.upload.repository(repo_id)
    history = subprocess.run(["git", "log", "--format=%s"], cwd=repository, capture_output=True, text=True).stdout
    assert "Training in progress, step 1" in history, history
    files = committed_files(hub_servers, repo_id)
    assert {"model.safetensors", "config.json", "modeling_tinybert.py", "README.md"} <= set(files)
    card = ModelCard(files["README.md"].decode())
    assert {"tinybert", "knowledge-distillation"} <= set(card.data.tags)


def test_recipe_push_to_hub_with_a_refused_token_fails_before_any_training(hub_servers, tmp_path):
    env = {**os.environ, "HF_ENDPOINT": hub_servers.upload_endpoint, "HF_TOKEN": "hf_refused000000000000000000000000"}
    env.update(PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="0")
    result = subprocess.run(
        [*cli(), "distill", "--output_dir", str(tmp_path / "out"), "--push_to_hub", "--hub_model_id", "org/student"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "Could not create the Hub repository 'org/student'" in result.stderr and "401" in result.stderr
    assert "hf_refused" not in result.stderr
    assert not (tmp_path / "out" / "teacher").exists()
