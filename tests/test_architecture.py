"""The import graph is the architecture: stages import only downwards, and nothing goes round in a cycle.

Read from the source files (nothing is imported), so the test holds for code
paths no other test runs.
"""

import ast
import pathlib

import pytest

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parent.parent / "migrate"

# Lowest first. A module may import its own layer and those below, never one above.
LAYERS = (
    ("base", ("migrate.errors", "migrate.files", "migrate.progress", "migrate.version")),
    ("source", ("migrate.source",)),
    ("options", ("migrate.options", "migrate.verify_settings")),
    ("mapping", ("migrate.mapping",)),
    ("planning", ("migrate.planning",)),
    ("output", ("migrate.output",)),
    ("verification", ("migrate.verification",)),
    ("jobs", ("migrate.pipeline", "migrate.suggest", "migrate.batch", "migrate.demo",
              "migrate.zoo", "migrate.estimator")),
    ("cli", ("migrate.cli", "migrate.__main__")),
)
# The package's own `__init__` gathers the public API from every layer.
FACADE = "migrate"


def _module_name(path):
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules():
    return {_module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


MODULES = _modules()


def _resolve(name):
    """Returns the project module `name` refers to (a module, or the package holding a name)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module_name, path):
    """Yields `(imported module, line, at module top)` for every import of the project's code."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    package = module_name if path.name == "__init__.py" else module_name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # `from X import a`: the module X.a, or X when `a` is a name inside X.
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == "migrate" or name.startswith("migrate."):
                target = _resolve(name)
                if target and target != module_name:
                    yield target, node.lineno, id(node) in top_level


def _layer_of(module_name):
    for rank, (layer, prefixes) in enumerate(LAYERS):
        if any(module_name == prefix or module_name.startswith(prefix + ".")
               for prefix in prefixes):
            return rank, layer
    raise AssertionError(f"{module_name} belongs to no layer; add it to LAYERS")


def _unit(module_name):
    """The sub-package or top-level module a module belongs to (`migrate.source`, `migrate.cli`)."""
    return ".".join(module_name.split(".")[:2])


def test_every_module_has_a_layer():
    for module_name in MODULES:
        if module_name != FACADE:
            _layer_of(module_name)


def test_no_module_imports_a_layer_above_its_own():
    offences = []
    for module_name, path in MODULES.items():
        if module_name == FACADE:
            continue
        rank, layer = _layer_of(module_name)
        for target, line, _ in _imports(module_name, path):
            if target == FACADE:
                offences.append(f"{module_name}:{line} imports the package facade `migrate`")
                continue
            target_rank, target_layer = _layer_of(target)
            if target_rank > rank:
                offences.append(f"{module_name} ({layer}):{line} imports {target} "
                                f"({target_layer})")
    assert not offences, "\n".join(offences)


def _cycle(graph):
    """Returns one cycle of `graph` (`{node: set of nodes}`) as a list, or None."""
    state = {}

    def visit(node, trail):
        state[node] = "open"
        trail.append(node)
        for successor in sorted(graph.get(node, ())):
            if state.get(successor) == "open":
                return trail[trail.index(successor):] + [successor]
            if successor not in state:
                found = visit(successor, trail)
                if found:
                    return found
        trail.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


@pytest.mark.parametrize("granularity", ["unit", "module"])
def test_no_import_cycle(granularity):
    graph = {}
    for module_name, path in MODULES.items():
        if module_name == FACADE:
            continue
        source = _unit(module_name) if granularity == "unit" else module_name
        for target, _, _ in _imports(module_name, path):
            target = _unit(target) if granularity == "unit" else target
            if target != source and target != FACADE:
                graph.setdefault(source, set()).add(target)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_imports_of_the_projects_own_code_sit_at_module_top_or_say_why():
    hidden = []
    for module_name, path in MODULES.items():
        lines = path.read_text().splitlines()
        for target, line, at_top in _imports(module_name, path):
            if at_top:
                continue
            said = "#" in lines[line - 1] or lines[line - 2].strip().startswith("#")
            if not said:
                hidden.append(f"{module_name}:{line} imports {target} inside a function")
    assert not hidden, "\n".join(hidden)


def test_the_checker_sees_imports_above_and_inside_functions():
    # The walk itself: `checkpoint` imports `migrate.errors` at its top, and
    # `cli` imports the zoo inside a function.
    found = list(_imports("migrate.source.checkpoint", MODULES["migrate.source.checkpoint"]))
    assert any(target == "migrate.errors" and top for target, _, top in found)
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
