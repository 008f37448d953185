"""Roles: graph collections decide where known; name rules decide the rest."""

import pytest

from migrate.source.roles import Role
from migrate.source.roles import RoleSource
from migrate.source.roles import classify
from migrate.source.roles import role_from_name


@pytest.mark.parametrize("name, dtype, role", [
    ("conv1/weights", "float32", Role.TRAINABLE),
    ("conv1/weights/Momentum", "float32", Role.OPTIMIZER_SLOT),
    ("dense/kernel/Adam_1", "float32", Role.OPTIMIZER_SLOT),
    ("bert/encoder/layer_0/output/dense/kernel/adam_m", "float32", Role.OPTIMIZER_SLOT),
    ("model/model/embed/Adam", "float32", Role.OPTIMIZER_SLOT),
    ("w/RMSProp_1", "float32", Role.OPTIMIZER_SLOT),
    ("global_step", "int64", Role.BOOKKEEPING),
    ("beta1_power", "float32", Role.BOOKKEEPING),
    ("beta2_power_1", "float32", Role.BOOKKEEPING),
    ("conv1/weights/ExponentialMovingAverage", "float32", Role.EMA_SHADOW),
    ("conv1/BatchNorm/moving_mean", "float32", Role.MODEL_STATE),
    ("bn/moving_variance", "float32", Role.MODEL_STATE),
    ("vocabulary", "string", Role.UNKNOWN),
    ("counter", "int32", Role.UNKNOWN),
])
def test_name_rules(name, dtype, role):
    assert role_from_name(name, dtype) is role


def test_graph_collections_take_precedence_and_are_recorded():
    dtypes = {"a/kernel": "float32", "a/kernel/MyOptimizer": "float32", "step": "int64",
              "bn/moving_mean": "float32", "a/kernel/ExponentialMovingAverage": "float32",
              "frozen/kernel": "float32", "stats": "float32"}
    collections = {"trainable": {"a/kernel"}, "model": {"stats"}, "global_step": {"step"},
                   "moving_average": {"a/kernel"}, "global": set(dtypes)}
    roles = classify(dtypes, collections)
    assert roles["a/kernel"][:2] == (Role.TRAINABLE, RoleSource.GRAPH)
    # A slot of a custom-named optimizer is still recognised: its owner is trainable.
    assert roles["a/kernel/MyOptimizer"][:2] == (Role.OPTIMIZER_SLOT, RoleSource.GRAPH)
    assert roles["step"][:2] == (Role.BOOKKEEPING, RoleSource.GRAPH)
    assert roles["a/kernel/ExponentialMovingAverage"][:2] == (Role.EMA_SHADOW, RoleSource.GRAPH)
    assert roles["stats"][:2] == (Role.MODEL_STATE, RoleSource.GRAPH)
    assert roles["bn/moving_mean"][:2] == (Role.MODEL_STATE, RoleSource.NAME_RULE)
    # The graph lists every trainable variable; a float it does not list is not one.
    assert roles["frozen/kernel"][:2] == (Role.UNKNOWN, RoleSource.GRAPH)


def test_graph_says_a_variable_in_no_model_collection_is_not_trainable():
    dtypes = {"a/kernel": "float32", "vocab_path": "string"}
    roles = classify(dtypes, {"trainable": {"a/kernel"}, "global": set(dtypes)},
                     RoleSource.BUILDER)
    assert roles["vocab_path"] == (Role.UNKNOWN, RoleSource.BUILDER,
                                   "not in TRAINABLE_VARIABLES or MODEL_VARIABLES: not trainable")
    assert classify(dtypes)["vocab_path"][:2] == (Role.UNKNOWN, RoleSource.NAME_RULE)


def test_without_a_graph_name_rules_decide():
    roles = classify({"a/kernel": "float32", "a/kernel/Adam": "float32"})
    assert roles["a/kernel"][:2] == (Role.TRAINABLE, RoleSource.NAME_RULE)
    assert roles["a/kernel/Adam"][:2] == (Role.OPTIMIZER_SLOT, RoleSource.NAME_RULE)
