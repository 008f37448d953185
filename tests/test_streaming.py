"""Streaming reads: copied file to file, or straight into the model's memory, kept tensors only,
no TensorFlow for lint."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import migrate
from migrate.output import bundle
from migrate.output import direct_read
from migrate.output import manifest as manifest_lib
from migrate import zoo
from migrate.source.checkpoint import LegacyCheckpoint

ENTRY = zoo.get("small_convnet")
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
KEPT_WITH_MODEL_STATE = {"conv/kernel", "bn/gamma", "bn/beta", "bn/moving_mean",
                         "bn/moving_variance", "logits/kernel", "logits/bias"}
# Plain rules whose transforms only reshape, so the direct path takes them.
RESHAPING_TABLE = """
[[rule]]
match = 'dense/kernel'
target = 'dense/kernel'
transform = ["reshape(-1, 5)"]

[[rule]]
match = 'dense/bias'
target = 'dense/bias'
transform = ["squeeze(0)"]

[[rule]]
match = 'head/kernel'
target = 'head/kernel'
transform = ["expand_dims(1)"]

[[rule]]
match = 'head/bias'
target = 'head/bias'
"""


@pytest.fixture(scope="module")
def prefix(legacy_checkpoint):
    return legacy_checkpoint("small_convnet")


def _stored(output):
    reader = tf.train.load_checkpoint(output)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name != OBJECT_GRAPH_KEY}


def _assert_bit_identical(first, second):
    assert first.keys() == second.keys()
    for name in first:
        assert first[name].dtype == second[name].dtype, name
        assert first[name].shape == second[name].shape, name
        assert first[name].tobytes() == second[name].tobytes(), name


def _record_reads(monkeypatch):
    """Records every key read through each path; returns `{"copied": [...], "direct": [...],
    "numpy": [...]}`."""
    reads = {"copied": [], "direct": [], "numpy": []}
    add_stored, restore, read = (bundle.BundleWriter.add_stored, direct_read.restore,
                                 LegacyCheckpoint.read)

    def recording_add_stored(self, key, dtype, shape, stored, **options):
        reads["copied"].append(stored.key)
        return add_stored(self, key, dtype, shape, stored, **options)

    def recording_restore(prefix, key, variable):
        reads["direct"].append(key)
        return restore(prefix, key, variable)

    def recording_read(self, name):
        reads["numpy"].append(name)
        return read(self, name)

    monkeypatch.setattr(bundle.BundleWriter, "add_stored", recording_add_stored)
    monkeypatch.setattr(direct_read, "restore", recording_restore)
    monkeypatch.setattr(LegacyCheckpoint, "read", recording_read)
    return reads


# How each path is chosen: a model built from a factory is only the output's
# template, so unchanged bytes are copied; `fill_model=True` assigns every
# weight, straight into the variable above `MIN_BYTES`, through NumPy below.
PATHS = {"copied": (False, 0), "direct": (True, 0), "numpy": (True, sys.maxsize)}


def _convert_through(path, monkeypatch, *arguments, **keywords):
    fill_model, minimum_bytes = PATHS[path]
    monkeypatch.setattr(direct_read, "MIN_BYTES", minimum_bytes)
    return migrate.convert(*arguments, fill_model=fill_model, **keywords)


def _write_legacy(prefix, tensors):
    """Writes a name-based checkpoint (the TF1 Saver's bundle format) without a graph."""
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(tensors[name]) for name in names])
    return prefix


def _reshaping_model():
    inputs = keras.Input((24,))
    hidden = keras.layers.Dense(5, name="dense")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, name="head")(hidden))


def _tf_keras_reshaping_model():
    import tf_keras

    inputs = tf_keras.Input((24,))
    hidden = tf_keras.layers.Dense(5, name="dense")(inputs)
    return tf_keras.Model(inputs, tf_keras.layers.Dense(1, name="head")(hidden))


def _reshaping_tensors(seed=0):
    rng = np.random.default_rng(seed)
    return {"dense/kernel": rng.standard_normal((2, 3, 4, 5)).astype("float32"),
            "dense/bias": rng.standard_normal((1, 5)).astype("float32"),
            "head/kernel": rng.standard_normal((5,)).astype("float32"),
            "head/bias": rng.standard_normal((1,)).astype("float32")}


