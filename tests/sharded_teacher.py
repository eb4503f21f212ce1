"""Run under `torchrun --nproc_per_node 2`: the teacher sharded by `prepare_teacher`'s FSDP2 branch on CPU (gloo)
gives the unsharded teacher's outputs while each process holds only part of its weights.

Accelerate sets up FSDP only on accelerator devices, so the accelerator here is the few attributes
`prepare_teacher` and accelerate's `fsdp2_prepare_model` read, with a real `FullyShardedDataParallelPlugin`.
Prints one JSON line per process.
"""

import json
import os
import sys
import types

import torch
import torch.distributed as dist
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

from tests.conftest import random_batch
from tests.test_trainer import teacher_and_student
from tinybert_hf.distillation.teacher_placement import prepare_teacher


def main() -> None:
    dist.init_process_group("gloo")
    teacher, _ = teacher_and_student()
    total = sum(parameter.numel() for parameter in teacher.parameters())
    batch = random_batch(batch_size=4, seq_length=9)
    with torch.no_grad():
        expected = teacher(**batch, output_hidden_states=True)
    # the student's wrap settings (its own layer class): the teacher must not need them
    plugin = FullyShardedDataParallelPlugin(
        fsdp_version=2, auto_wrap_policy="transformer_based_wrap", transformer_cls_names_to_wrap=["TinyBertLayer"]
    )
    accelerator = types.SimpleNamespace(
        distributed_type=DistributedType.FSDP, is_fsdp2=True, state=types.SimpleNamespace(fsdp_plugin=plugin),
        torch_device_mesh=None, parallelism_config=None, device=torch.device("cpu"), mixed_precision="no",
        is_main_process=dist.get_rank() == 0,
    )  # fmt: skip
    sharded = prepare_teacher(teacher, accelerator)
    held = sum(parameter.to_local().numel() for parameter in sharded.parameters())
    units = sum(type(module).__name__.startswith("FSDP") for module in sharded.modules())
    with torch.no_grad():
        outputs = sharded(**batch, output_hidden_states=True)
    pairs = zip(outputs.hidden_states, expected.hidden_states, strict=True)
    hidden = max((a - b).abs().max().item() for a, b in pairs)
    print(json.dumps({
        "rank": dist.get_rank(), "class": type(sharded).__name__, "training": sharded.training,
        "requires_grad": any(parameter.requires_grad for parameter in sharded.parameters()),
        "held": held, "total": total, "units": units, "layers": teacher.config.num_hidden_layers,
        "logits_difference": (outputs.logits - expected.logits).abs().max().item(), "hidden_difference": hidden,
    }), flush=True)  # fmt: skip
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
    # Everything is computed, written and flushed. Skip the interpreter's teardown: torch's gloo threads abort it
    # now and then ("terminate called without an active exception", SIGABRT, about 1 process run in 8 on torch 2.13
    # CPU, before and after this package's changes alike), which fails a run whose results are complete.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
