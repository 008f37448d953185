"""Batch conversion of training directories: layout, report, resume, failures, crashes, scans."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import batch_factories
import migrate
from conftest import run_cli
from migrate.batch import copy_plan
from migrate.batch import run as batch
from migrate.output import manifest as manifest_lib
from migrate import zoo

ENTRY = zoo.get("small_convnet")
MOVING_STATISTICS = ["bn/moving_mean", "bn/moving_variance"]
ALL_PREFIXES = ["nested/run2/model.ckpt-1", "nested/run2/model.ckpt-2", "run1/model.ckpt-1",
                "run1/model.ckpt-2", "run1/model.ckpt-3"]
# Trains small_convnet (Momentum + EMA, as legacy_graphs.small_convnet does)
# and saves after every step with a Saver keeping them all, as a training job
# would; the state file then names step NEWEST as the latest.
_STEP_CHECKPOINTS_SCRIPT = """
import os
import sys
import numpy as np
from legacy_graphs import compat
from legacy_graphs import small_convnet
tf = compat.import_tf_v1()
for spec in sys.argv[1:]:
    directory, count, seed, newest = spec.rsplit(":", 3)
    count, seed, newest = int(count), int(seed), int(newest)
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        is_training = tf.placeholder_with_default(False, [], name="is_training")
        images, logits = small_convnet.define_graph(is_training)
        labels = tf.placeholder(tf.int32, [None], name="labels")
        loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)
        step = tf.train.get_or_create_global_step()
        with tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS)):
            train = tf.train.MomentumOptimizer(0.1, 0.9).minimize(loss, global_step=step)
        with tf.control_dependencies([train]):
            train = tf.train.ExponentialMovingAverage(0.9).apply(tf.trainable_variables())
        saver = tf.train.Saver(max_to_keep=count)
        rng = np.random.default_rng(seed)
        os.makedirs(directory, exist_ok=True)
        prefixes = []
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            for _ in range(count):
                session.run(train, {
                    images: rng.standard_normal((4, *small_convnet.INPUT_SHAPE)) * 2 + 1,
                    labels: rng.integers(0, small_convnet.NUM_CLASSES, 4), is_training: True})
                prefixes.append(saver.save(session, os.path.join(directory, "model.ckpt"),
                                           global_step=step))
    tf.train.update_checkpoint_state(directory, prefixes[newest - 1],
                                     all_model_checkpoint_paths=prefixes)
    print("\\n".join(prefixes))
