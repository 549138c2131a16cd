"""The package's structure: imports run downward, with no loops and no reaching into another
package's private modules; an hwnas import inside a function says why.

The graph is read from the source with ``ast``; nothing is imported.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hwnas"

#: The layers of DESIGN.md, top first: a package imports only from layers below its own
#: (or from its own package). Every top-level module or package of hwnas is in one.
LAYERS = (
    {"__main__"},
    {"cli", "_api"},
    {"run"},
    {"testing"},
    {"driver", "deploy"},
    {"strategies", "tabular"},
    {"studies", "pareto", "ranking"},
    {"evaluate"},
    {"hwcost"},
    {"supernet"},
    {"data"},
    {"config"},
    {"_config_training"},
    {"_config_sections"},
    {"budgets"},
    {"objectives"},
    {"io"},
    {"arch", "costs", "errors", "registry"},
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, tree: ast.AST, path: Path) -> list[tuple[str, ast.stmt]]:
    """(imported hwnas module, the import statement) for every import in ``tree``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            # ``from pkg import name`` imports pkg, and pkg.name when that is a module.
            targets = [base] + [f"{base}.{a.name}" for a in node.names
                                if f"{base}.{a.name}" in MODULES]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.append((target, node))
    return found


def graph() -> dict[str, list[tuple[str, ast.stmt]]]:
    return {name: imports(name, ast.parse(path.read_text(), str(path)), path)
            for name, path in MODULES.items()}


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one member (import loops)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    loops: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                loops.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return loops


def top(name: str) -> str:
    """The top-level module or package of hwnas that ``name`` belongs to."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer(name: str) -> int:
    for i, members in enumerate(LAYERS):
        if top(name) in members:
            return i
    raise AssertionError(f"{name} is in no layer of LAYERS: add it to one")


GRAPH = graph()


def test_the_structure_check_finds_a_loop_and_a_private_import():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    tree = ast.parse("from hwnas.hwcost._lut import LatencyTable\n")
    assert [t for t, _ in imports("hwnas.objectives", tree, PACKAGE / "objectives.py")] == \
        ["hwnas.hwcost._lut"]


def test_no_import_loop():
    edges = {name: {target for target, _ in found} for name, found in GRAPH.items()}
    assert strongly_connected(edges) == []


def test_no_import_of_another_packages_private_module():
    offending = []
    for name, found in GRAPH.items():
        for target, node in found:
            owner, _, last = target.rpartition(".")
            if last.startswith("_") and not last.startswith("__") and not (
                    name == owner or name.startswith(owner + ".")):
                offending.append(f"{MODULES[name]}:{node.lineno} -> {target}")
    assert not offending


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n != "hwnas"))
def test_imports_run_downward(name):
    upward = [f"{MODULES[name].name}:{node.lineno} -> {target}"
              for target, node in GRAPH[name]
              if top(target) and top(target) != top(name) and layer(target) <= layer(name)]
    assert not upward, f"{name} (layer {layer(name)}) imports from its own layer or above"


def test_an_hwnas_import_inside_a_function_says_why():
    silent = []
    for name, path in MODULES.items():
        lines = path.read_text().splitlines()
        for function in ast.walk(ast.parse("\n".join(lines), str(path))):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                        target.startswith("hwnas") for target, _ in imports(name, node, path)):
                    said = lines[node.lineno - 2:node.lineno]
                    if not any("#" in line for line in said):
                        silent.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not silent, "an import inside a function needs a comment (on it or above) saying why"


def _string_literals(path: Path) -> list[tuple[str, int]]:
    """The string constants of a module that are not docstrings, with their lines."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {id(node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    return [(node.value, node.lineno) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


#: Modules whose string equal to a run file's name is not that file.
NOT_RUN_FILES = {
    "hwnas.hwcost._command",  # the latency command's temporary model.nnp, in a temporary directory
}


def run_file_names() -> set[str]:
    """Every file name RunDir lists (its class attributes in capitals, and the models)."""
    from hwnas.run import RunDir
    return {value for key, value in vars(RunDir).items()
            if key.isupper() and isinstance(value, str)} | set(RunDir.MODELS)


def test_each_run_file_is_named_once():
    # Files only: "retrain" (the directory) is also the command's name.
    where: dict[str, list[str]] = {name: [] for name in run_file_names() if "." in name}
    for name, path in MODULES.items():
        if name in NOT_RUN_FILES:
            continue
        for value, line in _string_literals(path):
            if value in where:
                where[value].append(f"{path.relative_to(PACKAGE.parent)}:{line}")
    twice = {name: places for name, places in where.items() if len(places) != 1}
    assert not twice, f"a run file's name written more than once (or nowhere): {twice}"


def test_every_file_of_a_finished_run_is_named_by_rundir(finished_run):
    top_level = {p.relative_to(finished_run).parts[0] for p in finished_run.rglob("*")}
    assert top_level - run_file_names() == set()
