"""Numerical parity: run the legacy graph and the Keras model on one seeded batch and compare."""

import dataclasses

import numpy as np

from migrate.errors import ArgumentError
from migrate.errors import CheckpointError
from migrate.errors import ModelError
from migrate.errors import first_line
from migrate.source.locate import resolve_prefix
from migrate.source.locate import tensorflow_path
from migrate.source.meta_graph import checkpoint_key
from migrate.source.roles import EMA_SUFFIX
from migrate.verification import inputs as inputs_lib
from migrate.verify_settings import DEFAULT_BATCH_SIZE
from migrate.verify_settings import DEFAULT_TOLERANCE
from migrate.verify_settings import VerifySettings
from migrate.verify_settings import parse_pairs

# In a graph-mode run error: the line naming the failing node, and the lines
# that only say where it was defined.
_NODE_LINE = "Node: "
_OP_ERROR_FRAME_LINES = ("Graph execution error", "Detected at node", "File ", _NODE_LINE, "[[")

@dataclasses.dataclass
class VerifyReport:
    """The comparison of legacy and converted outputs.

    `max_rel_diff` is `max|legacy - keras| / max|legacy|` over the whole
    output: a scale-aware figure that does not blow up where single outputs
    are near zero.

    With several outputs compared, `output_tensor`, `shape` and the figures
    are those of the one furthest off, and `outputs` holds each one's.

    Attributes:
        inputs: `{placeholder: {"shape", "dtype", "keras_input"}}` of what was fed.
        outputs: per compared output, `{"keras_output", "output_tensor",
            "shape", "max_abs_diff", "max_rel_diff", "passed"}` (`keras_output`
            None for a model's one output).
        layers: the layer-by-layer comparison (`LayerDiff.to_json()` each),
            when asked for or when parity fails; None when not run.
        first_divergent_layer: the first Keras layer whose output differs
            beyond the tolerance, or None.
    """

    output_tensor: str
    shape: tuple
    max_abs_diff: float
    max_rel_diff: float
    tolerance: float
    batch_size: int
    seed: int
    inputs: dict = dataclasses.field(default_factory=dict)
    layers: list | None = None
    first_divergent_layer: str | None = None
    layers_note: str | None = None
    outputs: list = dataclasses.field(default_factory=list)

    @property
    def passed(self):
        return bool(self.max_rel_diff <= self.tolerance)

    def summary(self):
        verdict = "PASS" if self.passed else "FAIL"
        compared = self.outputs if len(self.outputs) > 1 else [{
            "keras_output": None, "output_tensor": self.output_tensor, "shape": self.shape,
            "max_abs_diff": self.max_abs_diff, "max_rel_diff": self.max_rel_diff}]
        figures = "; ".join(
            f"{'' if item['keras_output'] is None else item['keras_output'] + '='}"
            f"{item['output_tensor']} {list(item['shape'])} max abs diff "
            f"{item['max_abs_diff']:.3g}, max relative diff {item['max_rel_diff']:.3g}"
            for item in compared)
        text = (f"verify {verdict}: {figures} "
                f"(tolerance {self.tolerance:g}, batch {self.batch_size}, seed {self.seed}; "
                f"fed {', '.join(self.inputs) or 'nothing'})")
        if self.layers is not None:
            from migrate.verification import layers as layers_lib
            text += "\n" + layers_lib.table_text(self.layers, self.first_divergent_layer)
        if self.layers_note:
            text += "\n" + self.layers_note
        return text

    def to_json(self):
        document = dataclasses.asdict(self)
        document["passed"] = self.passed
        document["shape"] = list(self.shape)
        return document

    def manifest_entry(self):
        """Returns what a converted output's manifest records under `verified`."""
        return {"inputs": self.inputs, "output_tensor": self.output_tensor,
                "batch": self.batch_size, "seed": self.seed, "max_abs_diff": self.max_abs_diff,
                "max_rel_diff": self.max_rel_diff, "tolerance": self.tolerance,
                "passed": self.passed, "first_divergent_layer": self.first_divergent_layer,
                "outputs": self.outputs}


