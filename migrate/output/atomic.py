"""Atomic output directories: check the destination, stage in a locked temporary, rename.

A conversion writes into a hidden `.NAME.partial-XXXXXXXX` directory beside
its output and renames it into place at the end, so an interrupted run
leaves nothing under the final name. The temporary directory is locked
while it is written; the kernel drops the lock when the process dies, so a
later run can tell a dead run's leftovers from a live one's.
"""

import contextlib
import fcntl
import os
import re
import shutil
import sys
import uuid

from migrate import files
from migrate.errors import OutputError
from migrate.errors import reason

PARTIAL_MARK = ".partial-"
# `_replace` renames an existing output to `NAME.previous-XXXXXXXX`, renames
# the new one into place, then removes the previous one; a run killed in
# between leaves it behind (see `recover_previous`).
PREVIOUS_MARK = ".previous-"
# `manifest.MANIFEST_NAME`; named here too because `overwrite` may only
# replace a directory this tool wrote, and the manifest is what says so.
OWNERSHIP_MARK = "manifest.json"
# TensorFlow prefixes errors raised inside its functions with the function's
# node name, which says nothing to a user.
_FUNCTION_NODE = re.compile(r"\{\{function_node [^}]*\}\}\s*")


def check_output(output_dir, *, overwrite, source_files=()):
    """Refuses an output that exists (unless `overwrite`) or that holds the input.

    Args:
        output_dir: the directory a conversion will create.
        overwrite: whether an existing converted output may be replaced.
        source_files: the input's files, which must not lie inside `output_dir`.

    Raises:
        OutputError: the output cannot be used; nothing has been written.

    Example:

    >>> check_output("", overwrite=False)
    Traceback (most recent call last):
    ...
    migrate.errors.OutputError: Expected an output directory. Received: output=''
    """
    output_dir = str(output_dir)
    if not output_dir:
        raise OutputError("Expected an output directory. Received: output=''")
    absolute = _absolute(output_dir)
    for path in source_files:
        if _absolute(path).startswith(absolute.rstrip("/") + "/"):
            raise OutputError(
                f"Output {output_dir} contains the input file {path}. Expected a directory "
                f"apart from the input, so the input is never touched. "
                f"Received: output={output_dir!r}")
    if files.exists(output_dir):
        if not overwrite:
            raise _exists_error(output_dir)
        if not files.exists(files.join(output_dir, OWNERSHIP_MARK)):
            # Overwriting deletes the old output: never a directory this tool did not write.
            raise OutputError(
                f"Refusing to overwrite {output_dir}: it is not a converted output. Expected a "
                f"directory holding {OWNERSHIP_MARK}; remove it yourself or choose another "
                f"output. Received: output={output_dir!r}")
    parent = files.dirname(output_dir) if files.is_url(output_dir) else files.dirname(absolute)
    if not files.is_url(output_dir) and parent and not os.access(_nearest_existing(parent),
                                                                 os.W_OK):
        raise OutputError(
            f"Cannot write output {output_dir}: its parent directory {parent} is not writable. "
            f"Expected a writable location. Received: output={output_dir!r}")


def check_file_destination(path, *, option):
    """Refuses a side-output file (a JSON report) that could not be written, before any work.

    A conversion that fails only when it writes its report has already
    written its output, and a rerun is refused because the output exists; so
    every side output is checked first.

    Args:
        path: the file to be written.
        option: the library keyword that names it (e.g. "report"), for the
            error's `option` and message.

    Raises:
        OutputError: the parent directory does not exist or is not writable,
            or `path` is a directory.

    Example:

    >>> check_file_destination("/no/such/dir/r.json", option="report")
    Traceback (most recent call last):
    ...
    migrate.errors.OutputError: Cannot write the report file /no/such/dir/r.json: the directory /no/such/dir does not exist. Expected a file in an existing, writable directory. Received: report='/no/such/dir/r.json'
    """
    path = str(path)
    received = f"Received: {option}={path!r}"
    expected = "Expected a file in an existing, writable directory."
    if not path:
        raise OutputError(f"Cannot write the {option} file: the path is empty. {expected} "
                          f"{received}", option=option)
    if files.is_directory(path):
        raise OutputError(f"Cannot write the {option} file {path}: it is a directory. {expected} "
                          f"{received}", option=option)
    parent = files.dirname(path) or "."
    if not files.is_directory(parent):
        raise OutputError(f"Cannot write the {option} file {path}: the directory {parent} does "
                          f"not exist. {expected} {received}", option=option)
    if not files.is_url(path) and not os.access(parent, os.W_OK):
        raise OutputError(f"Cannot write the {option} file {path}: {parent} is not writable. "
                          f"{expected} {received}", option=option)


