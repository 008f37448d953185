"""Reads a TF1 checkpoint: its variables' metadata, their roles, and one tensor at a time."""

import dataclasses
import functools
import math
import os
import re

import numpy as np

from migrate import files
from migrate.errors import CheckpointError
from migrate.errors import reason
from migrate.options import check_builder
from migrate.source import bundle_index
from migrate.source import roles as roles_lib

_DATA_SHARD = re.compile(r"\.data-(\d{5})-of-(\d{5})$")
# A sharded V1 checkpoint is `NAME-00000-of-00002`, `NAME-00001-of-00002`; the
# `checkpoint` state file names it by TensorFlow's pattern `NAME-?????-of-00002`.
_V1_SHARD = re.compile(r"-(\d{5}|\?{5})-of-(\d{5})$")
_V1_SHARD_PATTERN = "{prefix}-?????-of-{count:05d}"
_V1_SHARD_NAME = "{prefix}-{index:05d}-of-{count:05d}"
_DATA_SHARD_NAME = "{prefix}.data-{index:05d}-of-{count:05d}"
# The last bytes of every LevelDB-style table, the format of a V1 checkpoint
# file and of a V2 `.index` (tensorflow/core/lib/io/format.h, kTableMagicNumber).
_TABLE_MAGIC = (0xdb4775248b80fb57).to_bytes(8, "little")
_TABLE_FOOTER_BYTES = 48
INDEX_SUFFIX = ".index"
META_SUFFIX = ".meta"
STATE_FILE_NAME = "checkpoint"
FORMAT_V1 = "V1"
FORMAT_V2 = "V2"
# Every TF2 object-based checkpoint (`tf.train.Checkpoint`) holds this key.
_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
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
        reader_path: what TensorFlow's readers take: the prefix, or for a
            sharded V1 checkpoint the pattern `PREFIX-?????-of-NNNNN`.
        checkpoint_format: `FORMAT_V2` (`.index` and `.data-*` files) or
            `FORMAT_V1` (one file, or `PREFIX-0000K-of-NNNNN` shards).
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
                 role_origin="name rules", reader_path=None, checkpoint_format=FORMAT_V2):
        self.prefix = prefix
        self.reader_path = reader_path or prefix
        self.checkpoint_format = checkpoint_format
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
        version = checkpoint_format(prefix)
        shards = data_files(prefix)  # Raises on a missing shard before TensorFlow reads anything.
        if version == FORMAT_V2:
            # TensorFlow's reader aborts the process on some damage. A V1 file
            # has no separate index: its reader raises on every damage tried.
            _check_index(prefix, shards)
        reader_path = tensorflow_path(prefix)
        try:
            # The reader itself, not tf.train.load_checkpoint: the prefix is
            # resolved already, and load_checkpoint mistakes ram:// prefixes
            # for directories.
            reader = tf.compat.v1.train.NewCheckpointReader(reader_path)
            shapes = reader.get_variable_to_shape_map()
            dtypes = {name: dtype.name for name, dtype in reader.get_variable_to_dtype_map().items()}
        except Exception as error:  # tf.errors.OpError subclasses: DataLoss, NotFound, ...
            raise CheckpointError(
                f"Cannot read checkpoint {prefix}: {reason(error)}. Expected a readable "
                f"TF1 checkpoint. Received: checkpoint={prefix!r}") from None
        if _OBJECT_GRAPH_KEY in shapes:
            raise CheckpointError(
                f"Checkpoint {prefix} is a TF2 object-based checkpoint (perhaps an output of "
                f"this tool), not a TF1 name-based one. Expected a checkpoint written by a TF1 "
                f"`Saver`. Received: checkpoint={prefix!r}")
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
            if use_meta:
                role_origin = (f"name rules: no {meta_path} (a legacy_graphs builder's graph "
                               f"can give the roles instead)")
            meta_path = None
        if collections is not None:
            _check_graph_matches(collections, shapes, role_origin)
        decisions = roles_lib.classify(dtypes, collections, source)
        variables = {
            name: SourceVariable(name, tuple(shapes[name]), dtypes[name], *decisions[name])
            for name in shapes
        }
        return cls(prefix, variables, meta_path=meta_path, graph=graph, reader=reader,
                   role_origin=role_origin, reader_path=reader_path, checkpoint_format=version)

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

    Args:
        path: a prefix (V2: `train/model.ckpt-3` with `.index` and `.data-*`
            files; V1: the single file, or the name before `-0000K-of-NNNNN`
            shards), one of its files, or a directory whose `checkpoint` state
            file names the prefix.

    Returns:
        The prefix, e.g. `train/model.ckpt-3`.

    Raises:
        CheckpointError: no checkpoint is there; the message says what was found.
    """
    path = str(path)
    for suffix in (INDEX_SUFFIX, META_SUFFIX):
        if path.endswith(suffix) and files.exists(path):
            path = path[:-len(suffix)]
    shard = _DATA_SHARD.search(path)
    if shard:
        path = path[:shard.start()]
    v1_shard = _V1_SHARD.search(path)
    if v1_shard and checkpoint_format(path[:v1_shard.start()]) == FORMAT_V1:
        path = path[:v1_shard.start()]
    if checkpoint_format(path) is not None:
        return path
    if files.is_directory(path):
        state_path = files.join(path, STATE_FILE_NAME)
        if not files.exists(state_path):
            found = checkpoint_prefixes(path)
            if found:
                raise CheckpointError(
                    f"Directory {path} holds no `{STATE_FILE_NAME}` state file naming its newest "
                    f"checkpoint; expected a checkpoint prefix. Checkpoints found, newest first: "
                    f"{', '.join(found[:5])}{' ...' if len(found) > 5 else ''}. "
                    f"Received: checkpoint={path!r}.")
            raise CheckpointError(
                f"Directory {path} holds no `{STATE_FILE_NAME}` state file and no checkpoint. "
                f"Expected a checkpoint prefix such as {files.join(path, 'model.ckpt-1000')}, or "
                f"a directory with a state file. Received: checkpoint={path!r}")
        try:
            prefix = newest_in_state_file(path)
        except ValueError as error:
            raise CheckpointError(
                f"The checkpoint state file {state_path} cannot be parsed: {error}. "
                f"Expected a text CheckpointState. Received: checkpoint={path!r}") from None
        if not prefix:
            raise CheckpointError(
                f"The checkpoint state file {state_path} names no checkpoint. Expected a "
                f"model_checkpoint_path. Received: checkpoint={path!r}")
        v1_shard = _V1_SHARD.search(prefix)
        if v1_shard:
            prefix = prefix[:v1_shard.start()]
        # State files often hold absolute paths from where the checkpoint was
        # written; a copied directory must read its own files, not those.
        beside = files.join(path, files.basename(prefix))
        if checkpoint_format(beside) is not None:
            return beside
        if checkpoint_format(prefix) is None:
            raise CheckpointError(
                f"The checkpoint state file {state_path} points to {prefix}, which does not "
                f"exist (no {prefix}.index, and no V1 checkpoint file). Expected an existing "
                f"checkpoint. Received: checkpoint={path!r}")
        return prefix
    if not files.exists(path) and not files.exists(files.dirname(path) or "."):
        raise CheckpointError(f"No checkpoint at {path}: the directory does not exist. Expected a "
                              f"checkpoint prefix or directory. Received: checkpoint={path!r}")
    raise CheckpointError(
        f"No checkpoint at {path}: {path}.index does not exist, and {path} is not a V1 "
        f"checkpoint file. Expected a checkpoint prefix or directory. Received: checkpoint={path!r}")


def newest_in_state_file(directory):
    """Returns the newest checkpoint that `directory`'s `checkpoint` state file names, or "".

    Read as `tf.train.get_checkpoint_state` reads it, without importing
    TensorFlow: the file is the text format of a CheckpointState proto,
    parsed by protobuf's own `text_format` (quoting, escapes and comments as
    TensorFlow reads them), and a relative path is taken relative to
    `directory`.

    Args:
        directory: the directory holding the state file.

    Returns:
        Its `model_checkpoint_path`, joined to `directory` when relative; ""
        when the file names none.

    Raises:
        ValueError: the file cannot be read, is not UTF-8 text, or is not a
            text CheckpointState; the message says why.

    Example:

        newest_in_state_file("train/run1")  # 'train/run1/model.ckpt-3'
    """
    from google.protobuf import text_format

    state = _checkpoint_state_class()()
    try:
        text_format.Merge(files.read_bytes(files.join(directory, STATE_FILE_NAME)).decode(), state)
    except Exception as error:  # OSError, tf.errors.OpError, UnicodeDecodeError, ParseError.
        raise ValueError(reason(error)) from None
    path = state.model_checkpoint_path
    if path and not (os.path.isabs(path) or files.is_url(path)):
        path = files.join(directory, path)
    return path


@functools.cache
def _checkpoint_state_class():
    """Returns a message class for TensorFlow's CheckpointState proto, built without TensorFlow.

    Its fields are those of tensorflow/python/training/checkpoint_state.proto.
    It lives in a descriptor pool of its own, so it never clashes with
    TensorFlow's class of the same name when both are loaded.
    """
    from google.protobuf import descriptor_pb2
    from google.protobuf import descriptor_pool
    from google.protobuf import message_factory

    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="tf1_migrate/checkpoint_state.proto", package="tensorflow", syntax="proto3")
    message = proto.message_type.add(name="CheckpointState")
    for number, (name, kind, label) in enumerate((
            ("model_checkpoint_path", field.TYPE_STRING, field.LABEL_OPTIONAL),
            ("all_model_checkpoint_paths", field.TYPE_STRING, field.LABEL_REPEATED),
            ("all_model_checkpoint_timestamps", field.TYPE_DOUBLE, field.LABEL_REPEATED),
            ("last_preserved_timestamp", field.TYPE_DOUBLE, field.LABEL_OPTIONAL)), start=1):
        message.field.add(name=name, number=number, type=kind, label=label)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.CheckpointState"))


def strip_shard_suffix(path):
    """Returns `path` without a V1 shard suffix (`-00000-of-00002`, or the `-?????-of-N` pattern).

    Example:

    >>> strip_shard_suffix("train/model.ckpt-7-?????-of-00002")
    'train/model.ckpt-7'
    >>> strip_shard_suffix("train/model.ckpt-7")
    'train/model.ckpt-7'
    """
    shard = _V1_SHARD.search(path)
    return path[:shard.start()] if shard else path


def checkpoint_format(prefix):
    """Returns the format of the checkpoint at `prefix`, or None if there is none.

    Args:
        prefix: a checkpoint prefix.

    Returns:
        `FORMAT_V2` when `PREFIX.index` exists; `FORMAT_V1` when `PREFIX` is
        a V1 checkpoint file or `PREFIX-0000K-of-NNNNN` shards exist; else None.
    """
    if files.exists(prefix + INDEX_SUFFIX):
        return FORMAT_V2
    if _v1_shard_paths(prefix) or is_v1_file(prefix):
        return FORMAT_V1
    return None


def is_v1_file(path):
    """True when `path` is a file in the table format of a V1 checkpoint (checked by its footer).

    A V2 `.index` has the same format, so callers look at names first.

    Example:

        is_v1_file("vgg_16.ckpt")  # True for tf-slim's published checkpoints
    """
    try:
        if not files.exists(path) or files.is_directory(path):
            return False
        length = files.size(path)
        if length < _TABLE_FOOTER_BYTES:
            return False
        with files.open_binary(path, "rb") as file:
            file.seek(length - len(_TABLE_MAGIC))
            return file.read(len(_TABLE_MAGIC)) == _TABLE_MAGIC
    except Exception:  # OSError or tf.errors.OpError: unreadable means not a checkpoint here.
        return False


def checkpoint_prefixes(directory, names=None):
    """Returns the checkpoint prefixes in one directory (not recursive), newest first.

    The one test of "is this a checkpoint" for every caller (the batch scanner
    included): a V2 prefix has a `.index` file; a V1 prefix is a file in the
    table format or has `-0000K-of-NNNNN` shards.

    Args:
        directory: the directory.
        names: its entries if already listed (saves a listing).

    Returns:
        Full prefixes, newest (by modification time, then step) first.

    Example:

        checkpoint_prefixes("train")  # ['train/model.ckpt-30', 'train/model.ckpt-20']
    """
    if names is None:
        names = files.listdir(directory)
    names = set(names)
    prefixes = {}
    for name in names:
        if name.endswith(INDEX_SUFFIX):
            prefixes[name[:-len(INDEX_SUFFIX)]] = name
        elif _V1_SHARD.search(name) and not _DATA_SHARD.search(name) and "?" not in name:
            prefixes.setdefault(name[:_V1_SHARD.search(name).start()], name)
    for name in names:
        # A V2 `.index` is a table too: only other names are looked into.
        if (name in prefixes or name == STATE_FILE_NAME or name.endswith(META_SUFFIX)
                or name.endswith(INDEX_SUFFIX) or _DATA_SHARD.search(name)
                or _V1_SHARD.search(name)):
            continue
        if is_v1_file(files.join(directory, name)):
            prefixes[name] = name

    def newest_first(prefix):
        mtime = files.modified_ns(files.join(directory, prefixes[prefix]))
        return (mtime, [int(part) if part.isdigit() else 0
                        for part in re.split(r"(\d+)", prefix)])

    return [files.join(directory, prefix)
            for prefix in sorted(prefixes, key=newest_first, reverse=True)]


def tensorflow_path(prefix):
    """Returns what TensorFlow's readers take for `prefix`: the pattern of a sharded V1 one.

    Example:

        tensorflow_path("train/model.ckpt-3")  # 'train/model.ckpt-3-?????-of-00002' when sharded V1
    """
    shards = _v1_shard_paths(prefix)
    if shards and not files.exists(prefix + INDEX_SUFFIX):
        return _V1_SHARD_PATTERN.format(prefix=prefix, count=int(_V1_SHARD.search(
            shards[0]).group(2)))
    return prefix


def source_files(prefix, *, use_meta=True):
    """Returns the files a conversion of `prefix` reads: its checkpoint files, `.meta` if used.

    Raises:
        CheckpointError: a data shard is missing.
    """
    paths = data_files(prefix)
    if checkpoint_format(prefix) == FORMAT_V2:
        paths = [prefix + INDEX_SUFFIX, *paths]
    if use_meta and files.exists(prefix + META_SUFFIX):
        paths.append(prefix + META_SUFFIX)
    return paths


def data_files(prefix):
    """Returns the prefix's data files, checking that none is missing.

    V2: the `.data-0000K-of-NNNNN` shards. V1: the single file, or its
    `-0000K-of-NNNNN` shards.

    Raises:
        CheckpointError: a shard named by the others is absent, or there is none.
    """
    if not files.exists(prefix + INDEX_SUFFIX):
        v1_shards = _v1_shard_paths(prefix)
        if v1_shards:
            return _complete_shards(prefix, v1_shards, _V1_SHARD, _V1_SHARD_NAME)
        if is_v1_file(prefix):
            return [prefix]
    found = sorted(files.glob(prefix + ".data-*"))
    return _complete_shards(prefix, found, _DATA_SHARD, _DATA_SHARD_NAME)


def _v1_shard_paths(prefix):
    try:
        found = files.glob(prefix + "-?????-of-?????")
    except Exception:  # tf.errors.NotFoundError for a missing directory on some filesystems.
        return []
    return sorted(path for path in found if _V1_SHARD.search(path))


def _complete_shards(prefix, found, shard_pattern, shard_name):
    counts = set()
    present = set()
    for path in found:
        shard = shard_pattern.search(path)
        if shard:
            present.add(int(shard.group(1)))
            counts.add(int(shard.group(2)))
    if not found or len(counts) != 1:
        expected = shard_name.format(prefix=prefix, index=0, count=0)[:-5] + "NNNNN"
        raise CheckpointError(
            f"Checkpoint {prefix} has no usable data file. Expected {expected}. "
            f"Received: data files {found}")
    (count,) = counts
    missing = sorted(set(range(count)) - present)
    if missing:
        names = [shard_name.format(prefix=prefix, index=index, count=count) for index in missing]
        raise CheckpointError(
            f"Checkpoint {prefix} is missing data shard(s) {', '.join(names)}. "
            f"Expected all {count}. Received: {len(present)} shard(s)")
    return [path for path in found if shard_pattern.search(path)]


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

