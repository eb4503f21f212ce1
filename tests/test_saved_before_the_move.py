"""A student saved by tinybert-hf 0.1.0, before the package was reshaped into sub-packages, still loads.

`tests/fixtures/student_saved_by_0.1.0.tar.gz` holds a directory written by `save_pretrained` of the flat package
(its `auto_map` names `configuration_tinybert.TinyBertConfig` and `modeling_tinybert.*`, and it carries the two code
files of that version), with the logits it gave on two fixed batches. It must load with the package installed (the Auto
registration, no remote code) and with `trust_remote_code=True` in a process where the package cannot be
imported, and give the same logits both ways.
"""

import json
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from tinybert_hf import TinyBertConfig, TinyBertForSequenceClassification

# an archive rather than a directory: its two .py files are another version's code, not modules of this tree
ARCHIVE = Path(__file__).parent / "fixtures" / "student_saved_by_0.1.0.tar.gz"


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """The 0.1.0 student directory, unpacked."""
    target = tmp_path_factory.mktemp("saved_by_0.1.0")
    with tarfile.open(ARCHIVE) as archive:
        archive.extractall(target, filter="data")
    return target / "student_saved_by_0.1.0"


def expected(saved: Path) -> dict:
    return json.loads((saved / "expected_logits.json").read_text())


def test_loads_with_the_package_as_the_registered_classes(saved):
    record = expected(saved)
    config = AutoConfig.from_pretrained(saved)
    model = AutoModelForSequenceClassification.from_pretrained(saved).eval()
    assert isinstance(config, TinyBertConfig)
    assert type(model) is TinyBertForSequenceClassification  # the package's class, not the saved code
    with torch.no_grad():
        logits = model(
            input_ids=torch.tensor(record["input_ids"]), attention_mask=torch.tensor(record["attention_mask"])
        ).logits
    torch.testing.assert_close(logits, torch.tensor(record["logits"]))
    assert model.config.id2label == {0: "negative", 1: "positive"}


def test_loads_with_trust_remote_code_where_the_package_is_not_importable(saved):
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["tinybert_hf"] = None  # `import tinybert_hf` fails from here on
        import torch
        from transformers import AutoModelForSequenceClassification
        model = AutoModelForSequenceClassification.from_pretrained({str(saved)!r}, trust_remote_code=True).eval()
        assert not type(model).__module__.startswith("tinybert_hf"), type(model).__module__
        record = json.loads(open({str(saved / "expected_logits.json")!r}).read())
        with torch.no_grad():
            logits = model(
                input_ids=torch.tensor(record["input_ids"]), attention_mask=torch.tensor(record["attention_mask"])
            ).logits
        torch.testing.assert_close(logits, torch.tensor(record["logits"]))
        print("loaded", type(model).__name__)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "loaded TinyBertForSequenceClassification" in done.stdout


def test_a_student_saved_now_carries_code_that_loads_the_same_way(saved, tmp_path):
    """The code files a student saved today ships are still the two that `auto_map` names, beside the weights."""
    model = AutoModelForSequenceClassification.from_pretrained(saved)
    model.save_pretrained(tmp_path)
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map == json.loads((saved / "config.json").read_text())["auto_map"]
    for reference in auto_map.values():
        assert (tmp_path / f"{reference.split('.')[0]}.py").is_file()