def write_file(path, data):
    """Writes a small file whole or not at all: to a hidden temporary beside it, renamed over it.

    A run killed while writing leaves the previous file (or none), never part of one.

    Example:

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "record.json")
    >>> write_file(path, b"{}")
    >>> open(path, "rb").read(), os.listdir(os.path.dirname(path))
    (b'{}', ['record.json'])
    """
    path = str(path)
    temporary = files.join(files.dirname(path) or ".",
                           f".{files.basename(path)}{PARTIAL_MARK}{uuid.uuid4().hex[:8]}")
    try:
        files.write_bytes(temporary, data)
        files.replace(temporary, path)
    finally:
        if files.exists(temporary):
            files.remove(temporary)


def _write_errors():
    """What a failed write raises: `OSError`, and `tf.errors.OpError` once TensorFlow is imported.

    An `except` clause evaluates this only once something was raised, so a
    conversion that never imported TensorFlow (a batch worker that copies)
    does not import it here either.
    """
    tensorflow = sys.modules.get("tensorflow")
    errors = getattr(tensorflow, "errors", None)
    return (OSError, errors.OpError) if errors is not None else OSError


@contextlib.contextmanager
def staged_directory(output_dir, *, overwrite):
    """Yields a locked temporary directory that becomes `output_dir` when the block succeeds.

    Stale temporaries of killed runs beside `output_dir` are removed first.
    If the block raises, the temporary directory is removed and nothing
    appears under `output_dir`. I/O and TensorFlow errors inside the block
    become one-line `OutputError`s.

    Raises:
        OutputError: the directory cannot be written or renamed.
    """
    output_dir = str(output_dir).rstrip("/")
    parent = files.dirname(output_dir) or "."
    temporary = files.join(
        parent, f".{files.basename(output_dir)}{PARTIAL_MARK}{uuid.uuid4().hex[:8]}")
    remove_stale_partials(output_dir)
    lock = None
    try:
        files.makedirs(temporary)
        lock = _lock(temporary)
        yield temporary
        _replace(temporary, output_dir, overwrite)
    except _write_errors() as error:
        raise OutputError(f"Cannot write output {output_dir}: "
                          f"{_FUNCTION_NODE.sub('', reason(error))}. Expected a writable "
                          f"location with room. Received: output={output_dir!r}") from None
    finally:
        try:
            if files.exists(temporary):
                files.rmtree(temporary)
        except files.error_types(temporary):
            # The error that ended the block says more; a temporary left
            # behind is removed by the next run (`remove_stale_partials`).
            pass
        if lock is not None:
            os.close(lock)


def remove_stale_partials(output_dir):
    """Removes the temporary directories that killed runs left beside a local `output_dir`.

    An unlocked `.NAME.partial-*` directory is left over from a dead run; one
    still locked belongs to a conversion that is running and is kept.

    Returns:
        The paths removed.

    Example:

    >>> remove_stale_partials("/no/such/directory/converted")
    []
    """
    output_dir = str(output_dir).rstrip("/")
    if files.is_url(output_dir):
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


def recover_previous(output_dir, *, names=None):
    """Restores or removes the `NAME.previous-*` a run killed while replacing `output_dir` left.

    A kill between `_replace`'s two renames leaves the old output only under
    `NAME.previous-*` and nothing under `NAME`: it is renamed back. A kill
    after the second rename leaves the old output beside the new, complete
    one: it is removed. Only directories holding a manifest (this tool's
    outputs) are touched; a previous output is never removed while `NAME` is
    not a complete converted output, since it may be the only copy left.
    Nothing is done while a conversion of `output_dir` is running (its locked
    `.NAME.partial-*` directory exists), since that run may be between its own
    two renames. Both `convert` (before any work) and `convert_batch` (for
    every checkpoint) call this.

    Args:
        output_dir: a converted output directory (local or a gfile path).
        names: the entries of its parent directory, when already listed (a
            batch lists each output directory's parent once for all of them).

    Returns:
        One sentence per leftover found, saying what was done with it.

    Raises:
        OutputError: a leftover could not be renamed back or removed.

    Example:

    >>> recover_previous("/no/such/directory/converted")
    []
    """
    output_dir = str(output_dir).rstrip("/")
    if not output_dir:
        return []
    parent = files.dirname(output_dir) or "."
    mark = f"{files.basename(output_dir)}{PREVIOUS_MARK}"
    if names is None:
        try:
            names = files.listdir(parent)
        except Exception:  # OSError or tf.errors.NotFoundError: no parent yet, so nothing left over.
            return []
    names = [name for name in names if name.startswith(mark)]
    if not names or _conversion_running(output_dir):
        return []
    notes = []
    for previous in _newest_first([files.join(parent, name) for name in names]):
        try:
            notes.append(_recover_one(previous, output_dir))
        except files.error_types(output_dir) as error:
            raise OutputError(
                f"Cannot recover {output_dir} from {previous}, left by a run killed while "
                f"replacing it: {_FUNCTION_NODE.sub('', reason(error))}. Expected a writable "
                f"location; restore or remove {previous} yourself. "
                f"Received: output={output_dir!r}") from None
    return notes