def run_legacy(prefix, settings, keras_input_names, *, ema=False, arrays=None, extra_tensors=None):
    """Runs the legacy graph from its `.meta` with all variables restored by its Saver.

    With `ema`, the variables are restored from their moving averages, as
    TF1 evaluation did with `ExponentialMovingAverage.variables_to_restore()`.

    Args:
        prefix: the legacy checkpoint prefix (its `.meta` must exist).
        settings: a `VerifySettings`.
        keras_input_names: the Keras model's input names (see `inputs.build_feed`).
        ema: restore the moving averages in place of the variables.
        arrays: arrays given directly by tensor name (see `inputs.build_feed`).
        extra_tensors: optional `graph -> list of tensors` also evaluated on
            the same run (the layer-by-layer comparison's candidates).

    Returns:
        `(feed, outputs, extra)`: the `LegacyFeed`, the output arrays (in
        the order of `settings.compared_outputs()`), and the
        extra tensors' values by name (empty without `extra_tensors`).

    Raises:
        CheckpointError: the graph cannot be imported, restored or run.
        ArgumentError: the tensors or feeds do not fit the graph.
    """
    import tensorflow as tf


    meta_path = inputs_lib.check_meta(prefix)
    graph = tf.Graph()
    with graph.as_default():
        try:
            saver = tf.compat.v1.train.import_meta_graph(meta_path, clear_devices=True)
        except Exception as error:  # TensorFlow's many import errors, translated.
            raise CheckpointError(f"Cannot import {meta_path}: {first_line(error)}") from None
        output = [inputs_lib.tensor_by_name(graph, name, "output_tensor")
                  for _, name in settings.compared_outputs()]
        feed = inputs_lib.build_feed(graph, output, settings, keras_input_names, arrays=arrays)
        extras = list(extra_tensors(graph)) if extra_tensors is not None else []
        if ema:
            saver = tf.compat.v1.train.Saver(_moving_average_var_list(graph, prefix))
        if saver is None:
            raise CheckpointError(f"The graph in {meta_path} has no variables to restore.")
        feed_dict = {graph.get_tensor_by_name(name): array for name, array in feed.arrays.items()}
        with tf.compat.v1.Session(graph=graph) as session:
            try:
                saver.restore(session, tensorflow_path(prefix))
                outputs = session.run(output, feed_dict)
            except tf.errors.OpError as error:
                raise CheckpointError(f"The legacy graph failed to run: {_op_error_text(error)}. "
                                      f"Received: fed {sorted(feed.arrays)}") from None
            extra = _run_extras(session, extras, feed_dict)
    return feed, outputs, extra


def _op_error_text(error):
    """Returns the line of a TensorFlow run error that says what failed, with the node's name.

    A graph-mode error's first line is "Graph execution error:", followed by
    where the node was defined; the cause ("indices[0] = 5 is not in [0, 2)")
    comes after the line "Node: 'NAME'".
    """
    lines = [line.strip() for line in str(getattr(error, "message", error)).splitlines()]
    node = next((line[len(_NODE_LINE):].strip("'") for line in lines
                 if line.startswith(_NODE_LINE)), None)
    causes = [line for line in lines if line and not line.startswith(_OP_ERROR_FRAME_LINES)]
    if not causes:
        return first_line(error)
    return causes[0] + (f" (node {node})" if node else "")


def _run_extras(session, tensors, feed_dict):
    """Evaluates the extra tensors, skipping those that cannot be fetched (loop internals)."""
    import tensorflow as tf

    if not tensors:
        return {}
    try:
        return dict(zip((tensor.name for tensor in tensors), session.run(tensors, feed_dict)))
    except tf.errors.OpError:
        values = {}
        for tensor in tensors:
            try:
                values[tensor.name] = session.run(tensor, feed_dict)
            except tf.errors.OpError:
                continue
        return values


def _moving_average_var_list(graph, prefix):
    """Maps each variable to its EMA shadow's key where the checkpoint has one.

    This is what `ExponentialMovingAverage.variables_to_restore()` returns,
    built by hand because a new average in an imported graph would pick
    uniquified shadow names (`.../ExponentialMovingAverage_1`).
    """
    import tensorflow as tf


    keys = set(tf.compat.v1.train.NewCheckpointReader(tensorflow_path(prefix))
               .get_variable_to_shape_map())
    var_list = {}
    for variable in graph.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES):
        key = checkpoint_key(variable)
        if key.endswith("/" + EMA_SUFFIX):
            continue
        shadow = f"{key}/{EMA_SUFFIX}"
        var_list.setdefault(shadow if shadow in keys else key, []).append(variable)
    return {key: parts[0] if len(parts) == 1 else parts for key, parts in var_list.items()}


