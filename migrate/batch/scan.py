"""Finds the legacy checkpoint prefixes under a directory, never going round a symlink loop."""

import collections
import dataclasses
import os
import re

from migrate import errors
from migrate import files
from migrate.output import manifest
from migrate.source import locate
from migrate.source.state_file import STATE_FILE_NAME
from migrate.source.state_file import newest_in_state_file

DATA_INFIX = ".data-"
_STEP_PART = re.compile(r"(\d+)")


@dataclasses.dataclass(frozen=True)
class FoundCheckpoint:
    """A checkpoint prefix found by `find_checkpoints`.

    Attributes:
        prefix: the full prefix, e.g. `train/run1/model.ckpt-1000`.
        relative: the prefix relative to the scanned directory, `/`-separated.
        source_bytes: size of its `.index`, data shards and `.meta`.
        files: those files (`locate.source_files`, `.meta` included), found
            in the directory's one listing; empty when a file is missing.
    """

    prefix: str
    relative: str
    source_bytes: int
    files: tuple = ()


@dataclasses.dataclass
class ScanResult:
    """What `find_checkpoints` found.

    Attributes:
        found: the `FoundCheckpoint`s, in natural order (`-2` before `-10`).
        notes: `{"path", "note"}` for what was not followed or chosen
            silently: symlink loops, directories reached twice, converted
            outputs, `--latest_only` choices made without a state file.
        failures: `{"path", "relative", "reason"}` for what could not be
            scanned; each counts as a failed item of the batch.
    """

    found: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)
    failures: list = dataclasses.field(default_factory=list)


def find_checkpoints(input_dir, *, latest_only=False, exclude=()):
    """Finds every legacy checkpoint prefix, TF1 SavedModel and frozen GraphDef under a directory.

    A prefix is any `<name>.index` file (or a V1 checkpoint); a directory
    holding `saved_model.pb` is one SavedModel (not scanned further); a
    `.pb` or `.pbtxt` file in a directory without checkpoints is a frozen
    GraphDef. An Estimator's `model_dir` is a checkpoint directory (its
    `graph.pbtxt` is the training graph, its exports SavedModels). The walk goes through
    `migrate.files` (local paths, or URLs of any `tf.io.gfile` filesystem)
    and scans every directory once: symlinked directories come after the
    real ones (so a directory is found under its own path), and a symlink
    back to one of its own ancestors is reported, not followed.
    Directories holding a `manifest.json` are converted outputs and are not
    scanned.

    Args:
        input_dir: the directory to scan, recursively (local, gs://, ...).
        latest_only: per directory, only the newest entry of its `checkpoint`
            state file (without a state file: the highest step, noted); of
            an Estimator's timestamped exports, the newest (noted).
        exclude: directories to leave out, such as the batch's own output.

    Returns:
        A `ScanResult`.

    Raises:
        CheckpointError: `input_dir` is not a directory.

    Example:

        scan = find_checkpoints("train", latest_only=True)
        print([found.relative for found in scan.found])
    """

    root = strip_slashes(input_dir)
    if not files.is_directory(root):
        raise errors.CheckpointError(
            f"Expected an input directory holding legacy checkpoints. Received: "
            f"input_dir={str(input_dir)!r}, which is not a directory.")
    excluded = {directory_identity(strip_slashes(path)) for path in exclude}
    result = ScanResult()
    seen = {}
    # Symlinked directories wait until every real directory has been scanned,
    # so a directory is reported under its own path rather than through a link.
    stack, linked = [(root, ())], []
    while stack or linked:
        directory, chain = stack.pop() if stack else linked.pop(0)
        identity = directory_identity(directory)
        relative = _relative(root, directory)
        if identity in chain:
            note = f"symlink loop back to {seen[identity]}; not followed"
            result.notes.append({"path": relative, "note": note})
            continue
        if identity in seen:
            note = f"same directory as {seen[identity]}; not scanned twice"
            result.notes.append({"path": relative, "note": note})
            continue
        seen[identity] = relative or "the input directory"
        chain += (identity,)
        try:
            names = sorted(files.listdir(directory))
        except Exception as error:  # OSError, or tf.errors.PermissionDeniedError and friends.
            result.failures.append({"path": directory, "relative": relative,
                                    "reason": f"Cannot list directory {directory}: "
                                              f"{errors.first_line(error)}"})
            continue
        if manifest.MANIFEST_NAME in names:
            result.notes.append({"path": relative, "note": f"holds a {manifest.MANIFEST_NAME}: a "
                                                           f"converted output, not scanned"})
            continue
        if any(name in locate.SAVED_MODEL_FILES for name in names):
            # A SavedModel is one source: its variables/ checkpoint is not another.
            _add_source(result, root, directory, locate.saved_model_files)
            continue
        if not _add_prefixes(result, root, directory, names, latest_only):
            # Beside checkpoints, a GraphDef is the training graph (Estimator's
            # graph.pbtxt), not a frozen model.
            for name in names:
                path = files.join(directory, name)
                if name.endswith(locate.GRAPH_DEF_SUFFIXES) and not files.is_directory(path):
                    _add_source(result, root, path, lambda path: [path])
        subdirectories = []
        for name in names:
            path = files.join(directory, name)
            if (_is_checkpoint_file(name) or not files.is_directory(path)
                    or directory_identity(path) in excluded):
                continue
            (linked if _is_link(path) else subdirectories).append((path, chain))
        if latest_only:
            subdirectories = _newest_export(result, root, directory, subdirectories)
        stack.extend(reversed(subdirectories))
    result.found.sort(key=lambda found: natural_key(found.relative))
    return result


