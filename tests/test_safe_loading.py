"""Safe loading: safetensors only unless pickle is asked for, truncated or corrupted files named, no remote code."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertForSequenceClassification

from tinybert_hf import TinyBertForSequenceClassification
from tinybert_hf.errors import CorruptWeightsError, UnsafeWeightsError
from tinybert_hf.hub.push import student_files
from tinybert_hf.recipe.arguments import RecipeArguments
from tinybert_hf.recipe.steps import load_teacher
from tinybert_hf.utils.safe_loading import check_model_directory, load_pretrained

from .conftest import tiny_bert_config, tiny_config


class Payload:
    """A pickle that runs code when loaded: it creates the file `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def student_dir(tmp_path):
    torch.manual_seed(0)
    directory = tmp_path / "student"
    TinyBertForSequenceClassification(tiny_config(num_labels=2)).save_pretrained(directory)
    return directory


def cut(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("damage", ["truncated", "garbage header", "empty"])
def test_a_damaged_safetensors_file_is_named(student_dir, damage):
    weights = student_dir / "model.safetensors"
    if damage == "truncated":
        cut(weights)
    elif damage == "garbage header":
        weights.write_bytes(b"\xff" * 8 + weights.read_bytes()[8:])
    else:
        weights.write_bytes(b"")
    with pytest.raises(CorruptWeightsError, match=f"{weights} is not a complete safetensors file"):
        load_pretrained(AutoModelForSequenceClassification, student_dir)
    # the model classes themselves (AutoModel* with tinybert_hf imported) name it too
    with pytest.raises(OSError, match=f"{weights} could not be read"):
        AutoModelForSequenceClassification.from_pretrained(student_dir)


def test_a_shard_missing_from_its_index_is_named(tmp_path):
    torch.manual_seed(0)
    directory = tmp_path / "sharded"
    TinyBertForSequenceClassification(tiny_config(num_labels=2)).save_pretrained(directory, max_shard_size="20KB")
    shards = sorted(directory.glob("model-*.safetensors"))
    assert len(shards) > 1
    shards[-1].unlink()
    with pytest.raises(
        CorruptWeightsError, match=f"names shards that are not in {directory}: \\['{shards[-1].name}'\\]"
    ):
        check_model_directory(directory)
    with pytest.raises(CorruptWeightsError, match="names shards that are not in"):  # nor is it pushed
        student_files(directory, "org/student")


def test_pickled_weights_are_refused_unless_asked_for_and_never_run_by_default(tmp_path, student_dir):
    state = TinyBertForSequenceClassification.from_pretrained(student_dir).state_dict()
    (student_dir / "model.safetensors").unlink()
    torch.save(state, student_dir / "pytorch_model.bin")
    with pytest.raises(UnsafeWeightsError, match=r"only as pickles \(pytorch_model.bin\).*allow_pickle"):
        load_pretrained(AutoModelForSequenceClassification, student_dir)
    with pytest.raises(OSError, match=r"only as pickles \(pytorch_model.bin\).*use_safetensors=False"):
        AutoModelForSequenceClassification.from_pretrained(student_dir)
    # asked for: loaded (through torch's weights_only unpickler), same weights
    loaded = load_pretrained(AutoModelForSequenceClassification, student_dir, allow_pickle=True)
    assert all(torch.equal(loaded.state_dict()[name], value) for name, value in state.items())

    # a hostile pickle is never unpickled when refused, nor when safetensors weights sit beside it
    hostile = tmp_path / "hostile"
    shutil.copytree(student_dir, hostile)
    marker = tmp_path / "pwned"
    (hostile / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(UnsafeWeightsError):
        load_pretrained(AutoModelForSequenceClassification, hostile)
    TinyBertForSequenceClassification(tiny_config(num_labels=2)).save_pretrained(hostile)  # safetensors too
    load_pretrained(AutoModelForSequenceClassification, hostile)
    AutoModelForSequenceClassification.from_pretrained(hostile)
    assert not marker.exists()


def test_the_recipe_refuses_a_pickled_teacher(tmp_path):
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(tiny_bert_config(num_labels=2))
    teacher.save_pretrained(tmp_path / "teacher")
    (tmp_path / "teacher" / "model.safetensors").unlink()
    torch.save(teacher.state_dict(), tmp_path / "teacher" / "pytorch_model.bin")
    args = RecipeArguments(output_dir=str(tmp_path / "out"))
    with pytest.raises(UnsafeWeightsError, match="--allow_pickle true"):
        load_teacher(tmp_path / "teacher", ["LABEL_0", "LABEL_1"], args)
    args.allow_pickle = True
    assert load_teacher(tmp_path / "teacher", ["LABEL_0", "LABEL_1"], args).config.num_labels == 2


REMOTE_CODE = """
open({marker!r}, "w").close()  # anyone importing this module ran a stranger's code
from transformers import BertConfig
class EvilConfig(BertConfig):
    model_type = "evil"
"""


def test_remote_code_is_never_run(tmp_path):
    """A model directory whose config asks for its own code: loading refuses instead of importing it."""
    torch.manual_seed(0)
    directory = tmp_path / "stranger"
    BertForSequenceClassification(tiny_bert_config(num_labels=2)).save_pretrained(directory)
    marker = tmp_path / "pwned"
    (directory / "configuration_evil.py").write_text(REMOTE_CODE.format(marker=str(marker)))
    config = json.loads((directory / "config.json").read_text())
    config.update(model_type="evil", auto_map={"AutoConfig": "configuration_evil.EvilConfig"})
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_pretrained(AutoModelForSequenceClassification, directory)
    with pytest.raises(ValueError, match="never loads remote code"):
        load_pretrained(AutoModelForSequenceClassification, directory, trust_remote_code=True)
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_teacher(directory, ["LABEL_0", "LABEL_1"], RecipeArguments(output_dir=str(tmp_path / "out")))
    assert not marker.exists()