def compare(legacy_outputs, keras_outputs, *, name=None):
    """Returns `(max_abs_diff, max_rel_diff)` of two output arrays (`name`: the legacy one's).

    Raises:
        ModelError: the shapes differ.

    Example:

    >>> compare([1.0, -2.0], [1.0, -1.0])
    (1.0, 0.5)
    """
    legacy_outputs = np.asarray(legacy_outputs, np.float64)
    keras_outputs = np.asarray(keras_outputs, np.float64)
    if legacy_outputs.shape != keras_outputs.shape:
        raise ModelError(f"The Keras model's output does not have the legacy output"
                         f"{' ' + name if name else ''}'s shape. "
                         f"Expected {list(legacy_outputs.shape)}. "
                         f"Received: keras_output_shape={list(keras_outputs.shape)}")
    max_abs = float(np.max(np.abs(legacy_outputs - keras_outputs))) if legacy_outputs.size else 0.0
    scale = float(np.max(np.abs(legacy_outputs))) if legacy_outputs.size else 0.0
    return max_abs, (max_abs / scale if scale > 0 else max_abs)


def settings_from_arguments(*, output_tensor=None, input_tensors=None, feeds=None, inputs=None,
                            input_shapes=None, input_max=None, batch_size=DEFAULT_BATCH_SIZE,
                            seed=0, tolerance=DEFAULT_TOLERANCE, layers=False, input_tensor=None,
                            input_shape=None, keep_failed=False, keras_feeds=None):
    """Returns the `VerifySettings` that `verify`'s keyword arguments describe.

    `input_tensor` (one name, or names separated by commas) and `input_shape`
    (one shape for all inputs) are the single-input spellings of
    `input_tensors` and `input_shapes`; an integer `input_max` applies to all.
    Names written `KERAS=TENSOR` (or a dict `{Keras name: tensor}`) pair the
    Keras model's inputs, or outputs for `output_tensor`, with the legacy
    graph's tensors. `keep_failed` matters only to `convert`.

    Example:

    >>> settings_from_arguments(output_tensor="logits", input_tensor="a:0,b:0").input_tensors
    ('a:0', 'b:0')
    >>> settings = settings_from_arguments(output_tensor="seq=sequence_output,pool=pooled",
    ...                                    input_tensors={"token_ids": "input_ids"})
    >>> settings.output_pairs, settings.input_pairs
    ((('seq', 'sequence_output:0'), ('pool', 'pooled:0')), (('token_ids', 'input_ids:0'),))
    """
    input_pairs = output_pairs = ()
    if input_tensor is not None:
        if input_tensors is not None:
            raise ArgumentError(f"Expected input_tensor or input_tensors, not both. Received: "
                                f"input_tensor={input_tensor!r}, input_tensors={input_tensors!r}")
        input_pairs = parse_pairs(input_tensor, "input_tensor") or ()
        input_tensors = [] if input_pairs else [
            name.strip() for name in str(input_tensor).split(",") if name.strip()]
    elif isinstance(input_tensors, dict):
        input_pairs, input_tensors = tuple(input_tensors.items()), None
    if isinstance(output_tensor, dict):
        output_pairs, output_tensor = tuple(output_tensor.items()), None
    elif output_tensor is not None:
        output_pairs = parse_pairs(output_tensor, "output_tensor") or ()
        if output_pairs:
            output_tensor = None
    if input_shape is not None:
        if input_shapes is not None:
            raise ArgumentError(f"Expected input_shape or input_shapes, not both. Received: "
                                f"input_shape={input_shape!r}, input_shapes={input_shapes!r}")
        input_shapes = [input_shape]
    if isinstance(input_max, int) and not isinstance(input_max, bool):
        input_max = [input_max]
    if output_tensor is None and not output_pairs:
        raise ArgumentError("Verification compares one output of the legacy graph. Expected "
                            "output_tensor, such as 'logits:0'. Received: output_tensor=None",
                            option="output_tensor")
    return VerifySettings(
        output_tensor=output_tensor, input_tensors=tuple(input_tensors or ()),
        input_pairs=input_pairs, output_pairs=output_pairs, keras_feeds=dict(keras_feeds or {}),
        input_shapes=input_shapes, input_max=input_max, feeds=dict(feeds or {}),
        inputs_file=inputs if isinstance(inputs, str) else None, batch_size=batch_size,
        seed=seed, tolerance=tolerance, layers=layers, keep_failed=keep_failed)


