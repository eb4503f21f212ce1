"""`tinybert-hf distill` and `task-distill`: the whole recipe ([`~tinybert_hf.recipe.run.run_recipe`]), then
where everything it made is."""

from __future__ import annotations

from pathlib import Path

from ..data.tasks import TASKS
from ..errors import BadInputError
from ..recipe.arguments import RecipeArguments
from ..recipe.run import run_recipe
from ..utils.processes import is_main_process


def run(arguments: RecipeArguments) -> None:
    results = run_recipe(arguments)
    if is_main_process():  # one summary for a multi-process run
        print(saved_outputs(results, arguments))


def run_with_teacher(arguments: RecipeArguments) -> None:
    """`task-distill`: the recipe from a teacher the user fine-tuned (`--teacher` is required)."""
    if arguments.teacher is None:
        raise BadInputError("task-distill needs --teacher (a fine-tuned model); `distill` fine-tunes one for you.")
    run(arguments)


def saved_outputs(results: dict, arguments) -> str:
    """The closing lines of a recipe run: where the student, its int8 copy and the figures are, and how to use them."""
    output_dir = Path(arguments.output_dir)
    student = output_dir / "student"
    auto_class = f"AutoModel{TASKS[arguments.task].head}"
    lines = [
        "",
        f"Saved in {output_dir}:",
        f'  student       {student}  (`import tinybert_hf`, then `{auto_class}.from_pretrained("{student}")` or '
        "`pipeline`; without the package, pass `trust_remote_code=True`; its model card is README.md there)",
    ]
    int8 = results["models"].get("student (int8 ONNX)")
    if int8:
        served = f'tinybert_hf.onnx.modeling_onnx.onnx_pipeline("{int8["directory"]}")'
        lines.append(f"  int8 student  {int8['directory']}  (`{served}`)")
    figures = f"{output_dir / 'results.json'} (every figure and setting), {output_dir / 'results.png'} (the chart)"
    lines.append(f"  results       {figures}")
    if arguments.push_to_hub:  # the full repository id, as the run resolved it
        lines.append(f"  pushed to     the Hub repository {results['settings']['hub_model_id']}")
    return "\n".join(lines)
