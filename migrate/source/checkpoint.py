"""Reads a TF1 checkpoint: its variables' metadata, their roles, and one tensor at a time."""

import dataclasses
import math
import os
import threading

import numpy as np

from migrate import files
from migrate.errors import CheckpointError
from migrate.errors import reason
from migrate.source import bundle_index
from migrate.source import frozen_graph as frozen_graph_lib
from migrate.source import locate
from migrate.source import meta_graph
from migrate.source import roles as roles_lib
from migrate.source import saved_model as saved_model_lib

# The thread that asks for the kept tensors to be read ahead (see `LegacyCheckpoint.open`).
READ_AHEAD_THREAD = "tf1-migrate-read-ahead"
_READ_AHEAD_STEP = 2 << 20
# Every TF2 object-based checkpoint (`tf.train.Checkpoint`) holds this key.
_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


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
        checkpoint_format: `locate.FORMAT_V2` (`.index` and `.data-*` files) or
            `locate.FORMAT_V1` (one file, or `PREFIX-0000K-of-NNNNN` shards).
        meta_path: the `.meta` file used for roles, or None.
        saved_graph_path: the `.meta` file beside the checkpoint, whether or
            not it gave the roles (`use_meta=False`): the graph verification runs.
        variables: dict of checkpoint key to `SourceVariable`, sorted by key.
        graph: the `tf.Graph` imported from the `.meta` (or built by a
            builder, or from a SavedModel or frozen GraphDef), or None.
        builder: the builder whose graph stands in for a missing `.meta`
            (a `legacy_graphs` name or `module:callable`), or None.
        artifact: for a TF1 SavedModel directory or TF-Hub v1 module, the
            `saved_model.SavedModelSource` (its weights are its `variables/`
            checkpoint); for a frozen GraphDef, the `frozen_graph.FrozenGraph`
            (its weights are constants); None for a checkpoint. Only
            verification needs it: everything else reads the variables.
        not_saved: the trainable graph variables the checkpoint lacks (made
            after the `Saver`, as a training loop's `learning_rate` often
            is): never saved, so no weight of the model; left out, counted.

    Example:

        checkpoint = LegacyCheckpoint.open("train/model.ckpt-3")
        for variable in checkpoint.variables.values():
            print(variable.name, variable.shape, variable.role.value)
    """

    def __init__(self, prefix, variables, *, meta_path=None, graph=None, reader=None,
                 role_origin="name rules", reader_path=None, checkpoint_format=locate.FORMAT_V2,
                 saved_graph_path=None, builder=None, artifact=None, stored=None,
                 not_saved=()):
        self.artifact = artifact
        self.not_saved = tuple(not_saved)
        self._stored = stored
        self.prefix = prefix
        self.builder = builder
        self.reader_path = reader_path or prefix
        self.checkpoint_format = checkpoint_format
        self.variables = dict(sorted(variables.items()))
        self.meta_path = meta_path
        self.saved_graph_path = saved_graph_path if saved_graph_path is not None else meta_path
        self._graph = graph
        self.role_origin = role_origin
        self._reader = reader

    @classmethod
    def open(cls, path, *, builder=None, use_meta=True, tags=None, signature=None,
             read_ahead=None):
        """Opens a checkpoint prefix, the newest checkpoint of a directory, a SavedModel or a
        frozen GraphDef.

        Args:
            path: a prefix such as `train/model.ckpt-12000`, a directory
                whose `checkpoint` state file names the prefix, a TF1
                SavedModel directory (Estimator export, `simple_save`, TF-Hub
                v1 module), or a frozen GraphDef file (`.pb`, `.pbtxt`).
            builder: a `legacy_graphs` name or `module:callable` whose graph
                gives the roles, and which verification runs; given, it is
                used in place of a `.meta` beside the prefix (`role_origin`
                says so).
            use_meta: read roles from the `.meta` beside the prefix, if any.
            tags: a SavedModel's MetaGraphDef tag set (default `serve`; the
                empty set for a TF-Hub module).
            signature: a SavedModel's SignatureDef that verification uses
                (default `serving_default`; `default` for a TF-Hub module).
            read_ahead: roles (`Role`s) whose tensors a conversion will read:
                for a local V2 checkpoint, as soon as its `.index` is read and
                before TensorFlow is imported, the system is asked to read
                those tensors in the background (`posix_fadvise(WILLNEED)`, on
                a thread of its own), so a slow disk or a network filesystem
                works while TensorFlow is imported and the model built. The
                graph has not been read yet, so the roles are guessed from the
                names (`roles.role_from_name`): a hint, never a decision.

        Raises:
            CheckpointError: the files are missing, unreadable, or the graph
                does not describe this checkpoint (none of its trainable
                variables is in it; some missing are `not_saved`); no MetaGraphDef has `tags`,
                or no SignatureDef is `signature`.
        """
        kind, path = locate.source_kind(path)
        if kind == locate.KIND_SAVED_MODEL:
            return cls._open_saved_model(path, tags=tags, signature=signature,
                                         read_ahead=read_ahead)
        if kind == locate.KIND_FROZEN_GRAPH:
            return cls._open_frozen_graph(path)
        prefix = locate.resolve_prefix(path)
        reader, reader_path, version, shapes, dtypes, stored = _open_bundle(prefix, read_ahead)
        meta_path = prefix + locate.META_SUFFIX
        saved_graph_path = meta_path if files.exists(meta_path) else None
        graph = None
        used_builder = None
        collections = None
        source = roles_lib.RoleSource.NAME_RULE
        role_origin = "name rules"
        if builder is not None:
            # A builder given explicitly is what the caller wants, a `.meta` beside or not.
            graph = meta_graph.builder_graph(builder)
            used_builder = builder
            collections = meta_graph.graph_collections(graph)
            source, role_origin = roles_lib.RoleSource.BUILDER, f"graph of builder {builder!r}"
            if use_meta and saved_graph_path is not None:
                role_origin += f", given in place of {meta_path}"
            meta_path = None
        elif use_meta and saved_graph_path is not None:
            # The collections are read from the MetaGraphDef itself: importing
            # the graph costs seconds and ~100 MB on BERT-base, and only layout
            # parameters and `verify` need it (see `graph`).
            collections = meta_graph.collections_from_meta(meta_path)
            source, role_origin = roles_lib.RoleSource.GRAPH, role_origin_of(prefix, use_meta=True)
        else:
            role_origin = role_origin_of(prefix, use_meta=use_meta)
            meta_path = None
        not_saved = ()
        if collections is not None:
            not_saved = meta_graph.check_graph_matches(collections, shapes, role_origin)
        decisions = roles_lib.classify(dtypes, collections, source)
        variables = {
            name: SourceVariable(name, tuple(shapes[name]), dtypes[name], *decisions[name])
            for name in shapes
        }
        return cls(prefix, variables, meta_path=meta_path, graph=graph, reader=reader,
                   role_origin=role_origin, reader_path=reader_path, checkpoint_format=version,
                   saved_graph_path=saved_graph_path, builder=used_builder, stored=stored,
                   not_saved=not_saved)

    @classmethod
    def _open_saved_model(cls, directory, *, tags, signature, read_ahead=None):
        """A TF1 SavedModel: its `variables/` checkpoint, roles from its MetaGraphDef."""
        artifact = saved_model_lib.open_saved_model(directory, tags=tags, signature=signature)
        reader, reader_path, version, shapes, dtypes, stored = _open_bundle(
            artifact.variables_prefix, read_ahead)
        collections = meta_graph.meta_graph_collections(artifact.meta_graph)
        role_origin = f"graph collections of the {artifact.description}"
        not_saved = meta_graph.check_graph_matches(collections, shapes, role_origin)
        decisions = roles_lib.classify(dtypes, collections, roles_lib.RoleSource.GRAPH)
        variables = {
            name: SourceVariable(name, tuple(shapes[name]), dtypes[name], *decisions[name])
            for name in shapes
        }
        return cls(directory, variables, reader=reader, role_origin=role_origin,
                   reader_path=reader_path, checkpoint_format=version, artifact=artifact,
                   stored=stored, not_saved=not_saved)

    @classmethod
    def _open_frozen_graph(cls, path):
        """A frozen GraphDef: its weight constants, all of them the model's state."""
        artifact = frozen_graph_lib.open_frozen_graph(path)
        variables = {}
        for name, constant in artifact.weights.items():
            variables[name] = _frozen_weight(constant, constant.reason)
        return cls(path, variables, reader=artifact, role_origin=f"constants of the "
                   f"{artifact.description}", reader_path=path,
                   checkpoint_format=frozen_graph_lib.KIND_FROZEN_GRAPH, artifact=artifact)

    @property
    def graph(self):
        """The legacy `tf.Graph` (imported from the `.meta`, SavedModel or GraphDef on first
        use), or None."""
        if self._graph is None and self.meta_path is not None:
            self._graph = meta_graph.import_meta_graph(self.meta_path)
        if self._graph is None and self.artifact is not None:
            self._graph, _ = self.artifact.import_graph()
        return self._graph

    @property
    def not_weights(self):
        """For a frozen GraphDef, `{name: reason}` of its constants that are not weights, else
        None."""
        if not isinstance(self.artifact, frozen_graph_lib.FrozenGraph):
            return None
        return {name: constant.reason for name, constant in self.artifact.constants.items()
                if not constant.is_weight and name not in self.variables}

    def admit_constants(self, reasons):
        """Takes constants of a frozen GraphDef that were not judged weights as weights.

        A constant whose use does not say it is a weight may still be one (a
        bias added by an op this module does not read); a mapping table that
        names it says it is. Only floating-point constants are admitted; the
        others stay as they were.

        Args:
            reasons: `{constant name: why it is a weight}` (e.g. the table rule
                naming it).

        Returns:
            The names admitted (already-kept variables and non-float constants
            are left out).

        Example:

            checkpoint.admit_constants({"BC1": "named by rule 2 of table.toml"})
        """
        if not isinstance(self.artifact, frozen_graph_lib.FrozenGraph):
            return []
        admitted = []
        for name, why in reasons.items():
            constant = self.artifact.constants.get(name)
            if (name in self.variables or constant is None
                    or not roles_lib.is_floating(constant.dtype)):
                continue
            self.variables[name] = _frozen_weight(constant, why)
            admitted.append(name)
        if admitted:
            self.variables = dict(sorted(self.variables.items()))
        return admitted

    @property
    def folded(self):
        """True when `optimize_for_inference` folded BatchNorm into the convolutions."""
        return bool(getattr(self.artifact, "folded", False))

    @property
    def has_bundle_reader(self):
        """True when TensorFlow's own reader has the checkpoint open (not an in-memory stand-in).

        Only then can a tensor be read by TensorFlow straight into a variable
        (`migrate.output.direct_read`).
        """
        return self._reader is not None and not isinstance(self.artifact,
                                                           frozen_graph_lib.FrozenGraph)

    @property
    def has_graph(self):
        """True when a graph is available (a `.meta`, a builder, a SavedModel or a GraphDef),
        without importing it."""
        return self._graph is not None or self.meta_path is not None or self.artifact is not None

    @property
    def runs_own_graph(self):
        """True when verification can run the legacy graph: the `.meta` beside the checkpoint,
        the builder that gave the roles, or a SavedModel's or frozen graph's own."""
        return (self.saved_graph_path is not None or self.builder is not None
                or self.artifact is not None)

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

    def stored_tensor(self, name):
        """Returns where tensor `name`'s bytes lie (a `bundle_index.StoredTensor`), or None.

        None unless the tensor is stored whole, as plain numbers, in a local
        V2 checkpoint's data file: V1 files, URLs, partitioned variables
        (stored in slices) and strings are read through TensorFlow only.
        """
        if self._stored is None:
            return None
        return self._stored.tensor(name)

    def stored_slices(self, name):
        """Returns the slices (`TensorSliceProto`s) a V2 checkpoint stores a partitioned
        variable `name` in, from its `.index` entry; None for a tensor stored whole, or when
        the `.index` was not read here."""
        if self._stored is None:
            return None
        return self._stored.slices(name)

    def source_files(self):
        """Returns the checkpoint's files: `.index`, data shards, and the `.meta` if used (a
        SavedModel's or frozen GraphDef's own files)."""
        if self.artifact is not None:
            return self.artifact.files()
        return locate.source_files(self.prefix, use_meta=self.meta_path is not None)

    def ema_shadows(self):
        """Returns a dict of variable key to its `ExponentialMovingAverage` shadow's key."""
        shadows = {}
        for variable in self.variables.values():
            if variable.role is roles_lib.Role.EMA_SHADOW:
                owner, _, leaf = variable.name.rpartition("/")
                if leaf == roles_lib.EMA_SUFFIX and owner in self.variables:
                    shadows[owner] = variable.name
        return shadows


