"""File access for local paths and URLs alike: `os` for local paths, `tf.io.gfile` for URLs.

A URL (`gs://bucket/dir`, `ram://...`: anything with `://`) goes through
`tf.io.gfile`, so every TensorFlow filesystem works like a local path. A
local path goes through `os` and `open` directly: no TensorFlow import, so
a command that only looks at files (a batch rerun with every output up to
date) starts and ends in a fraction of a second instead of about five.

Errors: a local path raises `OSError` (`FileNotFoundError`, ...), a URL
`tf.errors.OpError`; callers catch both (or `Exception`) and translate.

Path arithmetic (`join`, `dirname`, `basename`) is pure: URLs use `/`,
local paths the operating system's rules.

>>> join("gs://bucket/run", "model.ckpt-3")
'gs://bucket/run/model.ckpt-3'
>>> dirname("gs://bucket/run/model.ckpt-3"), basename("gs://bucket/run/model.ckpt-3")
('gs://bucket/run', 'model.ckpt-3')
>>> is_url("gs://bucket/run"), is_url("train/run1")
(True, False)
"""

import builtins
import glob as glob_lib
import hashlib

import blake3
import os
import posixpath
import shutil

_CHUNK_BYTES = 8 << 20


def gfile():
    """Returns `tf.io.gfile`, importing TensorFlow on first use; only URLs need it."""
    import tensorflow as tf  # Imported on first URL access, not at module import.
    return tf.io.gfile


def is_url(path):
    """Returns whether `path` is a URL (`gs://...`), which only `tf.io.gfile` can reach."""
    return "://" in str(path)


def error_types(path):
    """Returns what a file operation on `path` raises, for an `except` clause.

    `OSError` for a local path; for a URL also `tf.errors.OpError`, which
    imports TensorFlow, as the URL's operation has already done (an `except`
    clause evaluates its types only once something was raised).
    """
    if not is_url(path):
        return OSError
    import tensorflow as tf
    return OSError, tf.errors.OpError


def join(*parts):
    """Joins path parts, with `/` for URLs."""
    return posixpath.join(*parts) if is_url(parts[0]) else os.path.join(*parts)


def dirname(path):
    """Returns the directory part of a path or URL."""
    return posixpath.dirname(path) if is_url(path) else os.path.dirname(path)


def basename(path):
    """Returns the last part of a path or URL."""
    return posixpath.basename(path) if is_url(path) else os.path.basename(path)


def exists(path):
    """Returns whether a file or directory exists."""
    return gfile().exists(path) if is_url(path) else os.path.exists(path)


def is_directory(path):
    """Returns whether a path is a directory."""
    return gfile().isdir(path) if is_url(path) else os.path.isdir(path)


def listdir(path):
    """Returns the names in a directory, unsorted, without the `/` some filesystems end
    directory names with (GCS)."""
    if is_url(path):
        return [name.rstrip("/") for name in gfile().listdir(path)]
    return os.listdir(path)


def walk(top):
    """Yields `(directory, directory names, file names)` under `top`, top first, as `os.walk`.

    Errors are ignored, as both `os.walk` and `tf.io.gfile.walk` do: a
    missing `top` yields nothing. Local symlinks to directories are listed
    but not followed.
    """
    if not is_url(top):
        yield from os.walk(top)
        return
    for directory, directory_names, file_names in gfile().walk(top):
        yield directory, [name.rstrip("/") for name in directory_names], file_names


def glob(pattern):
    """Returns the paths matching a `*`/`?` pattern, unsorted."""
    return gfile().glob(pattern) if is_url(pattern) else glob_lib.glob(pattern)


def size(path):
    """Returns a file's size in bytes."""
    return gfile().stat(path).length if is_url(path) else os.stat(path).st_size


def modified_ns(path):
    """Returns a file's modification time in nanoseconds since the epoch."""
    return gfile().stat(path).mtime_nsec if is_url(path) else os.stat(path).st_mtime_ns