def verify(checkpoint, model, *, output_tensor=None, input_tensors=None, feeds=None, inputs=None,
           input_shapes=None, input_max=None, batch_size=DEFAULT_BATCH_SIZE, seed=0,
           tolerance=DEFAULT_TOLERANCE, ema=False, layers=False, table=None, converted=None,
           settings=None, input_tensor=None, input_shape=None, keras_feeds=None):
    """Compares the legacy graph's output with the Keras model's on one batch.

    The legacy graph is imported from the checkpoint's `.meta` and restored
    by its own Saver in graph mode. Without `input_tensors`, the placeholders
    the output depends on (not fed by `feeds`) are taken when they match the
    Keras model's inputs in number; they are ordered like the Keras inputs
    when named alike. No shape is ever guessed.

    Args:
        checkpoint: the legacy checkpoint prefix or directory (its `.meta` must exist).
        model: the Keras model, with the converted weights restored.
        output_tensor: the graph's output to compare, e.g. `logits:0`, or a
            dict `{Keras output: tensor}` of several compared at once (a dict
            output's key, an output layer's name, or an index), e.g.
            `{"sequence_output": "sequence_output:0", "pooled_output": "pooled_output:0"}`.
        keras_feeds: `{Keras input: constant}` for Keras inputs no placeholder
            feeds, at the shape of the paired inputs, e.g. `{"padding_mask": 1}`.
        input_tensors: placeholders fed to the Keras model's inputs, in order,
            e.g. `["input_ids:0", "token_type_ids:0"]`, or a dict pairing
            them with the Keras inputs by name, e.g.
            `{"token_ids": "input_ids:0", "segment_ids": "segment_ids:0"}`.
        feeds: `{placeholder: constant}` for placeholders the Keras model does
            not take, e.g. `{"istate:0": 0, "keep_prob:0": 1.0}`.
        inputs: real arrays by tensor name: an `.npz` path or a dict.
        input_shapes: per input, the shape without the batch dimension where
            the placeholder leaves sizes unknown (one entry for all).
        input_max: integer inputs are drawn from `[0, input_max)`: one int
            for all inputs or one per input.
        batch_size: rows in the generated batch.
        seed: NumPy seed of the generated batch.
        tolerance: largest accepted `max_rel_diff`.
        ema: evaluate the legacy graph with its moving averages (compare with
            an output converted with `ema=True`).
        layers: also compare layer by layer (done anyway when parity fails).
        table: the mapping table (path or `MappingTable`) for the layer-by-layer
            comparison; else the one recorded in `converted`'s manifest.
        converted: the converted output directory whose manifest names the table.
        settings: a `VerifySettings` in place of the keyword arguments above.
        input_tensor, input_shape: one-input spellings (`input_tensor` may be
            comma-separated names).

    Returns:
        A `VerifyReport`; `report.passed` tells whether the tolerance holds,
        `report.first_divergent_layer` names the first layer that differs.

    Raises:
        ArgumentError: tensors, feeds or shapes that do not fit the graph
            (an unfed placeholder is named with its dtype and shape).
        CheckpointError: no `.meta`, or the graph cannot be restored or run.
        ModelError: the Keras output's shape differs from the legacy one.

    Example:

        report = migrate.verify("bert/model.ckpt-3", model,
                                input_tensors=["input_ids:0", "token_type_ids:0"],
                                output_tensor="encoder/output:0", input_max=[30, 2])
        assert report.passed, report.summary()
    """

    if settings is None:
        settings = settings_from_arguments(
            output_tensor=output_tensor, input_tensors=input_tensors, feeds=feeds, inputs=inputs,
            input_shapes=input_shapes, input_max=input_max, batch_size=batch_size, seed=seed,
            tolerance=tolerance, layers=layers, input_tensor=input_tensor,
            input_shape=input_shape, keras_feeds=keras_feeds)
    arrays = inputs if isinstance(inputs, dict) else None
    prefix = resolve_prefix(checkpoint)
    keras_names = inputs_lib.keras_input_names(model)
    feed, legacy_outputs, _ = run_legacy(prefix, settings, keras_names, ema=ema, arrays=arrays)
    keras_result = _run_keras(model, feed.keras_inputs(by_name=inputs_lib.takes_dict(model)))
    compared = []
    for (keras_output, tensor), legacy_output in zip(settings.compared_outputs(),
                                                     legacy_outputs):
        keras_value = (np.asarray(keras_result) if keras_output is None
                       else keras_output_named(model, keras_result, keras_output))
        max_abs, max_rel = compare(legacy_output, keras_value, name=tensor)
        compared.append({"keras_output": keras_output, "output_tensor": tensor,
                         "shape": list(np.shape(legacy_output)), "max_abs_diff": max_abs,
                         "max_rel_diff": max_rel, "passed": bool(max_rel <= settings.tolerance)})
    worst = max(compared, key=lambda item: item["max_rel_diff"])
    report = VerifyReport(output_tensor=worst["output_tensor"], shape=tuple(worst["shape"]),
                          max_abs_diff=worst["max_abs_diff"], max_rel_diff=worst["max_rel_diff"],
                          tolerance=settings.tolerance, batch_size=settings.batch_size,
                          seed=settings.seed, inputs=feed.describe(), outputs=compared)
    if settings.layers or not report.passed:
        from migrate.verification import layers as layers_lib
        layers_lib.attach(report, prefix, model, settings, ema=ema, arrays=feed.arrays,
                          table=table, converted=converted)
    return report


