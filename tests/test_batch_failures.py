"""Remembered failures: a rerun does not retry a checkpoint that must fail the same way again."""

import json
import os
import shutil
import subprocess
import sys

import pytest

import batch_factories
import migrate
from migrate import errors
from migrate import zoo
from migrate.batch import failures

ENTRY = zoo.get("small_convnet")
PREFIXES = ["run1/model.ckpt-1", "run1/model.ckpt-2", "run1/model.ckpt-3"]
DAMAGED = "run1/model.ckpt-2"
HEAVY_MODULES = {"tensorflow", "keras", "tf_keras", "tensorboard", "matplotlib"}


@pytest.fixture(scope="module")
def damaged_tree(tmp_path_factory):
    """train/run1 with small_convnet step checkpoints 1-3; step 2's .index cut to 40 bytes.

    Returns `(tree, the .index's healthy bytes)`.
    """
    from test_batch import write_step_checkpoints

    root = tmp_path_factory.mktemp("failures") / "train"
    write_step_checkpoints((root / "run1", 3, 0, 3))
    index = root / (DAMAGED + ".index")
    healthy = index.read_bytes()
    index.write_bytes(healthy[:40])
    return str(root), healthy


def _statuses(report):
    return {item.relative: item.status for item in report.items}


def _item(report, relative):
    (item,) = [item for item in report.items if item.relative == relative]
    return item


def test_a_rerun_reports_a_damaged_checkpoint_as_failed_before_without_tensorflow_or_worker(
        damaged_tree, tmp_path):
    # The command line twice, as a user reruns it: the first run's worker
    # fails on the damaged checkpoint; the rerun decides everything in its
    # own process, which holds no TensorFlow at the end, and builds no model.
    tree, _ = damaged_tree
    log = tmp_path / "builds.txt"
    output = tmp_path / "converted"
    tests = os.path.dirname(batch_factories.__file__)
    environment = dict(os.environ, **{batch_factories.BUILD_LOG_VARIABLE: str(log)})
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))
    environment.pop("TF_USE_LEGACY_KERAS", None)
    command = ("import sys\nfrom migrate import cli\ncode = cli.main(['migrate', *sys.argv[1:]])\n"
               f"heavy = sorted(set(sys.modules) & set({sorted(HEAVY_MODULES)}))\n"
               "print('imported:', *heavy, file=sys.stderr)\nsys.exit(code)\n")
    arguments = ["batch", f"--input_dir={tree}", f"--output_dir={output}",
                 "--model=batch_factories:counted_model", f"--table={ENTRY.table_path}"]
    runs = [subprocess.run([sys.executable, "-c", command, *arguments], capture_output=True,
                           text=True, env=environment, timeout=600, check=False)
            for _ in range(2)]
    first, rerun = runs
    assert first.returncode == 1, first.stderr[-2000:]
    assert first.stdout.splitlines()[1] == "  converted 2, skipped 0 (up to date), failed 1"
    (reason,) = [line for line in first.stdout.splitlines() if line.startswith("  failed run1")]
    assert reason.startswith(f"  failed {DAMAGED}: Cannot read checkpoint ")
    assert rerun.returncode == 1, rerun.stderr[-2000:]
    assert rerun.stdout.splitlines()[1] == (
        "  converted 0, skipped 2 (up to date), failed 1 (1 failed before, unchanged, "
        "not retried)")
    assert reason.replace(": ", ": failed before, unchanged: ", 1) in rerun.stdout.splitlines()
    assert rerun.stderr == "imported:\n", "no TensorFlow, no start line, no worker"
    assert len(log.read_text().split()) == 1, "one model build: the first run's worker"
    document = json.load(open(output / "batch_report.json"))
    assert document["totals"]["failed"] == 1 and document["totals"]["failed_before"] == 1
    (item,) = [item for item in document["items"] if item["relative"] == DAMAGED]
    assert item["failed_before"] and item["deterministic"] and item["status"] == "failed"
    assert f"  failed {DAMAGED}: {item['reason']}" == reason
    record = json.load(open(output / failures.FAILURES_NAME))
    assert record["format"] == failures.FORMAT and list(record["failures"]) == [DAMAGED]
    assert record["failures"][DAMAGED]["model"] == "batch_factories:counted_model"


