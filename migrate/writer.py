"""Writes a TF2 object-based checkpoint holding only the planned weights, atomically.

The output is a directory: `ckpt.index`, `ckpt.data-*`, a `checkpoint` state
file (so `tf.train.latest_checkpoint(DIR)` finds it) and `manifest.json`.
Everything is written into a hidden temporary directory beside the output
and renamed into place at the end, so an interrupted run leaves nothing
under the final name. Tensors are read, converted and assigned one
assignment at a time; the checkpoint shares the model's own variables, so
no second copy of the weights is ever held.
"""

import fcntl
import json
import os
import re
import shutil
import uuid

import numpy as np

from migrate import direct_read
from migrate import files
from migrate.errors import CheckpointError
from migrate.errors import ModelError
from migrate.errors import OutputError
from migrate.errors import first_line
from migrate.legacy_checkpoint import LegacyCheckpoint
from migrate.target_model import object_paths

CHECKPOINT_NAME = "ckpt"
MANIFEST_NAME = "manifest.json"
STATE_FILE_NAME = "checkpoint"
ROOT_NAME = "model"
PARTIAL_MARK = ".partial-"
# TensorFlow prefixes errors raised inside its functions with the function's
# node name, which says nothing to a user.
_FUNCTION_NODE = re.compile(r"\{\{function_node [^}]*\}\}\s*")


def check_output(output_dir, *, overwrite, source_files=()):
    """Refuses an output that exists (unless `overwrite`) or that holds the input.

    Raises:
        OutputError: the output cannot be used; nothing has been written.
    """
    output_dir = str(output_dir)
    if not output_dir:
        raise OutputError("Expected an output directory. Received: --output=''")
    absolute = _absolute(output_dir)
    for path in source_files:
        if _absolute(path).startswith(absolute.rstrip("/") + "/"):
            raise OutputError(
                f"Output {output_dir} contains the input file {path}; choose another directory "
                f"so the input is never touched.")
    if files.exists(output_dir):
        if not overwrite:
            raise OutputError(f"Output {output_dir} already exists; pass --overwrite to replace it.")
        if not files.exists(files.join(output_dir, MANIFEST_NAME)):
            # --overwrite deletes the old output: never a directory this tool did not write.
            raise OutputError(
                f"Refusing to overwrite {output_dir}: it is not a converted output (no "
                f"{MANIFEST_NAME}); remove it yourself or choose another --output.")
    parent = files.dirname(absolute) if "://" not in output_dir else files.dirname(output_dir)
    if "://" not in output_dir and parent and not os.access(_nearest_existing(parent), os.W_OK):
        raise OutputError(f"Cannot write output {output_dir}: {parent} is not writable.")


def reachable_paths(model, target_paths, variables_by_path):
    """Returns `{target path: object path tuple}` for the weights to be written.

    Raises:
        ModelError: some weights are not reachable from the model's object
            graph (Keras 3 silently leaves out layers held in plain Python
            lists or dicts), so a checkpoint could not carry them.
    """
    import tensorflow as tf

    paths = object_paths(tf.train.Checkpoint(**{ROOT_NAME: model}))
    found, missing = {}, []
    for target in target_paths:
        object_path = paths.get(id(variables_by_path[target]))
        if object_path is None:
            missing.append(target)
        else:
            found[target] = object_path
    if missing:
        raise ModelError(
            f"{len(missing)} weight(s) cannot be reached from the model's object graph, so a "
            f"tf.train.Checkpoint would silently leave them out (Keras 3 does not track layers "
            f"held in plain Python lists or dicts; assign them to attributes or use a Keras "
            f"container): {', '.join(missing[:10])}")
    return found


