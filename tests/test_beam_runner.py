"""Batch conversion as an Apache Beam pipeline, run here in this process (FnApiRunner)."""

import json
import os
import shutil

import pytest

pytest.importorskip("apache_beam")  # The optional `beam` extra; the only reason to skip.

import batch_factories  # noqa: E402
import worker_faults  # noqa: E402
import migrate  # noqa: E402
from migrate.output import manifest as manifest_lib  # noqa: E402
from migrate import zoo  # noqa: E402

ENTRY = zoo.get("small_convnet")
PREFIXES = ["run1/model.ckpt-1", "run1/model.ckpt-2", "run2/model.ckpt-1", "run2/model.ckpt-2"]
CRASHING = "run1/model.ckpt-2"
CORRUPT = "run2/model.ckpt-2"
ONE_WORKER = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    """train/run1 and train/run2, two small_convnet step checkpoints each; one .index cut short,
    and the crashing one without its `.meta` (a source layout of its own: no copy plan covers
    it, so its worker imports TensorFlow and builds the model, which the test's factory makes
    crash)."""
    from test_batch import write_step_checkpoints

    root = tmp_path_factory.mktemp("beam") / "train"
    write_step_checkpoints((root / "run1", 2, 0, 2), (root / "run2", 2, 1, 2))
    (root / (CRASHING + ".meta")).unlink()
    index = root / (CORRUPT + ".index")
    index.write_bytes(index.read_bytes()[:40])
    return str(root)


@pytest.fixture(scope="module")
def beam_run(train, tmp_path_factory):
    """One Beam batch: one checkpoint kills its worker (SIGSEGV), one is corrupt.

    About 20-30 s, justified: one local pipeline that starts a worker
    (TensorFlow import, model build), and a fresh one after the crash.
    """
    root = tmp_path_factory.mktemp("beam_output")
    log = root / "builds.txt"
    patch = pytest.MonkeyPatch()
    worker_faults.in_every_process(patch)
    patch.setenv(batch_factories.CRASH_VARIABLE, f"SIGSEGV:{CRASHING}")
    patch.setenv(batch_factories.BUILD_LOG_VARIABLE, str(log))
    try:
        report = migrate.convert_batch(train, str(root / "converted"), ENTRY.table_path,
                                       "batch_factories:crashing_model", runner="beam",
                                       beam_options=ONE_WORKER)
    finally:
        patch.undo()
    return report, str(root / "converted"), log.read_text().split()


def test_failed_checkpoints_go_to_the_dead_letter_report_and_the_pipeline_completes(
        train, beam_run):
    report, output, _ = beam_run
    assert not report.ok and report.runner == "beam"
    assert [item.relative for item in report.items] == PREFIXES
    assert {item.relative: item.status for item in report.items} == {
        "run1/model.ckpt-1": "converted", CRASHING: "failed", "run2/model.ckpt-1": "converted",
        CORRUPT: "failed"}
    reasons = {item.relative: item.reason for item in report.with_status("failed")}
    assert reasons[CRASHING] == ("the worker process died with SIGSEGV while converting this "
                                 "checkpoint (Fatal Python error: Segmentation fault)")
    assert reasons[CORRUPT].startswith("Cannot read checkpoint ")
    document = json.load(open(os.path.join(output, "batch_report.json")))
    assert document == json.loads(json.dumps(report.to_json()))
    # The results file the pipeline hands back is gone; the layout mirrors the input.
    # The corrupt checkpoint is remembered (tests/test_batch_failures.py); the crash is not.
    # The copy plans made at pipeline construction are kept for later batches.
    assert sorted(os.listdir(output)) == ["batch_failures.json", "batch_plans",
                                          "batch_report.json", "run1", "run2"]
    assert list(json.load(open(os.path.join(output, "batch_failures.json")))["failures"]) == [
        CORRUPT]
    assert sorted(os.listdir(os.path.join(output, "run1"))) == ["model.ckpt-1"]
    for relative in ("run1/model.ckpt-1", "run2/model.ckpt-1"):
        manifest = json.load(open(os.path.join(output, relative, "manifest.json")))
        assert manifest["source"]["prefix"] == os.path.join(train, relative)
        assert manifest_lib.check(os.path.join(output, relative)).ok


def test_the_model_is_built_only_where_tensorflow_is_needed_once_per_process(beam_run):
    # Four checkpoints, one Beam worker. The model was built by the planning
    # worker, which died planning the crashing checkpoint's layout (its own:
    # no .meta), and by a fresh one for run2's layout (another seed, another
    # .meta); never in DoFn.setup's worker: it opens a checkpoint no plan
    # covers before it builds the model, and died opening the crashing one,
    # and the corrupt one failed there too. The two a plan covers were copied
    # without TensorFlow.
    _, _, builds = beam_run
    assert len(builds) == 2 and len(set(builds)) == 2


