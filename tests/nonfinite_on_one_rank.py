"""A distillation under `torchrun --nproc_per_node 2` in which only process 1 sees a NaN loss, at its third step
(run by tests/test_distributed_recipe.py).

Every process prints `rank <r> stopped: <error>` and exits with status 1 when the guard stops it; a process that
hung instead would be killed by the test's timeout.
"""

import os
import sys
import tempfile

import torch

from tests.test_trainer import arguments, dataset, teacher_and_student
from tinybert_hf.distillation.trainer import DistillationTrainer
from tinybert_hf.errors import TinyBertHfError


class NaNOnProcessOne(DistillationTrainer):
    """Process 1's hidden-state loss is NaN from its third micro-batch on."""

    calls = 0

    def compute_loss_parts(self, *args, **kwargs):
        parts = super().compute_loss_parts(*args, **kwargs)
        self.calls += 1
        if self.args.process_index == 1 and self.calls >= 3:
            parts["hidden"] = parts["hidden"] * torch.tensor(float("nan"))
        return parts


def main() -> int:
    teacher, student = teacher_and_student()
    args = arguments(tempfile.mkdtemp(), stage="intermediate", per_device_train_batch_size=4, max_steps=6)
    assert args.world_size == 2, args.world_size
    trainer = NaNOnProcessOne(model=student, teacher_model=teacher, args=args, train_dataset=dataset(rows=48))
    try:
        trainer.train()
    except TinyBertHfError as error:
        print(f"rank {args.process_index} stopped: {type(error).__name__}: {error}", flush=True)
        return 1
    print(f"rank {args.process_index} finished", flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # skip the teardown of torch's gloo threads (see tests/distributed_distillation.py)
