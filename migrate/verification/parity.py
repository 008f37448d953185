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
from migrate.verification import legacy_graph
from migrate.verify_settings import DEFAULT_BATCH_SIZE
from migrate.verify_settings import DEFAULT_TOLERANCE
from migrate.verify_settings import LEGACY_DROPOUT_AS_SAVED
from migrate.verify_settings import LEGACY_DROPOUT_OFF
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
        batch_size: the rows actually fed (a placeholder of fixed batch size,
            or an inputs file, may feed other than the settings' batch size).
        dropout_off: the legacy graph's dropout scopes whose constant keep
            probability was set to 1 (`legacy_dropout="off"`).
        squeezed: how the outputs were compared when their shapes differed
            only in size-1 axes (`[N, 1, 1, 1000]` against `[N, 1000]`), else None.
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
    dropout_off: list = dataclasses.field(default_factory=list)
    squeezed: str | None = None

    @property
    def passed(self):
        return bool(self.max_rel_diff <= self.tolerance)

    def summary(self):
        verdict = "PASS" if self.passed else "FAIL"
        text = (f"verify {verdict}: {self.output_tensor} {list(self.shape)} max abs diff "
                f"{self.max_abs_diff:.3g}, max relative diff {self.max_rel_diff:.3g} "
                f"(tolerance {self.tolerance:g}, batch {self.batch_size}, seed {self.seed}; "
                f"fed {', '.join(self.inputs) or 'nothing'})")
        if self.squeezed:
            text += f"\n{self.squeezed}"
        if self.dropout_off:
            text += (f"\nlegacy graph in inference mode: dropout's constant keep probability set "
                     f"to 1 in {', '.join(self.dropout_off)}")
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
                "dropout_off": list(self.dropout_off), "squeezed": self.squeezed}


def run_legacy(prefix, settings, keras_input_names, *, ema=False, arrays=None, extra_tensors=None,
               builder=None):
    """Runs the legacy graph (its `.meta`, or a builder's) with all variables restored.

    With `ema`, the variables are restored from their moving averages, as
    TF1 evaluation did with `ExponentialMovingAverage.variables_to_restore()`.
    The output is computed twice on the same feed: a graph that does not give
    the same output twice (dropout left on, noise) cannot be compared.

    Args:
        prefix: the legacy checkpoint prefix (with a `.meta`, or see `builder`).
        settings: a `VerifySettings` (its `legacy_dropout` says whether
            constant dropout is switched off, see `legacy_graph.load`).
        keras_input_names: the Keras model's input names (see `inputs.build_feed`).
        ema: restore the moving averages in place of the variables.
        arrays: arrays given directly by tensor name (see `inputs.build_feed`).
        extra_tensors: optional `graph -> list of tensors` also evaluated on
            the same run (the layer-by-layer comparison's candidates).
        builder: a `legacy_graphs` name or `module:callable` that builds the
            graph when the checkpoint has no `.meta`.

    Returns:
        `(feed, outputs, extra, legacy)`: the `LegacyFeed`, the output array,
        the extra tensors' values by name (empty without `extra_tensors`), and
        the `legacy_graph.LegacyGraph` (what was rewritten).

    Raises:
        CheckpointError: the graph cannot be imported, restored or run, or
            is not deterministic.
        ArgumentError: the tensors or feeds do not fit the graph.
    """
    legacy = legacy_graph.load(prefix, builder=builder, legacy_dropout=LEGACY_DROPOUT_AS_SAVED)
    run = _run_twice(legacy, prefix, settings, keras_input_names, ema, arrays, extra_tensors)
    if run[2] is None and settings.legacy_dropout == LEGACY_DROPOUT_OFF:
        # Not deterministic: again with dropout's constant keep probabilities
        # set to 1. Only then, so the report names dropout only where it acted.
        rewritten = legacy_graph.load(prefix, builder=builder, legacy_dropout=LEGACY_DROPOUT_OFF)
        if rewritten.dropout_off:
            legacy = rewritten
            run = _run_twice(legacy, prefix, settings, keras_input_names, ema, arrays,
                             extra_tensors)
    feed, outputs, extra, difference = run
    if extra is None:
        _refuse_nondeterministic(legacy.graph, settings, difference)
    return feed, outputs, extra, legacy


