"""Numerical parity: run the legacy graph and the Keras model on one seeded batch and compare."""

import dataclasses

import numpy as np

from migrate.errors import ArgumentError
from migrate.errors import CheckpointError
from migrate.errors import ModelError
from migrate.errors import first_line
from migrate.source.locate import tensorflow_path
from migrate.source.meta_graph import checkpoint_key
from migrate.source.roles import EMA_SUFFIX
from migrate.verification import inputs as inputs_lib
from migrate.verification import legacy_graph
from migrate.verify_settings import DEFAULT_BATCH_SIZE
from migrate.verify_settings import DEFAULT_TOLERANCE
from migrate.verify_settings import VerifySettings

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

    Attributes:
        inputs: `{placeholder: {"shape", "dtype", "keras_input"}}` of what was fed.
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

    @property
    def passed(self):
        return bool(self.max_rel_diff <= self.tolerance)

    def summary(self):
        verdict = "PASS" if self.passed else "FAIL"
        text = (f"verify {verdict}: {self.output_tensor} {list(self.shape)} max abs diff "
                f"{self.max_abs_diff:.3g}, max relative diff {self.max_rel_diff:.3g} "
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
                "passed": self.passed, "first_divergent_layer": self.first_divergent_layer}


def run_legacy(prefix, settings, keras_input_names, *, ema=False, arrays=None, extra_tensors=None):
    """Runs the legacy graph from its `.meta` with all variables restored by its Saver (a
    SavedModel's graph restored from its `variables/`, a frozen graph as it is).

    With `ema`, the variables are restored from their moving averages, as
    TF1 evaluation did with `ExponentialMovingAverage.variables_to_restore()`.

    Args:
        prefix: the legacy checkpoint prefix (its `.meta` must exist), or
            a `LegacyCheckpoint` opened from a SavedModel or frozen GraphDef
            (`legacy_graph.source_of`).
        settings: a `VerifySettings` naming its output tensor.
        keras_input_names: the Keras model's input names (see `inputs.build_feed`).
        ema: restore the moving averages in place of the variables.
        arrays: arrays given directly by tensor name (see `inputs.build_feed`).
        extra_tensors: optional `graph -> list of tensors` also evaluated on
            the same run (the layer-by-layer comparison's candidates).

    Returns:
        `(feed, outputs, extra)`: the `LegacyFeed`, the output array, and the
        extra tensors' values by name (empty without `extra_tensors`).

    Raises:
        CheckpointError: the graph cannot be imported, restored or run.
        ArgumentError: the tensors or feeds do not fit the graph.
    """
    import tensorflow as tf

    # A SavedModel or frozen GraphDef (an opened `LegacyCheckpoint`) brings its own graph.
    loaded = legacy_graph.load(prefix, ema=ema)
    if loaded is None:
        meta_path = inputs_lib.check_meta(prefix)
        graph = tf.Graph()
        with graph.as_default():
            try:
                saver = tf.compat.v1.train.import_meta_graph(meta_path, clear_devices=True)
            except Exception as error:  # TensorFlow's many import errors, translated.
                raise CheckpointError(f"Cannot import {meta_path}: {first_line(error)}") from None
        restore_path, origin = tensorflow_path(prefix), f"The graph in {meta_path}"
    else:
        graph, saver, restore_path, origin = (loaded.graph, loaded.saver, loaded.restore_path,
                                              loaded.origin)
    with graph.as_default():
        output = inputs_lib.tensor_by_name(graph, settings.output_tensor, "output_tensor")
        feed = inputs_lib.build_feed(graph, output, settings, keras_input_names, arrays=arrays)
        extras = list(extra_tensors(graph)) if extra_tensors is not None else []
        if ema:
            saver = tf.compat.v1.train.Saver(_moving_average_var_list(graph, restore_path))
        if saver is None and restore_path is not None:
            raise CheckpointError(f"{origin} has no variables to restore.")
        feed_dict = {graph.get_tensor_by_name(name): array for name, array in feed.arrays.items()}
        with tf.compat.v1.Session(graph=graph) as session:
            try:
                if saver is not None:
                    saver.restore(session, restore_path)
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


def compare(legacy_outputs, keras_outputs):
    """Returns `(max_abs_diff, max_rel_diff)` of two output arrays.

    Raises:
        ModelError: the shapes differ.

    Example:

    >>> compare([1.0, -2.0], [1.0, -1.0])
    (1.0, 0.5)
    """
    legacy_outputs = np.asarray(legacy_outputs, np.float64)
    keras_outputs = np.asarray(keras_outputs, np.float64)
    if legacy_outputs.shape != keras_outputs.shape:
        raise ModelError(f"The Keras model's output does not have the legacy output's shape. "
                         f"Expected {list(legacy_outputs.shape)}. "
                         f"Received: keras_output_shape={list(keras_outputs.shape)}")
    max_abs = float(np.max(np.abs(legacy_outputs - keras_outputs))) if legacy_outputs.size else 0.0
    scale = float(np.max(np.abs(legacy_outputs))) if legacy_outputs.size else 0.0
    return max_abs, (max_abs / scale if scale > 0 else max_abs)


