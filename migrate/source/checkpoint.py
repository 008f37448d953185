"""Reads a TF1 checkpoint: its variables' metadata, their roles, and one tensor at a time."""

import dataclasses
import math
import re

import numpy as np

from migrate import files
from migrate.errors import CheckpointError
from migrate.errors import reason
from migrate.options import check_builder
from migrate.source import bundle_index
from migrate.source import roles as roles_lib

_DATA_SHARD = re.compile(r"\.data-(\d{5})-of-(\d{5})$")
_COLLECTIONS = {
    "trainable": "trainable_variables",
    "model": "model_variables",
    "global_step": "global_step",
    "moving_average": "moving_average_variables",
    "global": "variables",
}


@dataclasses.dataclass(frozen=True)
class SourceVariable:
    """One variable of a legacy checkpoint, described without reading its data.

    Attributes:
        name: the checkpoint key (the TF1 op name; partitioned variables are
            one key holding the whole tensor).
        shape: the full shape.
        dtype: NumPy-style dtype name (`float32`, `int64`, `string`, ...).
        role: what the variable is for (`migrate.source.roles.Role`).
        role_source: where that decision came from (`migrate.source.roles.RoleSource`).
        reason: a few words on the decision, for `inspect`.
    """

    name: str
    shape: tuple
    dtype: str
    role: roles_lib.Role
    role_source: roles_lib.RoleSource
    reason: str

    @property
    def nbytes(self):
        if self.dtype in ("string", "resource", "variant"):
            return 0
        return math.prod(self.shape) * np.dtype(_numpy_dtype_name(self.dtype)).itemsize


def _numpy_dtype_name(name):
    return "uint16" if name == "bfloat16" else name


