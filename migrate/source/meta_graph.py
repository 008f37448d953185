"""The legacy graph behind a checkpoint: its `.meta` MetaGraphDef, or a builder's graph.

A builder is a `legacy_graphs` name or `module:callable`: a function that
builds the TF1 graph in the default graph, as the model's own code did.

The variable collections (which variables are trainable, model variables,
moving averages) are read from the MetaGraphDef's bytes without importing the
graph; the graph itself is imported only when a caller needs it.
"""

import importlib
import os
import re

import legacy_graphs
from migrate import files
from migrate.errors import ArgumentError
from migrate.errors import CheckpointError
from migrate.errors import did_you_mean
from migrate.errors import reason

# The op types of a TF1 variable: reference variables (`Variable`, `VariableV2`)
# and resource variables' handles (`VarHandleOp`).
VARIABLE_OPS = frozenset({"Variable", "VariableV2", "VarHandleOp"})
# A partitioned variable's parts: `NAME/part_N` (group 1 the whole variable, 2 the part).
PARTITION_NAME = re.compile(r"^(.*)/part_(\d+)$")
# The training graph tf.estimator and MonitoredTrainingSession write, as text,
# in the directory of their checkpoints (there even when a `.meta` is not).
TEXT_GRAPH_FILE = "graph.pbtxt"

_COLLECTIONS = {
    "trainable": "trainable_variables",
    "model": "model_variables",
    "global_step": "global_step",
    "moving_average": "moving_average_variables",
    "global": "variables",
}


def check_builder(name):
    """Checks a builder: a `legacy_graphs` name, or `module:callable` text, without importing it.

    Args:
        name: the builder's name, or `module:callable` naming a function that
            builds the TF1 graph in the default graph.

    Raises:
        ArgumentError: no builder has that name (the message names the
            closest), or the text is not `module:callable`.

    Example:

    >>> check_builder("small_convnet")
    >>> check_builder("my_old_model:build_graph")
    >>> check_builder("vgg16")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    migrate.errors.ArgumentError: Unknown legacy graph builder. Did you mean 'vgg_16'? ...
    """
    if is_callable_spec(name):
        module_name, _, attribute = name.partition(":")
        if not module_name or not attribute or ":" in attribute:
            raise ArgumentError(f"Expected a graph builder as module:callable, e.g. "
                                f"my_old_model:build_graph. Received: builder={name!r}",
                                option="builder")
        return
    known = legacy_graphs.BUILDER_NAMES
    if name not in known:
        raise ArgumentError(f"Unknown legacy graph builder.{did_you_mean(name, known)} "
                            f"Expected one of {', '.join(known)}, or module:callable naming a "
                            f"function that builds the graph. Received: builder={name!r}",
                            option="builder")


def is_callable_spec(name):
    """True when a builder is given as `module:callable` rather than a `legacy_graphs` name."""
    return ":" in str(name)


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
    """Returns a new `tf.Graph` built by a builder (see `check_builder`).

    A `module:callable` builder is called without arguments inside the new
    graph's `as_default()`; what it returns is ignored. Importing its module
    runs the module's code.

    Raises:
        ArgumentError: `name` is not a builder.
        CheckpointError: the module cannot be imported, has no such callable,
            or the callable fails (its error is chained as the cause).
    """
    import tensorflow as tf

    check_builder(name)
    if is_callable_spec(name):
        build = _import_builder(name)
    else:
        if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
            raise CheckpointError(
                f"A legacy_graphs builder cannot define its graph in this process. Expected the "
                f"environment variable TF_USE_LEGACY_KERAS=1 set before TensorFlow is imported "
                f"(the command line sets it when a builder is given). Received: builder={name!r}")
        build = legacy_graphs.load_builder(name).define_graph
    graph = tf.Graph()
    try:
        with graph.as_default():
            build()
    except Exception as error:  # The user's graph code: any error; the cause keeps its traceback.
        raise CheckpointError(
            f"The graph builder failed: {reason(error)}. Expected a function that builds the TF1 "
            f"graph in the default graph (tf.compat.v1.layers and rnn_cell need "
            f"TF_USE_LEGACY_KERAS=1 before TensorFlow is imported). Received: builder={name!r}",
            option="builder") from error
    if not graph.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES):
        raise CheckpointError(f"The graph builder made no variables. Expected a function that "
                              f"builds the TF1 model's graph, variables included, in the default "
                              f"graph. Received: builder={name!r}", option="builder")
    return graph


