"""Plans from metadata alone: every offender is found and named before anything is read."""

import pytest

from migrate import MappingTable
from migrate import PlanError
from migrate.source.checkpoint import SourceVariable
from migrate.planning.plan import make_plan
from migrate.source.roles import Role
from migrate.source.roles import RoleSource
from migrate.planning.target import TargetWeight


def _source(name, shape, role=Role.TRAINABLE, dtype="float32"):
    return name, SourceVariable(name, shape, dtype, role, RoleSource.GRAPH, "test")


def _sources(*entries):
    return dict(_source(*entry) for entry in entries)


def _targets(*entries):
    return {path: TargetWeight(path, shape, "float32", trainable)
            for path, shape, trainable in entries}


TABLE = MappingTable.from_text("""
[[rule]]
match = 'conv/weights'
target = 'conv/kernel'

[[rule]]
match = 'fc/weights'
target = 'fc/kernel'
transform = ['reshape(-1, 3)']

[[rule]]
match = 'bn/(beta|gamma|moving_mean|moving_variance)'
target = 'bn/\\1'

[[rule]]
match = 'aux/.*'
drop = true
""")

SOURCES = _sources(
    ("conv/weights", (3, 3, 2, 4)), ("conv/weights/Momentum", (3, 3, 2, 4), Role.OPTIMIZER_SLOT),
    ("fc/weights", (1, 1, 4, 3)), ("bn/beta", (4,)), ("bn/gamma", (4,)),
    ("bn/moving_mean", (4,), Role.MODEL_STATE), ("bn/moving_variance", (4,), Role.MODEL_STATE),
    ("aux/weights", (4, 4)), ("global_step", (), Role.BOOKKEEPING, "int64"),
    ("fc/weights/ExponentialMovingAverage", (1, 1, 4, 3), Role.EMA_SHADOW))

TARGETS = _targets(
    ("conv/kernel", (3, 3, 2, 4), True), ("fc/kernel", (4, 3), True), ("bn/beta", (4,), True),
    ("bn/gamma", (4,), True), ("bn/moving_mean", (4,), False), ("bn/moving_variance", (4,), False))


def test_trainable_plan_keeps_trainable_and_counts_the_rest():
    plan = make_plan(SOURCES, TABLE, TARGETS)
    assert plan.problems == []
    assert sorted(plan.target_paths) == ["bn/beta", "bn/gamma", "conv/kernel", "fc/kernel"]
    assert [variable.name for variable, _ in plan.dropped] == ["aux/weights"]
    left_out = {role: [v.name for v in variables] for role, variables in plan.left_out.items()}
    assert left_out[Role.MODEL_STATE] == ["bn/moving_mean", "bn/moving_variance"]
    assert left_out[Role.OPTIMIZER_SLOT] == ["conv/weights/Momentum"]
    assert left_out[Role.BOOKKEEPING] == ["global_step"]
    assert left_out[Role.EMA_SHADOW] == ["fc/weights/ExponentialMovingAverage"]
    assert [weight.path for weight in plan.unwritten_targets] == ["bn/moving_mean",
                                                                  "bn/moving_variance"]


def test_model_state_plan_fills_every_weight():
    plan = make_plan(SOURCES, TABLE, TARGETS, keep="model_state")
    assert plan.problems == [] and plan.unwritten_targets == []
    assert len(plan.target_paths) == 6


def test_ema_reads_shadows_in_place_of_variables():
    plan = make_plan(SOURCES, TABLE, TARGETS, ema_shadows={
        "fc/weights": "fc/weights/ExponentialMovingAverage"})
    assert plan.ema_swapped == 1
    (assignment,) = [a for a in plan.assignments if a.targets == ("fc/kernel",)]
    assert assignment.read_keys == ("fc/weights/ExponentialMovingAverage",)
    assert assignment.sources == ("fc/weights",)


def _kinds(plan):
    return sorted((problem.kind, problem.source, problem.target) for problem in plan.problems)