class LegacyCheckpoint:
    """A TF1 checkpoint opened for reading.

    Use `LegacyCheckpoint.open(path)`. Only metadata is read when opening;
    `read(name)` reads one tensor, so a conversion can stream.

    Attributes:
        prefix: the checkpoint prefix, e.g. `train/model.ckpt-12000`.
        meta_path: the `.meta` file used for roles, or None.
        variables: dict of checkpoint key to `SourceVariable`, sorted by key.
        graph: the `tf.Graph` imported from the `.meta` (or built by a
            builder), or None.

    Example:

        checkpoint = LegacyCheckpoint.open("train/model.ckpt-3")
        for variable in checkpoint.variables.values():
            print(variable.name, variable.shape, variable.role.value)
    """

    def __init__(self, prefix, variables, *, meta_path=None, graph=None, reader=None,
                 role_origin="name rules"):
        self.prefix = prefix
        self.variables = dict(sorted(variables.items()))
        self.meta_path = meta_path
        self._graph = graph
        self.role_origin = role_origin
        self._reader = reader

    @classmethod
    def open(cls, path, *, builder=None, use_meta=True):
        """Opens a checkpoint prefix, or the newest checkpoint of a directory.

        Args:
            path: a prefix such as `train/model.ckpt-12000`, or a directory
                whose `checkpoint` state file names the prefix.
            builder: name of a `legacy_graphs` builder whose graph gives the
                roles when there is no `.meta` (or `use_meta` is False).
            use_meta: read roles from the `.meta` beside the prefix, if any.

        Raises:
            CheckpointError: the files are missing, unreadable, or the graph
                does not describe this checkpoint.
        """
        import tensorflow as tf

        prefix = resolve_prefix(path)
        shards = data_files(prefix)  # Raises on a missing shard before TensorFlow reads anything.
        _check_index(prefix, shards)  # TensorFlow's reader aborts the process on some damage.
        try:
            # The reader itself, not tf.train.load_checkpoint: the prefix is
            # resolved already, and load_checkpoint mistakes ram:// prefixes
            # for directories.
            reader = tf.compat.v1.train.NewCheckpointReader(prefix)
            shapes = reader.get_variable_to_shape_map()
            dtypes = {name: dtype.name for name, dtype in reader.get_variable_to_dtype_map().items()}
        except Exception as error:  # tf.errors.OpError subclasses: DataLoss, NotFound, ...
            raise CheckpointError(
                f"Cannot read checkpoint {prefix}: {reason(error)}. Expected a readable "
                f"TF1 checkpoint. Received: checkpoint={prefix!r}") from None
        meta_path = prefix + ".meta"
        graph = None
        collections = None
        source = roles_lib.RoleSource.NAME_RULE
        role_origin = "name rules"
        if use_meta and files.exists(meta_path):
            # The collections are read from the MetaGraphDef itself: importing
            # the graph costs seconds and ~100 MB on BERT-base, and only layout
            # parameters and `verify` need it (see `graph`).
            collections = _collections_from_meta(meta_path)
            source, role_origin = roles_lib.RoleSource.GRAPH, f"graph collections of {meta_path}"
        elif builder is not None:
            graph = _builder_graph(builder)
            collections = _collections(graph)
            meta_path = None
            source, role_origin = roles_lib.RoleSource.BUILDER, f"graph of builder {builder!r}"
        else:
            meta_path = None
        if collections is not None:
            _check_graph_matches(collections, shapes, role_origin)
        decisions = roles_lib.classify(dtypes, collections, source)
        variables = {
            name: SourceVariable(name, tuple(shapes[name]), dtypes[name], *decisions[name])
            for name in shapes
        }
        return cls(prefix, variables, meta_path=meta_path, graph=graph, reader=reader,
                   role_origin=role_origin)

    @property
    def graph(self):
        """The legacy `tf.Graph` (imported from the `.meta` on first use), or None."""
        if self._graph is None and self.meta_path is not None:
            self._graph = _import_meta_graph(self.meta_path)
        return self._graph

    @property
    def has_bundle_reader(self):
        """True when TensorFlow's own reader has the checkpoint open (not an in-memory stand-in).

        Only then can a tensor be read by TensorFlow straight into a variable
        (`migrate.output.direct_read`).
        """
        return self._reader is not None

    @property
    def has_graph(self):
        """True when a graph is available (a `.meta` or a builder), without importing it."""
        return self._graph is not None or self.meta_path is not None

    def read(self, name):
        """Reads one tensor as a NumPy array.

        Raises:
            CheckpointError: the tensor cannot be read (for example its bytes
                fail the checkpoint's checksum).
        """
        if name not in self.variables:
            raise CheckpointError(f"Checkpoint {self.prefix} has no variable {name!r}. Expected "
                                  f"one of its {len(self.variables)} variables. "
                                  f"Received: name={name!r}")
        try:
            return self._reader.get_tensor(name)
        except Exception as error:
            raise CheckpointError(
                f"Cannot read {name!r} from checkpoint {self.prefix}: {reason(error)}. "
                f"Expected intact tensor data. Received: name={name!r}") from None

    def source_files(self):
        """Returns the checkpoint's files: `.index`, data shards, and the `.meta` if used."""
        return source_files(self.prefix, use_meta=self.meta_path is not None)

    def ema_shadows(self):
        """Returns a dict of variable key to its `ExponentialMovingAverage` shadow's key."""
        shadows = {}
        for variable in self.variables.values():
            if variable.role is roles_lib.Role.EMA_SHADOW:
                owner, _, leaf = variable.name.rpartition("/")
                if leaf == roles_lib.EMA_SUFFIX and owner in self.variables:
                    shadows[owner] = variable.name
        return shadows


def resolve_prefix(path):
    """Returns the checkpoint prefix that `path` names.

    Raises:
        CheckpointError: no checkpoint is there; the message says what was found.
    """
    import tensorflow as tf

    path = str(path)
    for suffix in (".index", ".meta"):
        if path.endswith(suffix) and files.exists(path):
            path = path[:-len(suffix)]
    shard = _DATA_SHARD.search(path)
    if shard:
        path = path[:shard.start()]
    if files.exists(path + ".index"):
        return path
    if files.is_directory(path):
        state_path = files.join(path, "checkpoint")
        if not files.exists(state_path):
            raise CheckpointError(
                f"Directory {path} holds no `checkpoint` state file. Expected a checkpoint "
                f"prefix such as {files.join(path, 'model.ckpt-1000')}, or a directory with a "
                f"state file. Received: checkpoint={path!r}")
        try:
            state = tf.train.get_checkpoint_state(path)
        except Exception as error:
            raise CheckpointError(
                f"The checkpoint state file {state_path} cannot be parsed: {reason(error)}. "
                f"Expected a text CheckpointState. Received: checkpoint={path!r}") from None
        if state is None or not state.model_checkpoint_path:
            raise CheckpointError(
                f"The checkpoint state file {state_path} names no checkpoint. Expected a "
                f"model_checkpoint_path. Received: checkpoint={path!r}")
        prefix = state.model_checkpoint_path
        if not files.exists(prefix + ".index"):
            raise CheckpointError(
                f"The checkpoint state file {state_path} points to {prefix}, which does not "
                f"exist (no {prefix}.index). Expected an existing checkpoint. "
                f"Received: checkpoint={path!r}")
        return prefix
    if not files.exists(path) and not files.exists(files.dirname(path) or "."):
        raise CheckpointError(f"No checkpoint at {path}: the directory does not exist. Expected a "
                              f"checkpoint prefix or directory. Received: checkpoint={path!r}")
    raise CheckpointError(f"No checkpoint at {path}: {path}.index does not exist. Expected a "
                          f"checkpoint prefix or directory. Received: checkpoint={path!r}")


