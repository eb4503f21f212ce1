"""Where the frozen teacher lives when distillation runs on several processes.

The teacher only runs forward passes, so it is never wrapped for gradient synchronisation (DDP). How it is placed
follows the engine the student trains under, as `accelerate launch` configured it:

- one process, or DDP (`--multi_gpu`; `--cpu` with an MPI hostfile): a full copy per process, on its device.
- DeepSpeed ZeRO-1/2 (optimizer state and gradients sharded, weights replicated): a full copy per process.
- DeepSpeed ZeRO-3 (weights sharded): sharded too, as an inference-only DeepSpeed engine (no optimizer) that
  gathers each layer's weights for its forward pass.
- FSDP 1 or 2 (weights sharded): sharded too, one shard unit per teacher block, with the student's sharding,
  offload and mixed-precision settings.

A sharded teacher is what makes a teacher larger than one device's memory usable; every process must then run the
teacher's forward on every step (each holds only part of it), which the trainer does.
"""

from __future__ import annotations

import copy

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType


def prepare_teacher(teacher: torch.nn.Module, accelerator: Accelerator) -> torch.nn.Module:
    r"""
    Put the frozen teacher in eval mode, without gradients, placed or sharded as this module's docstring lists.

    Args:
        teacher (`torch.nn.Module`): the teacher model (any `PreTrainedModel`).
        accelerator (`Accelerator`): the trainer's accelerator (after the student's plugin state is set up).

    Returns:
        `torch.nn.Module`: the module to call for the teacher's forward pass (`accelerator.unwrap_model` gives back
        the model itself).
    """
    teacher.eval()
    teacher.requires_grad_(False)
    if accelerator.distributed_type == DistributedType.FSDP:
        teacher = _fsdp_teacher(teacher, accelerator)
    elif accelerator.distributed_type == DistributedType.DEEPSPEED and zero_stage(accelerator) == 3:
        teacher = _zero3_teacher(teacher, accelerator)
    else:
        teacher = accelerator.prepare_model(teacher, evaluation_mode=True)
    teacher.eval()
    return teacher


def zero_stage(accelerator: Accelerator) -> int:
    """The DeepSpeed ZeRO stage of the run (0 when DeepSpeed is not used)."""
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is None:
        return 0
    return int(plugin.deepspeed_config.get("zero_optimization", {}).get("stage", 0))


def _teacher_layers(teacher: torch.nn.Module) -> list[torch.nn.Module]:
    """The teacher's own repeated blocks (its `_no_split_modules`, e.g. `BertLayer`, `BertEmbeddings`): each becomes
    one shard unit, so a forward pass gathers one block's weights at a time. The student's wrap settings name the
    student's classes and are not reused (Accelerate's plugin also rewrites them for the first model it sees)."""
    names = set(getattr(teacher, "_no_split_modules", None) or ())
    return [module for module in teacher.modules() if type(module).__name__ in names and module is not teacher]


def _fsdp_teacher(teacher: torch.nn.Module, accelerator: Accelerator) -> torch.nn.Module:
    plugin = accelerator.state.fsdp_plugin
    if accelerator.is_fsdp2:
        from torch.distributed.fsdp import MixedPrecisionPolicy, OffloadPolicy, fully_shard

        mesh = getattr(accelerator, "torch_device_mesh", None)
        if mesh is not None and getattr(accelerator, "parallelism_config", None) is not None:
            mesh = mesh[tuple(accelerator.parallelism_config.fsdp_dim_names)]
        options = {
            "reshard_after_forward": plugin.reshard_after_forward
            if plugin.reshard_after_forward is not None
            else True,
            "offload_policy": plugin.cpu_offload if isinstance(plugin.cpu_offload, OffloadPolicy) else OffloadPolicy(),
            "mp_policy": plugin.mixed_precision_policy or MixedPrecisionPolicy(),
            "mesh": mesh,
        }
        for layer in _teacher_layers(teacher):
            fully_shard(layer, **options)
        return fully_shard(teacher, **options)

    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    layers = _teacher_layers(teacher)
    return FullyShardedDataParallel(
        teacher,
        sharding_strategy=plugin.sharding_strategy,
        cpu_offload=plugin.cpu_offload,
        auto_wrap_policy=ModuleWrapPolicy({type(layer) for layer in layers}) if layers else None,
        mixed_precision=plugin.mixed_precision_policy,
        use_orig_params=plugin.use_orig_params,
        limit_all_gathers=plugin.limit_all_gathers,
        device_id=accelerator.device,
    )


def _zero3_teacher(teacher: torch.nn.Module, accelerator: Accelerator) -> torch.nn.Module:
    import deepspeed

    config = copy.deepcopy(accelerator.state.deepspeed_plugin.deepspeed_config)
    # inference only: no optimizer, no scheduler; parameters sharded and gathered layer by layer
    for key in ("optimizer", "scheduler"):
        config.pop(key, None)
    config["zero_optimization"] = {
        "stage": 3,
        "stage3_param_persistence_threshold": 10 * teacher.config.hidden_size,
        "offload_param": config.get("zero_optimization", {}).get("offload_param", {"device": "none"}),
    }
    engine, *_ = deepspeed.initialize(model=teacher, config=config)
    return engine
