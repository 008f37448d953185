"""Where a TF1 checkpoint is: its prefix, format (V1 or V2), and files, found from names and footers.

Nothing here imports TensorFlow: the batch scanner and a rerun decide from
these alone.
"""

import re

from migrate import files
from migrate.errors import CheckpointError
from migrate.source.state_file import STATE_FILE_NAME
from migrate.source.state_file import newest_in_state_file

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
FORMAT_V1 = "V1"
FORMAT_V2 = "V2"
# Sources that are not a checkpoint but hold a TF1 model's weights (`source_kind`).
KIND_CHECKPOINT = "checkpoint"
KIND_SAVED_MODEL = "saved_model"
KIND_FROZEN_GRAPH = "frozen_graph"
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
HUB_MODULE_FILE = "tfhub_module.pb"
SAVED_MODEL_VARIABLES = "variables/variables"
GRAPH_DEF_SUFFIXES = (".pb", ".pbtxt")


def source_kind(path):
    """Says what `path` names: a TF1 SavedModel directory, a frozen GraphDef file, or a checkpoint.

    Decided from names alone (no file is parsed): a directory holding
    `saved_model.pb` (or `.pbtxt`), a TF-Hub v1 module among them, is a
    SavedModel; a file ending in `.pb` or `.pbtxt` is a GraphDef (a
    SavedModel's own `saved_model.pb` names its directory); anything else is
    a checkpoint prefix or directory (`resolve_prefix` says which).

    Returns:
        `(kind, path)`: one of `KIND_SAVED_MODEL`, `KIND_FROZEN_GRAPH`,
        `KIND_CHECKPOINT`, and the path to open (the directory of a
        SavedModel).

    Example:

    >>> source_kind("export/frozen_inference_graph.pb")
    ('frozen_graph', 'export/frozen_inference_graph.pb')
    >>> source_kind("train/model.ckpt-3")
    ('checkpoint', 'train/model.ckpt-3')
    """
    path = str(path)
    if files.basename(path) in SAVED_MODEL_FILES:
        return KIND_SAVED_MODEL, files.dirname(path) or "."
    if path.endswith(GRAPH_DEF_SUFFIXES):
        return KIND_FROZEN_GRAPH, path
    trimmed = path.rstrip("/") or path
    if files.is_directory(trimmed) and any(
            files.exists(files.join(trimmed, name)) for name in SAVED_MODEL_FILES):
        return KIND_SAVED_MODEL, trimmed
    return KIND_CHECKPOINT, path


