"""Outputs appear whole or not at all: an error or a SIGKILL while saving leaves the previous version loadable."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers.modeling_utils
from transformers import AutoModelForSequenceClassification

from tinybert_hf import TinyBertForSequenceClassification
from tinybert_hf.utils.atomic import atomic_directory, is_complete_checkpoint, last_complete_checkpoint, write_text

from .conftest import tiny_config
from .test_cli import offline_env

SAVE_THEN_HANG = """
import sys, time, torch, tinybert_hf
from tinybert_hf import TinyBertForSequenceClassification, TinyBertConfig
from tinybert_hf.utils.atomic import atomic_directory
torch.manual_seed(1)
model = TinyBertForSequenceClassification(TinyBertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
    num_attention_heads=4, intermediate_size=37, max_position_embeddings=64, num_labels=2))
with atomic_directory(sys.argv[1]) as staging:
    model.save_pretrained(staging)
    # half of a second file: the crash comes while the directory is still being assembled
    (staging / "tokenizer.json").write_text('{"version": ')
    print("PAUSED", flush=True)
    time.sleep(600)
"""


def saved_model(directory) -> TinyBertForSequenceClassification:
    torch.manual_seed(0)
    model = TinyBertForSequenceClassification(tiny_config(num_labels=2))
    model.save_pretrained(directory)
    return model


def test_a_full_disk_while_saving_keeps_the_previous_version(tmp_path, monkeypatch):
    target = tmp_path / "student"
    previous = saved_model(target)

    def disk_full(tensors, filename, metadata=None):  # half the file written, then ENOSPC
        Path(filename).write_bytes(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", disk_full)
    with pytest.raises(OSError, match="No space left"), atomic_directory(target) as staging:
        TinyBertForSequenceClassification(tiny_config(num_labels=2)).save_pretrained(staging)
    loaded = AutoModelForSequenceClassification.from_pretrained(target)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in previous.state_dict().items())
    assert sorted(path.name for path in tmp_path.iterdir()) == ["student"]


def test_a_sigkill_while_saving_leaves_nothing_half_written(tmp_path):
    target = tmp_path / "student"
    for existed in (False, True):
        previous = saved_model(target) if existed else None
        process = subprocess.Popen(
            [sys.executable, "-c", SAVE_THEN_HANG, str(target)], env=offline_env(), stdout=subprocess.PIPE, text=True
        )
        # (other lines may come first: DeepSpeed, when installed, logs to stdout on import)
        assert any(line.strip() == "PAUSED" for line in process.stdout)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        if not existed:
            assert not target.exists()  # no directory at all where the model goes
            continue
        assert not (target / "tokenizer.json").exists()
        loaded = AutoModelForSequenceClassification.from_pretrained(target)  # the previous version, whole
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in previous.state_dict().items())
    # the staging directory the kill left behind is cleared by the next save
    assert (tmp_path / ".student.partial").is_dir()
    with atomic_directory(target) as staging:
        (staging / "config.json").write_text("{}")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["student"]


def test_write_text_replaces_a_file_whole(tmp_path):
    path = tmp_path / "results.json"
    write_text(path, "old")
    write_text(path, "new")
    assert path.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_checkpoints_with_truncated_weights_or_no_state_are_incomplete(tmp_path):
    for step in (2, 4, 6):
        checkpoint = tmp_path / f"checkpoint-{step}"
        saved_model(checkpoint)
        (checkpoint / "trainer_state.json").write_text("{}")
    weights = tmp_path / "checkpoint-6" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    (tmp_path / "checkpoint-4" / "trainer_state.json").unlink()
    assert [is_complete_checkpoint(tmp_path / f"checkpoint-{step}") for step in (2, 4, 6)] == [True, False, False]
    assert last_complete_checkpoint(tmp_path, remove_incomplete=False) == str(tmp_path / "checkpoint-2")
    assert (tmp_path / "checkpoint-6").exists()
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint-2"]
