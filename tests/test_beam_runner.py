"""Batch conversion as an Apache Beam pipeline, run here with the DirectRunner."""

import json
import os
import shutil

import pytest

pytest.importorskip("apache_beam")  # The optional `beam` extra; the only reason to skip.

import migrate  # noqa: E402
from conftest import run_cli  # noqa: E402
from migrate.batch import worker as batch_worker  # noqa: E402
from migrate.output import manifest as manifest_lib  # noqa: E402
from migrate import zoo  # noqa: E402
from test_batch import write_step_checkpoints  # noqa: E402

ENTRY = zoo.get("small_convnet")
PREFIXES = ["run1/model.ckpt-1", "run1/model.ckpt-2", "run2/model.ckpt-1"]
CRASHING = "run1/model.ckpt-2"


@pytest.fixture(scope="module")
def beam_run(tmp_path_factory):
    """Runs `batch --runner=beam` on the CLI; one checkpoint's worker dies with SIGSEGV.

    About 20-30 s, justified: three checkpoints written, then one CLI run that
    imports TensorFlow and Beam, starts a worker, and a fresh one after the crash.
    """
    root = tmp_path_factory.mktemp("beam")
    write_step_checkpoints((root / "train" / "run1", 2, 0, 2), (root / "train" / "run2", 1, 1, 1))
    output = root / "converted"
    os.environ[batch_worker.CRASH_FOR_TESTS_VARIABLE] = f"SIGSEGV:{CRASHING}"
    try:
        result = run_cli("batch", f"--input_dir={root / 'train'}", f"--output_dir={output}",
                         "--zoo=small_convnet", "--runner=beam",
                         "--beam_options=--direct_num_workers=1 --direct_running_mode=in_memory",
                         "--json")
    finally:
        del os.environ[batch_worker.CRASH_FOR_TESTS_VARIABLE]
    return str(root / "train"), str(output), result


def test_beam_pipeline_converts_each_checkpoint_and_survives_a_dying_worker(beam_run):
    source, output, result = beam_run
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert document["runner"] == "beam"
    assert [item["relative"] for item in document["items"]] == PREFIXES
    statuses = {item["relative"]: item["status"] for item in document["items"]}
    assert statuses == {"run1/model.ckpt-1": "converted", CRASHING: "failed",
                        "run2/model.ckpt-1": "converted"}
    (failed,) = [item for item in document["items"] if item["status"] == "failed"]
    assert failed["reason"] == ("the worker process died with SIGSEGV while converting this "
                                "checkpoint (Fatal Python error: Segmentation fault)")
    assert json.load(open(os.path.join(output, "batch_report.json"))) == document
    # The results file the pipeline hands back is gone; the layout mirrors the input.
    assert sorted(os.listdir(output)) == ["batch_report.json", "run1", "run2"]
    assert sorted(os.listdir(os.path.join(output, "run1"))) == ["model.ckpt-1"]
    for relative in ("run1/model.ckpt-1", "run2/model.ckpt-1"):
        manifest = json.load(open(os.path.join(output, relative, "manifest.json")))
        assert manifest["source"]["prefix"] == os.path.join(source, relative)
        assert manifest_lib.check(os.path.join(output, relative)).ok


def test_beam_rerun_converts_what_failed_and_skips_the_rest(beam_run, tmp_path):
    source, first_output, _ = beam_run
    output = str(tmp_path / "converted")
    shutil.copytree(first_output, output)
    report = migrate.convert_batch(source, output, ENTRY.table_path, ENTRY.model_factory,
                                   runner="beam", beam_options=["--direct_num_workers=1"])
    assert report.ok, report.summary()
    assert {item.relative: item.status for item in report.items} == {
        "run1/model.ckpt-1": "skipped", CRASHING: "converted", "run2/model.ckpt-1": "skipped"}
    assert report.summary().splitlines()[0].endswith("(Apache Beam)")
