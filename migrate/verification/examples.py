"""Feeding a legacy graph that parses serialized `tf.train.Example`s (an Estimator's signature).

An Estimator's export (and its serving graph) takes one string tensor of
serialized `tf.train.Example`s and parses it into raw features by name; the
Keras model written for it takes the raw features as a dict. Verification
feeds both from the same rows: real ones given by feature name (the inputs
file), or generated from what the graph does with each feature
(`feature_values`), then serialized for the legacy graph.
"""

import dataclasses

import numpy as np

from migrate.errors import ArgumentError
from migrate.verification import feature_values
from migrate.verification import feed_arrays
from migrate.verification import inputs as inputs_lib
from migrate.verification import legacy_feed

_PARSE_OPS = frozenset({"ParseExample", "ParseExampleV2"})
_PASS_THROUGH_OPS = frozenset({"Identity", "Reshape", "ExpandDims", "Squeeze"})


@dataclasses.dataclass(frozen=True)
class ParsedFeature:
    """One feature a parse op reads.

    Attributes:
        key: the feature's name in the `tf.train.Example`.
        dtype: `float32`, `int64` or `string`.
        shape: the dense shape per example (`FixedLenFeature`), or None for a
            sparse (`VarLenFeature`) or ragged one, fed one value per example.
        tensor: the parsed values' tensor, whose use in the graph says what
            values fit.
    """

    key: str
    dtype: str
    shape: tuple | None
    tensor: object


def parsed_features(placeholder):
    """Returns the `ParsedFeature`s of the parse ops that read `placeholder`, or [].

    Example:

        parsed_features(graph.get_tensor_by_name("input_example_tensor:0"))
    """
    found, queue, seen = [], [placeholder], set()
    while queue:
        tensor = queue.pop()
        for op in tensor.consumers():
            if op.name in seen:
                continue
            seen.add(op.name)
            if op.type in _PARSE_OPS:
                found += _features_of(op)
            elif op.type in _PASS_THROUGH_OPS:
                queue.extend(op.outputs)
    return found


def _features_of(op):
    """The features of one ParseExample (V1: keys as separate inputs) or ParseExampleV2 op."""
    from tensorflow.python.framework import tensor_util

    def keys(tensors):
        return [_text(key) for tensor in tensors
                for key in np.asarray(tensor_util.constant_value(tensor)).reshape(-1)]

    sparse_types = [dtype.name for dtype in op.get_attr("sparse_types")]
    dense_types = [dtype.name for dtype in op.get_attr("Tdense")]
    dense_shapes = [tuple(size.size for size in shape.dim) if hasattr(shape, "dim")
                    else tuple(shape.as_list()) for shape in op.get_attr("dense_shapes")]
    if op.type == "ParseExample":
        sparse, dense = len(sparse_types), len(dense_types)
        sparse_keys = keys(op.inputs[2:2 + sparse])
        dense_keys = keys(op.inputs[2 + sparse:2 + sparse + dense])
        ragged_keys, ragged_types = [], []
    else:
        sparse_keys, dense_keys, ragged_keys = (keys([op.inputs[index]]) for index in (2, 3, 4))
        ragged_types = [dtype.name for dtype in op.get_attr("ragged_value_types")]
    outputs = list(op.outputs)
    sparse_count = len(sparse_keys)
    sparse_values = outputs[sparse_count:2 * sparse_count]
    dense_values = outputs[3 * sparse_count:3 * sparse_count + len(dense_keys)]
    ragged_values = outputs[3 * sparse_count + len(dense_keys):][:len(ragged_keys)]
    found = [ParsedFeature(key, dtype, None, tensor)
             for key, dtype, tensor in zip(sparse_keys, sparse_types, sparse_values)]
    found += [ParsedFeature(key, dtype, shape, tensor)
              for key, dtype, shape, tensor in zip(dense_keys, dense_types, dense_shapes,
                                                   dense_values)]
    found += [ParsedFeature(key, dtype, None, tensor)
              for key, dtype, tensor in zip(ragged_keys, ragged_types, ragged_values)]
    return found


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def example_feed(graph, outputs, settings, keras_inputs, *, arrays=None, assets=None):
    """Returns the `LegacyFeed` of a graph that parses `tf.train.Example`s, or None.

    The graph qualifies when the outputs depend on one string placeholder
    (not fed by `settings.feeds`) that a parse op reads, and the Keras model
    takes features of that op by name. Rows given in `arrays` (or the
    settings' inputs file) by feature name are used as they are; the others
    are generated from the graph (`feature_values`), as many rows as cover
    every vocabulary entry and bucket (at least the batch size).

    Args:
        graph: the imported legacy `tf.Graph`.
        outputs: the output tensors compared.
        settings: a `VerifySettings`.
        keras_inputs: `legacy_feed.keras_input_names(model)`.
        arrays: `{name: array}` given directly, in place of the inputs file.
        assets: a SavedModel's `{asset tensor name: path}` (vocabulary files).

    Returns:
        A `LegacyFeed` feeding the serialized examples to the legacy graph
        and the raw rows to the Keras inputs by name, or None.

    Raises:
        ArgumentError: a Keras input is no feature the graph parses, or
            given rows disagree in count.
    """
    feeds = set(dict(settings.feeds))
    needed = [tensor for tensor in inputs_lib.dependent_on_all(graph, outputs)
              if tensor.name not in feeds]
    if len(needed) != 1 or needed[0].dtype.name != "string":
        return None
    (placeholder,) = needed
    if settings.input_tensors and tuple(settings.input_tensors) != (placeholder.name,):
        return None
    features = {feature.key: feature for feature in parsed_features(placeholder)}
    keras_names = [name for name, _ in keras_inputs]
    if not features or not set(keras_names) & set(features):
        return None
    missing = [name for name in keras_names if name not in features]
    if missing:
        raise ArgumentError(
            f"The legacy graph parses tf.train.Examples from {placeholder.name} with the "
            f"features {', '.join(sorted(features))}; the Keras model's input"
            f"{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"{'are' if len(missing) > 1 else 'is'} not among them. Expected a Keras model "
            f"taking the raw features by name. Received: Keras inputs {', '.join(keras_names)}",
            option="input_tensors")
    given = _given_rows(arrays, settings, features)
    rows = _rows(graph, features, given, settings, assets)
    feed = legacy_feed.LegacyFeed(input_names=[placeholder.name],
                                 arrays={placeholder.name: serialize(rows, features)})
    for name, value in dict(settings.feeds).items():
        tensor = inputs_lib.tensor_by_name(graph, name, "feeds")
        feed.arrays[tensor.name] = feed_arrays.constant_feed(tensor, value, settings.batch_size)
    feed.keras_arrays = {name: rows[name] for name in keras_names}
    feed.keras_order = keras_names
    return feed


