"""Shared fixtures: tiny configs and a tiny WordPiece tokenizer built in code, and the real packaged teacher."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap

import pytest
import torch
from transformers import BertConfig, BertTokenizer

from tinybert_hf import TinyBertConfig
from tinybert_hf.data.packaged import packaged_teacher_path

TINY_WORDS = ["good", "bad", "film", "plot", "great", "dull", "cast", "new", "york", "paris", "##s", "the", "a"]
TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_WORDS]


def pytest_configure(config):
    """Every subprocess of the session builds torch C++ extensions (DeepSpeed's CPU shared-memory op, built on first
    use) into a directory of its own. In the shared `~/.cache/torch_extensions`, a build killed half-way leaves its
    lock file behind, and every later build waits on that lock forever: the DeepSpeed tests then hang until their
    timeout, in every later run on the machine."""
    if "TORCH_EXTENSIONS_DIR" not in os.environ:
        os.environ["TORCH_EXTENSIONS_DIR"] = tempfile.mkdtemp(prefix="tinybert-hf-tests-torch-extensions-")


def run_process_tree(command: list[str], timeout: float, **options) -> subprocess.CompletedProcess:
    """`subprocess.run(command, capture_output=True, text=True)`, in a session of its own that is killed whole on a
    timeout: a launcher's workers (`accelerate launch`, `torchrun`, mpirun) would otherwise outlive it, spinning
    in a collective and slowing every later test."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **options
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise subprocess.TimeoutExpired(command, timeout, output=stdout, stderr=stderr) from None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def free_port() -> int:
    """A loopback port nothing listens on (for servers and process groups the tests start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# transformers-test-sized shapes (vocab 99, hidden 32, 4 heads), no dropout: outputs are deterministic
TINY_SHAPE = dict(
    vocab_size=99,
    hidden_size=32,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)


def tiny_config(**overrides) -> TinyBertConfig:
    """A tiny TinyBERT student config: 2 layers of `TINY_SHAPE`."""
    return TinyBertConfig(**{**TINY_SHAPE, "num_hidden_layers": 2, **overrides})


def tiny_bert_config(**overrides) -> BertConfig:
    """A tiny BERT teacher config: 4 layers of `TINY_SHAPE`."""
    return BertConfig(**{**TINY_SHAPE, "num_hidden_layers": 4, **overrides})


def random_batch(batch_size: int = 3, seq_length: int = 7, vocab_size: int = 99, seed: int = 0) -> dict:
    """input_ids and an attention mask whose rows have different amounts of padding."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab_size, (batch_size, seq_length), generator=generator)
    attention_mask = torch.ones(batch_size, seq_length, dtype=torch.long)
    for row in range(1, batch_size):
        attention_mask[row, seq_length - 2 * row :] = 0
    input_ids = input_ids.masked_fill(attention_mask == 0, 0)
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def tiny_tokenizer_in(directory) -> BertTokenizer:
    """The tiny WordPiece tokenizer of `TINY_VOCAB`, its vocabulary file written into `directory`."""
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    # transformers 5 reads `vocab=`; `vocab_file=` is silently ignored and leaves only the special tokens
    tokenizer = BertTokenizer(vocab=str(vocab_file), do_lower_case=True)
    assert len(tokenizer) == len(TINY_VOCAB)
    return tokenizer


@pytest.fixture
def tiny_tokenizer(tmp_path) -> BertTokenizer:
    return tiny_tokenizer_in(tmp_path)


@pytest.fixture(scope="session")
def teacher_dir():
    """The packaged MiniLM teacher; CI installs it, so there it is a failure to be missing, not a skip."""
    try:
        return packaged_teacher_path()
    except FileNotFoundError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def hub_servers(tmp_path_factory):
    """The upload server and olah on loopback, sharing one mirror tree (see tests/hub_servers.py)."""
    from .hub_servers import TOKEN, HubServers, OlahFront, start_olah
    from .hub_upload_server import HubUploadServer

    workdir = tmp_path_factory.mktemp("hub")
    mirrors = workdir / "mirrors"
    mirrors.mkdir()
    upload = HubUploadServer(mirrors, TOKEN).start()
    olah, endpoint = start_olah(mirrors, workdir)
    front = OlahFront(endpoint, mirrors).start()
    yield HubServers(upload, front.endpoint, mirrors)
    front.shutdown()
    olah.terminate()
    olah.wait(timeout=30)
    upload.stop()


REMOTE_CODE_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["tinybert_hf"] = None  # any `import tinybert_hf` now fails: the package is off the path
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification, pipeline

    model_dir, batch_file = sys.argv[1], sys.argv[2]
    try:
        import tinybert_hf  # noqa: F401
        raise SystemExit("tinybert_hf is still importable")
    except ImportError:
        pass
    batch = torch.load(batch_file)
    classifier = AutoModelForSequenceClassification.from_pretrained(model_dir, trust_remote_code=True).eval()
    encoder = AutoModel.from_pretrained(model_dir, trust_remote_code=True).eval()
    assert type(classifier).__module__.startswith("transformers_modules"), type(classifier).__module__
    with torch.no_grad():
        logits = classifier(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        hidden = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    torch.testing.assert_close(logits, batch["logits"], rtol=0, atol=0)
    torch.testing.assert_close(hidden, batch["hidden"], rtol=0, atol=0)
    scores = pipeline("text-classification", model=model_dir, trust_remote_code=True, top_k=None)(["good film"])[0]
    assert abs(sum(item["score"] for item in scores) - 1.0) < 1e-5, scores
    print("REMOTE-CODE-OK", type(classifier).__name__)
    """
)


def load_without_the_package(model, model_dir, tmp_path) -> str:
    """Load the student saved in `model_dir` with `trust_remote_code=True` in a fresh process where `tinybert_hf`
    cannot be imported, check its logits and hidden states against `model`'s on a fixed batch, exactly, and run a
    pipeline on it; returns the process's output (`REMOTE-CODE-OK <class>` when everything held)."""
    batch = random_batch()
    with torch.no_grad():
        batch["logits"] = model(**batch).logits
        batch["hidden"] = model.bert(**random_batch()).last_hidden_state
    torch.save(batch, tmp_path / "batch.pt")
    script = tmp_path / "load_remote.py"
    script.write_text(REMOTE_CODE_SCRIPT)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run(
        [sys.executable, str(script), str(model_dir), str(tmp_path / "batch.pt")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