def _newest_first(previous_paths):
    """Orders leftovers by their manifest's time, newest first, so the latest output is restored.

    More than one is left only when runs that did not recover (older
    versions) were killed in turn; the newest is what the user last wrote.
    """
    def written(path):
        try:
            return files.modified_ns(files.join(path, OWNERSHIP_MARK))
        except Exception:  # OSError or tf.errors.NotFoundError: not a converted output.
            return -1

    return sorted(sorted(previous_paths), key=written, reverse=True)


def _recover_one(previous, output_dir):
    """Restores `previous` as `output_dir`, removes it, or leaves it; returns what was done."""
    if not files.exists(files.join(previous, OWNERSHIP_MARK)):
        return f"{previous} is not a converted output (no {OWNERSHIP_MARK}); left as it is"
    if not files.exists(output_dir):
        files.rename(previous, output_dir)
        return f"restored {output_dir} from {previous}: a run was killed while replacing it"
    if not files.exists(files.join(output_dir, OWNERSHIP_MARK)):
        # Not a complete output of this tool: the previous one may be the only copy.
        return (f"{previous} left as it is: {output_dir} is not a complete converted output "
                f"(no {OWNERSHIP_MARK})")
    files.rmtree(previous)
    return (f"removed {previous}: the output it held had already been replaced by a run killed "
            f"before it could remove it")


def _conversion_running(output_dir):
    """Whether a live process holds the lock of a `.NAME.partial-*` beside a local `output_dir`."""
    if files.is_url(output_dir):
        return False
    parent = os.path.dirname(output_dir) or "."
    mark = f".{os.path.basename(output_dir)}{PARTIAL_MARK}"
    try:
        names = [name for name in os.listdir(parent) if name.startswith(mark)]
    except OSError:
        return False
    for name in names:
        try:
            descriptor = os.open(os.path.join(parent, name),
                                 os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(descriptor)
    return False


def _lock(directory):
    """Locks a local directory for as long as this process lives; returns the descriptor."""
    if files.is_url(directory):
        return None
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        raise
    return descriptor


def _replace(temporary, output_dir, overwrite):
    previous = None
    if files.exists(output_dir):
        if not overwrite:
            raise _exists_error(output_dir)
        previous = f"{output_dir}{PREVIOUS_MARK}{uuid.uuid4().hex[:8]}"
        files.rename(output_dir, previous)
    renamed = False
    try:
        files.rename(temporary, output_dir)
        if not files.exists(files.join(output_dir, OWNERSHIP_MARK)):
            # TensorFlow's in-memory ram:// filesystem renames a directory's
            # name but not the files under it: an empty output, never a success.
            raise OutputError(
                f"The filesystem of {output_dir} renamed the directory without its files. "
                f"Expected a filesystem that renames directories (local, gs://). "
                f"Received: output={output_dir!r}")
        renamed = True
    finally:
        if previous is not None:
            # Put the old output back if the new one could not take its place.
            if renamed:
                files.rmtree(previous)
            else:
                files.rename(previous, output_dir)


def _exists_error(output_dir):
    return OutputError(
        f"Output {output_dir} already exists. Expected a new directory, or overwrite=True to "
        f"replace it. Received: output={output_dir!r}", option="overwrite")


def _absolute(path):
    return path if files.is_url(path) else os.path.abspath(path)


def _nearest_existing(path):
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    return path or "."
