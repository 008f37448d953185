"""Runs the legacy TF1 graph of an opened checkpoint, restored by a Saver, on given inputs.

The output is computed twice on the same feed: a graph that does not give the
same output twice (dropout left on) cannot be compared, and is run again with
dropout's constant keep probabilities set to 1 (`legacy_graph`), or refused
with its random ops named.
"""

import numpy as np

from migrate.errors import CheckpointError
from migrate.errors import first_line
from migrate.source.meta_graph import checkpoint_key
from migrate.source.roles import EMA_SUFFIX
from migrate.verification import examples
from migrate.verification import inputs as inputs_lib
from migrate.verification import legacy_graph
from migrate.verify_settings import LEGACY_DROPOUT_AS_SAVED
from migrate.verify_settings import LEGACY_DROPOUT_OFF

# In a graph-mode run error: the line naming the failing node, and the lines
# that only say where it was defined.
_NODE_LINE = "Node: "
_OP_ERROR_FRAME_LINES = ("Graph execution error", "Detected at node", "File ", _NODE_LINE, "[[")


def prepare(checkpoint, settings, keras_input_names, *, ema=False, arrays=None):
    """Imports the legacy graph and checks that `settings` fit it, running nothing.

    What `run_legacy` would refuse about the settings (a tensor the graph
    lacks, a placeholder left without a feed, a shape it cannot guess, `ema`
    on a graph of constants) is refused here, before a conversion does any
    work; the graph is then handed to `run_legacy` (`legacy=`).

    Args:
        checkpoint, settings, keras_input_names, ema, arrays: as for `run_legacy`.

    Returns:
        The `legacy_graph.LegacyGraph`, as saved.

    Raises:
        ArgumentError: the tensors or feeds do not fit the graph.
        CheckpointError: the graph cannot be imported, or `ema` has nothing to restore.
    """
    legacy = legacy_graph.load(checkpoint, legacy_dropout=LEGACY_DROPOUT_AS_SAVED,
                                   asset_dirs=settings.asset_dirs)
    with legacy.graph.as_default():
        _feed_of(legacy, settings, keras_input_names, ema, arrays)
    return legacy


def run_legacy(checkpoint, settings, keras_input_names, *, ema=False, arrays=None,
               extra_tensors=None, legacy=None):
    """Runs the legacy graph (its `.meta`, or a builder's) with all variables restored.

    With `ema`, the variables are restored from their moving averages, as
    TF1 evaluation did with `ExponentialMovingAverage.variables_to_restore()`.
    The output is computed twice on the same feed: a graph that does not give
    the same output twice (dropout left on, noise) cannot be compared.

    Args:
        checkpoint: the opened `LegacyCheckpoint` (with a `.meta` beside it,
            or the builder whose graph gave its roles).
        settings: a `VerifySettings` (its `legacy_dropout` says whether
            constant dropout is switched off, see `legacy_graph.load`).
        keras_input_names: the Keras model's input names (see `inputs.build_feed`).
        ema: restore the moving averages in place of the variables.
        arrays: arrays given directly by tensor name (see `inputs.build_feed`).
        extra_tensors: optional `graph -> list of tensors` also evaluated on
            the same run (the layer-by-layer comparison's candidates).
        legacy: the graph `prepare` imported (as saved), or None to import it.

    Returns:
        `(feed, outputs, extra, legacy)`: the `LegacyFeed`, the output arrays
        (in the order of `settings.compared_outputs()`),
        the extra tensors' values by name (empty without `extra_tensors`), and
        the `legacy_graph.LegacyGraph` (what was rewritten).

    Raises:
        CheckpointError: the graph cannot be imported, restored or run, or
            is not deterministic.
        ArgumentError: the tensors or feeds do not fit the graph.
    """
    if legacy is None:
        legacy = legacy_graph.load(checkpoint, legacy_dropout=LEGACY_DROPOUT_AS_SAVED,
                                   asset_dirs=settings.asset_dirs)
    run = _run_twice(legacy, checkpoint, settings, keras_input_names, ema, arrays, extra_tensors)
    if run[2] is None and settings.legacy_dropout == LEGACY_DROPOUT_OFF:
        # Not deterministic: again with dropout's constant keep probabilities
        # set to 1. Only then, so the report names dropout only where it acted.
        rewritten = legacy_graph.load(checkpoint, legacy_dropout=LEGACY_DROPOUT_OFF,
                                     asset_dirs=settings.asset_dirs)
        if rewritten.dropout_off:
            legacy = rewritten
            run = _run_twice(legacy, checkpoint, settings, keras_input_names, ema, arrays,
                             extra_tensors)
    feed, outputs, extra, difference = run
    if extra is None:
        _refuse_nondeterministic(legacy.graph, settings, difference)
    return feed, outputs, extra, legacy


