"""
The tree as a newcomer reads it: small folders and modules, and layers that import only
downwards (see ``tasks/__init__.py``), with no cycle among the modules.
"""

import ast
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
TASKS = PROJECT / "tasks"

#: The layers, lowest first: a module imports only from its own layer and those before it.
#: The task namespaces (``tasks/*.py``) are the top.
LAYERS = ("inventory", "remote", "commands", "ssh", "steps", "show")


def python_files(*roots):
    return sorted(path for root in roots for path in root.rglob("*.py") if "__pycache__" not in path.parts)


def module_name(path):
    parts = path.relative_to(PROJECT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path):
    """The modules of this project that *path* imports, as dotted names."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] in ("tasks", "bench"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] not in ("tasks", "bench"):
                continue
            for alias in node.names:  # a module of a package, or a name of the module
                candidate = f"{target}.{alias.name}"
                found.add(candidate if _exists(candidate) else target)
    return found


def _exists(dotted):
    path = PROJECT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def layer(dotted):
    parts = dotted.split(".")
    if parts == ["tasks"]:
        return -1  # the package itself: its version alone
    if parts[0] != "tasks" or len(parts) < 2 or parts[1] not in LAYERS:
        return len(LAYERS)  # a task namespace
    return LAYERS.index(parts[1])


def test_no_folder_of_tasks_holds_more_than_12_files():
    for folder in [TASKS, *(p for p in TASKS.rglob("*") if p.is_dir() and p.name != "__pycache__")]:
        files = [p.name for p in folder.iterdir() if p.is_file()]
        assert len(files) <= 12, f"{folder.relative_to(PROJECT)} holds {len(files)} files: {sorted(files)}"


@pytest.mark.parametrize("path", python_files(TASKS, PROJECT / "bench"), ids=lambda p: str(p.relative_to(PROJECT)))
def test_no_module_is_over_300_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= 300, f"{path.relative_to(PROJECT)} has {lines} lines"


def test_every_import_runs_down_the_layers_and_shipped_code_imports_only_shipped_code():
    wrong = []
    for path in python_files(TASKS):
        name = module_name(path)
        for target in imports(path):
            if name.startswith("tasks.remote") and not target.startswith("tasks.remote"):
                wrong.append(f"{name} (shipped) imports {target}")
            elif layer(target) > layer(name):
                wrong.append(f"{name} imports {target}, a layer above it")
    assert wrong == []


def test_no_module_imports_itself_back_through_others():
    graph = {module_name(path): imports(path) for path in python_files(TASKS)}
    state, cycles = {}, []

    def visit(node, trail):
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if target == node or target not in graph:
                continue
            if state.get(target) == "open":
                cycles.append(" -> ".join([*trail[trail.index(target):], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_checks_above_can_fail(tmp_path):
    """The readers used above see a real upward import and a real cycle."""
    assert layer("tasks.steps.status") > layer("tasks.commands.script") > layer("tasks.remote.shared.nanny")
    assert "tasks.commands.shipped" in imports(TASKS / "commands" / "script.py")
    assert "tasks.remote.shared.nanny" in imports(TASKS / "remote" / "engines" / "supervisor.py")