def _run_twice(legacy, prefix, settings, keras_input_names, ema, arrays, extra_tensors):
    """Restores and runs the legacy graph's output twice on one feed.

    Returns:
        `(feed, outputs, extra, difference)`: `extra` (the extra tensors'
        values) is None when the two outputs differ, `difference` then being
        their max abs difference.
    """
    import tensorflow as tf

    graph, saver = legacy.graph, legacy.saver
    with graph.as_default():
        output = inputs_lib.tensor_by_name(graph, settings.output_tensor, "output_tensor")
        feed = inputs_lib.build_feed(graph, output, settings, keras_input_names, arrays=arrays)
        extras = list(extra_tensors(graph)) if extra_tensors is not None else []
        if ema:
            saver = tf.compat.v1.train.Saver(_moving_average_var_list(graph, prefix))
        feed_dict = {graph.get_tensor_by_name(name): array for name, array in feed.arrays.items()}
        with tf.compat.v1.Session(graph=graph) as session:
            try:
                saver.restore(session, tensorflow_path(prefix))
                outputs = session.run(output, feed_dict)
                again = session.run(output, feed_dict)
            except tf.errors.OpError as error:
                raise CheckpointError(f"The legacy graph failed to run: {_op_error_text(error)}. "
                                      f"Received: fed {sorted(feed.arrays)}") from None
            difference = _difference(outputs, again)
            if difference is not None:
                return feed, outputs, None, difference
            return feed, outputs, _run_extras(session, extras, feed_dict), None


def _difference(first, second):
    """None when two runs' outputs are the same, else their max abs difference (nan: shapes)."""
    first, second = np.asarray(first), np.asarray(second)
    if first.shape != second.shape:
        return float("nan")
    if np.array_equal(first, second, equal_nan=np.issubdtype(first.dtype, np.inexact)):
        return None
    return float(np.max(np.abs(first.astype(np.float64) - second.astype(np.float64))))


def _refuse_nondeterministic(graph, settings, difference):
    """Refuses a legacy graph whose two runs on one feed differ, naming its random ops."""
    output = graph.get_tensor_by_name(settings.output_tensor)
    random = legacy_graph.random_ops(graph, output)
    listed = ", ".join(random[:6]) + (f" (and {len(random) - 6} more)" if len(random) > 6 else "")
    if settings.legacy_dropout == LEGACY_DROPOUT_AS_SAVED:
        fix = ("legacy_dropout='off' to set dropout's constant keep probability to 1, "
               "and feeds of 1.0 for keep-probability placeholders")
    else:
        fix = ("feeds of 1.0 for the keep-probability placeholders behind them "
               "(dropout with a constant keep probability is off already)")
    raise CheckpointError(
        f"The legacy graph is not deterministic: two runs on the same input differ (max abs "
        f"diff {difference:.3g}), so no comparison can pass. Its random ops: "
        f"{listed or 'none found'}. Expected a graph in inference mode: {fix}. Received: "
        f"legacy_dropout={settings.legacy_dropout!r}, feeds={dict(settings.feeds)}",
        option="feeds" if settings.legacy_dropout != LEGACY_DROPOUT_AS_SAVED
        else "legacy_dropout")


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


def squeeze_to_match(legacy_outputs, keras_outputs):
    """Returns both outputs without their size-1 axes when only those tell their shapes apart.

    A TF1 classifier's logits are often `[N, 1, 1, 1000]` (a 1x1 convolution)
    where the Keras model's are `[N, 1000]`: the same values.

    Returns:
        `(legacy, keras, note)`: the arrays as given and None when the shapes
        are equal or differ otherwise; else both squeezed and a note saying so.

    Example:

    >>> legacy, keras, note = squeeze_to_match(np.zeros([2, 1, 1, 3]), np.zeros([2, 3]))
    >>> legacy.shape, note
    ((2, 3), 'compared after removing size-1 axes: legacy [2, 1, 1, 3], Keras [2, 3]')
    """
    legacy_outputs, keras_outputs = np.asarray(legacy_outputs), np.asarray(keras_outputs)
    if legacy_outputs.shape == keras_outputs.shape:
        return legacy_outputs, keras_outputs, None
    legacy_kept = [size for size in legacy_outputs.shape if size != 1]
    keras_kept = [size for size in keras_outputs.shape if size != 1]
    if legacy_kept != keras_kept:
        return legacy_outputs, keras_outputs, None
    note = (f"compared after removing size-1 axes: legacy {list(legacy_outputs.shape)}, "
            f"Keras {list(keras_outputs.shape)}")
    return legacy_outputs.reshape(legacy_kept), keras_outputs.reshape(keras_kept), note