def _flip_byte_of(data, array):
    """Flips the middle byte of `array`'s bytes inside `data` (they must occur exactly once)."""
    raw = array.tobytes()
    assert data.count(raw) == 1, "the tensor's bytes must be unique in the data file"
    position = data.find(raw) + len(raw) // 2
    data[position] ^= 0xFF


def _legacy_with_a_damaged_kernel(tmp_path):
    """The reshaping tensors saved without a graph, one byte of `dense/kernel` flipped."""
    tensors = _reshaping_tensors()
    prefix = _write_legacy(str(tmp_path / "legacy" / "model.ckpt-1"), tensors)
    data_path = prefix + ".data-00000-of-00001"
    data = bytearray(open(data_path, "rb").read())
    _flip_byte_of(data, tensors["dense/kernel"])
    open(data_path, "wb").write(bytes(data))
    return prefix


@pytest.mark.parametrize("ema", [False, True])
def test_copied_and_direct_reads_are_bit_identical_to_numpy_reads(prefix, tmp_path, monkeypatch,
                                                                  ema):
    reads = _record_reads(monkeypatch)
    outputs = {}
    for path in PATHS:
        for recorded in reads.values():
            recorded.clear()
        outputs[path] = str(tmp_path / path)
        _convert_through(path, monkeypatch, prefix, ENTRY.table_path, ENTRY.build_model,
                         outputs[path],
                         options=migrate.ConversionOptions(keep="model_state", ema=ema))
        assert {name: len(keys) for name, keys in reads.items()} == {
            name: 7 if name == path else 0 for name in PATHS}, path
        assert manifest_lib.check(outputs[path]).ok

    # TensorFlow's reader checks each tensor's CRC32C in the index as it reads.
    stored = _stored(outputs["copied"])
    _assert_bit_identical(stored, _stored(outputs["direct"]))
    _assert_bit_identical(stored, _stored(outputs["numpy"]))
    # The copied output is byte for byte the one written from the model.
    for name in ("ckpt.index", "ckpt.data-00000-of-00001"):
        with open(os.path.join(outputs["copied"], name), "rb") as copied, open(
                os.path.join(outputs["direct"], name), "rb") as direct:
            assert copied.read() == direct.read(), name
    legacy = tf.train.load_checkpoint(prefix)
    suffix = "/ExponentialMovingAverage" if ema else ""
    read_keys = set(reads["numpy"])
    assert {key.removesuffix(suffix) for key in read_keys} == KEPT_WITH_MODEL_STATE
    assert sum(key.endswith("/ExponentialMovingAverage") for key in read_keys) == (5 if ema else 0)
    assert sorted(array.tobytes() for array in stored.values()) == sorted(
        legacy.get_tensor(key).tobytes() for key in read_keys)


def test_a_model_built_here_is_only_a_template_and_one_passed_in_is_filled(prefix, tmp_path,
                                                                           monkeypatch):
    reads = _record_reads(monkeypatch)
    legacy = tf.train.load_checkpoint(prefix)
    model = ENTRY.build_model()
    migrate.convert(prefix, ENTRY.table_path, model, str(tmp_path / "filled"))
    np.testing.assert_array_equal(model.get_layer("logits").kernel.numpy(),
                                  legacy.get_tensor("logits/kernel"))
    assert reads["copied"] == []
    model = ENTRY.build_model()
    initial = model.get_layer("logits").kernel.numpy()
    migrate.convert(prefix, ENTRY.table_path, model, str(tmp_path / "template"),
                    fill_model=False)
    np.testing.assert_array_equal(model.get_layer("logits").kernel.numpy(), initial)
    assert len(reads["copied"]) == 5  # The trainable weights.
    # Exports are written from the model, so they fill it whatever was asked.
    migrate.convert(prefix, ENTRY.table_path, model, str(tmp_path / "exported"),
                    fill_model=False,
                    options=migrate.ConversionOptions(exports=["weights_h5"]))
    np.testing.assert_array_equal(model.get_layer("logits").kernel.numpy(),
                                  legacy.get_tensor("logits/kernel"))
    assert len(reads["copied"]) == 5  # The trainable weights.