"""


def write_step_checkpoints(*specs):
    """Writes small_convnet step checkpoints `model.ckpt-1..N` in one process.

    Args:
        *specs: `(directory, count, seed, newest)`: checkpoints after 1..count
            training steps, the state file naming step `newest` as the latest.

    Returns:
        The prefixes written, in order.

    Example:

        write_step_checkpoints(("train/run1", 50, 0, 50))   # the 50-checkpoint benchmark
    """
    environment = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    arguments = [f"{directory}:{count}:{seed}:{newest}" for directory, count, seed, newest in specs]
    completed = subprocess.run([sys.executable, "-c", _STEP_CHECKPOINTS_SCRIPT, *arguments],
                               env=environment, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"Writing step checkpoints failed:\n{completed.stderr[-4000:]}")
    return completed.stdout.split()


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """train/run1 (steps 1-3), train/nested/run2 (steps 1-2, state file naming step 1), links."""
    root = tmp_path_factory.mktemp("batch") / "train"
    write_step_checkpoints((root / "run1", 3, 0, 3), (root / "nested" / "run2", 2, 1, 1))
    os.symlink("..", root / "run1" / "loop")   # back to train/: a loop
    os.symlink("nested", root / "alias")       # the same directory twice
    return str(root)


@pytest.fixture(scope="module")
def first_batch(tree, tmp_path_factory):
    output = str(tmp_path_factory.mktemp("batch_output") / "converted")
    # A module-level function stands for its `module:callable` text.
    report = migrate.convert_batch(tree, output, ENTRY.table_path, ENTRY.build_model)
    return report, output


def _copy_tree(tree, destination):
    shutil.copytree(tree, destination, symlinks=True)
    return str(destination)


def _file_hashes(directory):
    hashes = {}
    for folder, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(folder, name)
            hashes[os.path.relpath(path, directory)] = hashlib.sha256(
                open(path, "rb").read()).hexdigest()
    return hashes


def test_batch_mirrors_the_layout_with_a_manifest_each_and_one_report(tree, first_batch):
    report, output = first_batch
    assert report.ok, report.summary()
    assert [item.relative for item in report.items] == ALL_PREFIXES
    assert [item.status for item in report.items] == ["converted"] * 5
    for item in report.items:
        assert item.output == os.path.join(output, item.relative)
        assert sorted(os.listdir(item.output)) == [
            "checkpoint", "ckpt.data-00000-of-00001", "ckpt.index", "manifest.json"]
        manifest = json.load(open(os.path.join(item.output, "manifest.json")))
        assert manifest["source"]["prefix"] == os.path.join(tree, item.relative)
        assert manifest["model"] == ENTRY.model_factory
        assert (item.kept_bytes, item.left_out_bytes, item.written_weights) == (1764, 3568, 5)
        assert item.left_out_bytes == sum(role["left_out_bytes"]
                                          for role in manifest["roles"].values())
        assert item.source_bytes == sum(entry["bytes"] for entry in manifest["source"]["files"])
        assert len(item.warnings) == 1 and "keep='model_state'" in item.warnings[0]
    # The copy plans kept for later batches into this directory: one per source layout.
    assert sorted(os.listdir(output)) == ["batch_plans", "batch_report.json", "nested", "run1"]
    layouts = {copy_plan.source_layout(item.source, use_meta=True)[0] for item in report.items}
    assert len(os.listdir(os.path.join(output, "batch_plans"))) == len(layouts)
    document = json.load(open(os.path.join(output, "batch_report.json")))
    assert document == json.loads(json.dumps(report.to_json()))
    assert document["format"] == "tf1-migrate/batch-report/1" and document["ok"] is True
    assert document["totals"] == {
        "checkpoints": 5, "converted": 5, "skipped": 0, "failed": 0, "not started": 0,
        "verify_failed": 0, "failed_before": 0,
        "source_bytes": sum(item.source_bytes for item in report.items),
        "kept_bytes": 5 * 1764, "dropped_bytes": 0, "left_out_bytes": 5 * 3568}
    assert document["scan_notes"] == [
        {"path": "alias", "note": "same directory as nested; not scanned twice"},
        {"path": "run1/loop", "note": "symlink loop back to the input directory; not followed"}]
    lines = report.summary().splitlines()
    assert lines[1] == "  converted 5, skipped 0 (up to date), failed 0"
    assert lines[2].startswith("  kept 8.8 kB, dropped by rules 0 B, left out")
    assert lines[-1] == f"  report {output}/batch_report.json"


def test_each_output_holds_only_its_own_checkpoint_planned_weights(tree, first_batch):
    # One Keras model is reused for every checkpoint of a worker; weights the
    # plan leaves unwritten (BatchNorm statistics with keep=trainable) must
    # not reach any output, and every written weight is this checkpoint's own.
    report, _ = first_batch
    seen_kernels = []
    for item in report.items:
        stored = [name for name, _ in tf.train.list_variables(os.path.join(item.output, "ckpt"))
                  if name != "_CHECKPOINTABLE_OBJECT_GRAPH"]
        assert len(stored) == 5 and not any("moving" in name for name in stored), stored
        model = ENTRY.build_model()
        restored = migrate.restore(model, item.output)
        assert restored.unchanged == MOVING_STATISTICS
        legacy = tf.train.load_checkpoint(item.source)
        weights = {weight.path: weight.numpy() for weight in model.weights}
        for path in ("conv/kernel", "bn/gamma", "bn/beta", "logits/kernel", "logits/bias"):
            np.testing.assert_array_equal(weights[path], legacy.get_tensor(path))
        np.testing.assert_array_equal(weights["bn/moving_mean"], np.zeros(4, "float32"))
        seen_kernels.append(weights["conv/kernel"])
    assert all(not np.array_equal(a, b) for a, b in zip(seen_kernels, seen_kernels[1:]))


def test_rerun_skips_up_to_date_outputs_and_force_converts_again(tree, first_batch, tmp_path):
    _, first_output = first_batch
    output = str(tmp_path / "converted")
    shutil.copytree(first_output, output)
    shutil.rmtree(os.path.join(output, "run1", "model.ckpt-2"))
    tampered = os.path.join(output, "nested", "run2", "model.ckpt-1", "ckpt.data-00000-of-00001")
    content = bytearray(open(tampered, "rb").read())
    content[-1] ^= 0xFF
    open(tampered, "wb").write(bytes(content))
    untouched = os.path.join(output, "run1", "model.ckpt-3")
    before = _file_hashes(untouched)
    modified = os.stat(os.path.join(untouched, "manifest.json")).st_mtime_ns

    # A same-size change inside an output is only seen when outputs are re-hashed.
    report = migrate.convert_batch(tree, output, ENTRY.table_path, ENTRY.model_factory,
                                   recheck_outputs=True)
    statuses = {item.relative: item.status for item in report.items}
    assert statuses == {"nested/run2/model.ckpt-1": "converted",
                        "nested/run2/model.ckpt-2": "skipped", "run1/model.ckpt-1": "skipped",
                        "run1/model.ckpt-2": "converted", "run1/model.ckpt-3": "skipped"}
    assert all(item.reason == "up to date" for item in report.with_status("skipped"))
    assert report.totals()["kept_bytes"] == 5 * 1764, "skipped outputs still count as kept"
    assert _file_hashes(untouched) == before
    assert os.stat(os.path.join(untouched, "manifest.json")).st_mtime_ns == modified
    assert manifest_lib.check(os.path.dirname(tampered)).ok

    report = migrate.convert_batch(tree, output, ENTRY.table_path, ENTRY.model_factory,
                                   force=True)
    assert [item.status for item in report.items] == ["converted"] * 5
    assert os.stat(os.path.join(untouched, "manifest.json")).st_mtime_ns != modified

    # Another table (or keep setting) means the outputs are not up to date.
    report = migrate.convert_batch(tree, output, ENTRY.table_path, ENTRY.model_factory, workers=0,
                                   options=migrate.ConversionOptions(keep="model_state"))
    assert [item.status for item in report.items] == ["converted"] * 5
    assert all(item.written_weights == 7 for item in report.items)


def test_cli_latest_only_two_workers_summary_progress_and_json_report(tree, tmp_path,
                                                                      cli_in_process):
    output = tmp_path / "latest"
    report_file = tmp_path / "report.json"
    result = cli_in_process("batch", f"--input_dir={tree}", f"--output_dir={output}",
                            "--zoo=small_convnet",
                            "--latest_only", "--workers=2", f"--report={report_file}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"Batch {tree} -> {output}: 2 checkpoint(s), ")
    assert lines[0].endswith("s (2 worker(s))")
    assert lines[1] == "  converted 2, skipped 0 (up to date), failed 0"
    assert "  note run1/loop: symlink loop back to the input directory; not followed" in lines
    # Not a terminal: plain progress lines with counts, bytes and an ETA.
    progress = [line for line in result.stderr.splitlines() if line.startswith("batch [")]
    assert progress and "2/2" in progress[-1] and "kB/" in progress[-1] and "ETA" in progress[-1]
    document = json.loads(report_file.read_text())
    # The state file of nested/run2 names step 1 as its newest, not step 2.
    assert [item["relative"] for item in document["items"]] == [
        "nested/run2/model.ckpt-1", "run1/model.ckpt-3"]
    assert document["workers"] == 2 and document["totals"]["converted"] == 2
    assert sorted(os.listdir(output / "run1")) == ["model.ckpt-3"]

    result = cli_in_process("batch", f"--input_dir={tree}", f"--output_dir={output}",
                            "--zoo=small_convnet",
                            "--latest_only", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["totals"]["skipped"] == 2 and document["ok"] is True


def test_cli_a_corrupt_checkpoint_fails_alone_and_the_exit_code_says_so(tree, tmp_path):
    source = _copy_tree(tree, tmp_path / "train")
    prefix = os.path.join(source, "run1", "model.ckpt-2")
    kernel = tf.train.load_checkpoint(prefix).get_tensor("conv/kernel").tobytes()
    content = bytearray(open(prefix + ".data-00000-of-00001", "rb").read())
    content[content.index(kernel) + 10] ^= 0xFF   # A weight the conversion reads.
    open(prefix + ".data-00000-of-00001", "wb").write(bytes(content))
    index = os.path.join(source, "nested", "run2", "model.ckpt-1.index")
    open(index, "wb").write(open(index, "rb").read()[:40])
    output = tmp_path / "converted"
    result = run_cli("batch", f"--input_dir={source}", f"--output_dir={output}",
                     "--zoo=small_convnet", "--json")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    items = {item["relative"]: item for item in json.loads(result.stdout)["items"]}
    failed = {name for name, item in items.items() if item["status"] == "failed"}
    assert failed == {"run1/model.ckpt-2", "nested/run2/model.ckpt-1"}
    assert items["run1/model.ckpt-2"]["reason"].startswith("Cannot read ")
    assert items["nested/run2/model.ckpt-1"]["reason"].startswith(
        f"Cannot read checkpoint {index[:-len('.index')]}: ")
    for name, item in items.items():
        assert os.path.isdir(item["output"]) == (name not in failed)
    assert sorted(os.listdir(output / "run1")) == ["model.ckpt-1", "model.ckpt-3"]


def test_a_worker_that_dies_in_native_code_costs_only_its_checkpoint(
        tree, tmp_path, monkeypatch, faults_in_every_worker):
    # The worker really dies: the test's model factory makes it abort, as
    # TensorFlow does on a failed CHECK, when it opens this checkpoint.
    monkeypatch.setenv(batch_factories.CRASH_VARIABLE, "SIGABRT:run1/model.ckpt-1")
    report = migrate.convert_batch(tree, str(tmp_path / "converted"), ENTRY.table_path,
                                   "batch_factories:crashing_model")
    assert not report.ok
    statuses = {item.relative: item.status for item in report.items}
    assert statuses.pop("run1/model.ckpt-1") == "failed"
    # A fresh worker converted the checkpoints after the crash.
    assert set(statuses.values()) == {"converted"} and len(statuses) == 4
    (failed,) = report.with_status("failed")
    # The first line the worker wrote while converting it: faulthandler's.
    assert failed.reason == ("the worker process died with SIGABRT while converting this "
                             "checkpoint (Fatal Python error: Aborted)")
    assert not os.path.exists(failed.output)
    assert sorted(os.listdir(os.path.dirname(failed.output))) == ["model.ckpt-2", "model.ckpt-3"]


def test_scan_reports_symlink_loops_and_duplicates_without_hanging(tmp_path):
    root = tmp_path / "train"
    (root / "a" / "b").mkdir(parents=True)
    (root / "c").mkdir()
    (root / "a" / "b" / "model.ckpt-7.index").write_bytes(b"")
    os.symlink(".", root / "a" / "self")
    os.symlink("../..", root / "a" / "b" / "up")
    os.symlink("../c", root / "a" / "to_c")
    os.symlink("../a", root / "c" / "to_a")
    os.symlink("missing", root / "dangling")
    (root / "old_output").mkdir()
    (root / "old_output" / "manifest.json").write_text("{}")
    (root / "old_output" / "ckpt.index").write_bytes(b"")
    started = time.monotonic()
    scan = batch.find_checkpoints(str(root))
    assert time.monotonic() - started < 5
    assert [found.relative for found in scan.found] == ["a/b/model.ckpt-7"]
    assert scan.failures == []
    # The batch's own output is never scanned, nor reached through a link.
    assert batch.find_checkpoints(str(root), exclude=[str(root / "a")]).found == []
    assert scan.notes == [
        {"path": "old_output", "note": "holds a manifest.json: a converted output, not scanned"},
        {"path": "a/self", "note": "symlink loop back to a; not followed"},
        {"path": "a/to_c", "note": "same directory as c; not scanned twice"},
        {"path": "a/b/up", "note": "symlink loop back to the input directory; not followed"},
        {"path": "c/to_a", "note": "same directory as a; not scanned twice"}]


def test_latest_only_follows_each_state_file_and_reports_a_bad_one(tmp_path):
    root = tmp_path / "train"
    for folder, steps in (("moved", (1, 2)), ("no_state", (9, 10)), ("stale", (5,))):
        (root / folder).mkdir(parents=True)
        for step in steps:
            (root / folder / f"model.ckpt-{step}.index").write_bytes(b"")
            (root / folder / f"model.ckpt-{step}.data-00000-of-00001").write_bytes(b"12345")
    # Trained elsewhere: absolute paths of another machine; step 1 named the newest.
    (root / "moved" / "checkpoint").write_text(
        'model_checkpoint_path: "/old/machine/train/model.ckpt-1"\n'
        'all_model_checkpoint_paths: "/old/machine/train/model.ckpt-1"\n')
    (root / "stale" / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-6"\n')
    scan = batch.find_checkpoints(str(root), latest_only=True)
    assert [(found.relative, found.source_bytes) for found in scan.found] == [
        ("moved/model.ckpt-1", 5), ("no_state/model.ckpt-10", 5)]
    assert scan.notes == [{"path": "no_state", "note": "no `checkpoint` state file; took the "
                                                       "highest step, model.ckpt-10"}]
    (failure,) = scan.failures
    assert failure["relative"] == "stale"
    assert failure["reason"] == (
        f"The checkpoint state file {root}/stale/checkpoint names {root}/stale/model.ckpt-6, "
        f"which is not a checkpoint in {root}/stale. Expected one of: model.ckpt-5.")
    everything = batch.find_checkpoints(str(root))
    assert [found.relative for found in everything.found] == [
        "moved/model.ckpt-1", "moved/model.ckpt-2", "no_state/model.ckpt-9",
        "no_state/model.ckpt-10", "stale/model.ckpt-5"]


def test_an_estimator_model_dir_is_a_checkpoint_directory(tmp_path):
    # As tf.estimator leaves it: checkpoints and their state file, the training
    # graph as graph.pbtxt, events, an eval directory and timestamped exports.
    model_dir = tmp_path / "models" / "dnn"
    model_dir.mkdir(parents=True)
    for step in (1, 200, 1000):
        for suffix in (".index", ".meta", ".data-00000-of-00001"):
            (model_dir / f"model.ckpt-{step}{suffix}").write_bytes(b"")
    (model_dir / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-1000"\n'
                                          'all_model_checkpoint_paths: "model.ckpt-200"\n'
                                          'all_model_checkpoint_paths: "model.ckpt-1000"\n')
    (model_dir / "graph.pbtxt").write_text("node {}\n")
    (model_dir / "events.out.tfevents.1712345678.host").write_bytes(b"")
    (model_dir / "eval").mkdir()
    (model_dir / "eval" / "events.out.tfevents.1712345679.host").write_bytes(b"")
    for stamp in ("1712345678", "1712349999"):
        export = model_dir / "export" / "best_exporter" / stamp
        (export / "variables").mkdir(parents=True)
        (export / "saved_model.pb").write_bytes(b"")
        (export / "variables" / "variables.index").write_bytes(b"")
    scan = batch.find_checkpoints(str(tmp_path / "models"), latest_only=True)
    assert [found.relative for found in scan.found] == [
        "dnn/export/best_exporter/1712349999", "dnn/model.ckpt-1000"]
    assert scan.notes == [{"path": "dnn/export/best_exporter",
                           "note": "2 timestamped exports; took the newest, 1712349999"}]
    assert scan.failures == []
    everything = batch.find_checkpoints(str(tmp_path / "models"))
    assert [found.relative for found in everything.found] == [
        "dnn/export/best_exporter/1712345678", "dnn/export/best_exporter/1712349999",
        "dnn/model.ckpt-1", "dnn/model.ckpt-200", "dnn/model.ckpt-1000"]


def test_state_files_are_read_as_tensorflow_reads_them_without_it(tmp_path):
    from migrate.source import state_file

    # Written by TensorFlow: quotes, backslashes, tabs and non-ASCII escaped in its text format.
    names = ["model.ckpt-1", 'we"ird\\ na\tme-2', "/elsewhere/mödel.ckpt-3"]
    for number, name in enumerate(names):
        directory = str(tmp_path / f"written{number}")
        os.makedirs(directory)
        tf.compat.v1.train.update_checkpoint_state(directory, name,
                                                   all_model_checkpoint_paths=[name])
        expected = tf.train.get_checkpoint_state(directory).model_checkpoint_path
        assert state_file.newest_in_state_file(directory) == expected
        assert expected.endswith(name)
    # By hand: a comment, single quotes, adjacent literals, octal and hex escapes, timestamps,
    # and a field given twice (the last counts, as TensorFlow's text_format.Merge has it).
    directory = tmp_path / "by_hand"
    directory.mkdir()
    (directory / "checkpoint").write_text(
        "# kept by a trainer\nmodel_checkpoint_path: 'old'\n"
        "model_checkpoint_path: \"run\" '/model.ckpt-\\x37' \"\\303\\251\"\n"
        "all_model_checkpoint_timestamps: 1.5e9 last_preserved_timestamp: 2\n")
    expected = tf.train.get_checkpoint_state(str(directory)).model_checkpoint_path
    assert state_file.newest_in_state_file(str(directory)) == expected == (
        f"{directory}/run/model.ckpt-7\u00e9")
    # Not a CheckpointState: an unknown field, a string where a number goes, not UTF-8.
    for text in (b'model_checkpoint_path: "a"\nbogus: 1\n', b'last_preserved_timestamp: "a"\n',
                 b"\xff\xfe"):
        (directory / "checkpoint").write_bytes(text)
        with pytest.raises(ValueError):
            state_file.newest_in_state_file(str(directory))
    (directory / "checkpoint").write_bytes(b"")
    assert state_file.newest_in_state_file(str(directory)) == ""


def test_ram_filesystem_input_goes_through_gfile(tree, tmp_path):
    gfile = tf.io.gfile
    source = "ram://batch_test/train"
    for relative in ("run1", "nested/run2"):
        gfile.makedirs(f"{source}/{relative}")
        for name in os.listdir(os.path.join(tree, relative)):
            if not os.path.islink(os.path.join(tree, relative, name)):
                gfile.copy(os.path.join(tree, relative, name), f"{source}/{relative}/{name}",
                           overwrite=True)
    try:
        scan = batch.find_checkpoints(source, latest_only=True)
        assert [found.prefix for found in scan.found] == [
            f"{source}/nested/run2/model.ckpt-1", f"{source}/run1/model.ckpt-3"]
        output = str(tmp_path / "converted")
        report = migrate.convert_batch(source, output, ENTRY.table_path, ENTRY.model_factory,
                                       latest_only=True, workers=0)
        assert [item.status for item in report.items] == ["converted"] * 2, report.summary()
        manifest = json.load(open(os.path.join(output, "run1", "model.ckpt-3", "manifest.json")))
        assert manifest["source"]["files"][0]["path"] == f"{source}/run1/model.ckpt-3.index"
        report = migrate.convert_batch(source, output, ENTRY.table_path, ENTRY.model_factory,
                                       latest_only=True, workers=0)
        assert [item.status for item in report.items] == ["skipped"] * 2
    finally:
        gfile.rmtree("ram://batch_test")


@pytest.mark.parametrize("arguments, code, message", [
    (["--input_dir=/no/such/dir", "--output_dir=o", "--zoo=small_convnet"], 1,
     "error: Expected an input directory holding legacy checkpoints. Received: "
     "input_dir='/no/such/dir', which is not a directory."),
    (["--input_dir=TREE", "--output_dir=TREE", "--zoo=small_convnet"], 1,
     "error: Expected an output directory other than the input directory."),
    (["--input_dir=TREE", "--output_dir=o", "--zoo=small_convnet", "--runner=beam",
      "--workers=2"], 2, "--workers is for --runner=local"),
])
def test_cli_bad_batch_arguments_are_one_line(tree, tmp_path, arguments, code, message,
                                              cli_in_process):
    arguments = [argument.replace("TREE", tree) for argument in arguments]
    result = cli_in_process("batch", *arguments, cwd=tmp_path)
    assert result.returncode == code
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert os.listdir(tmp_path) == []


def test_a_directory_without_checkpoints_is_an_error_not_an_empty_success(tmp_path):
    (tmp_path / "train" / "logs").mkdir(parents=True)
    with pytest.raises(migrate.CheckpointError, match="Expected legacy checkpoints .* Received: "
                                                      "none."):
        migrate.convert_batch(str(tmp_path / "train"), str(tmp_path / "converted"),
                              ENTRY.table_path, ENTRY.model_factory)
    assert os.listdir(tmp_path) == ["train"]


def test_library_refuses_a_model_it_cannot_send_to_workers(tree, tmp_path):
    with pytest.raises(migrate.ModelError, match="needs the model factory as module:callable"):
        migrate.convert_batch(tree, str(tmp_path / "o"), ENTRY.table_path, lambda: None)
    with pytest.raises(migrate.ModelError, match="Cannot import model module 'no_such_module'"):
        migrate.convert_batch(tree, str(tmp_path / "o"), ENTRY.table_path, "no_such_module:build")
