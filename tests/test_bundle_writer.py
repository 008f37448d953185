"""The streamed checkpoint writer against TensorFlow's own `tf.train.Checkpoint.write`.

The writer must produce what TensorFlow would: the same keys, object graph,
dtypes, shapes and checksums, readable by TensorFlow's reader and restorable
into a fresh model, with the SHA-256 it reports equal to the files' own.
"""

import os

import blake3
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import tensor_bundle_pb2

from migrate import OutputError
from migrate.output import bundle
from migrate.output import checkpoint as output_checkpoint
from migrate.planning import target as target_model
from migrate.source import bundle_index


def _model(seed):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,), dtype="int32")
    hidden = keras.layers.Embedding(50, 8, name="embed")(inputs)
    hidden = keras.layers.Conv1D(5, 3, name="conv")(hidden)
    hidden = keras.layers.BatchNormalization(name="bn")(hidden)
    outputs = keras.layers.Dense(3, name="head")(keras.layers.Flatten()(hidden))
    model = keras.Model(inputs, outputs)
    for variable in model.weights:  # Batch-norm statistics away from their 0/1 start.
        variable.assign(np.random.default_rng(seed).normal(size=variable.shape)
                        .astype(variable.dtype))
    return model


def _mirror(model, *, alias=False):
    weights = target_model.weights(model)
    variables_by_path = {path: variable for path, (_, variable) in weights.items()}
    paths = target_model.reachable_paths(model, list(variables_by_path), variables_by_path)
    return output_checkpoint.mirror(paths, variables_by_path, alias_model_children=alias), \
        variables_by_path


def _records(prefix):
    """`{key: BundleEntryProto or BundleHeaderProto}` of a bundle's index."""
    with open(prefix + ".index", "rb") as index:
        records = bundle_index.table_records(index.read())
    return {key: (tensor_bundle_pb2.BundleHeaderProto if key == b""
                  else tensor_bundle_pb2.BundleEntryProto).FromString(value)
            for key, value in records}


def _stream(directory, children, variables):
    directory.mkdir(exist_ok=True)
    with output_checkpoint.CheckpointStream(str(directory), children) as stream:
        # In reverse: the data file's order is the order written, the index's is by key.
        stream.write(list(reversed(list(variables))))
    return stream


@pytest.mark.parametrize("alias", [False, True], ids=["keras3-root", "aliased-children"])
def test_stream_writes_what_tensorflow_writes(tmp_path, alias):
    model = _model(3)
    children, variables_by_path = _mirror(model, alias=alias)
    stream = _stream(tmp_path / "ours", children, variables_by_path.values())
    theirs = tf.train.Checkpoint(**children).write(str(tmp_path / "theirs" / "ckpt"))

    ours, expected = _records(stream.prefix), _records(theirs)
    assert sorted(ours) == sorted(expected)
    assert ours[b""] == expected[b""]
    for key, entry in expected.items():
        if key == b"":
            continue
        mine = ours[key]
        # The same tensor bytes: the same dtype, shape, size and checksum.
        assert (mine.dtype, mine.shape, mine.size, mine.crc32c) == (
            entry.dtype, entry.shape, entry.size, entry.crc32c), key
    reader, tf_reader = tf.train.load_checkpoint(stream.prefix), tf.train.load_checkpoint(theirs)
    for key in tf_reader.get_variable_to_shape_map():
        assert np.array_equal(reader.get_tensor(key), tf_reader.get_tensor(key)), key


def test_stream_restores_into_a_fresh_model(tmp_path):
    model = _model(5)
    children, variables_by_path = _mirror(model)
    stream = _stream(tmp_path, children, variables_by_path.values())
    fresh = _model(6)
    tf.train.Checkpoint(model=fresh).read(stream.prefix).assert_existing_objects_matched()
    for written, restored in zip(model.weights, fresh.weights):
        np.testing.assert_array_equal(restored.numpy(), written.numpy())
    assert tf.train.latest_checkpoint(str(tmp_path)) == stream.prefix


def test_digests_are_the_files_own(tmp_path):
    model = _model(1)
    children, variables_by_path = _mirror(model)
    stream = _stream(tmp_path, children, variables_by_path.values())
    assert set(stream.digests) == {"ckpt.index", "ckpt.data-00000-of-00001"}
    for name, digest in stream.digests.items():
        data = (tmp_path / name).read_bytes()
        assert digest == bundle.FileDigest("blake3", blake3.blake3(data).hexdigest(), len(data))