def _frozen_weight(constant, why):
    """The `SourceVariable` of a frozen GraphDef's weight constant."""
    # No slots, steps or averages survive freezing: a weight is trained
    # unless its name says it is a statistic (moving_mean, ...).
    role = roles_lib.role_from_name(constant.name, constant.dtype)
    if role is not roles_lib.Role.MODEL_STATE:
        role = roles_lib.Role.TRAINABLE
    return SourceVariable(constant.name, constant.shape, constant.dtype, role,
                          roles_lib.RoleSource.FROZEN_GRAPH, why)


def _read_ahead(index_bytes, shard_paths, roles):
    """Starts asking for the tensors whose names say they have one of `roles` (see `open`)."""
    extents = bundle_index.stored_extents(index_bytes)
    if extents is None:
        return
    ranges = {}
    for name, (shard, offset, size) in extents.items():
        if size and shard in shard_paths and roles_lib.role_from_name(name) in roles:
            ranges.setdefault(shard_paths[shard], []).append((offset, size))
    threading.Thread(target=_advise_will_need, args=(ranges,), name=READ_AHEAD_THREAD,
                     daemon=True).start()


def _advise_will_need(ranges):
    """`posix_fadvise(WILLNEED)` on `{path: [(offset, size)]}`; a slow disk may block each call."""
    for path, extents in ranges.items():
        try:
            descriptor = os.open(path, os.O_RDONLY)
        except OSError:
            continue  # The reads themselves will say what is wrong.
        try:
            for offset, size in sorted(extents):
                # Linux reads at most its readahead window per call, so one call per window.
                for start in range(offset, offset + size, _READ_AHEAD_STEP):
                    os.posix_fadvise(descriptor, start, min(_READ_AHEAD_STEP, offset + size - start),
                                     os.POSIX_FADV_WILLNEED)
        except OSError:
            pass  # A filesystem without readahead: the reads just come later.
        finally:
            os.close(descriptor)


