"""Batch at scale: resume from metadata, hung workers, NAME.previous-* leftovers, Ctrl-C."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

import batch_factories
import worker_faults
import migrate
from migrate import files
from migrate import zoo
from migrate.output import atomic

ENTRY = zoo.get("small_convnet")
PREFIXES = ["run1/model.ckpt-1", "run1/model.ckpt-2", "run1/model.ckpt-3"]
# What a batch's own process never imports when its paths are local and workers convert.
HEAVY_MODULES = {"tensorflow", "keras", "tf_keras", "tensorboard", "matplotlib"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """train/run1 with small_convnet step checkpoints 1-3 (Momentum slots, EMA shadows)."""
    from test_batch import write_step_checkpoints

    root = tmp_path_factory.mktemp("resume") / "train"
    write_step_checkpoints((root / "run1", 3, 0, 3))
    return str(root)


def _batch(source, output, **keywords):
    keywords.setdefault("workers", 0)
    return migrate.convert_batch(source, output, ENTRY.table_path, ENTRY.model_factory,
                                 **keywords)


def _statuses(report):
    return {item.relative: item.status for item in report.items}


def _copy_with_new_mtimes(tree, destination):
    """Copies the checkpoint files byte for byte; every copy gets a new modification time."""
    for folder, _, names in os.walk(tree):
        target = os.path.join(destination, os.path.relpath(folder, tree))
        os.makedirs(target, exist_ok=True)
        for name in names:
            shutil.copyfile(os.path.join(folder, name), os.path.join(target, name))
    later = time.time() + 3600
    for folder, _, names in os.walk(destination):
        for name in names:
            os.utime(os.path.join(folder, name), (later, later))
    return str(destination)


def _flip_byte(path, offset):
    content = bytearray(open(path, "rb").read())
    content[offset] ^= 0xFF
    open(path, "wb").write(bytes(content))


def test_resume_decides_from_metadata_settings_and_files_present(tree, tmp_path):
    source = _copy_with_new_mtimes(tree, tmp_path / "train")
    output = str(tmp_path / "converted")
    assert set(_statuses(_batch(source, output)).values()) == {"converted"}
    manifest = json.load(open(os.path.join(output, PREFIXES[0], "manifest.json")))
    assert manifest["source"]["fingerprint"]["kind"] == "metadata"
    assert manifest["options"] == migrate.ConversionOptions().to_json()

    # Copied, byte for byte identical, new mtimes (and another directory): up to date.
    copied = _copy_with_new_mtimes(source, tmp_path / "copied")
    report = _batch(copied, output)
    assert set(_statuses(report).values()) == {"skipped"}, report.summary()
    assert all(item.reason == "up to date" for item in report.items)

    # A changed .index (here: step 2's checkpoint in step 1's place) and a data
    # file of another size reconvert; the rest stays.
    run1 = os.path.join(copied, "run1")
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copyfile(os.path.join(run1, "model.ckpt-2" + suffix),
                        os.path.join(run1, "model.ckpt-1" + suffix))
    with open(os.path.join(run1, "model.ckpt-3.data-00000-of-00001"), "ab") as data:
        data.write(b"\0")
    assert _statuses(_batch(copied, output)) == {
        PREFIXES[0]: "converted", PREFIXES[1]: "skipped", PREFIXES[2]: "converted"}

    # An output file gone (a cheap check: names and sizes) reconverts that output.
    os.remove(os.path.join(output, PREFIXES[1], "ckpt.index"))
    assert _statuses(_batch(copied, output)) == {
        PREFIXES[0]: "skipped", PREFIXES[1]: "converted", PREFIXES[2]: "skipped"}

    # Other settings: any ConversionOptions field, another table, another model.
    options = migrate.ConversionOptions(allow_nonfinite=True)
    assert set(_statuses(_batch(copied, output, options=options)).values()) == {"converted"}
    assert set(_statuses(_batch(copied, output, options=options)).values()) == {"skipped"}
    table = tmp_path / "table.toml"
    table.write_text(open(ENTRY.table_path).read() + "\n# another table\n")
    report = migrate.convert_batch(copied, output, str(table), ENTRY.model_factory, workers=0,
                                   options=options)
    assert set(_statuses(report).values()) == {"converted"}


def test_hash_sources_sees_a_changed_byte_the_metadata_does_not(tree, tmp_path):
    import tensorflow as tf

    source = _copy_with_new_mtimes(tree, tmp_path / "train")
    output = str(tmp_path / "converted")
    _batch(source, output, hash_sources=True)
    manifest = json.load(open(os.path.join(output, PREFIXES[0], "manifest.json")))
    assert manifest["source"]["fingerprint"]["kind"] == "metadata+sha256"
    assert all(len(entry["sha256"]) == 64 for entry in manifest["source"]["files"])
    assert set(_statuses(_batch(source, output, hash_sources=True)).values()) == {"skipped"}

    # One byte of an optimizer slot, which a conversion never reads: same size, same index.
    prefix = os.path.join(source, PREFIXES[0])
    slot = tf.train.load_checkpoint(prefix).get_tensor("conv/kernel/Momentum").tobytes()
    data = prefix + ".data-00000-of-00001"
    _flip_byte(data, open(data, "rb").read().index(slot) + 5)
    assert set(_statuses(_batch(source, output)).values()) == {"skipped"}
    assert _statuses(_batch(source, output, hash_sources=True)) == {
        PREFIXES[0]: "converted", PREFIXES[1]: "skipped", PREFIXES[2]: "skipped"}

    # Outputs made without full hashes cannot prove the sources with them.
    plain = str(tmp_path / "plain")
    _batch(source, plain)
    assert set(_statuses(_batch(source, plain, hash_sources=True)).values()) == {"converted"}


def test_recheck_outputs_rehashes_and_single_convert_output_is_resumable(tree, tmp_path):
    output = str(tmp_path / "converted")
    # A single `migrate.convert` writes the manifest a batch rerun reads.
    migrate.convert(os.path.join(tree, PREFIXES[0]), ENTRY.table_path, ENTRY.model_factory,
                    os.path.join(output, PREFIXES[0]))
    assert _statuses(_batch(tree, output)) == {
        PREFIXES[0]: "skipped", PREFIXES[1]: "converted", PREFIXES[2]: "converted"}
    data = os.path.join(output, PREFIXES[2], "ckpt.data-00000-of-00001")
    _flip_byte(data, os.path.getsize(data) - 1)
    assert set(_statuses(_batch(tree, output)).values()) == {"skipped"}
    assert _statuses(_batch(tree, output, recheck_outputs=True)) == {
        PREFIXES[0]: "skipped", PREFIXES[1]: "skipped", PREFIXES[2]: "converted"}
    assert migrate.convert_batch.__kwdefaults__["timeout_per_checkpoint"] == 1800


def test_a_hung_worker_is_killed_and_the_batch_goes_on(tree, tmp_path, monkeypatch,
                                                      faults_in_every_worker):
    # Every worker sleeps on opening, copying ahead or finishing run1/model.ckpt-2.
    monkeypatch.setenv(batch_factories.HANG_VARIABLE, "run1/model.ckpt-2")
    log = tmp_path / "hung.txt"
    monkeypatch.setenv(worker_faults.HANG_LOG_VARIABLE, str(log))
    started = time.monotonic()
    report = migrate.convert_batch(tree, str(tmp_path / "converted"), ENTRY.table_path,
                                   "batch_factories:hanging_model", workers=1,
                                   timeout_per_checkpoint=8)
    assert time.monotonic() - started < 300
    assert _statuses(report) == {PREFIXES[0]: "converted", PREFIXES[1]: "failed",
                                 PREFIXES[2]: "converted"}
    (failed,) = report.with_status("failed")
    assert failed.reason == ("timed out: no result after 8 s (timeout_per_checkpoint); "
                             "the worker was killed")
    assert not os.path.exists(failed.output)
    # A timeout is not remembered: the next run tries the checkpoint again.
    assert not failed.deterministic
    assert not os.path.exists(tmp_path / "converted" / "batch_failures.json")
    # The copy worker that hung copying it ahead, then the one that hung converting it:
    # both killed, and a fresh worker took the last checkpoint.
    hung = [int(line) for line in log.read_text().split()]
    assert len(hung) == 2 and len(set(hung)) == 2
    for process in hung:
        with pytest.raises(ProcessLookupError):
            os.kill(process, 0)


def test_previous_directories_of_a_killed_overwrite_are_restored_or_removed(tree, tmp_path):
    output = str(tmp_path / "converted")
    _batch(tree, output)
    first, second = (os.path.join(output, relative) for relative in PREFIXES[:2])
    # Killed between the two renames: the old output exists only as NAME.previous-*.
    os.rename(first, first + atomic.PREVIOUS_MARK + "0badf00d")
    # Killed after the second rename: the old output beside the new one.
    shutil.copytree(second, second + atomic.PREVIOUS_MARK + "deadbeef")
    # Not a converted output: never touched.
    os.makedirs(os.path.join(output, PREFIXES[2]) + atomic.PREVIOUS_MARK + "12345678")
    report = _batch(tree, output)
    assert set(_statuses(report).values()) == {"skipped"}, report.summary()
    assert report.scan_notes == [
        {"path": PREFIXES[0], "note": f"restored {first} from {first}.previous-0badf00d: a run "
                                      f"was killed while replacing it"},
        {"path": PREFIXES[1], "note": f"removed {second}.previous-deadbeef: the output it held "
                                      f"had already been replaced by a run killed before it "
                                      f"could remove it"},
        {"path": PREFIXES[2], "note": f"{output}/{PREFIXES[2]}.previous-12345678 is not a "
                                      f"converted output (no manifest.json); left as it is"}]
    assert sorted(os.listdir(os.path.join(output, "run1"))) == [
        "model.ckpt-1", "model.ckpt-2", "model.ckpt-3", "model.ckpt-3.previous-12345678"]
    assert f"  note {PREFIXES[0]}: restored " in report.summary()


def test_interrupt_writes_the_partial_report_before_raising(tree, tmp_path, monkeypatch):
    from migrate import pipeline

    opened = pipeline.open_checkpoint

    def interrupt_on_second(checkpoint, options=None, **keywords):
        if str(checkpoint).endswith(PREFIXES[1]):
            raise KeyboardInterrupt
        return opened(checkpoint, options, **keywords)

    monkeypatch.setattr(pipeline, "open_checkpoint", interrupt_on_second)
    output = str(tmp_path / "converted")
    with pytest.raises(migrate.BatchInterrupted) as raised:
        _batch(tree, output)
    assert isinstance(raised.value, KeyboardInterrupt)
    report = raised.value.report
    assert _statuses(report) == {PREFIXES[0]: "converted", PREFIXES[1]: "not started",
                                 PREFIXES[2]: "not started"}
    document = json.load(open(os.path.join(output, "batch_report.json")))
    assert document == json.loads(json.dumps(report.to_json()))
    assert document["totals"]["not started"] == 2 and document["totals"]["kept_bytes"] == 1764
    assert report.summary().splitlines()[1] == (
        "  converted 1, skipped 0 (up to date), failed 0, not started 2 (interrupted)")
    assert not os.path.exists(os.path.join(output, PREFIXES[1]))


def test_summary_shows_each_kind_of_warning_once_with_a_count(tree, tmp_path, capsys):
    from migrate import progress

    output = str(tmp_path / "converted")
    migrate.convert(os.path.join(tree, PREFIXES[0]), ENTRY.table_path, ENTRY.model_factory,
                    os.path.join(output, PREFIXES[0]))
    capsys.readouterr()
    report = _batch(tree, output, show_progress=True)
    warnings = [line for line in report.summary().splitlines() if line.startswith("  warning")]
    assert len(warnings) == 1 and warnings[0].startswith("  warning (2 checkpoint(s)): ")
    # The start line comes first, before any checkpoint is done.
    lines = capsys.readouterr().err.splitlines()
    converting = progress.format_bytes(
        sum(item.source_bytes for item in report.with_status("converted")))
    assert lines[0] == (f"batch: 3 checkpoint(s), 1 up to date; converting 2 ({converting}) in "
                        f"this process; starting (TensorFlow import and model build) ...")
    assert "ETA" not in lines[1] and "1/2" in lines[1]


def test_progress_shows_an_eta_only_from_the_second_item():
    import io

    from migrate import progress

    stream = io.StringIO()
    bar = progress.Progress("batch", 3, 300, stream=stream)
    bar.start("batch: starting")
    for note in ("a", "b", "c"):
        bar.advance(1, 100, note)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "batch: starting"
    assert "ETA" not in lines[1] and lines[1].endswith(" a")
    assert " ETA " in lines[2] and " ETA " in lines[3]


def test_bad_batch_arguments_are_argument_errors(tree, tmp_path):
    for keywords, message in (
            ({"timeout_per_checkpoint": 0}, "timeout_per_checkpoint=0"),
            ({"hash_sources": "yes"}, "hash_sources='yes'"),
            ({"workers": -1}, "workers=-1"), ({"runner": "spark"}, "runner='spark'")):
        with pytest.raises(migrate.ArgumentError, match=f"Received: {message}"):
            _batch(tree, str(tmp_path / "o"), **keywords)
    assert not os.path.exists(tmp_path / "o")


def test_a_batch_process_imports_no_tensorflow_and_its_rerun_starts_no_worker(tree, tmp_path):
    # The launcher only scans, decides and reports (--latest_only reads the
    # state file too); TensorFlow and the model are for its workers, and a
    # rerun with every output up to date starts none. The process says what
    # it holds at the end (`-X importtime` would miss an import made while
    # standard error is silenced, as the command line does for TensorFlow's).
    # Then training goes on: a new checkpoint is converted by the copy plan
    # the first run stored, so no process of the batch builds the model.
    tree = _copy_with_new_mtimes(tree, tmp_path / "train")
    log = tmp_path / "builds.txt"
    tests = os.path.dirname(batch_factories.__file__)
    environment = dict(os.environ, **{batch_factories.BUILD_LOG_VARIABLE: str(log)})
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))
    environment.pop("TF_USE_LEGACY_KERAS", None)
    command = ("import sys\nfrom migrate import cli\ncode = cli.main(['migrate', *sys.argv[1:]])\n"
               f"heavy = sorted(set(sys.modules) & set({sorted(HEAVY_MODULES)}))\n"
               "print('imported:', *heavy, file=sys.stderr)\nsys.exit(code)\n")
    arguments = ["batch", f"--input_dir={tree}", f"--output_dir={tmp_path / 'converted'}",
                 "--model=batch_factories:counted_model", "--latest_only"]
    # The rerun takes the same table from --zoo, without importing the entry's Keras model.
    for table, counts in ((f"--table={ENTRY.table_path}", "converted 1, skipped 0"),
                          ("--zoo=small_convnet", "converted 0, skipped 1")):
        result = subprocess.run([sys.executable, "-c", command, *arguments, table],
                                capture_output=True, text=True, env=environment, timeout=600,
                                check=False)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.splitlines()[1] == f"  {counts} (up to date), failed 0"
        assert result.stderr.splitlines()[-1] == "imported:", result.stderr[-2000:]
        if counts.startswith("converted 1"):
            assert "batch: planning the copies (TensorFlow import and model build)" in result.stderr
    # The rerun printed nothing else: no start line, no worker.
    assert result.stderr == "imported:\n"
    assert len(log.read_text().split()) == 1, "one model build: the first run's worker"

    run1 = os.path.join(tree, "run1")
    for name in os.listdir(run1):
        if name.startswith("model.ckpt-3."):
            shutil.copyfile(os.path.join(run1, name), os.path.join(run1, "model.ckpt-4" + name[12:]))
    with open(os.path.join(run1, "checkpoint"), "a", encoding="utf-8") as state:
        state.write('model_checkpoint_path: "model.ckpt-4"\n')
    result = subprocess.run([sys.executable, "-c", command, *arguments, "--zoo=small_convnet"],
                            capture_output=True, text=True, env=environment, timeout=600,
                            check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[1] == "  converted 1, skipped 0 (up to date), failed 0"
    assert result.stderr.splitlines()[-1] == "imported:", result.stderr[-2000:]
    assert len(log.read_text().split()) == 1, "no model build: the stored plan was used"
    assert "planning the copies" not in result.stderr
    # The same checkpoint's bytes under a new name: the same output, but the manifest's source.
    before, after = (tmp_path / "converted" / "run1" / name for name in ("model.ckpt-3",
                                                                          "model.ckpt-4"))
    assert sorted(os.listdir(before)) == sorted(os.listdir(after))
    for name in os.listdir(before):
        old, new = (open(folder / name, "rb").read() for folder in (before, after))
        if name == "manifest.json":
            old, new = ({key: value for key, value in json.loads(text).items()
                         if key not in ("created", "source")} for text in (old, new))
        assert old == new, name


def test_exported_directories_count_as_present_outputs(tmp_path):
    from migrate.output import manifest as manifest_lib

    output = tmp_path / "converted"
    (output / "saved_model" / "variables").mkdir(parents=True)
    written = {"ckpt.index": b"1", "saved_model/saved_model.pb": b"22",
               "saved_model/variables/variables.index": b"333"}
    for name, data in written.items():
        (output / name).write_bytes(data)
    manifest = {"output_files": [{"path": name, "sha256": "", "bytes": len(data)}
                                 for name, data in written.items()]}
    # An output with a saved_model/ export is up to date (it was converted on every rerun).
    assert manifest_lib._outputs_present(str(output), manifest)
    (output / "saved_model" / "extra").write_bytes(b"")
    assert not manifest_lib._outputs_present(str(output), manifest)


def test_a_rerun_lists_each_directory_once_and_globs_nothing(tree, tmp_path, monkeypatch):
    # Up to date is decided from the scan's one listing of the checkpoints'
    # directory (and one of the outputs' parent), however many checkpoints it holds.
    output = str(tmp_path / "converted")
    assert set(_statuses(_batch(tree, output)).values()) == {"converted"}
    listed = []
    listdir = files.listdir

    def counting(directory):
        listed.append(os.path.relpath(directory, tmp_path if str(tmp_path) in directory
                                      else tree))
        return listdir(directory)

    def no_glob(pattern):
        raise AssertionError(f"globbed {pattern}")

    monkeypatch.setattr(files, "listdir", counting)
    monkeypatch.setattr(files, "glob", no_glob)
    report = _batch(tree, output)
    assert set(_statuses(report).values()) == {"skipped"}, report.summary()
    assert sorted(listed) == [".", "converted/run1", "run1"]
