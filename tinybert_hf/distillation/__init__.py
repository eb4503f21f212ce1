"""Knowledge distillation: `DistillationTrainer` and its arguments, the losses, attention capture, the teacher-logit
cache, the layer mapping, the teacher's placement under DeepSpeed / FSDP, and general distillation."""
