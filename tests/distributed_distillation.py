"""One SGD distillation step on 16 rows, run by tests/test_distributed.py alone or under `accelerate launch`.

Writes, from the main process, that step's log entry and the updated student's weights to `--output`.
"""

import argparse
import json

import torch

from tests.test_trainer import arguments, dataset, teacher_and_student
from tinybert_hf.trainer import DistillationTrainer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", required=True)
    parser.add_argument("--per_device_train_batch_size", type=int, required=True)
    parser.add_argument("--stage", default="intermediate")
    options = parser.parse_args()

    teacher, student = teacher_and_student()
    args = arguments(
        options.output + ".run", stage=options.stage, per_device_train_batch_size=options.per_device_train_batch_size,
        max_steps=1, logging_steps=1, optim="sgd", learning_rate=0.5, lr_scheduler_type="constant",
        max_grad_norm=0.0, hard_label_loss_weight=0.5 if options.stage == "prediction" else None,
    )  # fmt: skip
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=dataset(rows=16))
    trainer.train()
    if trainer.is_world_process_zero():
        # the teacher must stay a plain module (never DDP-wrapped) in eval mode
        assert type(trainer.teacher_model).__name__ == type(teacher).__name__ and not trainer.teacher_model.training
        torch.save(student.state_dict(), options.output + ".pt")
        with open(options.output, "w") as file:
            json.dump({"world_size": trainer.args.world_size, "log": trainer.state.log_history[0]}, file)


if __name__ == "__main__":
    main()