def test_manifest_hashes_every_source_file_while_converting(prefix, tmp_path):
    output = str(tmp_path / "out")
    migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, output, hash_sources=True)
    with open(os.path.join(output, "manifest.json"), encoding="utf-8") as file:
        source = json.load(file)["source"]
    expected = []
    for path in LegacyCheckpoint.open(prefix).source_files():
        with open(path, "rb") as source_file:
            expected.append({"path": path, "sha256": hashlib.sha256(source_file.read()).hexdigest(),
                             "bytes": os.path.getsize(path)})
    assert source["files"] == expected and len(expected) == 3
    assert source["fingerprint"]["kind"] == "metadata+sha256"
    assert manifest_lib.check(output).ok


def test_manifest_fingerprints_the_source_from_metadata_by_default(prefix, tmp_path):
    output = str(tmp_path / "out")
    migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, output)
    with open(os.path.join(output, "manifest.json"), encoding="utf-8") as file:
        source = json.load(file)["source"]
    paths = LegacyCheckpoint.open(prefix).source_files()
    # No data is read: the .index and .meta bytes, and every file's name and size.
    digest = hashlib.sha256()
    for path in sorted(paths, key=os.path.basename):
        digest.update(f"{os.path.basename(path)}\0{os.path.getsize(path)}\0".encode())
        if path.endswith((".index", ".meta")):
            digest.update(open(path, "rb").read())
    assert source["files"] == [{"path": path, "bytes": os.path.getsize(path)} for path in paths]
    assert source["fingerprint"] == {"kind": "metadata", "sha256": digest.hexdigest()}
    assert manifest_lib.check(output).ok


@pytest.mark.parametrize("factory", [_reshaping_model, _tf_keras_reshaping_model],
                         ids=["keras_3", "tf_keras"])
def test_reshaping_rules_copied_or_read_directly_give_the_numpy_result(tmp_path, monkeypatch,
                                                                       factory):
    tensors = _reshaping_tensors()
    prefix = _write_legacy(str(tmp_path / "legacy" / "model.ckpt-1"), tensors)
    table = migrate.MappingTable.from_text(RESHAPING_TABLE)
    reads = _record_reads(monkeypatch)
    for path in PATHS:
        _convert_through(path, monkeypatch, prefix, table, factory, str(tmp_path / path))
        assert sorted(reads[path]) == sorted(tensors), path
    stored = _stored(str(tmp_path / "copied"))
    _assert_bit_identical(stored, _stored(str(tmp_path / "direct")))
    _assert_bit_identical(stored, _stored(str(tmp_path / "numpy")))
    expected = {"dense/kernel": tensors["dense/kernel"].reshape(24, 5),
                "dense/bias": tensors["dense/bias"][0],
                "head/kernel": tensors["head/kernel"][:, None],
                "head/bias": tensors["head/bias"]}
    by_shape_and_bytes = sorted((array.shape, array.tobytes()) for array in stored.values())
    assert by_shape_and_bytes == sorted((array.shape, array.tobytes())
                                        for array in expected.values())


@pytest.mark.parametrize("path", ["copied", "direct"])
def test_copied_and_direct_reads_count_nan_and_inf_exactly_without_false_alarms(tmp_path,
                                                                                monkeypatch, path):
    tensors = _reshaping_tensors()
    tensors["dense/kernel"][0, 0, 0, :3] = [np.nan, np.inf, -np.inf]
    # Finite values whose float32 sum overflows: only the exact count may decide.
    tensors["head/kernel"][:] = 3e38
    prefix = _write_legacy(str(tmp_path / "legacy" / "model.ckpt-1"), tensors)
    table = migrate.MappingTable.from_text(RESHAPING_TABLE)
    reads = _record_reads(monkeypatch)
    with pytest.raises(migrate.CheckpointError) as raised:
        _convert_through(path, monkeypatch, prefix, table, _reshaping_model,
                         str(tmp_path / "refused"))
    assert reads[path]
    assert str(raised.value) == (
        "dense/kernel [2, 3, 4, 5] holds 3 NaN/Inf value(s); refusing to convert. Expected finite "
        "values, or allow_nonfinite=True to carry them anyway. "
        "Received: dense/kernel.shape=[2, 3, 4, 5]")
    assert raised.value.option == "allow_nonfinite"
    assert not os.path.exists(tmp_path / "refused")
    report = _convert_through(path, monkeypatch, prefix, table, _reshaping_model,
                              str(tmp_path / "carried"),
                              options=migrate.ConversionOptions(allow_nonfinite=True))
    assert report.nonfinite == [["dense/kernel", 3]]
    kernel = [array for array in _stored(str(tmp_path / "carried")).values()
              if array.shape == (24, 5)][0]
    assert kernel.tobytes() == tensors["dense/kernel"].reshape(24, 5).tobytes()


