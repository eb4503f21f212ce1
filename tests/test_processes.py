"""What a launch tells the processes through the environment, and how models stay whole under ZeRO-3.

The multi-process runs themselves are real subprocesses in `test_distributed_recipe.py`; these are the decisions
they rest on, one by one.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from tinybert_hf.errors import BadInputError
from tinybert_hf.utils import processes

LAUNCH_VARIABLES = (
    "ACCELERATE_MIXED_PRECISION", "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_DEEPSPEED_ZERO_STAGE", "ACCELERATE_USE_FSDP",
)  # fmt: skip


@pytest.fixture
def launch(monkeypatch):
    """Sets the launcher's variables on a machine with (`gpu=True`) or without an accelerator."""
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def set_launch(gpu: bool = False, **variables: str) -> None:
        monkeypatch.setattr(torch.accelerator, "is_available", lambda: gpu)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)

    return set_launch


def test_mixed_precision_follows_the_launcher(launch):
    launch()
    assert processes.launch_mixed_precision() is None
    launch(ACCELERATE_MIXED_PRECISION="no")
    assert processes.launch_mixed_precision() is None
    launch(ACCELERATE_MIXED_PRECISION="bf16")  # autocast on CPUs, outside DeepSpeed
    assert processes.launch_mixed_precision() == "bf16"
    launch(gpu=True, ACCELERATE_MIXED_PRECISION="fp16", ACCELERATE_USE_DEEPSPEED="true")
    assert processes.launch_mixed_precision() == "fp16"


@pytest.mark.parametrize(
    ("variables", "message"),
    [({"ACCELERATE_MIXED_PRECISION": "fp16"}, "fp16 mixed precision, which needs a GPU"),
     ({"ACCELERATE_MIXED_PRECISION": "bf16", "ACCELERATE_USE_DEEPSPEED": "true"},
      "bf16 mixed precision under DeepSpeed")],
)  # fmt: skip
def test_a_precision_the_machine_cannot_train_in_is_refused(launch, variables, message):
    launch(**variables)
    with pytest.raises(BadInputError, match=message) as raised:
        processes.launch_mixed_precision()
    assert "\n" not in str(raised.value) and "--mixed_precision" in str(raised.value)


def test_only_zero3_and_fsdp_shard_the_teacher(launch):
    launch()
    assert not processes.sharded_launch()
    launch(ACCELERATE_USE_DEEPSPEED="true", ACCELERATE_DEEPSPEED_ZERO_STAGE="2")
    assert processes.deepspeed_launch() and not processes.sharded_launch()
    launch(ACCELERATE_DEEPSPEED_ZERO_STAGE="3")
    assert processes.sharded_launch()
    launch(ACCELERATE_USE_DEEPSPEED="false", ACCELERATE_USE_FSDP="true")
    assert not processes.deepspeed_launch() and processes.sharded_launch()


def test_a_deepspeed_launch_on_cpus_needs_use_cpu_for_its_process_group(launch, monkeypatch):
    """Accelerate would otherwise count one process where DeepSpeed counts two, and DeepSpeed refuse the batch."""
    launch(ACCELERATE_USE_DEEPSPEED="true")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert processes.cpu_process_group_needed()
    launch(gpu=True)
    assert not processes.cpu_process_group_needed()
    monkeypatch.setenv("WORLD_SIZE", "1")
    launch()
    assert not processes.cpu_process_group_needed()


def test_a_process_that_ran_no_process_group_exits_normally():
    assert processes.exit_launched_process(3) == 3  # returns: the interpreter's own exit follows


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="DeepSpeed is not installed")
def test_whole_models_lifts_a_registered_zero3_config_and_puts_it_back():
    from transformers.integrations.deepspeed import (
        HfDeepSpeedConfig,
        is_deepspeed_zero3_enabled,
        unset_hf_deepspeed_config,
    )

    config = HfDeepSpeedConfig({"zero_optimization": {"stage": 3}, "train_batch_size": 1})  # as a Trainer leaves it
    try:
        assert is_deepspeed_zero3_enabled()
        with processes.whole_models():
            assert not is_deepspeed_zero3_enabled()  # from_pretrained builds whole models here
        assert is_deepspeed_zero3_enabled()
        with pytest.raises(KeyError), processes.whole_models():
            raise KeyError("loading failed")
        assert is_deepspeed_zero3_enabled()  # put back after a failure too
    finally:
        unset_hf_deepspeed_config()
    del config
    with processes.whole_models():  # nothing registered: nothing to lift
        assert not is_deepspeed_zero3_enabled()
