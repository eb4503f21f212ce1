"""Shared fixtures: tiny configs and a tiny WordPiece tokenizer built in code, and the real packaged teacher."""

from __future__ import annotations

import os
import socket

import pytest
import torch
from transformers import BertConfig, BertTokenizer

from tinybert_hf import TinyBertConfig
from tinybert_hf.data.packaged import packaged_teacher_path

TINY_WORDS = ["good", "bad", "film", "plot", "great", "dull", "cast", "new", "york", "paris", "##s", "the", "a"]
TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_WORDS]


def free_port() -> int:
    """A loopback port nothing listens on (for servers and process groups the tests start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tiny_config(**overrides) -> TinyBertConfig:
    """transformers-test-sized TinyBERT config: vocab 99, hidden 32, 2 layers, 4 heads."""
    values = dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    values.update(overrides)
    return TinyBertConfig(**values)


def tiny_bert_config(**overrides) -> BertConfig:
    values = dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    values.update(overrides)
    return BertConfig(**values)


def random_batch(batch_size: int = 3, seq_length: int = 7, vocab_size: int = 99, seed: int = 0) -> dict:
    """input_ids and an attention mask whose rows have different amounts of padding."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab_size, (batch_size, seq_length), generator=generator)
    attention_mask = torch.ones(batch_size, seq_length, dtype=torch.long)
    for row in range(1, batch_size):
        attention_mask[row, seq_length - 2 * row :] = 0
    input_ids = input_ids.masked_fill(attention_mask == 0, 0)
    return {"input_ids": input_ids, "attention_mask": attention_mask}


@pytest.fixture
def tiny_tokenizer(tmp_path) -> BertTokenizer:
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    # transformers 5 reads `vocab=`; `vocab_file=` is silently ignored and leaves only the special tokens
    tokenizer = BertTokenizer(vocab=str(vocab_file), do_lower_case=True)
    assert len(tokenizer) == len(TINY_VOCAB)
    return tokenizer


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
    from .hub_server import HubUploadServer
    from .hub_servers import TOKEN, HubServers, OlahFront, start_olah

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
