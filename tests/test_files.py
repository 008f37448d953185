"""`migrate.files`: local paths through `os`, URLs through `tf.io.gfile`, with the same results."""

import hashlib
import os
import subprocess
import sys
import uuid

import pytest

from migrate import files


@pytest.fixture(params=["local", "url"])
def root(request, tmp_path):
    """A fresh directory: under tmp_path, or a URL of TensorFlow's in-memory filesystem."""
    if request.param == "local":
        yield str(tmp_path / "root")
        return
    import tensorflow as tf

    url = f"ram://files_test_{uuid.uuid4().hex[:8]}/root"
    try:
        yield url
    finally:
        tf.io.gfile.rmtree(url)


def test_local_paths_and_urls_give_the_same_results(root):
    data_file = files.join(root, "a", "model.ckpt-1.data-00000-of-00001")
    files.makedirs(files.join(root, "a", "b"))
    files.makedirs(files.join(root, "a", "b"))  # Already there: fine.
    files.write_bytes(data_file, b"12345")
    files.write_bytes(files.join(root, "a", "b", "model.ckpt-1.index"), b"")
    assert sorted(files.listdir(files.join(root, "a"))) == ["b", files.basename(data_file)]
    assert [(directory[len(root):], sorted(names), sorted(file_names))
            for directory, names, file_names in files.walk(root)] == [
        ("", ["a"], []), ("/a", ["b"], [files.basename(data_file)]),
        ("/a/b", [], ["model.ckpt-1.index"])]
    assert files.glob(files.join(root, "a", "model.ckpt-1.data-*")) == [data_file]
    assert files.glob(files.join(root, "a", "model.ckpt-1-?????-of-?????")) == []
    assert files.size(data_file) == 5 and files.read_bytes(data_file) == b"12345"
    assert files.sha256(data_file) == hashlib.sha256(b"12345").hexdigest()
    assert isinstance(files.modified_ns(data_file), int)
    assert files.is_directory(files.join(root, "a")) and not files.is_directory(data_file)
    with files.open_binary(data_file, "rb") as file:
        file.seek(3)
        assert file.read() == b"45"
    renamed = files.join(root, "a", "renamed")
    files.rename(data_file, renamed)
    assert files.exists(renamed) and not files.exists(data_file)
    files.remove(renamed)
    assert not files.exists(renamed)
    files.rmtree(files.join(root, "a", "b"))
    assert not files.exists(files.join(root, "a", "b", "model.ckpt-1.index"))
    assert list(files.walk(files.join(root, "missing"))) == []


def test_local_paths_raise_oserror_and_never_import_tensorflow(tmp_path):
    # What a batch rerun does with local files, in a process of its own.
    code = (f"import sys\nfrom migrate import files\nroot = {str(tmp_path)!r}\n"
            "files.makedirs(files.join(root, 'a'))\n"
            "files.write_bytes(files.join(root, 'a', 'f'), b'x')\n"
            "assert files.listdir(root) == ['a'] and files.size(files.join(root, 'a', 'f')) == 1\n"
            "for call in (files.read_bytes, files.size, files.listdir):\n"
            "    try:\n"
            "        call(files.join(root, 'missing'))\n"
            "    except FileNotFoundError:\n"
            "        pass\n"
            "print('tensorflow' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"
    assert os.listdir(tmp_path / "a") == ["f"]