def settings_from_arguments(*, output_tensor=None, input_tensors=None, feeds=None, inputs=None,
                            input_shapes=None, input_max=None, batch_size=DEFAULT_BATCH_SIZE,
                            seed=0, tolerance=DEFAULT_TOLERANCE, layers=False, input_tensor=None,
                            input_shape=None, keep_failed=False):
    """Returns the `VerifySettings` that `verify`'s keyword arguments describe.

    `input_tensor` (one name, or names separated by commas) and `input_shape`
    (one shape for all inputs) are the single-input spellings of
    `input_tensors` and `input_shapes`; an integer `input_max` applies to all.
    `keep_failed` matters only to `convert`.

    Example:

    >>> settings_from_arguments(output_tensor="logits", input_tensor="a:0,b:0").input_tensors
    ('a:0', 'b:0')
    """
    if input_tensor is not None:
        if input_tensors is not None:
            raise ArgumentError(f"Expected input_tensor or input_tensors, not both. Received: "
                                f"input_tensor={input_tensor!r}, input_tensors={input_tensors!r}")
        input_tensors = [name.strip() for name in str(input_tensor).split(",") if name.strip()]
    if input_shape is not None:
        if input_shapes is not None:
            raise ArgumentError(f"Expected input_shape or input_shapes, not both. Received: "
                                f"input_shape={input_shape!r}, input_shapes={input_shapes!r}")
        input_shapes = [input_shape]
    if isinstance(input_max, int) and not isinstance(input_max, bool):
        input_max = [input_max]
    # Without output_tensor, a SavedModel's signature names the output
    # (`legacy_graph.signature_settings`); other sources refuse it there.
    return VerifySettings(
        output_tensor=output_tensor, input_tensors=tuple(input_tensors or ()),
        input_shapes=input_shapes, input_max=input_max, feeds=dict(feeds or {}),
        inputs_file=inputs if isinstance(inputs, str) else None, batch_size=batch_size,
        seed=seed, tolerance=tolerance, layers=layers, keep_failed=keep_failed)


def verify(checkpoint, model, *, output_tensor=None, input_tensors=None, feeds=None, inputs=None,
           input_shapes=None, input_max=None, batch_size=DEFAULT_BATCH_SIZE, seed=0,
           tolerance=DEFAULT_TOLERANCE, ema=False, layers=False, table=None, converted=None,
           settings=None, input_tensor=None, input_shape=None):
    """Compares the legacy graph's output with the Keras model's on one batch.

    The legacy graph is imported from the checkpoint's `.meta` and restored
    by its own Saver in graph mode. Without `input_tensors`, the placeholders
    the output depends on (not fed by `feeds`) are taken when they match the
    Keras model's inputs in number; they are ordered like the Keras inputs
    when named alike. No shape is ever guessed.

    Args:
        checkpoint: the legacy checkpoint prefix or directory (its `.meta` must
            exist), a TF1 SavedModel directory or frozen GraphDef file, or a
            `LegacyCheckpoint` opened from one (with its tags and signature).
        model: the Keras model, with the converted weights restored.
        output_tensor: the graph's output to compare, e.g. `logits:0`;
            from a SavedModel, its signature's output by default (the one
            named like the Keras output, or the only one).
        input_tensors: placeholders fed to the Keras model's inputs, in order,
            e.g. `["input_ids:0", "token_type_ids:0"]`.
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
            input_shape=input_shape)
    arrays = inputs if isinstance(inputs, dict) else None
    prefix = legacy_graph.source_of(checkpoint)
    keras_names = inputs_lib.keras_input_names(model)
    settings = legacy_graph.signature_settings(prefix, settings, keras_names,
                                               legacy_graph.keras_output_names(model))
    feed, legacy_outputs, _ = run_legacy(prefix, settings, keras_names, ema=ema, arrays=arrays)
    keras_outputs = _keras_outputs(model, feed.keras_inputs())
    max_abs, max_rel = compare(legacy_outputs, keras_outputs)
    report = VerifyReport(output_tensor=settings.output_tensor, shape=tuple(legacy_outputs.shape),
                          max_abs_diff=max_abs, max_rel_diff=max_rel,
                          tolerance=settings.tolerance, batch_size=settings.batch_size,
                          seed=settings.seed, inputs=feed.describe())
    if settings.layers or not report.passed:
        from migrate.verification import layers as layers_lib
        layers_lib.attach(report, prefix, model, settings, ema=ema, arrays=feed.arrays,
                          table=table, converted=converted)
    return report


def _keras_outputs(model, keras_inputs):
    return np.asarray(model(keras_inputs, training=False))
