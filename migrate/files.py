"""File access through `tf.io.gfile`, so gs:// and other filesystems work like local paths.

Path arithmetic (`join`, `dirname`, `basename`) is pure: URLs such as
`gs://bucket/dir` use `/`, local paths the operating system's rules.

>>> join("gs://bucket/run", "model.ckpt-3")
'gs://bucket/run/model.ckpt-3'
>>> dirname("gs://bucket/run/model.ckpt-3"), basename("gs://bucket/run/model.ckpt-3")
('gs://bucket/run', 'model.ckpt-3')
"""

import hashlib
import os
import posixpath

_CHUNK_BYTES = 8 << 20


def gfile():
    """Returns `tf.io.gfile`, importing TensorFlow on first use."""
    import tensorflow as tf  # Imported on first file access, not at module import.
    return tf.io.gfile


def join(*parts):
    """Joins path parts, with `/` for URLs."""
    return posixpath.join(*parts) if "://" in parts[0] else os.path.join(*parts)


def dirname(path):
    """Returns the directory part of a path or URL."""
    return posixpath.dirname(path) if "://" in path else os.path.dirname(path)


def basename(path):
    """Returns the last part of a path or URL."""
    return posixpath.basename(path) if "://" in path else os.path.basename(path)


def exists(path):
    """Returns whether a file or directory exists."""
    return gfile().exists(path)


def is_directory(path):
    """Returns whether a path is a directory."""
    return gfile().isdir(path)


def read_bytes(path):
    """Returns a file's contents.

    Raises:
        OSError or `tf.errors.OpError`: the file cannot be read; callers
            translate it into their own error.
    """
    with gfile().GFile(path, "rb") as file:
        return file.read()


def write_bytes(path, data):
    """Writes `data` to a file, replacing it."""
    with gfile().GFile(path, "wb") as file:
        file.write(data)


def sha256(path):
    """Returns the hex SHA-256 of a file, read in chunks."""
    if "://" not in path:
        # Local files skip gfile's Python-level buffering: 1.1 s instead of
        # 1.8 s per GB here, and hashlib releases the GIL while it reads.
        with open(path, "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    digest = hashlib.sha256()
    with gfile().GFile(path, "rb") as file:
        while True:
            chunk = file.read(_CHUNK_BYTES)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def size(path):
    """Returns a file's size in bytes."""
    return gfile().stat(path).length


def open_binary(path, mode):
    """Opens a file in binary `mode` ("rb", "wb"): `open` for local paths, gfile for URLs."""
    if "://" not in path:
        return open(path, mode)
    return gfile().GFile(path, mode)
