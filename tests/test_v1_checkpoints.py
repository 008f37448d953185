"""V1-format checkpoints (one file, or `NAME-0000K-of-NNNNN` shards), as tf-slim published them."""

import json
import os
import shutil

import pytest

import migrate
from migrate import zoo

ENTRY = zoo.get("small_convnet")
V1_FLAGS = {"single": ("--write_version=V1",), "sharded": ("--write_version=V1", "--v1_shards=2")}


@pytest.fixture(scope="module", params=sorted(V1_FLAGS))
def v1_prefix(request, legacy_checkpoint, tmp_path_factory):
    """A private copy of small_convnet written in the V1 format (tests may damage it)."""
    built = legacy_checkpoint("small_convnet", extra_flags=V1_FLAGS[request.param])
    directory = tmp_path_factory.mktemp(f"v1_{request.param}")
    for name in os.listdir(os.path.dirname(built)):
        shutil.copy(os.path.join(os.path.dirname(built), name), directory)
    return str(directory / os.path.basename(built))


def _copy(prefix, destination, *, meta=True):
    os.makedirs(destination)
    for name in os.listdir(os.path.dirname(prefix)):
        if name != "checkpoint" and (meta or not name.endswith(".meta")):
            shutil.copy(os.path.join(os.path.dirname(prefix), name), destination)
    return os.path.join(destination, os.path.basename(prefix))


def test_v1_checkpoint_converts_with_parity_and_its_files_in_the_manifest(v1_prefix, tmp_path):
    names = sorted(os.listdir(os.path.dirname(v1_prefix)))
    assert not [name for name in names if name.endswith(".index") or ".data-" in name]
    description = migrate.inspect(os.path.dirname(v1_prefix))  # through the state file
    assert description["checkpoint"] == v1_prefix and description["format"] == "V1"
    assert description["role_origin"].startswith("graph collections")

    output = str(tmp_path / "out")
    report = migrate.convert(v1_prefix, ENTRY.table_path, ENTRY.build_model, output,
                             options=migrate.ConversionOptions(keep="model_state"))
    assert report.written_weights == 7
    model = ENTRY.build_model()
    assert migrate.restore(model, output).unchanged == []
    result = migrate.verify(v1_prefix, model, **ENTRY.verify)
    assert result.passed and result.max_rel_diff < 1e-5, result.summary()

    manifest = json.load(open(os.path.join(output, "manifest.json")))
    source_files = sorted(os.path.basename(entry["path"]) for entry in manifest["source"]["files"])
    assert source_files == [name for name in names if name != "checkpoint"]


def test_each_v1_file_name_resolves_to_the_prefix(v1_prefix):
    from migrate.source.locate import resolve_prefix

    directory = os.path.dirname(v1_prefix)
    data_names = [name for name in os.listdir(directory)
                  if name != "checkpoint" and not name.endswith(".meta")]
    for path in [v1_prefix, v1_prefix + ".meta", directory,
                 *[os.path.join(directory, name) for name in data_names]]:
        assert resolve_prefix(path) == v1_prefix, path


def test_without_meta_inspect_says_roles_come_from_name_rules(v1_prefix, tmp_path):
    prefix = _copy(v1_prefix, str(tmp_path / "no_meta"), meta=False)
    description = migrate.inspect(prefix)
    assert description["format"] == "V1"
    assert description["role_origin"].startswith("name rules: no ") and "builder" in \
        description["role_origin"]
    roles = {variable["name"]: variable["role"] for variable in description["variables"]}
    assert roles["conv/kernel/Momentum"] == "optimizer_slot"
    assert roles["bn/moving_mean"] == "model_state"