def _import_builder(spec):
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # The user's module: any error; the cause keeps its traceback.
        raise CheckpointError(f"Cannot import graph builder module {module_name!r}: "
                              f"{reason(error)}. Expected an importable module. "
                              f"Received: builder={spec!r}", option="builder") from error
    build = getattr(module, attribute, None)
    if not callable(build):
        raise CheckpointError(f"Module {module_name!r} has no callable {attribute!r}. Expected "
                              f"module:callable. Received: builder={spec!r}", option="builder")
    return build


def checkpoint_key(variable):
    """Returns the key a TF1 Saver stores `variable` under (a partition's whole name)."""
    slice_info = getattr(variable, "_save_slice_info", None)
    return slice_info.full_name if slice_info else variable.op.name


def text_graph_path(prefix):
    """Where the `graph.pbtxt` beside a checkpoint prefix would be."""
    return files.join(os.path.dirname(prefix) or ".", TEXT_GRAPH_FILE)


def text_graph_def(prefix):
    """The `graph.pbtxt` GraphDef in a checkpoint's directory; None when there is none.

    Raises:
        CheckpointError: the file is there but is not a text GraphDef.
    """
    path = text_graph_path(prefix)
    if not files.exists(path):
        return None
    from google.protobuf import text_format
    from tensorflow.core.framework import graph_pb2

    graph_def = graph_pb2.GraphDef()
    try:
        text_format.Parse(files.read_bytes(path).decode("utf-8"), graph_def)
    except Exception as error:  # text_format.ParseError, UnicodeDecodeError and I/O errors.
        raise CheckpointError(f"Cannot read {path}: {reason(error)}. Expected a GraphDef as "
                              f"text, as tf.estimator writes it.") from None
    return graph_def


def collections_from_meta(meta_path):
    """Reads the variable collections straight from a `.meta` file's MetaGraphDef.

    Gives the same sets as importing the graph and calling `_collections`,
    in milliseconds.
    """
    from tensorflow.core.protobuf import meta_graph_pb2

    meta_graph = meta_graph_pb2.MetaGraphDef()
    try:
        meta_graph.ParseFromString(files.read_bytes(meta_path))
        found = meta_graph_collections(meta_graph)
    except Exception as error:  # google.protobuf.message.DecodeError and I/O errors.
        raise _meta_error(meta_path, error) from None
    return found


def meta_graph_collections(meta_graph):
    """Returns the variable collections of a parsed MetaGraphDef, as `roles.classify` takes them."""
    return {key: set(collection_keys(meta_graph, collection))
            for key, collection in _COLLECTIONS.items()}


def has_variable_collections(meta_graph):
    """True when a MetaGraphDef lists its variables in collections, as every TF1 graph does."""
    return any(collection in meta_graph.collection_def for collection in _COLLECTIONS.values())


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
    """Returns the graph's trainable variables the checkpoint lacks, refusing another model's graph.

    A trainable variable made after the `Saver` (a `learning_rate` variable
    created by the training loop), or left out of its `var_list`, is in the
    graph and not in the checkpoint: it was never saved, so it is no weight
    of the model, and the caller leaves it out and counts it. A graph none of
    whose trainable variables is in the checkpoint is another model's.

    Args:
        collections: the graph's variable collections (`meta_graph_collections`).
        shapes: the checkpoint's `{key: shape}`.
        role_origin: where the graph came from, for the message.

    Returns:
        The sorted checkpoint keys of the trainable graph variables the
        checkpoint does not hold.

    Raises:
        CheckpointError: the checkpoint holds none of the graph's trainable variables.
    """
    trainable = collections["trainable"]
    missing = sorted(trainable - set(shapes))
    if missing and len(missing) == len(trainable):
        listed = ", ".join(repr(name) for name in missing[:5])
        raise CheckpointError(
            f"The {role_origin} does not describe this checkpoint: none of its "
            f"{len(trainable)} trainable graph variables is in it. Expected the graph's "
            f"trainable variables in the checkpoint. Received: missing "
            f"{listed}{', ...' if len(missing) > 5 else ''}")
    return missing
