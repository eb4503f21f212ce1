"""The shape of the package, measured from its source: modules and their sizes, the longest functions, and the
layers of the import graph (a module's layer is one above the highest module it imports; the root `__init__`,
which re-exports the public API, is left out of the count).

Usage: `python benchmarks/package_shape.py [PACKAGE_DIR]` (default: tinybert_hf). Nothing is imported: the figures
are read from the files, so a tree of any version can be measured (e.g. a `git worktree` of an older commit).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def module_names(root: Path) -> dict[str, Path]:
    package = root.name
    names = {}
    for path in sorted(root.rglob("*.py")):
        name = ".".join((package, *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
        names[name] = path
    return names


def imported_modules(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules `name` imports (relative imports resolved; `from pkg import module` counted as the
    module)."""
    package = name.split(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                target = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            if not target.startswith(package):
                continue
            for alias in node.names:
                module = f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target
                while module not in known:
                    module = module.rsplit(".", 1)[0]
                found.add(module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
    found.discard(name)
    return found


def main(root: Path) -> None:
    known = module_names(root)
    imports = {name: imported_modules(name, path, known) for name, path in known.items()}
    lines = {name: len(path.read_text().splitlines()) for name, path in known.items()}
    print(f"{len(known)} modules, {sum(lines.values())} lines; largest:")
    for name in sorted(lines, key=lines.get, reverse=True)[:10]:
        print(f"  {lines[name]:5d}  {name}")
    functions = []
    for path in known.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((node.end_lineno - node.lineno + 1, f"{path}:{node.name}"))
    print("longest functions:")
    for length, where in sorted(functions, reverse=True)[:10]:
        print(f"  {length:4d}  {where}")
    layer: dict[str, int] = {}

    def depth(name: str, seen: tuple = ()) -> int:
        if name not in layer:
            below = [other for other in imports[name] if other != root.name and other not in seen]
            layer[name] = 1 + max((depth(other, (*seen, name)) for other in below), default=-1)
        return layer[name]

    for name in known:
        depth(name)
    print(f"import layers: {max(layer.values()) + 1}")
    for level in range(max(layer.values()) + 1):
        members = sorted(name.removeprefix(f"{root.name}.") for name, value in layer.items() if value == level)
        print(f"  {level:2d}: {', '.join(members)}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "tinybert_hf"))
