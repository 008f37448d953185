"""Runs the legacy TF1 graph of an opened checkpoint, restored by its own Saver, on given inputs."""

from migrate.errors import CheckpointError
from migrate.errors import first_line
from migrate.source.meta_graph import checkpoint_key
from migrate.source.roles import EMA_SUFFIX
from migrate.verification import inputs as inputs_lib

# In a graph-mode run error: the line naming the failing node, and the lines
# that only say where it was defined.
_NODE_LINE = "Node: "
_OP_ERROR_FRAME_LINES = ("Graph execution error", "Detected at node", "File ", _NODE_LINE, "[[")


def run_legacy(checkpoint, settings, keras_input_names, *, ema=False, arrays=None,
               extra_tensors=None):
    """Runs the legacy graph from its `.meta` with all variables restored by its Saver.

    With `ema`, the variables are restored from their moving averages, as
    TF1 evaluation did with `ExponentialMovingAverage.variables_to_restore()`.

    Args:
        checkpoint: the opened `LegacyCheckpoint` (a `.meta` must be beside it).
        settings: a `VerifySettings`.
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

    meta_path = inputs_lib.check_meta(checkpoint)
    graph = tf.Graph()
    with graph.as_default():
        try:
            saver = tf.compat.v1.train.import_meta_graph(meta_path, clear_devices=True)
        except Exception as error:  # TensorFlow's many import errors, translated.
            raise CheckpointError(f"Cannot import {meta_path}: {first_line(error)}") from None
        output = inputs_lib.tensor_by_name(graph, settings.output_tensor, "output_tensor")
        feed = inputs_lib.build_feed(graph, output, settings, keras_input_names, arrays=arrays)
        extras = list(extra_tensors(graph)) if extra_tensors is not None else []
        if ema:
            saver = tf.compat.v1.train.Saver(_moving_average_var_list(graph, checkpoint.variables))
        if saver is None:
            raise CheckpointError(f"The graph in {meta_path} has no variables to restore.")
        feed_dict = {graph.get_tensor_by_name(name): array for name, array in feed.arrays.items()}
        with tf.compat.v1.Session(graph=graph) as session:
            try:
                saver.restore(session, checkpoint.reader_path)
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
