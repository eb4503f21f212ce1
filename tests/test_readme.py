"""Every ```python block of README.md runs as written, as a user would run it: a fresh interpreter, offline, in an
empty working directory.

Blocks that show what to do after the main job (`outputs/tinybert/student`, `outputs/tinybert/student-int8`) run
where the test has first written a tiny student and its int8 export under those paths; blocks that push to or load
from the Hub run against the loopback servers of the Hub tests (tests/hub_servers.py), nothing leaving the machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from transformers import BertTokenizer

from tinybert_hf import TinyBertForSequenceClassification
from tinybert_hf.quantization.arguments import QuantizeArguments
from tinybert_hf.quantization.onnx_int8 import quantize_saved_model

from .conftest import TINY_VOCAB, tiny_config
from .hub_servers import TOKEN

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MAIN_JOB_OUTPUTS = "outputs/tinybert/student"  # a block naming it (or student-int8) runs after the main job
HUB_REPO = "my-org/tinybert4-rt"  # the repository the README's Hub blocks push to and load from
# The fence languages the README may use. A block under another name (```py, ```python3) would escape the runner;
# add it here and to PYTHON_LANGUAGES if it is Python.
KNOWN_LANGUAGES = {"", "bash", "python"}
PYTHON_LANGUAGES = {"python"}
# Blocks that cannot run here, by their first line, with the reason. Every entry must match a block; every other
# block runs. None at present: blocks that need the main job's outputs or the Hub get them prepared below.
NOT_RUNNABLE: dict[str, str] = {}
CARD = "---\nlibrary_name: transformers\ntags:\n- tinybert\n---\n\n# A tiny README-test student\n"
BLOCK_TIMEOUT_S = 300


@dataclass(frozen=True)
class Block:
    line: int  # README line of the first line of code (1-based)
    section: str  # the heading above it
    language: str
    code: str  # dedented: a block inside a list item runs as the user pastes it

    @property
    def first_line(self) -> str:
        return next((line.strip() for line in self.code.splitlines() if line.strip()), "")

    @property
    def id(self) -> str:
        return f"L{self.line} {self.section}"


def fenced_blocks(text: str) -> list[Block]:
    """Every fenced block of `text`, indented ones (inside list items) included."""
    blocks, lines, index, section = [], text.splitlines(), 0, ""
    while index < len(lines):
        heading = re.match(r"^#+ (?P<title>.+)$", lines[index])  # outside fences only: fenced lines are read below
        section = heading["title"] if heading else section
        opening = re.match(r"^(?P<indent> *)```(?P<language>[^`\s]*)\s*$", lines[index])
        index += 1
        if opening is None:
            continue
        indent, start, body = opening["indent"], index, []
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index].removeprefix(indent))
            index += 1
        if index == len(lines):
            raise ValueError(f"README.md line {start}: the fence opened there is never closed.")
        index += 1  # the closing fence
        blocks.append(Block(start + 1, section, opening["language"], textwrap.dedent("\n".join(body)) + "\n"))
    return blocks


BLOCKS = [block for block in fenced_blocks(README.read_text(encoding="utf-8")) if block.language in PYTHON_LANGUAGES]


def test_every_python_block_is_found_and_every_skip_names_one():
    blocks = fenced_blocks(README.read_text(encoding="utf-8"))
    unknown = sorted({block.language for block in blocks} - KNOWN_LANGUAGES)
    assert not unknown, f"README.md has fences of languages {unknown}: add them to KNOWN_LANGUAGES (and run them)."
    # every line that opens a python fence, however indented, is one block the runner runs
    openings = len(re.findall(r"^ *```python\s*$", README.read_text(encoding="utf-8"), flags=re.M))
    assert openings == len(BLOCKS) >= 7, (openings, [block.id for block in BLOCKS])
    stale = [first for first in NOT_RUNNABLE if sum(block.first_line == first for block in BLOCKS) != 1]
    assert not stale, f"NOT_RUNNABLE entries that match no single block: {stale}"


@pytest.fixture(scope="module")
def main_job_outputs(tmp_path_factory) -> Path:
    """`outputs/tinybert/student` (a tiny random TinyBERT classifier with the main job's label names, a tokenizer
    and a card) and `outputs/tinybert/student-int8` (its int8 ONNX export), under a directory blocks run in."""
    root = tmp_path_factory.mktemp("main-job")
    student_dir = root / "outputs" / "tinybert" / "student"
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab=str(vocab), do_lower_case=True)
    torch.manual_seed(0)
    config = tiny_config(vocab_size=len(tokenizer), num_labels=2, id2label={0: "rotten", 1: "fresh"})
    TinyBertForSequenceClassification(config).save_pretrained(student_dir)
    tokenizer.save_pretrained(student_dir)
    (student_dir / "README.md").write_text(CARD, encoding="utf-8")  # a pushed model needs a card
    quantize_saved_model(QuantizeArguments(model=str(student_dir)))  # -> outputs/tinybert/student-int8
    return root


def block_environment(home: Path) -> dict[str, str]:
    """A user's environment: offline, an empty Hugging Face cache (nothing downloaded earlier can help), this
    checkout's package first on the path."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_") and key != "PYTHONPATH"}
    env.update(
        HF_HOME=str(home),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        PYTHONPATH=str(ROOT),
        TOKENIZERS_PARALLELISM="false",
    )
    return env


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_readme_block_runs(block: Block, tmp_path, request, monkeypatch):
    if block.first_line in NOT_RUNNABLE:
        pytest.skip(f"README.md line {block.line} cannot run here: {NOT_RUNNABLE[block.first_line]}")
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = block_environment(tmp_path / "hf-home")
    if MAIN_JOB_OUTPUTS in block.code:
        shutil.copytree(request.getfixturevalue("main_job_outputs") / "outputs", workdir / "outputs")
    if HUB_REPO in block.code:
        hub = request.getfixturevalue("hub_servers")
        env["HF_HUB_OFFLINE"] = "0"  # the loopback servers only
        if "push_student" in block.code:  # uploads go to the upload server, with its token
            env.update(HF_ENDPOINT=hub.upload_endpoint, HF_TOKEN=TOKEN)
        else:  # downloads come from olah, after the repository was pushed as the README's push block does
            import huggingface_hub.constants

            from tinybert_hf.hub.push import push_student

            monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # loopback, in this process
            student_dir = request.getfixturevalue("main_job_outputs") / "outputs/tinybert/student"
            push_student(student_dir, HUB_REPO, token=TOKEN, endpoint=hub.upload_endpoint)
            env["HF_ENDPOINT"] = hub.download_endpoint
    script = workdir / "readme_block.py"
    script.write_text(block.code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, script.name],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )
    assert result.returncode == 0, (
        f"README.md line {block.line} ({block.first_line}) exits {result.returncode}:\n"
        f"{result.stderr[-6000:]}\n--- stdout ---\n{result.stdout[-2000:]}"
    )
