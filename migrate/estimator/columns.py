"""Reads a canned Estimator from its graph: which one, its layers, and every feature column.

A canned Estimator (`DNNClassifier`, `DNNRegressor`, `LinearClassifier`,
`LinearRegressor`, `DNNLinearCombined*`) leaves no description of itself in
its `model_dir`, only the graph it ran. The graph is enough: feature columns
name their scopes after themselves (`color_embedding`, `hours_bucketized`,
`color_X_hours_bucketized`), and the ops inside a scope say what the column
did (a `Bucketize` and its boundaries, a hash table and its keys, a
`StringToHashBucketFast` and its bucket count, a `SparseSegmentMean`
combiner, an affine normalizer's constants). The input layer concatenates
its columns in the order of their names, and the linear model adds its
columns' sums in that order too; both orders are read from the graph's
concatenation and sum, not assumed.

Every column the reader does not recognise is refused in one line naming
it, before anything is written.
"""

import dataclasses
import os
import re

from migrate.errors import CheckpointError

# Scopes of the two towers, as TF 2.x's `tf.estimator` (feature columns v2) names them.
DNN_INPUT_SCOPE = "dnn/input_from_feature_columns/input_layer"
LINEAR_SCOPE = "linear/linear_model"
_LINEAR_SUM = "weighted_sum_no_bias"
_ACTIVATIONS = {"Relu": "relu", "Elu": "elu", "Selu": "selu", "Sigmoid": "sigmoid",
                "Tanh": "tanh", "Relu6": "relu6", "Softplus": "softplus",
                "LeakyRelu": "leaky_relu", "Softsign": "softsign"}
_COMBINERS = {"SparseSegmentSum": "sum", "SparseSegmentMean": "mean",
              "SparseSegmentSqrtN": "sqrtn"}
# The ops of an affine normalizer_fn (`(x - 3.0) / 2.0`) with a constant operand.
_AFFINE_OPS = ("Sub", "Add", "AddV2", "Mul", "RealDiv", "Div", "Neg")
# Ops any numeric column has: shape bookkeeping around its reshape.
_SHAPE_OPS = ("Shape", "Const", "StridedSlice", "Pack", "Reshape", "Cast", "Identity")
# sparse_cross_hashed's default key, the one Keras' HashedCrossing uses.
DEFAULT_CROSS_HASH_KEY = 0xDECAFCAFFE


class EstimatorError(CheckpointError):
    """The graph is not a canned Estimator this reader knows, or has a column Keras cannot do."""


@dataclasses.dataclass(frozen=True)
class Categorical:
    """A categorical column's ids, as the feature column computed them.

    Attributes:
        name: the column's name (`color`, `hours_bucketized`, `color_X_hours`).
        kind: "vocabulary", "hash", "identity", "bucketized", "crossed", or "raw"
            (a raw string feature a cross hashes itself).
        key: the raw feature it reads (None for a crossed column).
        num_ids: how many ids it yields (vocabulary size + OOV buckets, ...).
        dtype: the raw feature's dtype: "string", "int64" or "float32".
        vocabulary: a vocabulary column's keys, in order.
        vocabulary_file: where a vocabulary file column's keys came from.
        num_oov_buckets: a vocabulary column's OOV buckets (after its keys).
        default_value: a vocabulary or identity column's id for an unknown
            value (-1: the value is dropped).
        boundaries: a bucketized column's boundaries.
        crossed: a crossed column's inputs, in the order the cross hashed them.
    """

    name: str
    kind: str
    key: str | None
    num_ids: int
    dtype: str
    vocabulary: tuple = ()
    vocabulary_file: str | None = None
    num_oov_buckets: int = 0
    default_value: int = -1
    boundaries: tuple = ()
    crossed: tuple = ()


