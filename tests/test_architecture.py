"""The package map of docs/architecture.md, checked against the code.

Every import inside `tinybert_hf` is read from the source (nothing is imported): it must point to the same package or
to a lower layer, `models/` may use nothing but the standard library, torch, transformers (and its own requirements
huggingface_hub and safetensors) and itself (its files ship
beside saved students for `trust_remote_code`), and no private name (`_name`) is imported from another module.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tinybert_hf"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
# entry points above every layer: the public API re-exports from models/ and distillation/, __main__ runs commands/
ENTRY_POINTS = ("tinybert_hf", "tinybert_hf.__main__")
# torch, transformers, and two of transformers' own requirements (installed wherever transformers is)
MODELS_MAY_IMPORT = {"torch", "transformers", "huggingface_hub", "safetensors"}


def documented_layers() -> list[str]:
    """The layers, lowest first, as the ```text block under "## Layers" in docs/architecture.md lists them."""
    section = ARCHITECTURE.read_text().split("## Layers", 1)[1]
    block = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    return [line.split()[0] for line in block.splitlines() if line.strip()][::-1]  # drawn top (highest) down


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names imported from it, line) for every import statement of the module, relative ones
    resolved."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend((alias.name, [], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            found.append((target, [alias.name for alias in node.names], node.lineno))
    return found


def layer_of(module: str) -> str:
    """`tinybert_hf.<package>...` -> `<package>` (a root module such as `errors` is its own layer)."""
    return module.split(".")[1]


def test_every_package_is_on_the_map():
    layers = documented_layers()
    assert len(layers) == len(set(layers)), layers
    on_disk = {layer_of(name) for name in modules() if name not in ENTRY_POINTS}
    assert on_disk == set(layers), (
        f"on disk, not on the map: {on_disk - set(layers)}; on the map only: {set(layers) - on_disk}"
    )


def test_imports_point_to_the_same_or_a_lower_layer():
    rank = {layer: position for position, layer in enumerate(documented_layers())}
    known = modules()
    upward = []
    for name, path in known.items():
        if name in ENTRY_POINTS:
            continue
        for target, _, line in imports(name, path):
            if not target.startswith("tinybert_hf."):
                if target == "tinybert_hf":
                    upward.append(f"{path.relative_to(ROOT)}:{line} imports the package root (the public API)")
                continue
            if rank[layer_of(target)] > rank[layer_of(name)]:
                upward.append(f"{path.relative_to(ROOT)}:{line} {layer_of(name)} -> {layer_of(target)} ({target})")
    assert not upward, "imports against the layers of docs/architecture.md:\n" + "\n".join(upward)


def test_models_import_only_torch_and_transformers():
    standard = set(sys.stdlib_module_names) | {"__future__"}
    foreign = []
    for name, path in modules().items():
        if not name.startswith("tinybert_hf.models"):
            continue
        for target, _, line in imports(name, path):
            top = target.split(".")[0]
            if top in standard or top in MODELS_MAY_IMPORT or target.startswith("tinybert_hf.models"):
                continue
            foreign.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not foreign, "\n".join(foreign)


def test_the_shipped_modeling_files_import_only_each_other_inside_the_package():
    """save_pretrained copies modeling_tinybert.py and configuration_tinybert.py and nothing else: a relative import
    of anything but each other would fail to load with trust_remote_code."""
    folder = PACKAGE / "models" / "tinybert"
    shipped = {"modeling_tinybert", "configuration_tinybert"}
    for stem in shipped:
        for node in ast.walk(ast.parse((folder / f"{stem}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1 and node.module in shipped, f"{stem}.py: from {'.' * node.level}{node.module}"


def test_no_private_name_crosses_a_module_boundary():
    known = modules()
    crossings = []
    for name, path in known.items():
        for target, names, line in imports(name, path):
            if not target.startswith("tinybert_hf") or target == name:
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                crossings.append(f"{path.relative_to(ROOT)}:{line} imports {', '.join(private)} from {target}")
    assert not crossings, "\n".join(crossings)


@pytest.mark.parametrize("orchestrator", ["recipe", "commands"])
def test_nothing_below_imports_the_orchestrators(orchestrator):
    """recipe/ and commands/ use everything; only they (commands for recipe) and the entry points import them."""
    allowed = {"recipe": {"recipe", "commands"}, "commands": {"commands"}}[orchestrator]
    for name, path in modules().items():
        if name in ENTRY_POINTS or layer_of(name) in allowed:
            continue
        for target, _, line in imports(name, path):
            assert not target.startswith(f"tinybert_hf.{orchestrator}"), f"{path.relative_to(ROOT)}:{line}"


def test_one_error_hierarchy_in_one_module():
    """Every exception class of the package is defined in errors.py; each is a TinyBertHfError and the built-in type
    transformers raises for the same case (RunTerminated, a stop rather than an error, is a KeyboardInterrupt only)."""
    from tinybert_hf import errors

    elsewhere = []
    for name, path in modules().items():
        if name == "tinybert_hf.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            bases = [ast.unparse(base) for base in getattr(node, "bases", [])]
            if isinstance(node, ast.ClassDef) and any(b.endswith(("Error", "Exception", "Interrupt")) for b in bases):
                elsewhere.append(f"{path.relative_to(ROOT)}:{node.lineno} class {node.name}({', '.join(bases)})")
    assert not elsewhere, "\n".join(elsewhere)
    classes = [
        value for value in vars(errors).values() if isinstance(value, type) and issubclass(value, BaseException)
    ]
    for error in classes:
        if error in (errors.TinyBertHfError, errors.RunTerminated):
            continue
        assert issubclass(error, errors.TinyBertHfError), error
        builtin = [base for base in error.__mro__ if base.__module__ == "builtins" and base not in (Exception, object)]
        assert builtin and builtin[0] is not BaseException, f"{error.__name__} keeps no built-in type"
    assert issubclass(errors.RunTerminated, KeyboardInterrupt) and not issubclass(errors.RunTerminated, Exception)
    assert (errors.TinyBertHfError,) == errors.USER_ERRORS