def _given_rows(arrays, settings, features):
    """Real rows by feature name, from `arrays` or the inputs file (`name` or `name:0`)."""
    source = arrays if arrays is not None else feed_arrays.load_inputs_file(settings.inputs_file)
    given = {}
    for name, array in (source or {}).items():
        key = name[:-2] if name.endswith(":0") else name
        if key in features:
            given[key] = np.asarray(array)
    counts = {key: len(array) for key, array in given.items()}
    if len(set(counts.values())) > 1:
        raise ArgumentError(f"Expected the same number of rows for every feature. Received: "
                            f"{counts}", option="inputs_file")
    return given


def _rows(graph, features, given, settings, assets):
    """Every feature's rows: the given ones, the others generated from the graph."""
    found = {key: feature_values.facts(graph, feature.tensor, assets=assets)
             for key, feature in features.items() if key not in given}
    if given:
        count = len(next(iter(given.values())))
    else:
        count = max([settings.batch_size, *(facts.covering_rows for facts in found.values())])
    rows = {}
    for index, (key, feature) in enumerate(sorted(features.items())):
        if key in given:
            array = given[key]
            rows[key] = array.astype(object) if feature.dtype == "string" else array
            continue
        width = int(np.prod(feature.shape)) if feature.shape else 1
        columns = [feature_values.values(found[key], feature.dtype, count,
                                         seed=[settings.seed, index, column])
                   for column in range(width)]
        # Each column starts its turn elsewhere, so a row mixes values.
        array = np.stack([np.roll(column, shift) for shift, column in enumerate(columns)], axis=1)
        shape = (count, *feature.shape) if feature.shape is not None else (count, 1)
        rows[key] = array.reshape(shape)
    return rows


def serialize(rows, features):
    """Returns the rows as serialized `tf.train.Example`s, a 1-D object array of bytes.

    Args:
        rows: `{feature key: array of rows}`, the first axis the row.
        features: `{key: ParsedFeature}` (their dtypes say which list each goes in).
    """
    import tensorflow as tf

    count = len(next(iter(rows.values())))
    serialized = []
    for row in range(count):
        example = tf.train.Example()
        for key, feature in features.items():
            values = np.asarray(rows[key][row]).reshape(-1)
            entry = example.features.feature[key]
            if feature.dtype == "string":
                entry.bytes_list.value.extend(
                    value if isinstance(value, bytes) else str(value).encode("utf-8")
                    for value in values)
            elif feature.dtype.startswith("int"):
                entry.int64_list.value.extend(int(value) for value in values)
            else:
                entry.float_list.value.extend(float(value) for value in values)
        serialized.append(example.SerializeToString())
    return np.array(serialized, object)