def _open_bundle(prefix, read_ahead=None):
    """Opens TensorFlow's reader on a checkpoint prefix, after checking what would crash it.

    With `read_ahead` (roles), a local V2 checkpoint's tensors are asked for
    first, before TensorFlow is imported (see `LegacyCheckpoint.open`).

    Returns:
        `(reader, reader_path, format, shapes, dtypes, stored)`: shapes and
        dtype names by checkpoint key; `stored` a `bundle_index.StoredTensors`
        for a local V2 checkpoint whose `.index` parsed here, else None.
    """
    version = locate.checkpoint_format(prefix)
    shards = locate.data_files(prefix)  # Raises on a missing shard before TensorFlow reads anything.
    stored = None
    if version == locate.FORMAT_V2:
        index_bytes = read_index_file(prefix)
        if len(index_bytes) < bundle_index.FOOTER_BYTES:
            # TensorFlow's reader's own words, said without importing it (a
            # batch's copy worker fails such a checkpoint in milliseconds).
            raise CheckpointError(
                f"Cannot read checkpoint {prefix}: file is too short to be an sstable. "
                f"Expected a readable TF1 checkpoint. Received: checkpoint={prefix!r}")
        shard_paths = {locate.data_shard_number(path): path for path in shards}
        if read_ahead and not files.is_url(prefix):
            _read_ahead(index_bytes, shard_paths, read_ahead)
        # TensorFlow's reader aborts the process on some damage. A V1 file
        # has no separate index: its reader raises on every damage tried.
        stored = _check_index(prefix, shard_paths, index_bytes)
    import tensorflow as tf

    reader_path = locate.tensorflow_path(prefix)
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
    return reader, reader_path, version, shapes, dtypes, stored