def _add_prefixes(result, root, directory, names, latest_only):
    """Adds the directory's checkpoint prefixes; returns whether it holds any."""

    # V2 prefixes (`.index`) and V1 ones (a single table file, or shards).
    prefixes = sorted((files.basename(prefix)
                       for prefix in locate.checkpoint_prefixes(directory, names)),
                      key=natural_key)
    if not prefixes:
        return False
    relative = _relative(root, directory)
    if latest_only and STATE_FILE_NAME in names:
        state_path = files.join(directory, STATE_FILE_NAME)
        try:
            named = newest_in_state_file(directory)
        except ValueError:
            named = ""
        if not named:
            result.failures.append({"path": state_path, "relative": relative, "reason": (
                f"The checkpoint state file {state_path} cannot be parsed or names no "
                f"checkpoint.")})
            return True
        # Only the name counts: state files often hold absolute paths from the
        # machine that trained, which no longer exist where the files are now.
        newest = locate.strip_shard_suffix(files.basename(named))
        if newest not in prefixes:
            result.failures.append({"path": state_path, "relative": relative, "reason": (
                f"The checkpoint state file {state_path} names {named}, "
                f"which is not a checkpoint in {directory}. Expected one of: "
                f"{', '.join(prefixes)}.")})
            return True
        prefixes = [newest]
    elif latest_only and len(prefixes) > 1:
        result.notes.append({"path": relative or ".", "note": (
            f"no `{STATE_FILE_NAME}` state file; took the highest step, {prefixes[-1]}")})
        prefixes = prefixes[-1:]
    # Each V2 prefix's own names (.index, .meta, .data-*), grouped in one pass over the listing.
    named = collections.defaultdict(list)
    for name in names:
        for suffix in (locate.INDEX_SUFFIX, locate.META_SUFFIX):
            if name.endswith(suffix):
                named[name[:-len(suffix)]].append(name)
        if DATA_INFIX in name:
            named[name[:name.rindex(DATA_INFIX)]].append(name)
    for prefix in prefixes:
        path = files.join(directory, prefix)
        try:
            owned = complete = tuple(locate.source_files(path, names=named[prefix]))
        except errors.CheckpointError:
            # Damaged (a shard missing): still found, and its conversion fails
            # with the reason; its size is what is there.
            owned, complete = files_named_after(path, names), ()
        result.found.append(FoundCheckpoint(
            prefix=path, relative=_relative(root, path),
            source_bytes=sum(files.size(name) for name in owned), files=complete))
    return True


def _newest_export(result, root, directory, subdirectories):
    """Keeps, of the SavedModels an exporter wrote side by side, the newest (noted).

    An Estimator exports into `<model_dir>/export/<exporter>/<timestamp>/`,
    one directory per export, named by its time in seconds: versions of one
    model, as the checkpoints beside them are.
    """
    exports = [(int(files.basename(path)), path) for path, _ in subdirectories
               if files.basename(path).isdigit()
               and any(files.exists(files.join(path, name)) for name in locate.SAVED_MODEL_FILES)]
    if len(exports) < 2:
        return subdirectories
    _, newest = max(exports)
    older = {path for _, path in exports if path != newest}
    result.notes.append({"path": _relative(root, directory) or ".", "note": (
        f"{len(exports)} timestamped exports; took the newest, {files.basename(newest)}")})
    return [entry for entry in subdirectories if entry[0] not in older]


def _add_source(result, root, path, source_files):
    """Adds a SavedModel directory or a frozen GraphDef file, sized by its files."""
    try:
        owned = tuple(source_files(path))
    except errors.CheckpointError:
        owned = ()  # A shard missing: still found, and its conversion fails with the reason.
    result.found.append(FoundCheckpoint(prefix=path, relative=_relative(root, path),
                                        source_bytes=sum(files.size(name) for name in owned),
                                        files=owned))


def files_named_after(prefix, names=None):
    """Returns the files beside `prefix` named after it: what a damaged checkpoint has left.

    Args:
        prefix: a checkpoint prefix, e.g. `train/model.ckpt-3`.
        names: the names in its directory, when already listed.

    Example:

    >>> files_named_after("train/model.ckpt-1", ["model.ckpt-1.index", "model.ckpt-10.index",
    ...                                          "model.ckpt-1.meta", "checkpoint"])
    ['train/model.ckpt-1.index', 'train/model.ckpt-1.meta']
    """
    directory, base = files.dirname(prefix), files.basename(prefix)
    if names is None:
        names = files.listdir(directory)
    owned = [files.join(directory, name) for name in names
             if name == base or name.startswith((base + ".", base + "-"))]
    return [path for path in owned if not files.is_directory(path)]


def _is_checkpoint_file(name):
    return (name.endswith(locate.INDEX_SUFFIX) or name.endswith(locate.META_SUFFIX) or DATA_INFIX in name
            or name == STATE_FILE_NAME)


def strip_slashes(path):
    path = str(path)
    return path.rstrip("/") or path


def _is_link(path):
    return not files.is_url(path) and os.path.islink(path)


def directory_identity(path):
    # Only local filesystems have symlinks; other tf.io.gfile filesystems
    # (gs://, ram://, ...) name every directory by one path.
    return path if files.is_url(path) else os.path.realpath(path)


def _relative(root, path):
    return path[len(root):].lstrip("/") if path != root else ""


def natural_key(text):
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in _STEP_PART.split(text) if part]
