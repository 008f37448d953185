"""Runs the `>>>` examples in the docstrings of every `migrate` module (doctest)."""

import doctest
import importlib
import pkgutil

import pytest

import migrate

# Every module of the package, found on disk; a module that cannot be imported
# fails its test rather than being left out.
MODULE_NAMES = sorted(
    info.name for info in pkgutil.walk_packages(migrate.__path__, prefix="migrate."))

# Modules whose runnable examples are pinned here, so that an example turned
# back into prose (or a docstring lost) shows up as a failure.
MODULES_WITH_EXAMPLES = (
    "migrate.errors",
    "migrate.files",
    "migrate.options",
    "migrate.progress",
    "migrate.mapping.layouts",
    "migrate.mapping.layouts.attention",
    "migrate.mapping.layouts.fused",
    "migrate.mapping.layouts.recurrent",
    "migrate.mapping.lint",
    "migrate.mapping.pattern_cost",
    "migrate.suggest.by_value",
    "migrate.mapping.table",
    "migrate.mapping.transforms",
    "migrate.output.atomic",
    "migrate.planning.plan",
    "migrate.planning.target",
    "migrate.source.locate",
    "migrate.source.meta_graph",
    "migrate.source.roles",
    "migrate.zoo",
)


def _examples(module):
    tests = doctest.DocTestFinder().find(module, module.__name__)
    return [test for test in tests if test.examples]


def test_every_module_is_found():
    assert len(MODULE_NAMES) > 30
    assert set(MODULES_WITH_EXAMPLES) <= set(MODULE_NAMES)


@pytest.mark.parametrize("module_name", MODULE_NAMES)
def test_docstring_examples_run(module_name):
    module = importlib.import_module(module_name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = []
    for test in _examples(module):
        runner.run(test, out=report.append)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, "".join(report)
    if module_name in MODULES_WITH_EXAMPLES:
        assert results.attempted > 0, f"{module_name} has no >>> examples any more"