def test_dead_letter_output_holds_exactly_the_failed_results(train, tmp_path):
    import apache_beam as beam
    from apache_beam.testing import util as beam_testing

    from migrate.batch import beam as beam_runner
    from migrate.batch import jobs as batch_jobs

    text = open(ENTRY.table_path, encoding="utf-8").read()
    settings = batch_jobs.BatchSettings(
        table=ENTRY.table_path, table_text=text,
        table_sha256=migrate.MappingTable.from_text(text).sha256, model=ENTRY.model_factory)
    jobs = [batch_jobs.Job(source=os.path.join(train, relative), relative=relative,
                             output=str(tmp_path / relative)) for relative in (
        "run1/model.ckpt-1", CORRUPT)]

    def relatives_and_statuses(expected):
        def check(documents):
            received = sorted((document["relative"], document["status"])
                              for document in documents)
            if received != expected:
                raise beam_testing.BeamAssertException(f"{received} != {expected}")
        return check

    # The library's options: Beam's default runner would leave /tmp/beam-temp* behind.
    with beam.Pipeline(options=beam_runner.pipeline_options(ONE_WORKER)) as p:
        outputs = (p | beam.Create([job.to_json() for job in jobs])
                   | beam.ParDo(beam_runner.ConvertCheckpoints(settings.to_json()))
                   .with_outputs(beam_runner.DEAD_LETTER, main=beam_runner.CONVERTED))
        beam_testing.assert_that(outputs[beam_runner.DEAD_LETTER],
                                 relatives_and_statuses([(CORRUPT, "failed")]),
                                 label="DeadLetter")
        beam_testing.assert_that(outputs[beam_runner.CONVERTED],
                                 relatives_and_statuses([("run1/model.ckpt-1", "converted")]),
                                 label="Converted")


def test_beam_rerun_converts_what_failed_and_skips_the_rest(train, beam_run, tmp_path):
    _, first_output, _ = beam_run
    output = str(tmp_path / "converted")
    shutil.copytree(first_output, output)
    report = migrate.convert_batch(train, output, ENTRY.table_path,
                                   "batch_factories:counted_model", runner="beam",
                                   beam_options=["--direct_num_workers=1"])
    assert {item.relative: item.status for item in report.items} == {
        "run1/model.ckpt-1": "converted", CRASHING: "converted", "run2/model.ckpt-1": "converted",
        CORRUPT: "failed"}, "another model factory: nothing is up to date"
    report = migrate.convert_batch(train, output, ENTRY.table_path,
                                   "batch_factories:counted_model", runner="beam",
                                   beam_options=["--direct_num_workers=1"])
    assert {item.relative: item.status for item in report.items} == {
        "run1/model.ckpt-1": "skipped", CRASHING: "skipped", "run2/model.ckpt-1": "skipped",
        CORRUPT: "failed"}
    assert report.summary().splitlines()[0].endswith("(Apache Beam)")


def test_beam_across_processes_pickles_the_dofn_with_its_copy_plans(train, tmp_path,
                                                                    monkeypatch):
    # What a cluster does: the DoFn, with the copy plans made while the
    # pipeline was constructed, is pickled into two SDK worker processes (the
    # DirectRunner's multi_processing mode); each starts its own batch worker
    # in `setup`, which converts by the plans and fails the corrupt checkpoint
    # without building the model; it still ends as a dead letter in the report.
    # About 30-40 s: the planning worker's TensorFlow, two SDK workers, each
    # importing Beam.
    repository = os.path.dirname(os.path.dirname(migrate.__file__))
    tests = os.path.dirname(batch_factories.__file__)
    # The SDK workers are fresh interpreters: they import this checkout (and
    # the test factories) through PYTHONPATH, as a cluster's workers import
    # the installed package.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [repository, tests, os.environ.get("PYTHONPATH")])))
    builds, parents = tmp_path / "builds.txt", tmp_path / "parents.txt"
    monkeypatch.setenv(batch_factories.BUILD_LOG_VARIABLE, str(builds))
    monkeypatch.setenv(batch_factories.PARENT_LOG_VARIABLE, str(parents))
    report = migrate.convert_batch(
        train, str(tmp_path / "converted"), ENTRY.table_path, "batch_factories:counted_model",
        runner="beam", beam_options=["--direct_running_mode=multi_processing",
                                     "--direct_num_workers=2"])
    assert {item.relative: item.status for item in report.items} == {
        **{relative: "converted" for relative in PREFIXES}, CORRUPT: "failed"}
    assert report.with_status("failed")[0].reason.startswith("Cannot read checkpoint ")
    for relative in PREFIXES:
        if relative != CORRUPT:
            assert manifest_lib.check(str(tmp_path / "converted" / relative)).ok
    # This process started one worker, which planned the copies (its model
    # build); no batch worker an SDK worker process started built one: the
    # corrupt checkpoint, which no plan covers, failed on opening, before it.
    assert parents.read_text().split() == [str(os.getpid())]
    assert len(builds.read_text().split()) == 1