def test_a_corrupt_tensor_fails_the_direct_read_and_leaves_a_usable_variable(tmp_path,
                                                                            monkeypatch):
    prefix = _legacy_with_a_damaged_kernel(tmp_path)
    monkeypatch.setattr(direct_read, "MIN_BYTES", 0)
    model = _reshaping_model()
    with pytest.raises(migrate.CheckpointError) as raised:
        migrate.convert(prefix, migrate.MappingTable.from_text(RESHAPING_TABLE), model,
                        str(tmp_path / "out"))
    message = str(raised.value)
    assert message.startswith(f"Cannot read 'dense/kernel' from checkpoint {prefix}: ")
    assert "checksum" in message.lower() or "crc" in message.lower(), message
    kernel = model.get_layer("dense").kernel
    assert tuple(kernel.shape) == (24, 5) and not np.any(kernel.numpy())
    assert model(np.ones((2, 24), "float32")).shape == (2, 1)
    assert not os.path.exists(tmp_path / "out")


def test_a_corrupt_tensor_fails_the_copy_with_the_readers_message_and_writes_nothing(
        tmp_path, monkeypatch):
    prefix = _legacy_with_a_damaged_kernel(tmp_path)
    reads = _record_reads(monkeypatch)
    with pytest.raises(migrate.CheckpointError) as raised:
        migrate.convert(prefix, migrate.MappingTable.from_text(RESHAPING_TABLE),
                        _reshaping_model, str(tmp_path / "out"))
    assert "dense/kernel" in reads["copied"]
    message = str(raised.value)
    assert message.startswith(f"Cannot read 'dense/kernel' from checkpoint {prefix}: "
                              f"Checksum does not match: "), message
    assert not os.path.exists(tmp_path / "out")
    assert os.listdir(tmp_path) == ["legacy"]  # No temporary directory left either.


@pytest.mark.parametrize("path", list(PATHS))
def test_slots_and_shadows_are_never_read(prefix, tmp_path, monkeypatch, path):
    # Corrupting every optimizer slot and EMA shadow would fail any read of them
    # (TensorFlow checks each tensor's CRC32C when it reads it).
    directory = tmp_path / "legacy"
    directory.mkdir()
    base = os.path.basename(prefix)
    for name in os.listdir(os.path.dirname(prefix)):
        if name.startswith(base + "."):
            shutil.copy(os.path.join(os.path.dirname(prefix), name), directory / name)
    corrupt_prefix = str(directory / base)
    roles = {variable["name"]: variable["role"]
             for variable in migrate.inspect(prefix)["variables"]}
    left_alone = sorted(name for name, role in roles.items()
                        if role in ("optimizer_slot", "ema_shadow"))
    assert len(left_alone) == 10
    reader = tf.train.load_checkpoint(prefix)
    data_path = corrupt_prefix + ".data-00000-of-00001"
    data = bytearray(open(data_path, "rb").read())
    for name in left_alone:
        _flip_byte_of(data, reader.get_tensor(name))
    open(data_path, "wb").write(bytes(data))

    reads = _record_reads(monkeypatch)
    _convert_through(path, monkeypatch, corrupt_prefix, ENTRY.table_path, ENTRY.build_model,
                     str(tmp_path / "from_corrupt"),
                     options=migrate.ConversionOptions(keep="model_state"))
    assert set(reads[path]) == KEPT_WITH_MODEL_STATE
    assert sum(len(keys) for keys in reads.values()) == len(KEPT_WITH_MODEL_STATE)
    migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, str(tmp_path / "from_clean"),
                    options=migrate.ConversionOptions(keep="model_state"))
    _assert_bit_identical(_stored(str(tmp_path / "from_corrupt")),
                          _stored(str(tmp_path / "from_clean")))

    # The same corruption on a kept tensor is caught, so the check above has teeth.
    _flip_byte_of(data, reader.get_tensor("logits/kernel"))
    open(data_path, "wb").write(bytes(data))
    with pytest.raises(migrate.CheckpointError, match="Cannot read 'logits/kernel'"):
        _convert_through(path, monkeypatch, corrupt_prefix, ENTRY.table_path,
                         ENTRY.build_model, str(tmp_path / "kept_corrupt"),
                         options=migrate.ConversionOptions(keep="model_state"))