def test_retry_failed_force_and_a_changed_checkpoint_are_retried(damaged_tree, tmp_path):
    source, healthy = damaged_tree
    tree = str(tmp_path / "train")
    shutil.copytree(source, tree)
    output = str(tmp_path / "converted")

    def batch(**keywords):
        return migrate.convert_batch(tree, output, ENTRY.table_path, ENTRY.model_factory,
                                     workers=0, **keywords)

    first = batch()
    assert _statuses(first) == {PREFIXES[0]: "converted", DAMAGED: "failed",
                                PREFIXES[2]: "converted"}
    assert _item(first, DAMAGED).deterministic and not _item(first, DAMAGED).failed_before
    reason = _item(first, DAMAGED).reason
    rerun = batch()
    assert _item(rerun, DAMAGED).failed_before and _item(rerun, DAMAGED).reason == reason
    assert _item(rerun, DAMAGED).seconds == 0.0, "not attempted"
    for keywords in ({"retry_failed": True}, {"force": True}):
        retried = batch(**keywords)
        assert not _item(retried, DAMAGED).failed_before, keywords
        assert _item(retried, DAMAGED).reason == reason, keywords
    # Other options: the record no longer holds, so it is tried (and remembered anew).
    other = batch(options=migrate.ConversionOptions(ema=True))
    assert not _item(other, DAMAGED).failed_before
    assert not _item(batch(), DAMAGED).failed_before, "the record is the other options' now"
    assert _item(batch(), DAMAGED).failed_before
    # Mended: its fingerprint changed, so it is converted and forgotten.
    with open(os.path.join(tree, DAMAGED + ".index"), "wb") as index:
        index.write(healthy)
    mended = batch()
    assert _statuses(mended) == {PREFIXES[0]: "skipped", DAMAGED: "converted",
                                 PREFIXES[2]: "skipped"}
    assert mended.ok and not os.path.exists(os.path.join(output, failures.FAILURES_NAME))
    assert migrate.convert_batch.__kwdefaults__["retry_failed"] is False


def test_a_killed_worker_is_not_remembered_and_its_checkpoint_is_retried(
        damaged_tree, tmp_path, monkeypatch, faults_in_every_worker):
    tree, _ = damaged_tree
    output = str(tmp_path / "converted")
    monkeypatch.setenv(batch_factories.CRASH_VARIABLE, f"SIGKILL:{PREFIXES[2]}")
    first = migrate.convert_batch(tree, output, ENTRY.table_path,
                                  "batch_factories:crashing_model", workers=1)
    assert _statuses(first) == {PREFIXES[0]: "converted", DAMAGED: "failed",
                                PREFIXES[2]: "failed"}
    killed = _item(first, PREFIXES[2])
    assert killed.reason.startswith("the worker process died with SIGKILL")
    assert not killed.deterministic
    assert list(failures.read(output)) == [DAMAGED]
    # The same settings, and this time no crash: only the killed one is tried again.
    monkeypatch.setenv(batch_factories.CRASH_VARIABLE, "SIGKILL:no-such-checkpoint")
    rerun = migrate.convert_batch(tree, output, ENTRY.table_path,
                                  "batch_factories:crashing_model", workers=1)
    assert _statuses(rerun) == {PREFIXES[0]: "skipped", DAMAGED: "failed",
                                PREFIXES[2]: "converted"}
    assert _item(rerun, DAMAGED).failed_before


def test_only_our_errors_about_the_input_are_deterministic():
    import tensorflow as tf

    def raised(error, cause):
        try:
            try:
                raise cause
            except Exception:
                raise error from None
        except errors.MigrateError as caught:
            return caught

    assert failures.is_deterministic(errors.VerificationError("outputs differ"))
    assert failures.is_deterministic(raised(errors.CheckpointError("Cannot read checkpoint"),
                                            tf.errors.DataLossError(None, None, "bad crc")))
    for transient in (tf.errors.UnavailableError(None, None, "gs:// 503"),
                      tf.errors.DeadlineExceededError(None, None, "slow"),
                      ConnectionResetError("reset")):
        assert not failures.is_deterministic(
            raised(errors.CheckpointError("Cannot read checkpoint"), transient)), transient
    assert not failures.is_deterministic(errors.OutputError("not writable"))
    assert not failures.is_deterministic(RuntimeError("a bug"))


def test_an_unreadable_record_is_forgotten_and_records_are_written_whole(tmp_path):
    path = tmp_path / failures.FAILURES_NAME
    path.write_text("{not json")
    assert failures.read(str(tmp_path)) == {}
    record = {"reason": "Cannot read checkpoint x", "fingerprint": "ab"}
    failures.write(str(tmp_path), {DAMAGED: record})
    assert failures.read(str(tmp_path)) == {DAMAGED: record}
    assert sorted(os.listdir(tmp_path)) == [failures.FAILURES_NAME]
    failures.write(str(tmp_path), {})
    assert os.listdir(tmp_path) == []
