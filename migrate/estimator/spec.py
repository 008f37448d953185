"""Reads which canned Estimator a graph holds: its head, its towers and their columns' order.

A canned Estimator (`DNNClassifier`, `DNNRegressor`, `LinearClassifier`,
`LinearRegressor`, `DNNLinearCombined*`) leaves no description of itself in
its `model_dir`, only the graph it ran. The graph is enough: its head's ops
say classifier or regressor, its hidden layers' variables and activations
say the DNN's shape, and the input layer concatenates its columns in the
order of their names, and the linear model adds its columns' sums in that
order too; both orders are read from the graph's concatenation and sum, not
assumed. Each column itself is read by `migrate.estimator.columns`.
"""

import dataclasses
import re

from migrate.estimator.columns import COMBINERS
from migrate.estimator.columns import DNN_INPUT_SCOPE
from migrate.estimator.columns import SHAPE_OPS
from migrate.estimator.columns import Column
from migrate.estimator.columns import EstimatorError
from migrate.estimator.columns import dense_column
from migrate.estimator.columns import numeric_column
from migrate.estimator.columns import ops_in_scope
from migrate.estimator.columns import read_categorical
from migrate.estimator.columns import read_combiner
from migrate.estimator.columns import refuse_unknown_column

# The linear tower's scope, as TF 2.x's `tf.estimator` (feature columns v2) names it.
LINEAR_SCOPE = "linear/linear_model"
LINEAR_SUM = "weighted_sum_no_bias"
_ACTIVATIONS = {"Relu": "relu", "Elu": "elu", "Selu": "selu", "Sigmoid": "sigmoid",
                "Tanh": "tanh", "Relu6": "relu6", "Softplus": "softplus",
                "LeakyRelu": "leaky_relu", "Softsign": "softsign"}


@dataclasses.dataclass(frozen=True)
class EstimatorSpec:
    """What a canned Estimator is: its head, its towers and their columns.

    Attributes:
        head: "classifier" or "regressor".
        units: the logits' width (1 for a binary classifier or a regressor).
        hidden_units: the DNN's hidden layer sizes (empty without a DNN).
        activation: the hidden layers' activation (a Keras name).
        dnn_columns: the DNN input layer's columns, in concatenation order.
        linear_columns: the linear model's columns, in summation order.
        layer_weights: the names of a hidden layer's two variables:
            `("kernel", "bias")`, or `("weights", "biases")` for TF 1.0's
            `tf.contrib.learn`.
        centered_bias: contrib.learn's `centered_bias_weight`, added to the
            logits, or None.
    """

    head: str
    units: int
    hidden_units: tuple
    activation: str | None
    dnn_columns: tuple
    linear_columns: tuple
    layer_weights: tuple = ("kernel", "bias")
    centered_bias: str | None = None

    @property
    def has_dnn(self):
        return bool(self.dnn_columns)

    @property
    def has_linear(self):
        return bool(self.linear_columns)

    @property
    def kind(self):
        """The Estimator's class name, e.g. `DNNLinearCombinedClassifier`."""
        tower = ("DNNLinearCombined" if self.has_dnn and self.has_linear
                 else "DNN" if self.has_dnn else "Linear")
        return tower + ("Classifier" if self.head == "classifier" else "Regressor")

    @property
    def n_classes(self):
        return (2 if self.units == 1 else self.units) if self.head == "classifier" else None

    def columns(self):
        return self.dnn_columns + self.linear_columns


def read_estimator(graph, variables, *, vocabulary_dirs=(), feature_names=None):
    """Returns the `EstimatorSpec` of a canned Estimator's graph.

    Args:
        graph: the legacy `tf.Graph` (training graph of a model_dir, or an
            export's serving graph).
        variables: the checkpoint's variables by name (`LegacyCheckpoint.variables`).
        vocabulary_dirs: directories searched, in order, for a vocabulary
            file the graph names by a path that does not exist here.
        feature_names: `{tensor name: feature key}` of the graph's raw
            feature inputs where the graph alone does not name them (an
            export's signature inputs).

    Raises:
        EstimatorError: not a canned Estimator, or a column without a Keras equivalent.
    """
    names = set(variables)
    has_dnn = "dnn/logits/kernel" in names
    has_linear = f"{LINEAR_SCOPE}/bias_weights" in names
    if "dnn/logits/weights" in names and not has_linear:
        return _contrib_learn_dnn(graph, variables)
    if not has_dnn and not has_linear:
        if any(name.startswith("linear/") for name in names):
            raise EstimatorError(
                "This is a tf.contrib.learn linear model (linear/..., no linear_model scope); "
                "port writes contrib.learn's DNNs of real-valued columns, and tf.estimator's "
                "canned Estimators. Expected a tf.estimator model_dir.")
        raise EstimatorError(
            "Expected a canned Estimator's graph (variables dnn/logits/kernel or "
            f"{LINEAR_SCOPE}/bias_weights). Received: no such variable among "
            f"{len(names)} variables")
    ops = {op.name: op for op in graph.get_operations()}
    feature_names = feature_names or {}
    logits_bias = "dnn/logits/bias" if has_dnn else f"{LINEAR_SCOPE}/bias_weights"
    units = int(variables[logits_bias].shape[-1])
    head = _head(ops)
    hidden_units, activation, dnn_columns = (), None, ()
    if has_dnn:
        hidden_units, activation = _hidden_layers(ops, variables)
        dnn_columns = _dnn_columns(ops, variables, vocabulary_dirs, feature_names)
    linear_columns = (_linear_columns(ops, variables, vocabulary_dirs, feature_names)
                      if has_linear else ())
    return EstimatorSpec(head=head, units=units, hidden_units=hidden_units,
                         activation=activation, dnn_columns=dnn_columns,
                         linear_columns=linear_columns)


