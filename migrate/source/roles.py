"""Roles of the variables in a legacy checkpoint, and the name rules that guess them.

A TF1 checkpoint holds the model's weights next to training state. Every
variable gets one `Role`; the graph's own collections decide where a `.meta`
is available, and the name rules below decide the rest. Each decision records
its `RoleSource` so the report can say why a variable was kept or left out.
"""

import enum
import re


class Role(str, enum.Enum):
    """What a checkpoint variable is for."""

    TRAINABLE = "trainable"
    MODEL_STATE = "model_state"  # not trained, but part of the model (BatchNorm statistics)
    OPTIMIZER_SLOT = "optimizer_slot"
    EMA_SHADOW = "ema_shadow"
    BOOKKEEPING = "bookkeeping"  # global_step, Adam's beta powers, counters
    UNKNOWN = "unknown"


class RoleSource(str, enum.Enum):
    """Where a role decision came from."""

    GRAPH = "graph collection"
    BUILDER = "builder graph"
    NAME_RULE = "name rule"
    FROZEN_GRAPH = "frozen graph"  # a constant's use in a frozen GraphDef


# Roles a conversion may carry into the output, by `keep` mode.
KEEP_MODES = {
    "trainable": frozenset({Role.TRAINABLE}),
    "model_state": frozenset({Role.TRAINABLE, Role.MODEL_STATE}),
}

EMA_SUFFIX = "ExponentialMovingAverage"
# Why a variable the graph lists in no model or trainable collection is unknown.
NOT_TRAINABLE_REASON = "not in TRAINABLE_VARIABLES or MODEL_VARIABLES: not trainable"

# Slot variables are `<variable>/<optimizer name>[_N]`. The names are those the
# tf.compat.v1.train optimizers give by default, plus BERT's AdamWeightDecay.
_OPTIMIZER_NAMES = (
    "Adam", "Momentum", "RMSProp", "Adagrad", "AdagradDA", "ProximalAdagrad", "Ftrl",
    "Adadelta", "GradientDescent", "ProximalGradientDescent", "LARSOptimizer", "LAMB",
    "adam_m", "adam_v", "AdamWeightDecay", "Nadam", "AdaMax", "LazyAdam", "ShampooOptimizer",
)
_SLOT_PATTERN = re.compile(r".+/(?:%s)(?:_\d+)?" % "|".join(_OPTIMIZER_NAMES))
_EMA_PATTERN = re.compile(r".+/%s(?:_\d+)?" % EMA_SUFFIX)
# A Keras optimizer built in a TF1 graph (an Estimator given `optimizer="Adam"`,
# or a tf.keras model trained in graph mode) keeps its state under
# `training/<optimizer>/`: one name component for a hyperparameter or its
# iteration count (`training/Adam/beta_1`, `iter`), more for a slot of a
# variable (`training/Adam/dnn/hiddenlayer_0/kernel/m`, `/v`).
_KERAS_OPTIMIZER_NAMES = (
    "Adam", "AdamW", "Adamax", "Nadam", "SGD", "RMSprop", "Adagrad", "Adadelta", "Ftrl",
    "ProximalAdagrad", "Lion", "Adafactor", "LossScaleOptimizer",
)
_KERAS_OPTIMIZER_SCOPE = r"(?:.*/)?training(?:_\d+)?/(?:%s)(?:_\d+)?/" % "|".join(
    _KERAS_OPTIMIZER_NAMES)
_KERAS_SLOT_PATTERN = re.compile(_KERAS_OPTIMIZER_SCOPE + r"(?P<variable>.+)/(?P<slot>[^/]+)")
_KERAS_HYPERPARAMETER_PATTERN = re.compile(_KERAS_OPTIMIZER_SCOPE + r"[^/]+")
_BOOKKEEPING_PATTERN = re.compile(
    r"(?:.*/)?(?:global_step|beta[12]_power(?:_\d+)?|step|iterations|learning_rate|"
    r"loss_scale|good_steps|train_step)")
_MODEL_STATE_PATTERN = re.compile(
    r".+/(?:moving_mean|moving_variance|renorm_mean|renorm_stddev|renorm_stddev_weight|"
    r"mean_weight|moving_average|num_batches_tracked)")


