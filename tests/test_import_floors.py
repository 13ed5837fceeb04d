"""The package's imports run down its floors, form no circle, and sit at the top of their modules.

The floors are read from the table in docs/design.md ("Floors"), so the documentation and this test cannot disagree;
the imports are read from the code itself (``ast`` over ``models/``, function bodies included), nothing is run.
``python tests/test_import_floors.py`` prints every import between packages, floor by floor.
"""

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "models"  # installed as attnyolo
DESIGN = REPO / "docs" / "design.md"


def floors() -> dict[str, int]:
    """Part of the package (``layers``, ``integration``, ``__init__`` for the package itself, ...) -> its floor.

    Read from the rows ``| 3 | `integration/`, `data/` | ...`` of the Floors table in docs/design.md.
    """
    text = DESIGN.read_text(encoding="utf-8")
    table = text[text.index("## Floors") :]
    found = {}
    for number, parts in re.findall(r"^\| (\d+) \| ([^|]+) \|", table, re.M):
        for part in re.findall(r"`([^`]+)`", parts):
            found[part.removesuffix("/").removesuffix(".py")] = int(number)
    return found


def module_name(path: Path) -> str:
    """``models/integration/parser.py`` -> ``attnyolo.integration.parser``."""
    parts = ["attnyolo", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[str, int, bool, bool]]:
    """Every import of ``path`` that names an attnyolo module: ``(target, line, inside a function, commented)``.

    ``from . import x`` counts as an import of the submodule ``x`` where one exists.
    """
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                comment = "#" in lines[child.lineno - 1] or lines[child.lineno - 2].strip().startswith("#")
                if isinstance(child, ast.Import):
                    targets = [alias.name for alias in child.names]
                else:
                    base = package[: len(package) - child.level + 1] if child.level else []
                    module = ".".join([*base, *([child.module] if child.module else [])])
                    targets = [module] + [f"{module}.{alias.name}" for alias in child.names]
                for target in targets:
                    found.append((target, child.lineno, in_function, comment))
            visit(child, inside)

    visit(ast.parse(source), False)
    return found


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def part_of(module: str) -> str:
    """The part a dotted module belongs to: ``attnyolo.integration.parser`` -> ``integration``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def edges() -> list[tuple[str, str, int, bool, bool]]:
    """``(importer, imported module, line, inside a function, commented)`` for imports between package modules."""
    known = modules()
    out = []
    for name, path in known.items():
        for target, line, in_function, comment in imports_of(path):
            if target in known:
                out.append((name, target, line, in_function, comment))
    return out


# Same-floor imports that are allowed, one way only: the trainer scores its best checkpoint with the evaluators.
SIDEWAYS = {("engine", "evaluation")}


def upward_imports() -> list[str]:
    """Imports from a part to one on a higher floor, or sideways between parts of one floor (not in SIDEWAYS)."""
    floor = floors()
    bad, seen = [], set()
    for importer, target, line, _, _ in edges():
        a, b = part_of(importer), part_of(target)
        if a == b or (importer, line) in seen:  # one report per import statement
            continue
        if floor[b] > floor[a] or (floor[b] == floor[a] and (a, b) not in SIDEWAYS):
            seen.add((importer, line))
            bad.append(f"{importer} (floor {floor[a]}, line {line}) imports {target} (floor {floor[b]})")
    return bad


def circles() -> list[list[str]]:
    """Groups of modules that import each other in a loop (Tarjan's strongly connected components)."""
    graph = defaultdict(set)
    for importer, target, _, _, _ in edges():
        if importer != target and not target.startswith(importer + "."):  # a package's face naming its own children
            graph[importer].add(target)
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def connect(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in list(graph):
        if node not in index:
            connect(node)
    return found


def test_every_part_of_the_package_has_a_floor():
    floor = floors()
    parts = {part_of(name) for name in modules()}
    assert parts - set(floor) == set(), "add these parts to the Floors table of docs/design.md"
    assert set(floor) - parts == set(), "the Floors table names parts the package does not have"


def test_imports_run_down_the_floors():
    assert upward_imports() == []


def test_no_import_circles():
    assert circles() == []


def test_function_local_imports_say_why():
    # Imports sit at the top of their module; one inside a function is for an optional or heavy dependency, or one
    # that must be read after Ultralytics is patched, and its line (or the line above) says which.
    silent = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for target, line, in_function, comment in imports_of(path):
            if in_function and not comment:
                silent.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert sorted(set(silent)) == []


def test_the_checks_see_an_upward_import_and_a_circle(tmp_path, monkeypatch):
    # The rules above must be able to fail: a seam module importing a family, and two modules importing each other.
    package = tmp_path / "models"
    for part in ("integration", "yolox"):
        (package / part).mkdir(parents=True)
        (package / part / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "integration" / "seam.py").write_text("from ..yolox import head\n")
    (package / "yolox" / "head.py").write_text("def f():\n    from ..yolox import loss\n")
    (package / "yolox" / "loss.py").write_text("from . import head\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    assert upward_imports() == ["attnyolo.integration.seam (floor 3, line 1) imports attnyolo.yolox (floor 4)"]
    assert circles() == [["attnyolo.yolox.head", "attnyolo.yolox.loss"]]
    with pytest.raises(AssertionError):  # the import inside yolox/head.py's function gives no reason
        test_function_local_imports_say_why()


if __name__ == "__main__":
    floor = floors()
    pairs = defaultdict(set)
    for importer, target, _, _, _ in edges():
        if part_of(importer) != part_of(target):
            pairs[part_of(importer)].add(part_of(target))
    for part in sorted(pairs, key=lambda p: (-floor[p], p)):
        below = ", ".join(f"{b} ({floor[b]})" for b in sorted(pairs[part], key=lambda p: (-floor[p], p)))
        print(f"floor {floor[part]}  {part} -> {below}")
    print(f"upward: {len(upward_imports())}, circles: {len(circles())}")
    local = {(path, line) for path in PACKAGE.rglob("*.py") for _, line, inside, _ in imports_of(path) if inside}
    print(f"function-local import statements: {len(local)}")