def _run_keras(model, keras_inputs):
    """Runs the Keras model; its errors become one `ModelError` line."""
    try:
        return model(keras_inputs, training=False)
    except Exception as error:  # Keras's and TensorFlow's many errors, translated.
        raise ModelError(f"The Keras model failed on the fed inputs: {first_line(error)}. "
                         f"Expected inputs that fit it. Received: inputs of shapes "
                         f"{_shapes(keras_inputs)}") from None


def _shapes(structure):
    if isinstance(structure, dict):
        return {name: list(np.shape(value)) for name, value in structure.items()}
    if isinstance(structure, (list, tuple)):
        return [list(np.shape(value)) for value in structure]
    return list(np.shape(structure))


def keras_output_names(model):
    """Returns `[(names, key)]` for each output: what may name it, and how to take it.

    An output is named by its dict key, its index, or its layer's name; `key`
    takes it from what the model returns (a dict key, or an index).

    Example:

        keras_output_names(backbone)[0][0]  # {"pooled_output", "0", "pooled_dense"}
    """
    try:
        structure = model.output
    except (AttributeError, ValueError):  # Not functional: the dict keys of a call only.
        return []
    items = (list(structure.items()) if isinstance(structure, dict)
             else list(enumerate(structure if isinstance(structure, (list, tuple))
                                 else [structure])))
    found = []
    for index, (key, tensor) in enumerate(items):
        names = {str(key), str(index)}
        history = getattr(tensor, "_keras_history", None)
        if history is not None:
            names.add(history.operation.name)
        found.append((names, key))
    return found


def keras_output_named(model, result, name):
    """Returns the Keras model's output called `name` (a dict key, layer name or index) in
    `result`, what the model returned.

    Raises:
        ArgumentError: no output is called `name`; the message lists them.
    """
    for names, key in keras_output_names(model):
        if name in names:
            if isinstance(result, dict):
                return np.asarray(result[key])
            return np.asarray(result[key] if isinstance(result, (list, tuple)) else result)
    if isinstance(result, dict) and name in result:
        return np.asarray(result[name])
    if not isinstance(result, dict) and name.isdigit():
        values = result if isinstance(result, (list, tuple)) else [result]
        if int(name) < len(values):
            return np.asarray(values[int(name)])
    known = [" or ".join(sorted(names, key=lambda text: (text.isdigit(), text)))
             for names, _ in keras_output_names(model)]
    if not known:
        known = list(result) if isinstance(result, dict) else [str(index) for index in range(
            len(result) if isinstance(result, (list, tuple)) else 1)]
    raise ArgumentError(f"The Keras model has no output {name!r}. Expected one of its outputs: "
                        f"{'; '.join(known)}. Received: output_pairs naming {name!r}",
                        option="output_pairs")