# Scopes of TF 1.0's tf.contrib.learn DNN.
CONTRIB_INPUT_SCOPE = "dnn/input_from_feature_columns/input_from_feature_columns"
CONTRIB_CENTERED_BIAS = "centered_bias_weight"
_CLASSIFIER_LOSSES = ("softmax_cross_entropy", "sigmoid_cross_entropy", "probabilities")


def _contrib_learn_dnn(graph, variables):
    """A DNN Estimator as TF 1.0's tf.contrib.learn saved it (weights, biases, part_0)."""
    ops = {op.name: op for op in graph.get_operations()}
    units = int(variables["dnn/logits/biases"].shape[-1])
    head = ("classifier" if any(marker in name for name in ops for marker in _CLASSIFIER_LOSSES)
            else "regressor")
    hidden_units, activation = _hidden_layers(ops, variables, weights=("weights", "biases"))
    concat = ops.get(f"{CONTRIB_INPUT_SCOPE}/concat")
    if concat is None:
        raise EstimatorError(f"Expected contrib.learn's input layer {CONTRIB_INPUT_SCOPE}/concat "
                             f"in the graph. Received: no such op")
    inputs = list(concat.inputs) if concat.type == "Identity" else _inputs_of(concat)
    columns = []
    for tensor in inputs:
        if tensor.op.name.startswith(CONTRIB_INPUT_SCOPE + "/"):
            name = _segment(tensor.op.name, CONTRIB_INPUT_SCOPE)
            scope_ops = ops_in_scope(ops, f"{CONTRIB_INPUT_SCOPE}/{name}")
            if any(op.type not in SHAPE_OPS for op in scope_ops) or any(
                    variable.startswith(f"dnn/input_from_feature_columns/{name}")
                    for variable in variables):
                raise EstimatorError(
                    f"contrib.learn feature column {name!r} is not a real-valued column; "
                    f"port writes contrib.learn's real-valued columns only.")
        else:
            # The features were a bare array: contrib.learn's column named "".
            name = ""
        columns.append(Column(name, "numeric", key=name, width=int(tensor.shape[-1])))
    centered = CONTRIB_CENTERED_BIAS if CONTRIB_CENTERED_BIAS in variables else None
    return EstimatorSpec(head=head, units=units, hidden_units=hidden_units,
                         activation=activation, dnn_columns=tuple(columns), linear_columns=(),
                         layer_weights=("weights", "biases"), centered_bias=centered)


# TF 2.x names the head `head/`; TF 1.x's Estimators `dnn/head/` or `linear/head/`.
_HEAD = re.compile(r"(^|/)head/")
PROBABILITIES = re.compile(r"(^|/)head/predictions/probabilities")


def _head(ops):
    if any(PROBABILITIES.search(name) for name in ops):
        return "classifier"
    if any(_HEAD.search(name) for name in ops):
        return "regressor"
    raise EstimatorError("Expected the graph of a canned Estimator's head (head/predictions/...). "
                         "Received: no op under head/")