def test_a_weight_never_written_is_an_error(tmp_path):
    model = _model(2)
    children, variables_by_path = _mirror(model)
    with pytest.raises(OutputError, match=r"1 weight\(s\) of the checkpoint were never written"):
        with output_checkpoint.CheckpointStream(str(tmp_path), children) as stream:
            stream.write(list(variables_by_path.values())[1:])
    assert not (tmp_path / "ckpt.index").exists()


def test_a_weight_written_twice_is_an_error(tmp_path):
    model = _model(2)
    children, variables_by_path = _mirror(model)
    first = next(iter(variables_by_path.values()))
    with pytest.raises(OutputError, match="written twice"):
        with output_checkpoint.CheckpointStream(str(tmp_path), children) as stream:
            stream.write([first, first])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64", "int8", "int64", "bool",
                                   "complex64"])
def test_bundle_round_trips_dtypes_through_tensorflow(tmp_path, dtype):
    values = np.arange(-12, 12).reshape(2, 3, 4)
    array = tf.constant(values).numpy().astype(tf.as_dtype(dtype).as_numpy_dtype)
    prefix = str(tmp_path / "bundle")
    with bundle.BundleWriter(prefix) as writer:
        writer.add("a/tensor", array)
        writer.add("scalar", np.array(7, dtype=array.dtype))
        writer.add("empty", np.zeros((0, 4), dtype=array.dtype))
    reader = tf.train.load_checkpoint(prefix)
    np.testing.assert_array_equal(reader.get_tensor("a/tensor"), array)
    assert reader.get_tensor("scalar") == array.dtype.type(7)
    assert reader.get_tensor("empty").shape == (0, 4)


def test_index_of_many_blocks_reads_back(tmp_path):
    # Long keys push the index past one 256 kB block: several data blocks.
    prefix = str(tmp_path / "bundle")
    keys = [f"layer_{number:05d}/" + "k" * 200 for number in range(2000)]
    with bundle.BundleWriter(prefix) as writer:
        for number, key in enumerate(keys):
            writer.add(key, np.full((2,), number, np.float32))
    assert os.path.getsize(prefix + ".index") > (256 << 10)
    reader = tf.train.load_checkpoint(prefix)
    assert len(reader.get_variable_to_shape_map()) == len(keys)
    for number in (0, 999, 1999):
        np.testing.assert_array_equal(reader.get_tensor(keys[number]), [number, number])


def test_non_contiguous_array_is_refused(tmp_path):
    with pytest.raises(ValueError, match="C-contiguous"):
        with bundle.BundleWriter(str(tmp_path / "bundle")) as writer:
            writer.add("t", np.zeros((4, 4), np.float32)[:, ::2])


def test_a_failed_write_raises_and_leaves_no_index(tmp_path, monkeypatch):
    class FullDisk:
        def write(self, data):
            raise OSError(28, "No space left on device")

        def close(self):
            pass

    monkeypatch.setattr(bundle.files, "open_binary", lambda path, mode: FullDisk())
    prefix = str(tmp_path / "bundle")
    with pytest.raises(OSError, match="No space left"):
        with bundle.BundleWriter(prefix) as writer:
            writer.add("t", np.zeros((4, 4), np.float32))
    assert not os.path.exists(prefix + ".index")


def test_stream_writes_to_a_url(tmp_path):
    # URLs (gs://, here TensorFlow's in-memory ram://) go through gfile.
    model = _model(8)
    children, variables_by_path = _mirror(model)
    directory = "ram://bundle_writer_test/out"
    tf.io.gfile.makedirs(directory)
    try:
        with output_checkpoint.CheckpointStream(directory, children) as stream:
            stream.write(list(variables_by_path.values()))
        fresh = _model(9)
        tf.train.Checkpoint(model=fresh).read(stream.prefix).assert_existing_objects_matched()
        for written, restored in zip(model.weights, fresh.weights):
            np.testing.assert_array_equal(restored.numpy(), written.numpy())
        for name, digest in stream.digests.items():
            with tf.io.gfile.GFile(f"{directory}/{name}", "rb") as file:
                assert blake3.blake3(file.read()).hexdigest() == digest.hexdigest
    finally:
        tf.io.gfile.rmtree("ram://bundle_writer_test")


def test_a_filesystem_that_renames_only_the_directory_name_is_an_error():
    # TensorFlow's ram:// moves a directory's name but not its files; the
    # conversion must fail, not report an empty output as written.
    from migrate import files
    from migrate.output import atomic

    output = "ram://rename_test/out"
    try:
        with pytest.raises(OutputError, match="renamed the directory without its files"):
            with atomic.staged_directory(output, overwrite=False) as staging:
                files.write_bytes(files.join(staging, atomic.OWNERSHIP_MARK), b"{}")
    finally:
        tf.io.gfile.rmtree("ram://rename_test")
