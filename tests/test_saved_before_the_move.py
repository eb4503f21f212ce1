"""A student saved by tinybert-hf 0.1.0, before the package was reshaped into sub-packages, still loads.

`tests/fixtures/student_saved_by_0.1.0/` was written by `save_pretrained` of the flat package (its `auto_map`
names `configuration_tinybert.TinyBertConfig` and `modeling_tinybert.*`, and it carries the two code files of
that version), with the logits it gave on two fixed batches. It must load with the package installed (the Auto
registration, no remote code) and with `trust_remote_code=True` in a process where the package cannot be
imported, and give the same logits both ways.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from tinybert_hf import TinyBertConfig, TinyBertForSequenceClassification

SAVED = Path(__file__).parent / "fixtures" / "student_saved_by_0.1.0"


def expected() -> dict:
    return json.loads((SAVED / "expected_logits.json").read_text())


def test_loads_with_the_package_as_the_registered_classes():
    record = expected()
    config = AutoConfig.from_pretrained(SAVED)
    model = AutoModelForSequenceClassification.from_pretrained(SAVED).eval()
    assert isinstance(config, TinyBertConfig)
    assert type(model) is TinyBertForSequenceClassification  # the package's class, not the saved code
    with torch.no_grad():
        logits = model(
            input_ids=torch.tensor(record["input_ids"]), attention_mask=torch.tensor(record["attention_mask"])
        ).logits
    torch.testing.assert_close(logits, torch.tensor(record["logits"]))
    assert model.config.id2label == {0: "negative", 1: "positive"}


def test_loads_with_trust_remote_code_where_the_package_is_not_importable():
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.modules["tinybert_hf"] = None  # `import tinybert_hf` fails from here on
        import torch
        from transformers import AutoModelForSequenceClassification
        model = AutoModelForSequenceClassification.from_pretrained({str(SAVED)!r}, trust_remote_code=True).eval()
        assert not type(model).__module__.startswith("tinybert_hf"), type(model).__module__
        record = json.loads(open({str(SAVED / "expected_logits.json")!r}).read())
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


def test_a_student_saved_now_carries_code_that_loads_the_same_way(tmp_path):
    """The code files a student saved today ships are still the two that `auto_map` names, beside the weights."""
    model = AutoModelForSequenceClassification.from_pretrained(SAVED)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert saved == json.loads((SAVED / "config.json").read_text())["auto_map"]
    for reference in saved.values():
        assert (tmp_path / f"{reference.split('.')[0]}.py").is_file()
