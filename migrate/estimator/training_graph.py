"""What port's verification feeds and compares in an Estimator's training graph (its model_dir).

An export names its inputs and outputs in its `predict` signature; the graph
a `model_dir` holds was built for training, and names neither. Its features
come from a `tf.data` iterator (`IteratorGetNext:3`) or an input queue, its
labels from the same op, and it computes the logits and, for a classifier,
the head's probabilities (a regressor's predictions are its logits). This
module reads both from the graph:

- the outputs: the towers' logits (`dnn/logits/BiasAdd`, the linear
  model's `weighted_sum`, their sum for a combined Estimator, contrib.learn's
  centered bias added) and `head/predictions/probabilities`;
- the inputs: which fed tensor (`verification.inputs.dependent_on_all`:
  dequeued tensors or placeholders) is which raw feature. Each is read by
  the ops of the feature columns that use it, under their names' scopes
  (`age_1/Reshape`, `color_X_hours_bucketized/Bucketize`), so each tensor's
  features are those of its consumers' columns (of its dtype), narrowed until
  every tensor has one.
"""

import re

from migrate.estimator.columns import EstimatorError
from migrate.estimator.keras_code import raw_inputs
from migrate.estimator.spec import CONTRIB_CENTERED_BIAS
from migrate.estimator.spec import LINEAR_SCOPE
from migrate.estimator.spec import LINEAR_SUM
from migrate.estimator.spec import PROBABILITIES
from migrate.verification import inputs as inputs_lib

DNN_LOGITS = "dnn/logits/BiasAdd"
_ADD_OPS = ("Add", "AddV2", "BiasAdd")
# The scopes feature columns are called in, before each column's own scope.
_CALL_SCOPES = ("input_layer", "linear_model", "input_from_feature_columns")
_KINDS = {"string": "string", "int64": "integer", "float32": "floating"}
_NOT_FEEDABLE = ("Expected a model_dir whose .meta (or graph.pbtxt) holds the Estimator's "
                 "training graph, or an export: port the export (export/NAME/TIMESTAMP), whose "
                 "signature names its inputs, or skip the verification (--noverify)")


def compared_outputs(graph, spec):
    """`((Keras output, tensor name), ...)`: what the ported model's outputs are compared with.

    Raises:
        EstimatorError: the graph has no logits where a canned Estimator puts them.
    """
    logits = _logits(graph, spec)
    if spec.head != "classifier":
        return (("predictions", logits.name),)
    pairs = [("logits", logits.name)]
    probabilities = [op for op in graph.get_operations()
                     if PROBABILITIES.search(op.name) and op.name.endswith("probabilities")]
    if probabilities:  # contrib.learn's training graph has none.
        pairs.append(("probabilities", probabilities[0].outputs[0].name))
    return tuple(pairs)


def _logits(graph, spec):
    ops = {op.name: op for op in graph.get_operations()}
    towers = []
    if spec.has_dnn:
        dnn = ops.get(DNN_LOGITS)
        if dnn is None:
            raise EstimatorError(f"The graph has no {DNN_LOGITS}, where the DNN's logits are. "
                                 f"{_NOT_FEEDABLE}.")
        logits = dnn.outputs[0]
        if spec.centered_bias is not None:
            logits = next((tensor for op in logits.consumers() if op.type in _ADD_OPS
                           for tensor in op.outputs
                           if any(_reads(other, CONTRIB_CENTERED_BIAS) for other in op.inputs)),
                          logits)
        towers.append(logits)
    if spec.has_linear:
        linear = [op.outputs[0] for name, op in ops.items() if name.startswith(LINEAR_SCOPE)
                  and op.type in _ADD_OPS and op.inputs
                  and op.inputs[0].op.name.endswith("/" + LINEAR_SUM)]
        if not linear:
            raise EstimatorError(f"The graph has no bias added to the linear model's "
                                 f"{LINEAR_SUM}, where its logits are. {_NOT_FEEDABLE}.")
        towers.append(linear[0])
    if len(towers) == 1:
        return towers[0]
    sums = [op.outputs[0] for op in towers[0].consumers() if op.type in _ADD_OPS
            and towers[1] in list(op.inputs)]
    if not sums:
        raise EstimatorError(f"The graph does not add the DNN's logits {towers[0].name} and the "
                             f"linear model's {towers[1].name}. {_NOT_FEEDABLE}.")
    return sums[0]


