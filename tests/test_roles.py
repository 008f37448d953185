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
    # A Keras optimizer in a TF1 graph (an Estimator given optimizer="Adam").
    ("training/Adam/dnn/hiddenlayer_0/kernel/m", "float32", Role.OPTIMIZER_SLOT),
    ("training/Adam/dnn/hiddenlayer_0/kernel/v", "float32", Role.OPTIMIZER_SLOT),
    ("training/Ftrl_1/linear/linear_model/age/weights/accumulator", "float32",
     Role.OPTIMIZER_SLOT),
    ("training/Adam/beta_1", "float32", Role.BOOKKEEPING),
    ("training/Adam/learning_rate", "float32", Role.BOOKKEEPING),
    ("training/Adam/decay", "float32", Role.BOOKKEEPING),
    ("training/Adam/iter", "int64", Role.BOOKKEEPING),
    ("training/Adagrad/iterations", "int64", Role.BOOKKEEPING),
    # TF1 optimizers' slots of a linear model (tf.estimator's defaults).
    ("linear/linear_model/age/weights/Ftrl", "float32", Role.OPTIMIZER_SLOT),
    ("linear/linear_model/age/weights/Ftrl_1", "float32", Role.OPTIMIZER_SLOT),
    ("dnn/hiddenlayer_0/kernel/ProximalAdagrad", "float32", Role.OPTIMIZER_SLOT),
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


def test_keras_optimizer_state_in_a_graph_is_slots_and_bookkeeping_never_unknown():
    # As a TF 2.15 Estimator trained with optimizer="Adam" saves it: the graph
    # lists the slots and hyperparameters as global, not trainable, variables.
    dtypes = {"dnn/hiddenlayer_0/kernel": "float32", "global_step": "int64",
              "training/Adam/dnn/hiddenlayer_0/kernel/m": "float32",
              "training/Adam/dnn/hiddenlayer_0/kernel/v": "float32",
              "training/Adam/beta_1": "float32", "training/Adam/beta_2": "float32",
              "training/Adam/decay": "float32", "training/Adam/learning_rate": "float32"}
    roles = classify(dtypes, {"trainable": {"dnn/hiddenlayer_0/kernel"},
                              "global_step": {"global_step"}, "global": set(dtypes)})
    assert roles["training/Adam/dnn/hiddenlayer_0/kernel/m"] == (
        Role.OPTIMIZER_SLOT, RoleSource.GRAPH,
        "Keras optimizer slot 'm' of trainable dnn/hiddenlayer_0/kernel")
    assert roles["training/Adam/dnn/hiddenlayer_0/kernel/v"][:2] == (Role.OPTIMIZER_SLOT,
                                                                     RoleSource.GRAPH)
    for name in ("training/Adam/beta_1", "training/Adam/beta_2", "training/Adam/decay",
                 "training/Adam/learning_rate"):
        assert roles[name][0] is Role.BOOKKEEPING, name
    assert not [name for name, (role, _, _) in roles.items() if role is Role.UNKNOWN]