def settings_from_arguments(*, output_tensor=None, input_tensors=None, feeds=None, inputs=None,
                            input_shapes=None, input_max=None, batch_size=DEFAULT_BATCH_SIZE,
                            seed=0, tolerance=DEFAULT_TOLERANCE, layers=False, input_tensor=None,
                            input_shape=None, keep_failed=False, legacy_dropout=None):
    """Returns the `VerifySettings` that `verify`'s keyword arguments describe.

    `input_tensor` (one name, or names separated by commas) and `input_shape`
    (one shape for all inputs) are the single-input spellings of
    `input_tensors` and `input_shapes`; an integer `input_max` applies to all.
    `keep_failed` matters only to `convert`; `legacy_dropout` None is the
    settings' default ("off").

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
    if output_tensor is None:
        raise ArgumentError("Verification compares one output of the legacy graph. Expected "
                            "output_tensor, such as 'logits:0'. Received: output_tensor=None",
                            option="output_tensor")
    return VerifySettings(
        output_tensor=output_tensor, input_tensors=tuple(input_tensors or ()),
        input_shapes=input_shapes, input_max=input_max, feeds=dict(feeds or {}),
        inputs_file=inputs if isinstance(inputs, str) else None, batch_size=batch_size,
        seed=seed, tolerance=tolerance, layers=layers, keep_failed=keep_failed,
        **({} if legacy_dropout is None else {"legacy_dropout": legacy_dropout}))


def verify(checkpoint, model, *, output_tensor=None, input_tensors=None, feeds=None, inputs=None,
           input_shapes=None, input_max=None, batch_size=DEFAULT_BATCH_SIZE, seed=0,
           tolerance=DEFAULT_TOLERANCE, ema=False, layers=False, table=None, converted=None,
           settings=None, input_tensor=None, input_shape=None, builder=None,
           legacy_dropout=None):
    """Compares the legacy graph's output with the Keras model's on one batch.

    The legacy graph is imported from the checkpoint's `.meta` (or built by
    `builder`) and restored by a Saver in graph mode, in inference mode:
    dropout with a constant keep probability is switched off (see
    `legacy_dropout`), and a graph that gives two different outputs on the
    same input is refused with its random ops named. Without `input_tensors`, the placeholders
    the output depends on (not fed by `feeds`) are taken when they match the
    Keras model's inputs in number; they are ordered like the Keras inputs
    when named alike. No shape is ever guessed.

    Args:
        checkpoint: the legacy checkpoint prefix or directory (with a `.meta`,
            or see `builder`).
        model: the Keras model, with the converted weights restored.
        output_tensor: the graph's output to compare, e.g. `logits:0`.
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
        builder: for a checkpoint without `.meta`: a `legacy_graphs` name or
            `module:callable` naming a function that builds the TF1 graph in
            the default graph, as the model's code did; the graph is restored
            by a Saver over its global variables.
        legacy_dropout: "off" (default) sets dropout's constant keep
            probabilities to 1, naming each in the report; "as_saved" runs the
            graph as saved.

    Returns:
        A `VerifyReport`; `report.passed` tells whether the tolerance holds,
        `report.first_divergent_layer` names the first layer that differs.

    Raises:
        ArgumentError: tensors, feeds or shapes that do not fit the graph
            (an unfed placeholder is named with its dtype and shape).
        CheckpointError: no `.meta` and no builder, the graph cannot be
            restored or run, or it is not deterministic.
        ModelError: the Keras output's shape differs from the legacy one
            (beyond size-1 axes).

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
            input_shape=input_shape, legacy_dropout=legacy_dropout)
    elif legacy_dropout is not None:
        settings = dataclasses.replace(settings, legacy_dropout=legacy_dropout)
    arrays = inputs if isinstance(inputs, dict) else None
    prefix = resolve_prefix(checkpoint)
    keras_names = inputs_lib.keras_input_names(model)
    feed, legacy_outputs, _, legacy = run_legacy(prefix, settings, keras_names, ema=ema,
                                                 arrays=arrays, builder=builder)
    keras_outputs = _keras_outputs(model, feed.keras_inputs())
    legacy_outputs, keras_outputs, squeezed = squeeze_to_match(legacy_outputs, keras_outputs)
    max_abs, max_rel = compare(legacy_outputs, keras_outputs)
    report = VerifyReport(output_tensor=settings.output_tensor, shape=tuple(legacy_outputs.shape),
                          max_abs_diff=max_abs, max_rel_diff=max_rel,
                          tolerance=settings.tolerance, batch_size=_rows_fed(feed, settings),
                          seed=settings.seed, inputs=feed.describe(),
                          dropout_off=list(legacy.dropout_off), squeezed=squeezed)
    if settings.layers or not report.passed:
        from migrate.verification import layers as layers_lib
        layers_lib.attach(report, prefix, model, settings, ema=ema, arrays=feed.arrays,
                          table=table, converted=converted, builder=builder)
    return report


def _rows_fed(feed, settings):
    """The batch actually fed: the first Keras input's leading size (a fixed placeholder's)."""
    for name in feed.input_names:
        shape = np.shape(feed.arrays[name])
        if shape:
            return int(shape[0])
    return settings.batch_size


def _keras_outputs(model, keras_inputs):
    return np.asarray(model(keras_inputs, training=False))
