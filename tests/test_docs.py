"""The documentation works: every ```python block of README.md and of the site's pages (docs/**/*.md) runs as written,
as a user would run it (a fresh interpreter, offline, in an empty working directory), and the site builds with
`mkdocs build --strict` without a single warning.

Blocks that show what to do after the main job (`outputs/tinybert/student`, `outputs/tinybert/student-int8`) run
where the test has first written a tiny student and its int8 export under those paths; blocks that push to or load
from the Hub run against the loopback servers of the Hub tests (tests/hub_servers.py), nothing leaving the machine.
Pages may bring in text with snippets (`--8<-- "README.md:results"`, a benchmark report); what they bring in is
checked to hold no code that would escape the runner.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from transformers import BertTokenizer

import tinybert_hf
from tinybert_hf import TinyBertForSequenceClassification
from tinybert_hf.quantization.arguments import QuantizeArguments
from tinybert_hf.quantization.onnx_int8 import quantize_saved_model

from .conftest import TINY_VOCAB, tiny_config
from .hub_servers import TOKEN

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
QUICKSTART = DOCS / "quickstart.md"
CI_RUN = ROOT / ".ci" / "run"
# Every page of the site and the README; a page under docs/ that the nav leaves out fails the strict build.
DOC_FILES = [README, *sorted(DOCS.rglob("*.md"))]
MAIN_JOB_OUTPUTS = "outputs/tinybert/student"  # a block naming it (or student-int8) runs after the main job
HUB_REPO = "my-org/tinybert4-rt"  # the repository the Hub blocks push to and load from
# The fence languages the pages may use. A block under another name (```py, ```python3) would escape the runner;
# add it here and to PYTHON_LANGUAGES if it is Python. `text`: plain text, such as the layer map of architecture.md.
KNOWN_LANGUAGES = {"", "bash", "python", "text"}
PYTHON_LANGUAGES = {"python"}
# Blocks that cannot run here, by their first line, with the reason. Every entry must match a block; every other
# block runs. None at present: blocks that need the main job's outputs or the Hub get them prepared below.
NOT_RUNNABLE: dict[str, str] = {}
# The README had 7 python blocks when the site was split out of it; they all live on (README or docs/).
MIN_PYTHON_BLOCKS = 7
CARD = "---\nlibrary_name: transformers\ntags:\n- tinybert\n---\n\n# A tiny README-test student\n"
BLOCK_TIMEOUT_S = 300
BUILD_TIMEOUT_S = 300

OPENING = re.compile(r"^(?P<indent> *)```(?P<language>[^`\s]*)\s*$")
# anything else that Markdown (or pymdownx.superfences) might open a code block with: ~~~, ````, ```python title=...
FENCE_LIKE = re.compile(r"^\s*(```|~~~)")
# the only snippet lines pages may have: a whole-file or section include, or (in the README) a section marker
SNIPPET_INCLUDE = re.compile(r'^--8<-- "(?P<path>[^":]+)(?::[^"]*)?"$')
SNIPPET_MARKER = re.compile(r"^<!-- --8<-- \[(start|end):[a-z][-_0-9a-z]*\] -->$")


@dataclass(frozen=True)
class Block:
    path: Path  # the Markdown file
    line: int  # line of the first line of code (1-based)
    section: str  # the heading above it
    language: str
    code: str  # dedented: a block inside a list item runs as the user pastes it

    @property
    def name(self) -> str:
        return self.path.relative_to(ROOT).as_posix()

    @property
    def first_line(self) -> str:
        return next((line.strip() for line in self.code.splitlines() if line.strip()), "")

    @property
    def id(self) -> str:
        return f"{self.name}:L{self.line} {self.section}"


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced block of the file, indented ones (inside list items) included. A fence the parser cannot read
    (another fence character, a fence with attributes) is an error, so no block escapes the runner unseen."""
    name = path.relative_to(ROOT).as_posix()
    blocks, lines, index, section = [], path.read_text(encoding="utf-8").splitlines(), 0, ""
    while index < len(lines):
        heading = re.match(r"^#+ (?P<title>.+)$", lines[index])  # outside fences only: fenced lines are read below
        section = heading["title"] if heading else section
        opening = OPENING.match(lines[index])
        if opening is None and FENCE_LIKE.match(lines[index]):
            raise ValueError(f"{name} line {index + 1}: {lines[index]!r} opens a block this test cannot read.")
        index += 1
        if opening is None:
            continue
        indent, start, body = opening["indent"], index, []
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index].removeprefix(indent))
            index += 1
        if index == len(lines):
            raise ValueError(f"{name} line {start}: the fence opened there is never closed.")
        index += 1  # the closing fence
        blocks.append(Block(path, start + 1, section, opening["language"], textwrap.dedent("\n".join(body)) + "\n"))
    return blocks


ALL_BLOCKS = [block for path in DOC_FILES for block in fenced_blocks(path)]
BLOCKS = [block for block in ALL_BLOCKS if block.language in PYTHON_LANGUAGES]


def test_every_python_block_is_found_and_every_skip_names_one():
    unknown = sorted(
        {f"{block.name}: {block.language!r}" for block in ALL_BLOCKS if block.language not in KNOWN_LANGUAGES}
    )
    assert not unknown, f"Fences of languages outside KNOWN_LANGUAGES: {unknown}: add them there (and run them)."
    for path in DOC_FILES:
        # every line that opens a python fence, however indented, is one block the runner runs
        openings = len(re.findall(r"^ *```python\s*$", path.read_text(encoding="utf-8"), flags=re.M))
        found = [block.id for block in BLOCKS if block.path == path]
        assert openings == len(found), (path, openings, found)
    assert len(BLOCKS) >= MIN_PYTHON_BLOCKS, [block.id for block in BLOCKS]
    stale = [first for first in NOT_RUNNABLE if sum(block.first_line == first for block in BLOCKS) != 1]
    assert not stale, f"NOT_RUNNABLE entries that match no single block: {stale}"