def test_every_offender_is_listed_with_names_and_shapes():
    sources = dict(SOURCES)
    sources.update(_sources(("extra/weights", (2, 2))))
    sources["stray"] = SourceVariable("stray", (2,), "float32", Role.UNKNOWN,
                                      RoleSource.NAME_RULE, "test")
    sources["conv/weights"] = SourceVariable("conv/weights", (5, 5, 2, 4), "float32",
                                             Role.TRAINABLE, RoleSource.GRAPH, "test")
    targets = dict(TARGETS)
    targets.update(_targets(("head/kernel", (4, 2), True)))
    plan = make_plan(sources, TABLE, targets)
    assert _kinds(plan) == [
        ("shape mismatch", "conv/weights", "conv/kernel"),
        ("unfilled", None, "head/kernel"),
        ("unknown role", "stray", None),
        ("unmapped", "extra/weights", None),
    ]
    with pytest.raises(PlanError) as raised:
        plan.raise_for_problems()
    assert "4 problem(s)" in str(raised.value)
    details = raised.value.details()
    assert "conv/weights [5, 5, 2, 4] -> conv/kernel [3, 3, 2, 4]" in details
    assert "unfilled: head/kernel [4, 2]" in details


def test_collisions_missing_targets_dtype_and_transform_errors():
    table = MappingTable.from_text("""
[[rule]]
match = '(conv|fc)/weights'
target = 'conv/kernel'
[[rule]]
match = 'bn/beta'
target = 'bn/betta'
[[rule]]
match = 'bn/gamma'
target = 'bn/gamma'
transform = ['reshape(-1, 3)']
""")
    sources = _sources(("conv/weights", (3, 3, 2, 4)), ("fc/weights", (3, 3, 2, 4)),
                       ("bn/beta", (4,)), ("bn/gamma", (4,), Role.TRAINABLE, "float16"))
    plan = make_plan(sources, table, TARGETS)
    problems = {problem.kind: problem for problem in plan.problems}
    assert problems["collision"].message == (
        "2 sources land on this target: conv/weights, fc/weights")
    assert "closest model weight: 'bn/beta'" in problems["no such target"].message
    assert "reshape(-1, 3) cannot hold a tensor of shape (4,)" in problems["transform"].message
    assert sorted(problems) == ["collision", "no such target", "transform", "unfilled"]


def test_dtype_mismatch_and_non_trainable_target_when_keeping_trainable_only():
    table = MappingTable.from_text("""
[[rule]]
match = 'w'
target = 'bn/moving_mean'
[[rule]]
match = 'v'
target = 'bn/beta'
""")
    sources = _sources(("w", (4,)), ("v", (4,), Role.TRAINABLE, "float64"))
    plan = make_plan(sources, table, _targets(("bn/moving_mean", (4,), False),
                                              ("bn/beta", (4,), True)))
    kinds = {problem.kind: problem for problem in plan.problems}
    assert "add transform cast(float32)" in kinds["dtype mismatch"].message
    assert kinds["not kept"].target == "bn/moving_mean"


def test_an_unknown_keep_is_an_argument_error():
    from migrate.errors import ArgumentError
    with pytest.raises(ArgumentError, match=r"Expected keep to be one of trainable, model_state. "
                                            r"Received: keep='everything'"):
        make_plan(SOURCES, TABLE, TARGETS, keep="everything")