def mirror(object_paths_by_target, variables_by_path, *, alias_model_children=False):
    """Builds trackables that hold only the given variables at their model paths.

    Args:
        object_paths_by_target: `reachable_paths(...)`.
        variables_by_path: the model's variables by target path.
        alias_model_children: also put the model's children at the root, so
            a tf_keras (Keras 2) model can `load_weights` the checkpoint (its
            root is the model itself) while `tf.train.Checkpoint(model=...)`
            still finds them under `model`. Each variable is stored once.

    Returns:
        A dict of root child name to trackable, for `tf.train.Checkpoint(**children)`.
    """
    import tensorflow as tf

    AutoTrackable = tf.__internal__.tracking.AutoTrackable
    root = AutoTrackable()
    nodes = {(): root}
    for target, object_path in object_paths_by_target.items():
        for depth in range(1, len(object_path)):
            key = object_path[:depth]
            if key not in nodes:
                nodes[key] = AutoTrackable()
                setattr(nodes[key[:-1]], key[-1], nodes[key])
        setattr(nodes[object_path[:-1]], object_path[-1], variables_by_path[target])
    children = {ROOT_NAME: nodes[(ROOT_NAME,)]}
    if alias_model_children:
        children.update(nodes[(ROOT_NAME,)]._trackable_children())
    return children


def execute(plan, checkpoint, variables_by_path, *, allow_nonfinite=False, progress=None):
    """Reads, converts and assigns every planned tensor, one assignment at a time.

    Only the planned keys are read (slots, EMA shadows left out and dropped
    variables never are). A plain rule whose transforms only reshape is read
    by TensorFlow straight into the variable's memory when it holds at least
    `direct_read.MIN_BYTES` (`migrate.direct_read`); other tensors go through
    NumPy and are released before the next is read.

    Args:
        plan: a `ConversionPlan` without problems.
        checkpoint: the `LegacyCheckpoint` the plan was made from.
        variables_by_path: the model's variables by target path.
        allow_nonfinite: carry NaN/Inf values instead of refusing them.
        progress: an optional `migrate.progress.Progress`.

    Returns:
        `(written_bytes, nonfinite)` where `nonfinite` lists `(name, count)` of
        tensors holding NaN or Inf (passed only with `allow_nonfinite`).

    Raises:
        CheckpointError: a tensor cannot be read, or holds NaN/Inf while
            `allow_nonfinite` is False.
        ModelError: a conversion produced a shape the variable does not have.

    Example:

        written, nonfinite = writer.execute(plan, checkpoint, variables_by_path)
    """
    written = 0
    nonfinite = []
    # TensorFlow can only read a checkpoint on disk through its own reader; a
    # stand-in (an in-memory checkpoint, a replaced `read`) keeps its `read`.
    direct = (getattr(checkpoint.read, "__func__", None) is LegacyCheckpoint.read
              and files.exists(checkpoint.prefix + ".index"))
    for assignment in plan.assignments:
        source = checkpoint.variables.get(assignment.read_keys[0])
        variable = variables_by_path[assignment.targets[0]]
        if direct and source is not None and direct_read.eligible(assignment, source, variable):
            bad = direct_read.restore(checkpoint.prefix, source.name, variable)
            _check_finite(source.name, source.shape, bad, nonfinite, allow_nonfinite)
            nbytes = source.nbytes
        else:
            nbytes = _convert_and_assign(assignment, checkpoint, variables_by_path,
                                         nonfinite, allow_nonfinite)
        written += nbytes
        if progress is not None:
            progress.advance(1, nbytes, assignment.targets[0])
    if progress is not None:
        progress.close()
    return written, nonfinite


def _convert_and_assign(assignment, checkpoint, variables_by_path, nonfinite, allow_nonfinite):
    """The NumPy path: read the sources, convert them, assign; returns the bytes assigned."""
    arrays = [checkpoint.read(key) for key in assignment.read_keys]
    for name, array in zip(assignment.read_keys, arrays):
        if np.issubdtype(array.dtype, np.floating) and array.size and not (
                np.isfinite(array.min()) and np.isfinite(array.max())):
            # min and max propagate NaN and reach any Inf without a full-size
            # mask; only a tensor that has one pays for the exact count.
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            _check_finite(name, array.shape, bad, nonfinite, allow_nonfinite)
    outputs = assignment.convert(arrays)
    del arrays
    nbytes = 0
    for target, value in outputs.items():
        variable = variables_by_path[target]
        expected = tuple(int(size) for size in variable.shape)
        if tuple(value.shape) != expected:
            raise ModelError(f"{target}: conversion produced shape {list(value.shape)}, "
                             f"expected {list(expected)}")
        variable.assign(value)
        nbytes += value.nbytes
    return nbytes