@dataclasses.dataclass(frozen=True)
class Column:
    """One column of the DNN's input layer or of the linear model.

    Attributes:
        name: the column's name, which is also its scope and its Keras layer's name.
        kind: "numeric", "embedding", "indicator" (a categorical column used
            densely, bucketized ones included) or, in the linear model,
            "categorical" (its weights summed per id).
        key: a numeric column's raw feature.
        width: how many values the column adds to the input layer.
        scale, offset: a numeric column's affine normalizer (`x * scale + offset`).
        categorical: the ids behind an embedding, indicator or linear categorical column.
        combiner: "sum", "mean" or "sqrtn".
        variable: the checkpoint variable of its weights (embedding or linear), or None.
    """

    name: str
    kind: str
    key: str | None = None
    width: int = 1
    scale: float = 1.0
    offset: float = 0.0
    categorical: Categorical | None = None
    combiner: str = "sum"
    variable: str | None = None


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
            scope_ops = _scope_ops(ops, f"{CONTRIB_INPUT_SCOPE}/{name}")
            if any(op.type not in _SHAPE_OPS for op in scope_ops) or any(
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
_PROBABILITIES = re.compile(r"(^|/)head/predictions/probabilities")


def _head(ops):
    if any(_PROBABILITIES.search(name) for name in ops):
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


def _scope_ops(ops, scope):
    return [op for name, op in ops.items() if name.startswith(scope + "/")]


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
        columns.append(_dense_column(name, scope, _scope_ops(ops, scope), width, ops,
                                     variables, vocabulary_dirs, feature_names))
    return tuple(columns)


def _column_name(segment, segments):
    """A column's name from its call scope: feature columns v2 call them `NAME_1`."""
    if all(re.search(r"_1$", other) for other in segments):
        return segment[:-2]
    return segment


def _dense_column(name, scope, scope_ops, width, ops, variables, vocabulary_dirs,
                  feature_names):
    refuse_unknown_column(name)
    types = {op.type for op in scope_ops}
    if name.endswith("_embedding"):
        variable = f"{DNN_INPUT_SCOPE}/{name}/embedding_weights"
        if variable not in variables:
            raise EstimatorError(f"Column {name!r}: its embedding variable {variable} is not "
                                 f"in the checkpoint.")
        if any("clip_by_norm" in op.name for op in scope_ops):
            raise EstimatorError(f"Embedding column {name!r} clips its vectors (max_norm), "
                                 f"which Keras' Embedding does not do. Expected "
                                 f"embedding_column without max_norm.")
        base = name[:-len("_embedding")]
        categorical = _categorical(base, scope, scope_ops, ops, vocabulary_dirs,
                                   num_ids=int(variables[variable].shape[0]),
                                   feature_names=feature_names)
        return Column(name, "embedding", width=width, categorical=categorical,
                      combiner=_combiner(name, scope_ops), variable=variable)
    if name.endswith("_indicator") or "Bucketize" in types and name.endswith("_bucketized"):
        base = name[:-len("_indicator")] if name.endswith("_indicator") else name
        categorical = _categorical(base, scope, scope_ops, ops, vocabulary_dirs, num_ids=width,
                                   feature_names=feature_names)
        return Column(name, "indicator", width=width, categorical=categorical)
    return _numeric_column(name, scope_ops, width)


def refuse_unknown_column(name):
    """Refuses, in one line, the feature columns port has no Keras equivalent for."""
    for marker, what in (("_shared_embedding", "a shared embedding column"),
                         ("_weighted_by_", "a weighted categorical column"),
                         ("sequence_", "a sequence column")):
        if marker in name:
            raise EstimatorError(
                f"Feature column {name!r} is {what}, which has no Keras preprocessing "
                f"equivalent port writes. Expected numeric, bucketized, vocabulary, hash, "
                f"identity, crossed, embedding or indicator columns.")


def _numeric_column(name, scope_ops, width):
    """A numeric column; an affine normalizer_fn becomes `scale` and `offset`."""
    computing = [op for op in scope_ops if op.type not in _SHAPE_OPS]
    scale, offset = 1.0, 0.0
    for op in _in_data_order(computing):
        if op.type not in _AFFINE_OPS:
            raise EstimatorError(
                f"Numeric column {name!r} has a normalizer_fn that is not affine ({op.type} "
                f"in {op.name}); Keras' Rescaling writes only x * scale + offset. Expected a "
                f"normalizer such as (x - mean) / std.")
        if op.type == "Neg":
            scale, offset = -scale, -offset
            continue
        constant = [_constant(tensor) for tensor in op.inputs]
        value = next((c for c in constant if c is not None), None)
        if value is None or len(op.inputs) != 2:
            raise EstimatorError(f"Numeric column {name!r}: its normalizer {op.name} "
                                 f"({op.type}) has no constant operand; only constants are "
                                 f"written as Rescaling.")
        constant_first = constant[0] is not None
        if op.type in ("Add", "AddV2"):
            offset += value
        elif op.type == "Sub":
            if constant_first:
                scale, offset = -scale, value - offset
            else:
                offset -= value
        elif op.type == "Mul":
            scale, offset = scale * value, offset * value
        else:  # RealDiv, Div
            if constant_first:
                raise EstimatorError(f"Numeric column {name!r}: its normalizer divides a "
                                     f"constant by the value ({op.name}), which is not affine.")
            scale, offset = scale / value, offset / value
    return Column(name, "numeric", key=name, width=width, scale=scale, offset=offset)


def _in_data_order(scope_ops):
    """Orders a scope's ops so that each comes after the ops of the scope it reads."""
    members = {op.name: op for op in scope_ops}
    ordered, seen = [], set()

    def visit(op):
        if op.name in seen:
            return
        seen.add(op.name)
        for tensor in op.inputs:
            if tensor.op.name in members:
                visit(tensor.op)
        ordered.append(op)
    for op in scope_ops:
        visit(op)
    return ordered


def _constant(tensor):
    """A scalar Const's value (through Identity and Cast), else None."""
    op = tensor.op
    while op.type in ("Identity", "Cast"):
        op = op.inputs[0].op
    if op.type != "Const":
        return None
    from tensorflow.python.framework import tensor_util  # Deferred: TensorFlow.

    value = tensor_util.MakeNdarray(op.get_attr("value"))
    return float(value) if value.size == 1 else None


def _combiner(name, scope_ops):
    found = {_COMBINERS[op.type] for op in scope_ops if op.type in _COMBINERS}
    if len(found) != 1:
        raise EstimatorError(f"Column {name!r}: expected one embedding combiner (sum, mean, "
                             f"sqrtn) in its graph. Received: {sorted(found) or 'none'}")
    return found.pop()


def _categorical(name, scope, scope_ops, ops, vocabulary_dirs, *, num_ids, feature_names):
    """The categorical column `name` read from the ops of the scope that uses it."""
    refuse_unknown_column(name)
    if "_X_" in name:
        return _crossed(name, scope_ops, ops, vocabulary_dirs, num_ids, feature_names)
    scope_ops = _defining_ops(name, scope, scope_ops, ops)
    types = [op.type for op in scope_ops]
    if "Bucketize" in types:
        bucketize = next(op for op in scope_ops if op.type == "Bucketize")
        boundaries = tuple(float(b) for b in bucketize.get_attr("boundaries"))
        if not name.endswith("_bucketized"):
            raise EstimatorError(f"Column {name!r} buckets its values but is not named as a "
                                 f"bucketized column (NAME_bucketized).")
        if num_ids is not None and num_ids != len(boundaries) + 1:
            raise EstimatorError(
                f"Bucketized column {name!r} has {num_ids} buckets for {len(boundaries)} "
                f"boundaries: a numeric source of more than one value, which port does not "
                f"write. Expected a numeric column of shape (1,).")
        return Categorical(name, "bucketized", name[:-len("_bucketized")],
                           len(boundaries) + 1, "float32", boundaries=boundaries)
    tables = [op for op in scope_ops if op.type in ("HashTableV2", "HashTable")]
    if tables:
        return _vocabulary(name, tables[0], scope_ops, ops, vocabulary_dirs, num_ids)
    hashes = [op for op in scope_ops if op.type == "StringToHashBucketFast"]
    if hashes:
        as_string = any(op.type == "AsString" for op in scope_ops)
        buckets = int(hashes[0].get_attr("num_buckets"))
        return Categorical(name, "hash", name, buckets, "int64" if as_string else "string")
    if any(op.type == "StringToHashBucketStrong" for op in scope_ops):
        raise EstimatorError(f"Column {name!r} hashes with a keyed hash (strong), which "
                             f"Keras' Hashing does not do the same way.")
    default = -1
    # categorical_column_with_identity(default_value=D) fills D where a value is out of range.
    for op in scope_ops:
        if op.type == "Fill":
            value = _constant(op.inputs[1])
            if value is not None:
                default = int(value)
    return Categorical(name, "identity", name, num_ids or 0, "int64", default_value=default)


_DEFINING = ("Bucketize", "HashTableV2", "HashTable", "StringToHashBucketFast")


def _defining_ops(name, scope, scope_ops, ops):
    """The ops that compute a categorical column's ids.

    A feature-column call computes each column's ids once and caches them:
    a column used twice (alone and in a cross) computes them in the scope of
    its first use, in name order, so its own scope may only read them.
    """
    if any(op.type in _DEFINING for op in scope_ops):
        return scope_ops
    parent = scope.rpartition("/")[0]
    for segment in sorted({op.name[len(parent) + 1:].split("/")[0] for op in ops.values()
                           if op.name.startswith(parent + "/")}):
        base = re.sub(r"(_1)?$", "", segment)
        base = re.sub(r"_(embedding|indicator)$", "", base)
        if name in base.split("_X_") and base != name:
            found = _scope_ops(ops, f"{parent}/{segment}")
            if any(op.type in _DEFINING for op in found):
                return found
    return scope_ops


def _vocabulary(name, table, scope_ops, ops, vocabulary_dirs, num_ids):
    key_dtype = table.get_attr("key_dtype").name
    if key_dtype not in ("string", "int64", "int32"):
        raise EstimatorError(f"Vocabulary column {name!r} has {key_dtype} keys. Expected "
                             f"string or integer keys.")
    keys, source = None, None
    for op in ops.values():
        if not op.inputs or op.inputs[0].op is not table:
            continue
        if op.type in ("LookupTableImportV2", "InitializeTableV2", "InitializeTable"):
            values = _array(op.inputs[1])
            keys = tuple(value.decode() if isinstance(value, bytes) else int(value)
                         for value in values.tolist())
        elif op.type in ("InitializeTableFromTextFileV2", "InitializeTableFromTextFile"):
            if op.get_attr("key_index") != -2 or op.get_attr("value_index") != -1:
                raise EstimatorError(f"Vocabulary file column {name!r} reads columns of its "
                                     f"file; port reads one key per line.")
            source = _text_constant(op.inputs[1])
            keys = _read_vocabulary(name, source, vocabulary_dirs, key_dtype)
            vocab_size = op.get_attr("vocab_size")
            if vocab_size not in (-1, None) and vocab_size < len(keys):
                keys = keys[:vocab_size]
    if keys is None:
        raise EstimatorError(f"Vocabulary column {name!r}: its table's initializer is not in "
                             f"the graph.")
    oov = [op for op in scope_ops if op.type == "StringToHashBucketFast"
           and "hash_table_Lookup" in op.name]
    num_oov = int(oov[0].get_attr("num_buckets")) if oov else 0
    find = next(op for op in scope_ops if op.type in ("LookupTableFindV2", "LookupTableFind"))
    default = _constant(find.inputs[2])
    default = -1 if default is None else int(default)
    if num_ids is not None and num_ids != len(keys) + num_oov:
        raise EstimatorError(f"Vocabulary column {name!r}: {len(keys)} keys and {num_oov} OOV "
                             f"buckets, but its weights have {num_ids} rows.")
    return Categorical(name, "vocabulary", name, len(keys) + num_oov,
                       "string" if key_dtype == "string" else "int64", vocabulary=keys,
                       vocabulary_file=source, num_oov_buckets=num_oov, default_value=default)


def _array(tensor):
    """A constant's value, through the Identity and Cast ops between it and its use."""
    from tensorflow.python.framework import tensor_util  # Deferred: TensorFlow.

    op = tensor.op
    while op.type in ("Identity", "Cast"):
        op = op.inputs[0].op
    if op.type != "Const":
        raise EstimatorError(f"Expected a constant behind {tensor.op.name}. Received: "
                             f"{op.type} {op.name}")
    return tensor_util.MakeNdarray(op.get_attr("value"))


def _text_constant(tensor):
    from tensorflow.python.framework import tensor_util  # Deferred: TensorFlow.

    value = tensor_util.MakeNdarray(tensor.op.get_attr("value"))
    value = value.item() if value.size == 1 else value
    return value.decode() if isinstance(value, bytes) else str(value)


def _read_vocabulary(name, path, vocabulary_dirs, key_dtype):
    candidates = [path] + [os.path.join(directory, os.path.basename(path))
                           for directory in vocabulary_dirs]
    found = next((candidate for candidate in candidates if os.path.isfile(candidate)), None)
    if found is None:
        raise EstimatorError(
            f"Vocabulary file {path} of column {name!r} does not exist here (it is the path "
            f"of the machine that trained the model). Expected it supplied: put "
            f"{os.path.basename(path)} in a directory given as --vocabulary_dir, or port an "
            f"export of the model, which carries it in assets/.")
    with open(found, encoding="utf-8") as file:
        lines = [line.rstrip("\n") for line in file]
    if lines and lines[-1] == "":
        lines.pop()
    return tuple(lines if key_dtype == "string" else [int(line) for line in lines])


def _crossed(name, scope_ops, ops, vocabulary_dirs, num_ids, feature_names):
    cross = next((op for op in scope_ops if op.type in ("SparseCross", "SparseCrossHashed")),
                 None)
    if cross is None:
        raise EstimatorError(f"Crossed column {name!r}: its SparseCross is not in the graph.")
    hash_key = cross.get_attr("hash_key") if cross.type == "SparseCross" else None
    if hash_key is not None and hash_key != DEFAULT_CROSS_HASH_KEY:
        raise EstimatorError(f"Crossed column {name!r} hashes with key {hash_key}; Keras' "
                             f"HashedCrossing uses the default key {DEFAULT_CROSS_HASH_KEY}.")
    sparse_count = len(cross.get_attr("sparse_types"))
    dense_count = len(cross.get_attr("dense_types"))
    count = sparse_count + dense_count
    # The op hashes its sparse inputs first, then its dense ones (raw features
    # given densely), whatever order the column listed them in.
    values = (list(cross.inputs)[sparse_count:2 * sparse_count]
              + list(cross.inputs)[3 * sparse_count:3 * sparse_count + dense_count])
    leaves = name.split("_X_")
    if len(leaves) != count:
        raise EstimatorError(f"Crossed column {name!r} names {len(leaves)} inputs but crosses "
                             f"{count}.")
    scope = "/".join(cross.name.split("/")[:-1])
    parent = scope.rpartition("/")[0]
    ordered = [None] * count
    # Categorical inputs first (their ops name them), raw features after (by key).
    for index, tensor in enumerate(values):
        if not _is_raw(tensor, parent):
            ordered[index] = _leaf_of(tensor, leaves, ordered)
    for index, tensor in enumerate(values):
        if ordered[index] is None:
            ordered[index] = _raw_leaf(tensor, leaves, ordered, parent, feature_names)
    inputs = []
    for leaf, tensor in zip(ordered, values):
        if _is_raw(tensor, parent):
            dtype = "string" if tensor.dtype.name == "string" else "int64"
            inputs.append(Categorical(leaf, "raw", leaf, 0, dtype))
            continue
        leaf_scope = f"{parent}/{leaf}"
        leaf_ops = _scope_ops(ops, leaf_scope) or scope_ops
        inputs.append(_categorical(leaf, leaf_scope, leaf_ops, ops, vocabulary_dirs,
                                   num_ids=None, feature_names=feature_names))
    return Categorical(name, "crossed", None, num_ids, "int64", crossed=tuple(inputs))


# Ops between a raw feature and a cross: a dense feature made sparse (values
# gathered where they are not missing), reshaped or cast.
_PASS_THROUGH = ("Identity", "Cast", "GatherNd", "Reshape")


def _raw_source(tensor, parent):
    """The raw feature tensor (made outside the feature-column call) a cross input is, or None."""
    while tensor.op.name.startswith(parent + "/"):
        if tensor.op.type not in _PASS_THROUGH or not tensor.op.inputs:
            return None
        tensor = tensor.op.inputs[0]
    return tensor


def _is_raw(tensor, parent):
    return _raw_source(tensor, parent) is not None


def _raw_leaf(tensor, leaves, taken, parent, feature_names):
    """Which raw feature a cross's input is: by its parsed key, its signature key, or its users."""
    left = [leaf for leaf in leaves if leaf not in taken]
    source = _raw_source(tensor, parent)
    source = tensor if source is None else source
    key = feature_names.get(source.name) or _parsed_key(source)
    if key in left:
        return key
    for consumer in source.consumers():
        for leaf in left:
            if consumer.name.startswith(f"{parent}/{leaf}/") or \
                    consumer.name.startswith(f"{parent}/{leaf}_1/"):
                return leaf
    if len(left) == 1:
        return left[0]
    raise EstimatorError(f"Cannot tell which raw feature of the cross {tensor.op.name} is "
                         f"which. Received: features {left}")


def _parsed_key(tensor):
    """The feature key of a ParseExample output, else None."""
    op = tensor.op
    if op.type not in ("ParseExample", "ParseExampleV2"):
        return None
    index = tensor.value_index
    sparse = op.get_attr("num_sparse") if op.type == "ParseExampleV2" else op.get_attr("Nsparse")
    if op.type == "ParseExampleV2":
        sparse_keys = _strings(op.inputs[2])
        dense_keys = _strings(op.inputs[3])
    else:
        sparse_keys = [_text_constant(t) for t in op.inputs[2:2 + sparse]]
        dense_keys = [_text_constant(t) for t in op.inputs[2 + sparse:2 + sparse
                                                           + op.get_attr("Ndense")]]
    if sparse <= index < 2 * sparse:
        return sparse_keys[index - sparse]
    if 3 * sparse <= index < 3 * sparse + len(dense_keys):
        return dense_keys[index - 3 * sparse]
    return None


def _strings(tensor):
    from tensorflow.python.framework import tensor_util  # Deferred: TensorFlow.

    values = tensor_util.MakeNdarray(tensor.op.get_attr("value"))
    return [value.decode() if isinstance(value, bytes) else str(value)
            for value in values.reshape(-1).tolist()]


def _leaf_of(tensor, leaves, taken):
    """Which of a crossed column's inputs a value tensor of its SparseCross holds."""
    names = _ancestor_types(tensor)
    if "Bucketize" in names:
        found = [leaf for leaf in leaves if leaf.endswith("_bucketized") and leaf not in taken]
        if found:
            return found[0]
    for leaf in leaves:
        if leaf not in taken and f"/{leaf}/" in tensor.op.name + "/":
            return leaf
    left = [leaf for leaf in leaves if leaf not in taken]
    if len(left) == 1:
        return left[0]
    raise EstimatorError(f"Cannot tell which input of the cross {tensor.op.name} feeds. "
                         f"Received: inputs {leaves}")


def _ancestor_types(tensor, depth=12):
    found, frontier = set(), [tensor.op]
    for _ in range(depth):
        following = []
        for op in frontier:
            found.add(op.type)
            following.extend(t.op for t in op.inputs)
        frontier = following
    return found


def _linear_columns(ops, variables, vocabulary_dirs, feature_names):
    sums = [op for name, op in ops.items() if name.endswith(f"/{_LINEAR_SUM}")
            and name.startswith(LINEAR_SCOPE)]
    if not sums:
        raise EstimatorError(f"Expected the linear model's sum ({LINEAR_SCOPE}/.../"
                             f"{_LINEAR_SUM}) in the graph. Received: no such op")
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
        column_ops = _scope_ops(ops, f"{scope}/{name}")
        rows = int(variables[variable].shape[0])
        if any(op.type in _COMBINERS for op in column_ops):
            combiner = _combiner(name, column_ops)
            if combiner != "sum":
                raise EstimatorError(f"Linear column {name!r} combines with {combiner} "
                                     f"(sparse_combiner); port writes the default, sum.")
            categorical = _categorical(name, f"{scope}/{name}", column_ops, ops,
                                       vocabulary_dirs, num_ids=rows,
                                       feature_names=feature_names)
            columns.append(Column(name, "categorical", width=rows, categorical=categorical,
                                  variable=variable))
        elif any(op.type == "Bucketize" for op in column_ops):
            categorical = _categorical(name, f"{scope}/{name}", column_ops, ops,
                                       vocabulary_dirs, num_ids=rows,
                                       feature_names=feature_names)
            columns.append(Column(name, "categorical", width=rows, categorical=categorical,
                                  variable=variable))
        else:
            numeric = _numeric_column(name, [op for op in column_ops
                                             if "/weighted_sum" not in op.name], rows)
            columns.append(dataclasses.replace(numeric, variable=variable))
    return tuple(columns)
