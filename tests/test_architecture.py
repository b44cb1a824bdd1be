"""The package's layering: no import cycles, and `models` imports neither `presets` nor `training`.

Imports are read with `ast` (nothing is executed), function-level imports included,
so a cycle hidden inside a function still counts.
"""

import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "keras_clip")


def module_name(path):
    relative = os.path.relpath(path, os.path.dirname(PACKAGE))[: -len(".py")]
    parts = relative.split(os.sep)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def internal_imports(path, modules):
    """The `keras_clip` modules that the file at `path` imports, anywhere in it.

    `from package import name` counts as importing the submodule `package.name`
    where there is one, else the package itself.
    """
    with open(path, encoding="utf-8") as file:
        tree = ast.parse(file.read(), path)
    name = module_name(path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else base)
    return {m for m in found if m in modules and m != name}


def import_graph():
    modules = {}
    for folder, _, files in os.walk(PACKAGE):
        for filename in files:
            if filename.endswith(".py"):
                path = os.path.join(folder, filename)
                modules[module_name(path)] = path
    return {name: internal_imports(path, modules) for name, path in modules.items()}


def subpackage(module):
    """`keras_clip.models.clip` -> `models`; top-level modules -> their own name."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def find_cycle(graph):
    """One import cycle as a list of modules, or None (a package is its `__init__`)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_no_import_cycle_between_subpackages():
    graph = {}
    for module, targets in import_graph().items():
        source = subpackage(module)
        graph.setdefault(source, set()).update(
            subpackage(t) for t in targets if subpackage(t) not in ("", source)
        )
        for target in targets:
            graph.setdefault(subpackage(target), set())
    assert find_cycle(graph) is None, f"import cycle between subpackages: {find_cycle(graph)}"


def test_no_import_cycle_between_modules():
    graph = import_graph()
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


@pytest.mark.parametrize("forbidden", ["presets", "training", "export", "evaluation", "data"])
def test_models_import_no_higher_layer(forbidden):
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items() if subpackage(module) in ("models", "layers")
        for target in targets if subpackage(target) == forbidden
    )
    assert not offenders, offenders