def saved_model_files(directory):
    """Returns the files a conversion of a SavedModel reads: its graph file and variables.

    The graph file (`saved_model.pb` or `.pbtxt`), `tfhub_module.pb` when
    the directory is a TF-Hub v1 module, and the `variables/variables`
    checkpoint's `.index` and data shards (when there are any).

    Raises:
        CheckpointError: a data shard named by the others is missing.
    """
    paths = [files.join(directory, name) for name in (*SAVED_MODEL_FILES, HUB_MODULE_FILE)
             if files.exists(files.join(directory, name))]
    prefix = files.join(directory, SAVED_MODEL_VARIABLES)
    if files.exists(prefix + INDEX_SUFFIX):
        paths += [prefix + INDEX_SUFFIX, *data_files(prefix)]
    return paths


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
            found = _found_text(path)
            if found:
                raise CheckpointError(
                    f"Directory {path} holds no `{STATE_FILE_NAME}` state file naming its newest "
                    f"checkpoint; expected a checkpoint prefix. {found} "
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
            found = _found_text(path)
            expected = (f"{found} Expected an existing checkpoint (one of those prefixes)"
                        if found else "The directory holds no checkpoint. Expected an existing "
                        "checkpoint")
            raise CheckpointError(
                f"The checkpoint state file {state_path} points to {prefix}, which does not "
                f"exist (no {prefix}.index, and no V1 checkpoint file). {expected}. "
                f"Received: checkpoint={path!r}")
        return prefix
    if not files.exists(path) and not files.exists(files.dirname(path) or "."):
        raise CheckpointError(f"No checkpoint at {path}: the directory does not exist. Expected a "
                              f"checkpoint prefix or directory. Received: checkpoint={path!r}")
    raise CheckpointError(
        f"No checkpoint at {path}: {path}.index does not exist, and {path} is not a V1 "
        f"checkpoint file. Expected a checkpoint prefix or directory. Received: checkpoint={path!r}")


def _found_text(directory):
    """Returns "Checkpoints found, newest first: ...." for a directory's prefixes, or ""."""
    found = checkpoint_prefixes(directory)
    if not found:
        return ""
    return (f"Checkpoints found, newest first: {', '.join(found[:5])}"
            f"{' ...' if len(found) > 5 else ''}.")


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


def source_files(prefix, *, use_meta=True, names=None):
    """Returns the files a conversion of `prefix` reads: its checkpoint files, `.meta` if used.

    A SavedModel directory or a frozen GraphDef (`source_kind`) gives its own
    files.

    Args:
        prefix: the checkpoint prefix (or SavedModel directory, or GraphDef file).
        use_meta: include the `.meta`, when there is one.
        names: the entries of the prefix's directory, when already listed (a
            batch's scan): a V2 checkpoint's files are then found among them,
            without listing or globbing the directory again.

    Raises:
        CheckpointError: a data shard is missing.

    Example:

        source_files("train/model.ckpt-3")  # [..index, ...data-00000-of-00001, ....meta]
    """
    kind, path = source_kind(prefix)
    if kind == KIND_SAVED_MODEL:
        return saved_model_files(path)
    if kind == KIND_FROZEN_GRAPH:
        return [path]
    base = files.basename(prefix)
    listed = names is not None and base + INDEX_SUFFIX in names
    paths = data_files(prefix, names=names if listed else None)
    if listed or checkpoint_format(prefix) == FORMAT_V2:
        paths = [prefix + INDEX_SUFFIX, *paths]
    if use_meta and (base + META_SUFFIX in names if listed
                     else files.exists(prefix + META_SUFFIX)):
        paths.append(prefix + META_SUFFIX)
    return paths


def data_files(prefix, *, names=None):
    """Returns the prefix's data files, checking that none is missing.

    V2: the `.data-0000K-of-NNNNN` shards. V1: the single file, or its
    `-0000K-of-NNNNN` shards.

    Args:
        prefix: the checkpoint prefix.
        names: the entries of a V2 prefix's directory, when already listed;
            the shards are then found among them instead of by a glob.

    Raises:
        CheckpointError: a shard named by the others is absent, or there is none.

    Example:

    >>> data_files("train/model.ckpt-3", names=["model.ckpt-3.index", "checkpoint",
    ...                                         "model.ckpt-3.data-00000-of-00001"])
    ['train/model.ckpt-3.data-00000-of-00001']
    """
    if names is not None:
        data_name = files.basename(prefix) + ".data-"
        found = sorted(files.join(files.dirname(prefix), name) for name in names
                       if name.startswith(data_name))
        return _complete_shards(prefix, found, _DATA_SHARD, _DATA_SHARD_NAME)
    if not files.exists(prefix + INDEX_SUFFIX):
        v1_shards = _v1_shard_paths(prefix)
        if v1_shards:
            return _complete_shards(prefix, v1_shards, _V1_SHARD, _V1_SHARD_NAME)
        if is_v1_file(prefix):
            return [prefix]
    found = sorted(files.glob(prefix + ".data-*"))
    return _complete_shards(prefix, found, _DATA_SHARD, _DATA_SHARD_NAME)


def data_shard_number(path):
    """Returns K of a V2 data file `PREFIX.data-0000K-of-NNNNN`.

    Example:

    >>> data_shard_number("train/model.ckpt-3.data-00001-of-00002")
    1
    """
    return int(_DATA_SHARD.search(path).group(1))


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