def test_snippets_bring_in_no_unrun_code():
    """What a page brings in with `--8<--` is either a file whose blocks run here or one without code blocks."""
    for path in DOC_FILES:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if "--8<--" not in line:
                continue
            where = f"{path.relative_to(ROOT)} line {number}"
            if SNIPPET_MARKER.match(line) and path == README:
                continue
            include = SNIPPET_INCLUDE.match(line)
            assert include, f'{where}: {line!r} is not a snippet form this test checks (--8<-- "path[:section]").'
            target = (ROOT / include["path"]).resolve()
            assert target.is_file(), f"{where}: {include['path']} does not exist."
            if target not in DOC_FILES:
                fences = [text for text in target.read_text(encoding="utf-8").splitlines() if FENCE_LIKE.match(text)]
                assert not fences, f"{where} brings in {include['path']}, whose code blocks no test runs: {fences}"


def test_ci_runs_the_readme_test_command():
    """.ci/run runs exactly the README's test command, and the quickstart shows the README's commands and table."""
    readme = README.read_text(encoding="utf-8")
    commands = re.search(r"```bash\n# 1\..*?\n```\n", readme, flags=re.S)
    assert commands, "README.md has no ```bash block of the two commands."
    test_command = commands[0].splitlines()[-2]
    assert test_command.endswith("python -m pytest") and '".[test,docs]"' in test_command, test_command
    assert CI_RUN.read_text(encoding="utf-8").rstrip("\n").splitlines()[-1] == test_command
    results = re.search(r"<!-- --8<-- \[start:results\] -->\n(.*?)<!-- --8<-- \[end:results\] -->", readme, re.S)
    assert results, "README.md has no results section."
    quickstart = QUICKSTART.read_text(encoding="utf-8")
    assert commands[0] in quickstart and results[1] in quickstart, "docs/quickstart.md differs from the README."


def test_readme_links_resolve():
    """The README's relative links (to the docs pages, as GitHub shows them) point at files of the checkout."""
    links = re.findall(r"\]\((?!https?://)(?P<target>[^)#\s]+)[^)]*\)", README.read_text(encoding="utf-8"))
    assert links, "README.md links to no docs page."
    missing = [target for target in links if not (ROOT / target).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


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
def test_doc_block_runs(block: Block, tmp_path, request, monkeypatch):
    if block.first_line in NOT_RUNNABLE:
        pytest.skip(f"{block.name} line {block.line} cannot run here: {NOT_RUNNABLE[block.first_line]}")
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
        else:  # downloads come from olah, after the repository was pushed as the docs' push block does
            import huggingface_hub.constants

            from tinybert_hf.hub.push import push_student

            monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # loopback, in this process
            student_dir = request.getfixturevalue("main_job_outputs") / "outputs/tinybert/student"
            push_student(student_dir, HUB_REPO, token=TOKEN, endpoint=hub.upload_endpoint)
            env["HF_ENDPOINT"] = hub.download_endpoint
    script = workdir / "doc_block.py"
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
        f"{block.name} line {block.line} ({block.first_line}) exits {result.returncode}:\n"
        f"{result.stderr[-6000:]}\n--- stdout ---\n{result.stdout[-2000:]}"
    )


@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """`mkdocs build --strict` of this checkout into a temporary directory, offline."""
    site = tmp_path_factory.mktemp("site")
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    # Material's notice that it reaches end of life in 2027 (printed text, not a build warning) says this silences it
    env.update(NO_MKDOCS_2_WARNING="1", HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml")]
        + ["--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    return result, site


def test_site_builds_without_a_warning(built_site):
    result, site = built_site
    output = result.stdout + result.stderr
    problems = [line for line in output.splitlines() if re.match(r"^(WARNING|ERROR)\b", line)]
    assert result.returncode == 0 and not problems, f"mkdocs build --strict exits {result.returncode}:\n{output}"
    assert (site / "index.html").is_file() and (site / "api" / "models" / "index.html").is_file()


def inventory(site: Path) -> dict[str, str]:
    """The objects mkdocstrings rendered (its `objects.inv`, Sphinx's format): name -> page URL."""
    data = (site / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):  # "# Sphinx inventory version 2", project, version, "# The remainder ... zlib"
        header_end = data.index(b"\n", header_end) + 1
    entries = {}
    for line in zlib.decompress(data[header_end:]).decode("utf-8").splitlines():
        name, _domain_role, _priority, uri, *_ = line.split(" ")
        entries[name] = uri.split("#")[0]
    return entries


def test_api_reference_documents_every_public_name(built_site):
    """Every name of `tinybert_hf.__all__` is rendered where it is defined now (a name moved to another module
    fails here until an API page renders that module), and no API page is empty."""
    result, site = built_site
    assert result.returncode == 0, result.stderr
    rendered = inventory(site)
    missing = []
    for name in tinybert_hf.__all__:
        if name == "__version__":
            continue
        path = f"{getattr(tinybert_hf, name).__module__}.{name}"
        if path not in rendered:
            missing.append(path)
    assert not missing, f"Public names no API page (docs/api/*.md) renders at their defining module: {missing}"
    pages = {page.relative_to(DOCS).with_suffix("").as_posix() + "/" for page in (DOCS / "api").glob("*.md")}
    empty = sorted(pages - set(rendered.values()))
    assert not empty, f"API pages that render no object: {empty}"