def _check_finite(name, shape, bad, nonfinite, allow_nonfinite):
    if not bad:
        return
    nonfinite.append((name, bad))
    if not allow_nonfinite:
        raise CheckpointError(
            f"{name} {list(shape)} holds {bad} NaN/Inf value(s); refusing "
            f"to convert (pass --allow_nonfinite to carry them anyway).")


def write_directory(output_dir, root_children, manifest, *, overwrite):
    """Writes the checkpoint of `root` and the manifest, then renames into place.

    Args:
        output_dir: final output directory.
        root_children: `mirror(...)`: the checkpoint root's children.
        manifest: dict; `output_files` is filled in here.
        overwrite: replace an existing `output_dir`.

    Returns:
        The final checkpoint prefix.
    """
    import tensorflow as tf

    output_dir = str(output_dir).rstrip("/")
    parent = files.dirname(output_dir) or "."
    temporary = files.join(parent, f".{files.basename(output_dir)}{PARTIAL_MARK}{uuid.uuid4().hex[:8]}")
    gfile = files.gfile()
    remove_stale_partials(output_dir)
    lock = None
    try:
        gfile.makedirs(temporary)
        lock = _lock(temporary)
        prefix = tf.train.Checkpoint(**root_children).write(
            files.join(temporary, CHECKPOINT_NAME))
        # Relative paths keep the directory valid after the rename.
        files.write_bytes(files.join(temporary, STATE_FILE_NAME),
                          f'model_checkpoint_path: "{CHECKPOINT_NAME}"\n'
                          f'all_model_checkpoint_paths: "{CHECKPOINT_NAME}"\n'.encode())
        manifest["output_files"] = [
            {"path": name, "sha256": files.sha256(files.join(temporary, name)),
             "bytes": files.size(files.join(temporary, name))}
            for name in sorted(gfile.listdir(temporary))
        ]
        files.write_bytes(files.join(temporary, MANIFEST_NAME),
                          (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
        _replace(temporary, output_dir, overwrite)
    except (OSError, tf.errors.OpError) as error:
        raise OutputError(f"Cannot write output {output_dir}: "
                          f"{_FUNCTION_NODE.sub('', first_line(error))}") from None
    finally:
        if gfile.exists(temporary):
            gfile.rmtree(temporary)
        if lock is not None:
            os.close(lock)
    del prefix
    return files.join(output_dir, CHECKPOINT_NAME)


def remove_stale_partials(output_dir):
    """Removes the temporary directories that killed runs left beside a local `output_dir`.

    A run holds a lock on its temporary directory while it writes; the kernel
    drops the lock when the process dies, however it dies (SIGKILL included).
    An unlocked `.NAME.partial-*` directory is therefore left over, and one
    still locked belongs to a conversion that is running: it is kept.

    Returns:
        The paths removed.

    Example:

        removed = writer.remove_stale_partials("converted")
    """
    output_dir = str(output_dir).rstrip("/")
    if "://" in output_dir:
        return []
    parent = os.path.dirname(output_dir) or "."
    mark = f".{os.path.basename(output_dir)}{PARTIAL_MARK}"
    try:
        names = sorted(name for name in os.listdir(parent) if name.startswith(mark))
    except OSError:
        return []
    removed = []
    for name in names:
        path = os.path.join(parent, name)
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue  # Not a directory of ours (a file, a symlink) or already gone.
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        except OSError:
            pass  # Locked: a conversion is writing it.
        finally:
            os.close(descriptor)
    return removed


def _lock(directory):
    """Locks a local directory for as long as this process lives; returns the descriptor."""
    if "://" in directory:
        return None
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        raise
    return descriptor


def _replace(temporary, output_dir, overwrite):
    gfile = files.gfile()
    previous = None
    if gfile.exists(output_dir):
        if not overwrite:
            raise OutputError(f"Output {output_dir} already exists; pass --overwrite to replace it.")
        previous = f"{output_dir}.previous-{uuid.uuid4().hex[:8]}"
        gfile.rename(output_dir, previous)
    try:
        gfile.rename(temporary, output_dir)
    except Exception:
        if previous is not None:
            gfile.rename(previous, output_dir)
        raise
    if previous is not None:
        gfile.rmtree(previous)


def _absolute(path):
    return path if "://" in path else os.path.abspath(path)


def _nearest_existing(path):
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    return path or "."