def source_files(prefix, *, use_meta=True):
    """Returns the files a conversion of `prefix` reads: `.index`, data shards, `.meta` if used.

    Raises:
        CheckpointError: a data shard is missing.
    """
    paths = [prefix + ".index", *data_files(prefix)]
    if use_meta and files.exists(prefix + ".meta"):
        paths.append(prefix + ".meta")
    return paths


def data_files(prefix):
    """Returns the prefix's data shards, checking that none is missing.

    Raises:
        CheckpointError: a shard named by the others is absent, or there is none.
    """
    found = sorted(files.gfile().glob(prefix + ".data-*"))
    counts = set()
    present = set()
    for path in found:
        shard = _DATA_SHARD.search(path)
        if shard:
            present.add(int(shard.group(1)))
            counts.add(int(shard.group(2)))
    if not found or len(counts) != 1:
        raise CheckpointError(
            f"Checkpoint {prefix} has no usable data file. Expected "
            f"{prefix}.data-00000-of-NNNNN. Received: data files {found}")
    (count,) = counts
    missing = sorted(set(range(count)) - present)
    if missing:
        raise CheckpointError(
            f"Checkpoint {prefix} is missing data shard(s) "
            f"{', '.join(f'{prefix}.data-{index:05d}-of-{count:05d}' for index in missing)}. "
            f"Expected all {count}. Received: {len(present)} shard(s)")
    return [path for path in found if _DATA_SHARD.search(path)]


def _check_index(prefix, shards):
    """Refuses an `.index` that would crash TensorFlow's reader, and data shards cut short.

    TensorFlow CHECK-fails (SIGABRT, no exception) on some damaged index
    records, and notices a short shard only when it reads a tensor past the
    cut, so a truncated copy would convert silently whenever the weights
    happen to come first. See `migrate.source.bundle_index`.
    """
    import tensorflow as tf

    index_path = prefix + ".index"
    try:
        index_bytes = files.read_bytes(index_path)
    except (OSError, tf.errors.OpError) as error:  # A directory, no permission, ...
        raise CheckpointError(
            f"Cannot read checkpoint index {index_path}: {reason(error)}. Expected a "
            f"readable file. Received: checkpoint={prefix!r}") from None
    # Parsed outside the `try`: a bug in the parser must surface, never switch
    # the check off.
    summary = bundle_index.read_index(index_bytes)
    if summary is None:
        return
    if summary.problems:
        more = f" (and {len(summary.problems) - 1} more)" if len(summary.problems) > 1 else ""
        raise CheckpointError(
            f"Checkpoint index {index_path} is damaged: {summary.problems[0]}{more}; "
            f"TensorFlow's reader would abort the process on it. Expected an index whose "
            f"records all parse. Received: checkpoint={prefix!r}")
    for path in shards:
        index = int(_DATA_SHARD.search(path).group(1))
        needed = summary.extents.get(index, 0)
        present = files.size(path)
        if present < needed:
            raise CheckpointError(
                f"Checkpoint data file {path} is truncated; copy the checkpoint again. Expected "
                f"at least {needed} bytes (from {prefix}.index). Received: size={present}")


def _import_meta_graph(meta_path):
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


def _builder_graph(name):
    import os

    import tensorflow as tf

    import legacy_graphs

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


def _collections_from_meta(meta_path):
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


def _collections(graph):
    return {
        key: {checkpoint_key(variable) for variable in graph.get_collection(collection)
              if hasattr(variable, "op")}
        for key, collection in _COLLECTIONS.items()
    }


def _check_graph_matches(collections, shapes, role_origin):
    missing = sorted(collections["trainable"] - set(shapes))
    if missing:
        listed = ", ".join(repr(name) for name in missing[:5])
        raise CheckpointError(
            f"The {role_origin} does not describe this checkpoint: {len(missing)} of "
            f"{len(collections['trainable'])} trainable graph variables are not in it. "
            f"Expected every trainable graph variable in the checkpoint. Received: missing "
            f"{listed}{', ...' if len(missing) > 5 else ''}")