def test_missing_v1_shard_is_named_before_tensorflow_reads(legacy_checkpoint, tmp_path):
    built = legacy_checkpoint("small_convnet", extra_flags=V1_FLAGS["sharded"])
    prefix = _copy(built, str(tmp_path / "cut"))
    os.remove(prefix + "-00001-of-00002")
    with pytest.raises(migrate.CheckpointError, match=r"missing data shard\(s\) .*"
                       r"model\.ckpt-3-00001-of-00002"):
        migrate.inspect(prefix)


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_damaged_v1_file_is_one_error_not_a_crash(legacy_checkpoint, tmp_path, damage):
    built = legacy_checkpoint("small_convnet", extra_flags=V1_FLAGS["single"])
    prefix = _copy(built, str(tmp_path / damage))
    data = bytearray(open(prefix, "rb").read())
    if damage == "truncated":
        data = data[:len(data) // 2]
        # A cut file has lost its table footer: it is no checkpoint at all.
        expected = "No checkpoint at"
    else:
        data[40] ^= 0xFF
        expected = "Cannot read"
    open(prefix, "wb").write(bytes(data))
    with pytest.raises(migrate.CheckpointError, match=expected):
        migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out")


def test_checkpoint_prefixes_finds_v1_and_v2_newest_first(legacy_checkpoint, tmp_path):
    from migrate.source.locate import checkpoint_prefixes

    single = legacy_checkpoint("small_convnet", extra_flags=V1_FLAGS["single"])
    sharded = legacy_checkpoint("small_convnet", extra_flags=V1_FLAGS["sharded"])
    v2 = legacy_checkpoint("small_convnet")
    directory = tmp_path / "mixed"
    directory.mkdir()
    (directory / "notes.txt").write_text("not a checkpoint")
    # model.ckpt-10 (V1) starts with the name of model.ckpt-1 (V2): both are found.
    for age, (step, prefix, suffixes) in enumerate([
            (1, v2, [".index", ".data-00000-of-00001"]),
            (2, sharded, ["-00000-of-00002", "-00001-of-00002"]), (10, single, [""])]):
        for suffix in suffixes:
            target = directory / f"model.ckpt-{step}{suffix}"
            shutil.copy(prefix + suffix, target)
            os.utime(target, (1000 + age, 1000 + age))
    found = [os.path.basename(path) for path in checkpoint_prefixes(str(directory))]
    assert found == ["model.ckpt-10", "model.ckpt-2", "model.ckpt-1"]
    with pytest.raises(migrate.CheckpointError, match=(
            r"no `checkpoint` state file.*newest first: .*model\.ckpt-10, .*model\.ckpt-2, "
            r".*model\.ckpt-1\.")):
        migrate.inspect(str(directory))


def test_a_tf2_checkpoint_as_input_is_named_in_one_line(legacy_checkpoint, tmp_path):
    output = str(tmp_path / "converted")
    migrate.convert(legacy_checkpoint("small_convnet"), ENTRY.table_path, ENTRY.build_model,
                    output)
    with pytest.raises(migrate.CheckpointError) as raised:
        migrate.plan(output, ENTRY.table_path, ENTRY.build_model)
    message = str(raised.value)
    assert "TF2 object-based checkpoint (perhaps an output of this tool)" in message
    assert "\n" not in message and ".ATTRIBUTES" not in message


def test_direct_reads_take_the_v1_reader_path(v1_prefix):
    import numpy as np
    import tensorflow as tf

    from migrate.output import direct_read

    checkpoint = migrate.LegacyCheckpoint.open(v1_prefix)
    if v1_prefix.endswith("-3") and os.path.exists(v1_prefix):
        assert checkpoint.reader_path == v1_prefix
    else:
        assert checkpoint.reader_path == v1_prefix + "-?????-of-00002"
    variable = tf.Variable(tf.zeros([3 * 3 * 3, 4]))
    assert direct_read.restore(checkpoint.reader_path, "conv/kernel", variable) == 0
    np.testing.assert_array_equal(variable.numpy(),
                                  checkpoint.read("conv/kernel").reshape(27, 4))


def test_batch_finds_and_converts_v1_checkpoints_beside_v2_ones(v1_prefix, legacy_checkpoint,
                                                                 tmp_path):
    train = tmp_path / "train"
    v1 = _copy(v1_prefix, str(train / "v1"))
    v2 = _copy(legacy_checkpoint("small_convnet"), str(train / "v2"))
    report = migrate.convert_batch(str(train), str(tmp_path / "converted"), ENTRY.table_path,
                                   ENTRY.model_factory, workers=0)
    assert report.ok, report.summary()
    converted = sorted(item.relative for item in report.items if item.status == "converted")
    assert converted == sorted(os.path.relpath(prefix, train) for prefix in (v1, v2))
    v1_item = next(item for item in report.items if item.source == v1)
    assert v1_item.source_bytes == sum(os.path.getsize(os.path.join(os.path.dirname(v1), name))
                                       for name in os.listdir(os.path.dirname(v1)))
    # --latest_only reads each state file (a sharded V1 one names the `-?????-of-N` pattern).
    for prefix, built in ((v1, v1_prefix), (v2, legacy_checkpoint("small_convnet"))):
        shutil.copy(os.path.join(os.path.dirname(built), "checkpoint"), os.path.dirname(prefix))
    latest = migrate.convert_batch(str(train), str(tmp_path / "latest"), ENTRY.table_path,
                                   ENTRY.model_factory, workers=0, latest_only=True)
    assert latest.ok and len(latest.items) == 2, latest.summary()
    assert not latest.scan_notes, latest.scan_notes
