"""The legacy graph behind a checkpoint: its `.meta` MetaGraphDef, or a `legacy_graphs` builder's graph.

The variable collections (which variables are trainable, model variables,
moving averages) are read from the MetaGraphDef's bytes without importing the
graph; the graph itself is imported only when a caller needs it.
"""

import os

import legacy_graphs
from migrate import files
from migrate.errors import ArgumentError
from migrate.errors import CheckpointError
from migrate.errors import did_you_mean
from migrate.errors import reason

_COLLECTIONS = {
    "trainable": "trainable_variables",
    "model": "model_variables",
    "global_step": "global_step",
    "moving_average": "moving_average_variables",
    "global": "variables",
}


def check_builder(name):
    """Checks that `name` is a `legacy_graphs` builder, without importing it.

    Args:
        name: the builder's name.

    Raises:
        ArgumentError: no builder has that name; the message names the closest.

    Example:

    >>> check_builder("small_convnet")
    >>> check_builder("vgg16")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    migrate.errors.ArgumentError: Unknown legacy graph builder. Did you mean 'vgg_16'? ...
    """
    known = legacy_graphs.BUILDER_NAMES
    if name not in known:
        raise ArgumentError(f"Unknown legacy graph builder.{did_you_mean(name, known)} "
                            f"Expected one of {', '.join(known)}. Received: builder={name!r}")


def import_meta_graph(meta_path):
    import tensorflow as tf

    graph = tf.Graph()
    try:
        with graph.as_default():
            tf.compat.v1.train.import_meta_graph(meta_path, clear_devices=True)
    except Exception as error:
        raise _meta_error(meta_path, error) from None
    return graph


def _meta_error(meta_path, error):
    return CheckpointError(
        f"Cannot import the graph in {meta_path}: {reason(error)}. Expected a readable "
        f"MetaGraphDef, or use_meta=False to classify variables by name rules instead. "
        f"Received: use_meta=True", option="use_meta")


def builder_graph(name):
    import tensorflow as tf

    check_builder(name)
    if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise CheckpointError(
            f"A legacy_graphs builder cannot define its graph in this process. Expected the "
            f"environment variable TF_USE_LEGACY_KERAS=1 set before TensorFlow is imported "
            f"(the command line sets it when a builder is given). Received: builder={name!r}")
    builder = legacy_graphs.load_builder(name)
    graph = tf.Graph()
    with graph.as_default():
        builder.define_graph()
    return graph


def checkpoint_key(variable):
    """Returns the key a TF1 Saver stores `variable` under (a partition's whole name)."""
    slice_info = getattr(variable, "_save_slice_info", None)
    return slice_info.full_name if slice_info else variable.op.name


def collections_from_meta(meta_path):
    """Reads the variable collections straight from a `.meta` file's MetaGraphDef.

    Gives the same sets as importing the graph and calling `_collections`,
    in milliseconds.
    """
    from tensorflow.core.protobuf import meta_graph_pb2

    meta_graph = meta_graph_pb2.MetaGraphDef()
    try:
        meta_graph.ParseFromString(files.read_bytes(meta_path))
        found = {key: set(collection_keys(meta_graph, collection))
                 for key, collection in _COLLECTIONS.items()}
    except Exception as error:  # google.protobuf.message.DecodeError and I/O errors.
        raise _meta_error(meta_path, error) from None
    return found


def collection_keys(meta_graph, collection):
    """Returns the checkpoint keys of a MetaGraphDef's variable collection, in creation order.

    A partitioned variable appears once per partition under its whole name.
    """
    from tensorflow.core.framework import variable_pb2

    keys = []
    if collection in meta_graph.collection_def:
        for serialized in meta_graph.collection_def[collection].bytes_list.value:
            variable = variable_pb2.VariableDef()
            variable.ParseFromString(serialized)
            if variable.HasField("save_slice_info_def"):
                keys.append(variable.save_slice_info_def.full_name)
            else:
                keys.append(variable.variable_name.rsplit(":", 1)[0])
    return keys


def graph_collections(graph):
    return {
        key: {checkpoint_key(variable) for variable in graph.get_collection(collection)
              if hasattr(variable, "op")}
        for key, collection in _COLLECTIONS.items()
    }


def check_graph_matches(collections, shapes, role_origin):
    missing = sorted(collections["trainable"] - set(shapes))
    if missing:
        listed = ", ".join(repr(name) for name in missing[:5])
        raise CheckpointError(
            f"The {role_origin} does not describe this checkpoint: {len(missing)} of "
            f"{len(collections['trainable'])} trainable graph variables are not in it. "
            f"Expected every trainable graph variable in the checkpoint. Received: missing "
            f"{listed}{', ...' if len(missing) > 5 else ''}")