def role_origin_of(prefix, *, use_meta):
    """Says where a checkpoint's roles come from when no builder gives them
    (`LegacyCheckpoint.role_origin`): its `.meta`'s collections, or name rules."""
    meta_path = prefix + locate.META_SUFFIX
    if not use_meta:
        return "name rules"
    if files.exists(meta_path):
        return f"graph collections of {meta_path}"
    return (f"name rules: no {meta_path} (a builder's graph, module:callable, "
            f"can give the roles instead)")


def check_shard_sizes(prefix, shard_paths, extents):
    """Refuses data shards shorter than their `.index` says (`bundle_index.extents_of`).

    Raises:
        CheckpointError: a shard is cut short.
    """
    for index, path in shard_paths.items():
        needed = extents.get(index, 0)
        present = files.size(path)
        if present < needed:
            raise CheckpointError(
                f"Checkpoint data file {path} is truncated; copy the checkpoint again. Expected "
                f"at least {needed} bytes (from {prefix}.index). Received: size={present}")


def read_index_file(prefix):
    """Returns the bytes of a V2 checkpoint's `.index`."""
    index_path = prefix + ".index"
    try:
        return files.read_bytes(index_path)
    except files.error_types(index_path) as error:  # A directory, no permission, ...
        raise CheckpointError(
            f"Cannot read checkpoint index {index_path}: {reason(error)}. Expected a "
            f"readable file. Received: checkpoint={prefix!r}") from None