def open_binary(path, mode):
    """Opens a file in binary `mode` ("rb", "wb"): `open` for local paths, gfile for URLs.

    Either way the file's `write` takes any buffer (bytes, a NumPy array):
    gfile's own takes bytes only.
    """
    if not is_url(path):
        return builtins.open(path, mode)
    opened = gfile().GFile(path, mode)
    return _BufferWriter(opened) if "w" in mode else opened


class _BufferWriter:
    """A gfile opened for writing whose `write` takes any buffer, a slice at a time.

    gfile copies what it is given into bytes; slicing bounds that copy, so
    a 400 MB tensor never exists twice in memory.
    """

    def __init__(self, opened):
        self._opened = opened

    def write(self, data):
        view = memoryview(data).cast("B")
        # At least one call: gfile creates the file on its first write.
        for start in range(0, max(len(view), 1), _CHUNK_BYTES):
            self._opened.write(bytes(view[start:start + _CHUNK_BYTES]))

    def close(self):
        self._opened.close()

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.close()
        return False


def read_bytes(path):
    """Returns a file's contents.

    Raises:
        OSError or `tf.errors.OpError`: the file cannot be read; callers
            translate it into their own error.
    """
    with open_binary(path, "rb") as file:
        return file.read()


def write_bytes(path, data):
    """Writes `data` to a file, replacing it."""
    with open_binary(path, "wb") as file:
        file.write(data)


# Digest algorithms of `digest`: a manifest names each output file's.
BLAKE3 = "blake3"
SHA256 = "sha256"
DIGEST_ALGORITHMS = (BLAKE3, SHA256)
# What a conversion records its output files with (manifests before it hold SHA-256).
OUTPUT_DIGEST = BLAKE3


def new_digest(algorithm):
    """Returns a running digest (`update`, `hexdigest`) of `algorithm`, one of `DIGEST_ALGORITHMS`.

    BLAKE3 hashes a large update on every core (SIMD on each).

    >>> new_digest(BLAKE3).hexdigest()[:16], new_digest(SHA256).hexdigest()[:16]
    ('af1349b9f5f9a1a6', 'e3b0c44298fc1c14')
    """
    if algorithm == BLAKE3:
        return blake3.blake3(max_threads=blake3.blake3.AUTO)
    if algorithm == SHA256:
        return hashlib.sha256()
    raise ValueError(f"Expected a digest algorithm, one of {', '.join(DIGEST_ALGORITHMS)}. "
                     f"Received: algorithm={algorithm!r}")


def digest(path, algorithm):
    """Returns the hex digest of a file's bytes with `algorithm` (see `new_digest`)."""
    running = new_digest(algorithm)
    if not is_url(path):
        # Local files skip gfile's Python-level buffering: BLAKE3 maps the
        # file and hashes it on every core; SHA-256 reads it with the GIL
        # released (1.1 s instead of 1.8 s per GB here).
        if algorithm == BLAKE3:
            return running.update_mmap(path).hexdigest()
        with builtins.open(path, "rb") as file:
            return hashlib.file_digest(file, algorithm).hexdigest()
    with open_binary(path, "rb") as file:
        while True:
            chunk = file.read(_CHUNK_BYTES)
            if not chunk:
                break
            running.update(chunk)
    return running.hexdigest()


def sha256(path):
    """Returns the hex SHA-256 of a file (the full source hashes of `hash_sources`)."""
    return digest(path, SHA256)


def makedirs(path):
    """Creates a directory and its parents; an existing directory is fine."""
    if is_url(path):
        gfile().makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def rename(source, destination):
    """Renames a file or directory; callers make sure `destination` does not exist."""
    if is_url(source):
        gfile().rename(source, destination)
    else:
        os.rename(source, destination)


def replace(source, destination):
    """Renames a file over `destination`, replacing it in one step (rename(2); gfile's overwrite)."""
    if is_url(source):
        gfile().rename(source, destination, overwrite=True)
    else:
        os.replace(source, destination)


def remove(path):
    """Removes a file."""
    if is_url(path):
        gfile().remove(path)
    else:
        os.remove(path)


def rmtree(path):
    """Removes a directory and everything under it."""
    if is_url(path):
        gfile().rmtree(path)
    else:
        shutil.rmtree(path)