def _run_twice(legacy, checkpoint, settings, keras_input_names, ema, arrays, extra_tensors):
    """Restores and runs the legacy graph's output twice on one feed.

    Returns:
        `(feed, outputs, extra, difference)`: `extra` (the extra tensors'
        values) is None when the two outputs differ, `difference` then being
        their max abs difference.
    """
    import tensorflow as tf

    graph, saver = legacy.graph, legacy.saver
    with graph.as_default():
        output, feed = _feed_of(legacy, settings, keras_input_names, ema, arrays)
        extras = list(extra_tensors(graph)) if extra_tensors is not None else []
        if ema:
            saver = tf.compat.v1.train.Saver(_moving_average_var_list(graph, checkpoint.variables))
        feed_dict = {graph.get_tensor_by_name(name): array for name, array in feed.arrays.items()}
        with tf.compat.v1.Session(graph=graph) as session:
            try:
                if saver is not None:
                    saver.restore(session, legacy.restore_path)
                if legacy.initializers:
                    session.run(legacy.initializers, _asset_feeds(graph, legacy.assets))
                outputs = session.run(output, feed_dict)
                again = session.run(output, feed_dict)
            except tf.errors.OpError as error:
                raise CheckpointError(f"The legacy graph failed to run: {_op_error_text(error)}. "
                                      f"Received: fed {sorted(feed.arrays)}") from None
            difference = _difference(outputs, again)
            if difference is not None:
                return feed, outputs, None, difference
            return feed, outputs, _run_extras(session, extras, feed_dict), None


def _feed_of(legacy, settings, keras_input_names, ema, arrays):
    """Returns `(output tensors, LegacyFeed)` of the settings in the imported graph.

    Raises:
        ArgumentError: the tensors or feeds do not fit the graph.
        CheckpointError: `ema` on a graph that holds its weights as constants.
    """
    graph = legacy.graph
    output = [inputs_lib.tensor_by_name(graph, name, "output_tensor")
              for _, name in settings.compared_outputs()]
    feed = (examples.example_feed(graph, output, settings, keras_input_names, arrays=arrays,
                                  assets=legacy.assets)
            or inputs_lib.build_feed(graph, output, settings, keras_input_names, arrays=arrays,
                                     assets=legacy.assets))
    if ema and legacy.restore_path is None:
        raise CheckpointError(
            f"The {legacy.origin} holds its weights as constants, without moving averages "
            f"to restore in their place. Expected ema=False. Received: ema=True",
            option="ema")
    return output, feed


def _asset_feeds(graph, assets):
    """Feeds each asset tensor the graph has its file's path in the SavedModel."""
    feeds = {}
    for name, path in assets.items():
        try:
            feeds[graph.get_tensor_by_name(name)] = path
        except (KeyError, ValueError):
            continue
    return feeds


def _difference(first, second):
    """None when two runs' outputs are all the same, else their max abs difference (nan: shapes)."""
    differences = []
    for one, other in zip(first, second):
        one, other = np.asarray(one), np.asarray(other)
        if one.shape != other.shape:
            return float("nan")
        if not np.array_equal(one, other, equal_nan=np.issubdtype(one.dtype, np.inexact)):
            differences.append(float(np.max(np.abs(one.astype(np.float64)
                                                   - other.astype(np.float64)))))
    return max(differences) if differences else None


def _refuse_nondeterministic(graph, settings, difference):
    """Refuses a legacy graph whose two runs on one feed differ, naming its random ops."""
    random = []
    for _, name in settings.compared_outputs():
        random += [op for op in legacy_graph.random_ops(graph, graph.get_tensor_by_name(name))
                   if op not in random]
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


def _moving_average_var_list(graph, keys):
    """Maps each variable to its EMA shadow's key where the checkpoint has one.

    This is what `ExponentialMovingAverage.variables_to_restore()` returns,
    built by hand because a new average in an imported graph would pick
    uniquified shadow names (`.../ExponentialMovingAverage_1`).
    """
    import tensorflow as tf


    var_list = {}
    for variable in graph.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES):
        key = checkpoint_key(variable)
        if key.endswith("/" + EMA_SUFFIX):
            continue
        shadow = f"{key}/{EMA_SUFFIX}"
        var_list.setdefault(shadow if shadow in keys else key, []).append(variable)
    return {key: parts[0] if len(parts) == 1 else parts for key, parts in var_list.items()}