def _check_index(prefix, shard_paths, index_bytes):
    """Refuses an `.index` that would crash TensorFlow's reader, and data shards cut short.

    TensorFlow CHECK-fails (SIGABRT, no exception) on some damaged index
    records, and notices a short shard only when it reads a tensor past the
    cut, so a truncated copy would convert silently whenever the weights
    happen to come first. See `migrate.source.bundle_index`.

    Returns:
        A `bundle_index.StoredTensors` of the index's entries, or None when the
        index is not a table read here (TensorFlow's reader judges it) or the
        checkpoint is at a URL (its tensors are read through TensorFlow only).
    """
    index_path = prefix + ".index"
    summary = bundle_index.read_index(index_bytes)
    if summary is None:
        return None
    if summary.problems:
        more = f" (and {len(summary.problems) - 1} more)" if len(summary.problems) > 1 else ""
        raise CheckpointError(
            f"Checkpoint index {index_path} is damaged: {summary.problems[0]}{more}; "
            f"TensorFlow's reader would abort the process on it. Expected an index whose "
            f"records all parse. Received: checkpoint={prefix!r}")
    check_shard_sizes(prefix, shard_paths, summary.extents)
    if files.is_url(prefix):
        return None
    return bundle_index.StoredTensors(prefix, summary.entries, shard_paths)