_MEMORY_PROBE = textwrap.dedent("""
    import json, sys
    import keras, numpy as np
    import migrate
    from migrate.output import direct_read

    def resident(field):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024

    prefix, table, output = sys.argv[1:4]
    inputs = keras.Input((4096,))
    model = keras.Model(inputs, keras.layers.Dense(8192, use_bias=False, name="big")(inputs))
    growth = {}
    # The first conversion also pays for one-time set-up (tracing, lazy imports).
    for label, minimum, fill in (("warm-up", 0, True), ("copied", 0, False),
                                 ("direct", 0, True), ("numpy", sys.maxsize, True)):
        direct_read.MIN_BYTES = minimum
        before = resident("VmRSS")
        # Writing 5 resets the peak (VmHWM) to the current resident size.
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        migrate.convert(prefix, table, model, output + "-" + label, fill_model=fill)
        growth[label] = resident("VmHWM") - before
    print(json.dumps(growth))
""")


def test_a_large_tensor_never_exists_twice(tmp_path):
    """Converting a 128 MB kernel grows the peak by far less than the kernel; NumPy doubles it."""
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((4096, 8192), dtype="float32")
    prefix = _write_legacy(str(tmp_path / "legacy" / "model.ckpt-1"), {"big/kernel": kernel})
    del kernel
    table = tmp_path / "table.toml"
    table.write_text("[[rule]]\nmatch = 'big/kernel'\ntarget = 'big/kernel'\n")
    environment = {key: value for key, value in os.environ.items()
                   if key != "TF_USE_LEGACY_KERAS"}
    result = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, prefix, str(table),
                             str(tmp_path / "out")], capture_output=True, text=True,
                            env=environment, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    growth = json.loads(result.stdout.strip().splitlines()[-1])
    tensor_bytes = 4096 * 8192 * 4
    # What the direct path adds does not grow with the tensor: mostly the 8 MB
    # read buffers of the manifest's file hashing (about 31 MB, measured).
    assert growth["direct"] < tensor_bytes / 3, growth
    # The copy holds a few 8 MB chunks at a time.
    assert growth["copied"] < tensor_bytes / 3, growth
    # The contrast that shows the measurement works: the NumPy path holds a
    # second copy of the kernel. Peak RSS is sampled in pages, so a copy can
    # measure a few pages short of the tensor's exact size (seen: 16 kB).
    assert growth["numpy"] > 0.9 * tensor_bytes, growth


