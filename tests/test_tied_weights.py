"""One source, several targets (`also`): the table, the plan, lint, and one read per source."""

import numpy as np
import pytest

import migrate
from migrate import MappingTable
from migrate.errors import TableError
from migrate.mapping.lint import lint_table
from migrate.planning.plan import make_plan
from migrate.planning.target import TargetWeight
from migrate.source.checkpoint import SourceVariable
from migrate.source.roles import Role
from migrate.source.roles import RoleSource

TIED = """
[[rule]]
match = 'encoder/w(\\d)'
target = 'encoder_\\1/kernel'
also = [{target = 'decoder_\\1/kernel', transform = ['transpose(1, 0)']}]
"""


def _variables(*entries):
    return {name: SourceVariable(name, shape, "float32", Role.TRAINABLE, RoleSource.GRAPH, "t")
            for name, shape in entries}


def _targets(*entries):
    return {path: TargetWeight(path, shape, "float32", True) for path, shape in entries}


def test_also_fills_each_target_with_its_own_transforms_from_one_read():
    table = MappingTable.from_text(TIED)
    found = table.lookup("encoder/w2")
    assert found.target == "encoder_2/kernel"
    assert [(target, [str(step) for step in steps]) for target, steps in found.also] == [
        ("decoder_2/kernel", ["transpose(1, 0)"])]
    plan = make_plan(_variables(("encoder/w2", (3, 2))), table,
                     _targets(("encoder_2/kernel", (3, 2)), ("decoder_2/kernel", (2, 3))))
    assert plan.problems == []
    (assignment,) = plan.assignments
    assert assignment.read_keys == ("encoder/w2",)
    assert assignment.targets == ("encoder_2/kernel", "decoder_2/kernel")
    value = np.arange(6, dtype=np.float32).reshape(3, 2)
    converted = assignment.convert([value])
    np.testing.assert_array_equal(converted["encoder_2/kernel"], value)
    np.testing.assert_array_equal(converted["decoder_2/kernel"], value.T)
    assert [variable.name for variable in plan.kept] == ["encoder/w2"]  # Counted once.


def test_every_also_target_is_checked_and_filled_exactly_once():
    table = MappingTable.from_text(TIED + """
[[rule]]
match = 'decoder/w2'
target = 'decoder_2/kernel'
""")
    plan = make_plan(_variables(("encoder/w1", (3, 2)), ("encoder/w2", (2, 4)),
                                ("decoder/w2", (4, 2))), table,
                     _targets(("encoder_1/kernel", (3, 2)), ("decoder_1/kernel", (3, 2)),
                              ("encoder_2/kernel", (2, 4)), ("decoder_2/kernel", (4, 2))))
    described = sorted(problem.describe() for problem in plan.problems)
    assert described == [
        "collision: decoder_2/kernel [4, 2]: 2 sources land on this target: encoder/w2, "
        "decoder/w2",
        "shape mismatch: encoder/w1 [3, 2] -> decoder_1/kernel [3, 2]: rule 1 (match "
        "'encoder/w(\\\\d)') gives shape [2, 3] after transpose(1, 0)"]


@pytest.mark.parametrize("rule, message", [
    ("target = 'a'\nalso = 'b'", r"Rule 1 .*`also` must be a non-empty list of tables"),
    ("target = 'a'\nalso = [{target = 'b', axis = 1}]",
     r"Rule 1 .*`also` entry 1, has unknown key\(s\) \['axis'\]"),
    ("target = 'a'\nalso = [{transform = ['transpose(1, 0)']}]",
     r"Rule 1 .*`also` entry 1, needs `target`"),
    ("target = 'a'\nalso = [{target = 'b\\2'}]", r"refers to group 2 but `match` has 0"),
    ("target = 'a'\nalso = [{target = 'b', transform = ['flip(0)']}]",
     r"`also` entry 1, `transform` is not valid"),
    ("drop = true\nalso = [{target = 'b'}]", r"`also` applies only to a rule with a `target`"),
    # A layout's converter makes the weights: its `also` scopes take them as they are.
    ("layout = 'lstm'\ntarget = 'a'\nalso = [{target = 'b', transform = ['transpose(1, 0)']}]",
     r"`also` entry 1, has unknown key\(s\) \['transform'\]. Expected: \['target'\]"),
])
def test_a_bad_also_is_a_table_error_naming_the_rule(rule, message):
    with pytest.raises(TableError, match=message):
        MappingTable.from_text(f"[[rule]]\nmatch = 'x'\n{rule}\n")


def test_lint_counts_also_targets(tmp_path):
    path = tmp_path / "table.toml"
    path.write_text(TIED.replace("encoder_\\1/kernel", "dense/kernel") + """
[[rule]]
match = 'fc'
target = 'tied/kernel'
also = [{target = 'tied/kernel'}, {target = 'dense/kernel'}]
""")
    report = lint_table(str(path))
    assert report.ok
    assert report.warnings == ["rule 2 names target 'tied/kernel' twice (in `target` and `also`)",
                               "rules 1 and 2 both target 'dense/kernel'"]


def test_a_tied_source_is_read_once_for_both_targets(tmp_path, monkeypatch):
    import real_patterns
    import verify_graphs

    prefix = verify_graphs.save_graph(tmp_path, real_patterns.build_tied_autoencoder)
    # The decoder runs the encoder backwards: its first layer reuses w2, its second w1.
    table = MappingTable.from_text("""
[[rule]]
match = 'encoder/w1'
target = 'encoder_1/kernel'
also = [{target = 'decoder_2/kernel', transform = ['transpose(1, 0)']}]
[[rule]]
match = 'encoder/w2'
target = 'encoder_2/kernel'
also = [{target = 'decoder_1/kernel', transform = ['transpose(1, 0)']}]
[[rule]]
match = 'encoder/b(\\d)'
target = 'encoder_\\1/bias'
[[rule]]
match = 'decoder/b3'
target = 'decoder_1/bias'
[[rule]]
match = 'decoder/b4'
target = 'decoder_2/bias'
""")
    checkpoint = migrate.LegacyCheckpoint.open(prefix)
    reads = []
    original = type(checkpoint).read
    monkeypatch.setattr(type(checkpoint), "read",
                        lambda self, name: reads.append(name) or original(self, name))
    from migrate import pipeline

    model = real_patterns.tied_autoencoder_model()
    pipeline.assign_into_model(checkpoint, table, model).raise_for_problems()
    assert sorted(reads) == sorted(checkpoint.variables)  # Each variable once.
    w1 = checkpoint.read("encoder/w1")
    weights = {weight.path: weight.numpy() for weight in model.weights}
    np.testing.assert_array_equal(weights["encoder_1/kernel"], w1)
    np.testing.assert_array_equal(weights["decoder_2/kernel"], w1.T)