def role_from_name(name, dtype=None):
    """Guesses a variable's role from its checkpoint key alone.

    Args:
        name: the checkpoint key, e.g. `conv1/weights/Momentum`.
        dtype: the variable's NumPy dtype name, if known; integer, boolean and
            string variables that match no rule are not model weights.

    Returns:
        A `Role`.

    Example:

    >>> role_from_name("conv1/weights/Momentum")
    <Role.OPTIMIZER_SLOT: 'optimizer_slot'>
    >>> role_from_name("conv1/BatchNorm/moving_mean")
    <Role.MODEL_STATE: 'model_state'>
    >>> role_from_name("training/Adam/dnn/hiddenlayer_0/kernel/m")
    <Role.OPTIMIZER_SLOT: 'optimizer_slot'>
    >>> role_from_name("training/Adam/beta_1")
    <Role.BOOKKEEPING: 'bookkeeping'>
    """
    if _EMA_PATTERN.fullmatch(name):
        return Role.EMA_SHADOW
    if _SLOT_PATTERN.fullmatch(name) or _KERAS_SLOT_PATTERN.fullmatch(name):
        return Role.OPTIMIZER_SLOT
    if _BOOKKEEPING_PATTERN.fullmatch(name) or _KERAS_HYPERPARAMETER_PATTERN.fullmatch(name):
        return Role.BOOKKEEPING
    if _MODEL_STATE_PATTERN.fullmatch(name):
        return Role.MODEL_STATE
    if dtype is not None and not is_floating(dtype):
        return Role.UNKNOWN
    return Role.TRAINABLE


def is_floating(dtype):
    """Whether a dtype name is a floating-point one (the dtypes of weights)."""
    return str(dtype) in ("float16", "bfloat16", "float32", "float64")


def classify(variables, collections=None, source=RoleSource.GRAPH):
    """Gives every checkpoint variable a role.

    Args:
        variables: mapping of checkpoint key to dtype name.
        collections: where a graph is known, a mapping with the keys
            `trainable`, `model`, `global_step`, `moving_average`, `global`,
            each a set of checkpoint keys from the graph's collections of the
            same names; `None` when only names are known.
        source: the `RoleSource` to record for decisions made from
            `collections` (the `.meta` graph or a builder's graph).

    Returns:
        A dict of checkpoint key to `(Role, RoleSource, reason)`.
    """
    roles = {}
    collections = collections or {}
    trainable = collections.get("trainable", set())
    model = collections.get("model", set())
    global_step = collections.get("global_step", set())
    averaged = collections.get("moving_average", set())
    for name, dtype in variables.items():
        owner = name.rpartition("/")[0]
        keras_slot = _KERAS_SLOT_PATTERN.fullmatch(name)
        if name in trainable:
            roles[name] = (Role.TRAINABLE, source, "in TRAINABLE_VARIABLES")
        elif name in global_step:
            roles[name] = (Role.BOOKKEEPING, source, "in GLOBAL_STEP")
        elif _EMA_PATTERN.fullmatch(name):
            # Checked before slots: a shadow also sits under its variable's name.
            if owner in averaged:
                roles[name] = (Role.EMA_SHADOW, source, f"average of {owner}")
            else:
                roles[name] = (Role.EMA_SHADOW, RoleSource.NAME_RULE, "name looks like ema_shadow")
        elif owner in trainable:
            roles[name] = (Role.OPTIMIZER_SLOT, source, f"slot of trainable {owner}")
        elif keras_slot and keras_slot.group("variable") in trainable:
            roles[name] = (Role.OPTIMIZER_SLOT, source,
                           f"Keras optimizer slot {keras_slot.group('slot')!r} of trainable "
                           f"{keras_slot.group('variable')}")
        elif name in model:
            roles[name] = (Role.MODEL_STATE, source, "in MODEL_VARIABLES, not trainable")
        else:
            role = role_from_name(name, dtype)
            if collections and role in (Role.TRAINABLE, Role.UNKNOWN):
                # The graph knows every trainable variable: one it does not
                # list is not trainable, though what it is stays unknown. A
                # trainable-only conversion can leave it out (see make_plan).
                roles[name] = (Role.UNKNOWN, source, NOT_TRAINABLE_REASON)
                continue
            roles[name] = (role, RoleSource.NAME_RULE, f"name looks like {role.value}")
    return roles