@pytest.mark.parametrize("arguments", [
    ["-m", "migrate", "--help"],
    ["-m", "migrate", "lint", f"--table={ENTRY.table_path}"],
    ["-c", "import migrate"],
])
def test_help_lint_and_import_never_import_tensorflow(arguments):
    result = subprocess.run([sys.executable, "-X", "importtime", *arguments],
                            capture_output=True, text=True, timeout=120, check=False)
    imported = {line.rpartition("|")[2].strip().split(".")[0]
                for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "migrate" in imported, result.stderr[-2000:]
    assert imported.isdisjoint({"tensorflow", "keras", "tf_keras", "tensorboard"}), sorted(
        imported & {"tensorflow", "keras", "tf_keras", "tensorboard"})
    assert result.returncode == 0, result.stderr[-2000:]
    if "--help" in arguments:
        assert "Usage: python -m migrate COMMAND" in result.stdout
    if "lint" in arguments:
        assert result.stdout.startswith("lint OK")


@pytest.mark.parametrize("ema", [False, True])
def test_convert_asks_for_the_kept_tensors_read_ahead_before_tensorflow_reads(
        prefix, tmp_path, monkeypatch, ema):
    import threading

    from migrate.source import checkpoint as checkpoint_lib

    advised = []
    fadvise = os.posix_fadvise

    def recording_fadvise(descriptor, offset, size, advice):
        if advice == os.POSIX_FADV_WILLNEED:
            advised.append((offset, size))
        return fadvise(descriptor, offset, size, advice)

    monkeypatch.setattr(os, "posix_fadvise", recording_fadvise)
    migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, str(tmp_path / "out"),
                    options=migrate.ConversionOptions(keep="model_state", ema=ema))
    for thread in threading.enumerate():
        if thread.name == checkpoint_lib.READ_AHEAD_THREAD:
            thread.join()
    checkpoint = LegacyCheckpoint.open(prefix)
    shadows = checkpoint.ema_shadows() if ema else {}
    expected = sorted((checkpoint.stored_tensor(key).offset, checkpoint.stored_tensor(key).size)
                      for key in (shadows.get(name, name) for name in KEPT_WITH_MODEL_STATE))
    assert sorted(advised) == expected
    # Opening for anything but a conversion asks for nothing.
    advised.clear()
    migrate.inspect(prefix)
    assert advised == []


def test_stored_extents_are_read_without_tensorflow_and_agree_with_its_reader(prefix):
    from migrate.source import bundle_index

    with open(prefix + ".index", "rb") as index:
        extents = bundle_index.stored_extents(index.read())
    checkpoint = LegacyCheckpoint.open(prefix)
    assert set(extents) == set(checkpoint.variables)
    for name, (shard, offset, size) in extents.items():
        stored = checkpoint.stored_tensor(name)
        if stored is not None:
            assert (shard, offset, size) == (0, stored.offset, stored.size), name


def test_attention_heads_are_copied_as_stored_and_equal_the_converters_result(
        legacy_checkpoint, tmp_path, monkeypatch):
    # `bert_attention` only reshapes each part, so its weights are copied too.
    entry = zoo.get("bert_encoder")
    prefix = legacy_checkpoint("bert_encoder")
    reads = _record_reads(monkeypatch)
    for path in ("copied", "numpy"):
        _convert_through(path, monkeypatch, prefix, entry.table_path, entry.build_model,
                         str(tmp_path / path))
    assert any(key.endswith("attention/self/query/kernel") for key in reads["copied"])
    assert sorted(reads["copied"]) == sorted(reads["numpy"]) and reads["direct"] == []
    for name in ("ckpt.index", "ckpt.data-00000-of-00001"):
        with open(os.path.join(tmp_path, "copied", name), "rb") as copied, open(
                os.path.join(tmp_path, "numpy", name), "rb") as converted:
            assert copied.read() == converted.read(), name


def test_a_checkpoint_in_two_data_shards_is_copied_from_each(tmp_path, monkeypatch):
    # A sharded Saver (`sharded=True`) writes one data file per device, merged under one .index.
    tensors = _reshaping_tensors()
    names = sorted(tensors)
    halves = [_write_legacy(str(tmp_path / "staging" / f"part{index}"),
                            {name: tensors[name] for name in names[index::2]})
              for index in range(2)]
    prefix = str(tmp_path / "legacy" / "model.ckpt-1")
    tf.raw_ops.MergeV2Checkpoints(checkpoint_prefixes=halves, destination_prefix=prefix,
                                  delete_old_dirs=False)
    checkpoint = LegacyCheckpoint.open(prefix)
    assert {os.path.basename(checkpoint.stored_tensor(name).path) for name in names} == {
        "model.ckpt-1.data-00000-of-00002", "model.ckpt-1.data-00001-of-00002"}
    table = migrate.MappingTable.from_text(RESHAPING_TABLE)
    reads = _record_reads(monkeypatch)
    for path in ("copied", "numpy"):
        _convert_through(path, monkeypatch, checkpoint, table, _reshaping_model,
                         str(tmp_path / path))
    assert sorted(reads["copied"]) == names
    _assert_bit_identical(_stored(str(tmp_path / "copied")), _stored(str(tmp_path / "numpy")))