def _reads(tensor, variable, depth=3):
    """Whether `tensor` is `variable`'s value (through its `read` or `ReadVariableOp`)."""
    op = tensor.op
    for _ in range(depth):
        if op.name == variable or op.name.startswith(variable + "/"):
            return True
        if not op.inputs:
            return False
        op = op.inputs[0].op
    return False


def feature_inputs(graph, spec, outputs):
    """`((raw feature, tensor name), ...)`: which tensor the outputs are fed each feature through.

    Args:
        graph: the training `tf.Graph`.
        spec: its `EstimatorSpec`.
        outputs: the output tensor names compared (`compared_outputs`).

    Raises:
        EstimatorError: a fed tensor is no feature's, or which one cannot be told.
    """
    features = raw_inputs(spec)
    columns = _keys_of_columns(spec)
    tensors = inputs_lib.dependent_on_all(graph, [graph.get_tensor_by_name(name)
                                                  for _, name in outputs])
    candidates = {}
    for tensor in tensors:
        # One feature: each column that reads the tensor reads it among its features.
        named = None
        for op in tensor.consumers():
            segment = _column_segment(op.name)
            keys = columns.get(segment) or columns.get(re.sub(r"_1$", "", segment or ""))
            if keys:
                named = set(keys) if named is None else named & keys
        kind = _kind(tensor)
        candidates[tensor.name] = {key for key in (features if named is None else named)
                                   if key in features and _KINDS[features[key][0]] == kind}
    pairs = {}
    while candidates:
        settled = {name: keys for name, keys in candidates.items() if len(keys) == 1}
        if not settled:
            break
        for name, (key,) in settled.items():
            pairs[key] = name
            del candidates[name]
        for keys in candidates.values():
            keys -= set(pairs)
    missing = sorted(set(features) - set(pairs))
    if candidates or missing:
        unsure = ", ".join(f"{name} ({' or '.join(sorted(keys)) or 'no feature'})"
                           for name, keys in sorted(candidates.items()))
        raise EstimatorError(
            f"Cannot tell which tensor of the training graph feeds which feature"
            f"{': ' + unsure if unsure else ''}"
            f"{'; no tensor found for ' + ', '.join(missing) if missing else ''}. "
            f"{_NOT_FEEDABLE}.")
    return tuple(sorted(pairs.items()))


def _column_segment(name):
    """The column scope an op is in: the segment after the last feature-column call scope."""
    parts = name.split("/")
    calls = [index for index, part in enumerate(parts[:-1]) if part in _CALL_SCOPES]
    return parts[calls[-1] + 1] if calls else None


def _keys_of_columns(spec):
    """`{column name: the raw features it reads}` (a cross's leaves' too)."""

    def keys(categorical):
        if categorical.kind == "crossed":
            return set().union(*(keys(leaf) for leaf in categorical.crossed))
        return {categorical.key}

    found = {}
    for column in spec.columns():
        read = {column.key} if column.categorical is None else keys(column.categorical)
        found.setdefault(column.name, set()).update(read)
        if column.categorical is not None:
            found.setdefault(column.categorical.name, set()).update(read)
            for leaf in column.categorical.crossed:
                found.setdefault(leaf.name, set()).update(keys(leaf))
    return found


def _kind(tensor):
    if tensor.dtype.name == "string":
        return "string"
    return "integer" if tensor.dtype.is_integer else "floating"