def test_data_that_contradicts_the_plan_is_a_migrate_error_while_converting():
    import numpy as np

    from migrate.errors import MigrateError
    from migrate.mapping import layouts
    from migrate.mapping import transforms

    plan = make_plan(SOURCES, TABLE, TARGETS)
    (reshape,) = [a for a in plan.assignments if a.targets == ("fc/kernel",)]
    assert reshape.convert([np.ones((1, 1, 4, 3))])["fc/kernel"].shape == (4, 3)
    with pytest.raises(transforms.TransformError,
                       match=r"rule 2 \(match 'fc/weights'\) cannot transform fc/weights: .*"
                             r"Received: fc/weights.shape=\(1, 1, 4, 5\)") as raised:
        reshape.convert([np.ones((1, 1, 4, 5))])
    assert isinstance(raised.value, MigrateError)
    assert isinstance(raised.value.__cause__, ValueError)

    lstm_table = MappingTable.from_text("""
[[rule]]
match = 'rnn/lstm_cell'
layout = 'lstm'
target = 'lstm/lstm_cell'
forget_bias = 1.0
""")
    plan = make_plan(_sources(("rnn/lstm_cell/kernel", (5, 8)), ("rnn/lstm_cell/bias", (8,))),
                     lstm_table, _targets(("lstm/lstm_cell/kernel", (3, 8), True),
                                          ("lstm/lstm_cell/recurrent_kernel", (2, 8), True),
                                          ("lstm/lstm_cell/bias", (8,), True)))
    (assignment,) = plan.assignments
    with pytest.raises(layouts.LayoutError, match=r"Received: kernel.shape=\(5, 12\)") as raised:
        assignment.convert([np.ones((5, 12)), np.ones(8)])
    assert isinstance(raised.value, MigrateError)
def test_graph_known_non_trainable_unknowns_are_left_out_of_trainable_only_conversions():
    sources = dict(SOURCES)
    sources["vocab_path"] = SourceVariable("vocab_path", (), "string", Role.UNKNOWN,
                                           RoleSource.GRAPH, "not trainable")
    plan = make_plan(sources, TABLE, dict(TARGETS))
    assert "vocab_path" not in [problem.source for problem in plan.problems]
    assert [variable.name for variable in plan.left_out[Role.UNKNOWN]] == ["vocab_path"]
    # Carrying the model state, what the variable is still has to be decided.
    complete = make_plan(sources, TABLE, dict(TARGETS), keep="model_state")
    assert ("unknown role", "vocab_path", None) in _kinds(complete)
    # Without a graph, names cannot tell it is not a weight.
    sources["vocab_path"] = SourceVariable("vocab_path", (), "string", Role.UNKNOWN,
                                           RoleSource.NAME_RULE, "name looks like unknown")
    assert ("unknown role", "vocab_path", None) in _kinds(make_plan(sources, TABLE, dict(TARGETS)))


def test_a_layout_rule_fills_its_also_scopes_with_the_same_converted_weights():
    import numpy as np

    # One cell both directions of a Bidirectional share (`bidirectional_dynamic_rnn(cell, cell)`).
    sources = _sources(("birnn/fw/lstm_cell/kernel", (5, 8)), ("birnn/fw/lstm_cell/bias", (8,)))
    cells = ("birnn/forward_lstm/lstm_cell", "birnn/backward_lstm/lstm_cell")
    targets = _targets(*((f"{cell}/{part}", shape, True) for cell in cells for part, shape in (
        ("kernel", (3, 8)), ("recurrent_kernel", (2, 8)), ("bias", (8,)))))
    table = MappingTable.from_text("""
[[rule]]
match = 'birnn/fw/lstm_cell'
layout = 'lstm'
target = 'birnn/forward_lstm/lstm_cell'
also = [{target = 'birnn/backward_lstm/lstm_cell'}]
forget_bias = 1.0
""")
    plan = make_plan(sources, table, targets)
    assert plan.problems == []
    (assignment,) = plan.assignments  # The sources are read once.
    assert sorted(assignment.targets) == sorted(targets)
    arrays = [np.arange(40, dtype="float32").reshape(5, 8), np.zeros(8, "float32")]
    converted = assignment.convert(arrays)
    for part in ("kernel", "recurrent_kernel", "bias"):
        np.testing.assert_array_equal(converted[f"{cells[0]}/{part}"],
                                      converted[f"{cells[1]}/{part}"])

    # An `also` scope of another size is named as the rule's own would be.
    smaller = dict(targets, **_targets(("birnn/backward_lstm/lstm_cell/kernel", (3, 4), True)))
    problems = [problem.describe() for problem in make_plan(sources, table, smaller).problems]
    assert problems == ["shape mismatch: birnn/fw/lstm_cell/kernel ? -> "
                        "birnn/backward_lstm/lstm_cell/kernel [3, 4]: rule 1 (match "
                        "'birnn/fw/lstm_cell'): layout 'lstm' gives [3, 8]"], problems
