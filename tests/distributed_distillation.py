"""One SGD distillation step on 16 rows, run by tests/test_distributed.py alone or under `accelerate launch`.

Writes, from the main process, that step's log entry and the updated student's weights to `--output`. With
`--hub_model_id`, Trainer's own Hub arguments push the step's checkpoint (`hub_strategy="every_save"`) and then the
model with `trainer.push_to_hub()` (tests/test_hub.py; the endpoint and token come from the environment).
"""

import argparse
import json
import os
import sys

import torch

from tests.test_trainer import arguments, dataset, teacher_and_student
from tinybert_hf.distillation.trainer import DistillationTrainer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", required=True)
    parser.add_argument("--per_device_train_batch_size", type=int, required=True)
    parser.add_argument("--stage", default="intermediate")
    parser.add_argument("--hub_model_id")
    options = parser.parse_args()
    hub = {}
    if options.hub_model_id:
        hub = dict(push_to_hub=True, hub_model_id=options.hub_model_id, hub_strategy="every_save",
                   save_strategy="steps", save_steps=1)  # fmt: skip

    teacher, student = teacher_and_student()
    args = arguments(
        options.output + ".run", stage=options.stage, per_device_train_batch_size=options.per_device_train_batch_size,
        max_steps=1, logging_steps=1, optim="sgd", learning_rate=0.5, lr_scheduler_type="constant",
        max_grad_norm=0.0, hard_label_loss_weight=0.5 if options.stage == "prediction" else None, **hub,
    )  # fmt: skip
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=dataset(rows=16))
    trainer.train()
    if options.hub_model_id:
        trainer.push_to_hub()
    # the teacher is never wrapped for gradient sync (a plain module, or a ZeRO-3 inference engine) and stays in eval
    teacher_class = type(trainer.teacher_model).__name__
    in_training_mode = trainer.accelerator.unwrap_model(trainer.teacher_model).training  # (a ZeRO-3 engine's own
    assert "DistributedDataParallel" not in teacher_class and not in_training_mode, teacher_class  # flag is stale)
    weights = trainer.accelerator.get_state_dict(trainer.model_wrapped)  # gathered when sharded (ZeRO-3)
    if trainer.is_world_process_zero():
        torch.save({key: value.float() for key, value in weights.items()}, options.output + ".pt")
        record = {"world_size": trainer.args.world_size, "log": trainer.state.log_history[0], "teacher": teacher_class}
        with open(options.output, "w") as file:
            json.dump(record, file)


if __name__ == "__main__":
    main()
    # Everything is computed, written and flushed. Skip the interpreter's teardown: torch's gloo threads abort it
    # now and then ("terminate called without an active exception", SIGABRT, about 1 process run in 8 on torch 2.13
    # CPU, before and after this package's changes alike), which fails a run whose results are complete.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