def _hidden_layers(ops, variables, weights=("kernel", "bias")):
    units, activations = [], set()
    index = 0
    while f"dnn/hiddenlayer_{index}/{weights[0]}" in variables:
        scope = f"dnn/hiddenlayer_{index}"
        units.append(int(variables[f"{scope}/{weights[0]}"].shape[1]))
        if any(name.startswith(f"{scope}/batchnorm") for name in variables):
            raise EstimatorError(f"{scope} has batch normalization (batch_norm=True), which "
                                 f"port does not write. Expected a DNN without batch_norm.")
        bias_add = ops.get(f"{scope}/BiasAdd")
        consumers = [op.type for op in bias_add.outputs[0].consumers()] if bias_add else []
        found = [_ACTIVATIONS[kind] for kind in consumers if kind in _ACTIVATIONS]
        if not found:
            raise EstimatorError(
                f"{scope}'s activation is not one Keras names. Expected one of "
                f"{', '.join(sorted(_ACTIVATIONS))}. Received: {', '.join(consumers) or 'none'}")
        activations.add(found[0])
        index += 1
    if len(activations) > 1:
        raise EstimatorError(f"The hidden layers have different activations: "
                             f"{sorted(activations)}. Expected one activation_fn.")
    return tuple(units), (activations.pop() if activations else None)


def _inputs_of(op):
    """The data inputs of a concatenation or a sum (a ConcatV2's axis left out)."""
    inputs = list(op.inputs)
    return inputs[:-1] if op.type == "ConcatV2" else inputs


def _segment(name, prefix):
    """The path segment of `name` right after `prefix/`."""
    return name[len(prefix) + 1:].split("/")[0]



def _dnn_columns(ops, variables, vocabulary_dirs, feature_names):
    first = ops.get("dnn/hiddenlayer_0/MatMul") or ops.get("dnn/logits/MatMul")
    concat = first.inputs[0].op if first is not None else None
    if concat is None or not concat.name.startswith(DNN_INPUT_SCOPE + "/concat"):
        raise EstimatorError(f"Expected the DNN's input layer {DNN_INPUT_SCOPE}/concat in the "
                             f"graph. Received: {concat.name if concat is not None else 'none'}")
    # Concatenating one column is an Identity of it.
    inputs = list(concat.inputs) if concat.type == "Identity" else _inputs_of(concat)
    segments = [_segment(tensor.op.name, DNN_INPUT_SCOPE) for tensor in inputs]
    columns = []
    for segment, tensor in zip(segments, inputs):
        name = _column_name(segment, segments)
        scope = f"{DNN_INPUT_SCOPE}/{segment}"
        width = int(tensor.shape[-1])
        columns.append(dense_column(name, scope, ops_in_scope(ops, scope), width, ops,
                                    variables, vocabulary_dirs, feature_names))
    return tuple(columns)


def _column_name(segment, segments):
    """A column's name from its call scope: feature columns v2 call them `NAME_1`."""
    if all(re.search(r"_1$", other) for other in segments):
        return segment[:-2]
    return segment



def _linear_columns(ops, variables, vocabulary_dirs, feature_names):
    sums = [op for name, op in ops.items() if name.endswith(f"/{LINEAR_SUM}")
            and name.startswith(LINEAR_SCOPE)]
    if not sums:
        raise EstimatorError(f"Expected the linear model's sum ({LINEAR_SCOPE}/.../"
                             f"{LINEAR_SUM}) in the graph. Received: no such op")
    total = sums[0]
    scope = total.name.rpartition("/")[0]
    columns = []
    inputs = list(total.inputs) if total.type == "AddN" else [total.inputs[0]]
    for tensor in inputs:
        name = _segment(tensor.op.name, scope)
        refuse_unknown_column(name)
        variable = f"{LINEAR_SCOPE}/{name}/weights"
        if variable not in variables:
            raise EstimatorError(f"Linear column {name!r}: its weights {variable} are not in "
                                 f"the checkpoint.")
        column_ops = ops_in_scope(ops, f"{scope}/{name}")
        rows = int(variables[variable].shape[0])
        if any(op.type in COMBINERS for op in column_ops):
            combiner = read_combiner(name, column_ops)
            if combiner != "sum":
                raise EstimatorError(f"Linear column {name!r} combines with {combiner} "
                                     f"(sparse_combiner); port writes the default, sum.")
            categorical = read_categorical(name, f"{scope}/{name}", column_ops, ops,
                                           vocabulary_dirs, num_ids=rows,
                                           feature_names=feature_names)
            columns.append(Column(name, "categorical", width=rows, categorical=categorical,
                                  variable=variable))
        elif any(op.type == "Bucketize" for op in column_ops):
            categorical = read_categorical(name, f"{scope}/{name}", column_ops, ops,
                                           vocabulary_dirs, num_ids=rows,
                                           feature_names=feature_names)
            columns.append(Column(name, "categorical", width=rows, categorical=categorical,
                                  variable=variable))
        else:
            numeric = numeric_column(name, [op for op in column_ops
                                            if "/weighted_sum" not in op.name], rows)
            columns.append(dataclasses.replace(numeric, variable=variable))
    return tuple(columns)
