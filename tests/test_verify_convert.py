"""convert with verification: only a passing conversion is put in place; the manifest says so."""

import json
import os

import pytest

from migrate import zoo

ENTRY = zoo.get("small_convnet")


@pytest.fixture(scope="module")
def prefix(legacy_checkpoint):
    return legacy_checkpoint("small_convnet")


def _options(**settings):
    import migrate
    from migrate.verification import parity

    return migrate.ConversionOptions(
        keep=settings.pop("keep", "model_state"),
        verify=parity.settings_from_arguments(**{**ENTRY.verify, **settings}))


def test_a_passing_conversion_is_verified_and_recorded_in_the_manifest(prefix, tmp_path):
    import migrate

    output = tmp_path / "out"
    report = migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, str(output),
                             options=_options())
    assert report.verified["passed"] and "verified: PASS" in report.summary()
    manifest = json.loads((output / "manifest.json").read_text())
    verified = manifest["verified"]
    assert verified["passed"] and verified["max_rel_diff"] <= verified["tolerance"]
    assert verified["batch"] == 2 and list(verified["inputs"]) == [ENTRY.verify["input_tensor"]]
    # The manifest still checks out after the verification wrote into it.
    from migrate.output import manifest as manifest_lib
    assert manifest_lib.check(str(output)).ok


def test_a_failing_conversion_raises_and_leaves_nothing(prefix, tmp_path):
    import migrate

    # Trainable weights only: the BatchNorm statistics stay at 0/1 and the logits differ.
    with pytest.raises(migrate.VerificationError) as raised:
        migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, str(tmp_path / "out"),
                        options=_options(keep="trainable"))
    assert "nothing was written" in str(raised.value) and "Received: max_rel_diff=" in str(
        raised.value)
    # The likely cause is named, with the option that carries the statistics.
    assert "does not carry 2 non-trainable model weight(s) (bn/moving_mean, bn/moving_variance), " \
        "which keep='model_state' carries" in str(raised.value)
    assert raised.value.option == "keep"
    assert os.listdir(tmp_path) == []


def test_keep_failed_keeps_the_output_with_the_failure_recorded(prefix, tmp_path):
    import migrate

    output = tmp_path / "out"
    with pytest.raises(migrate.VerificationError, match="kept at"):
        migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model(), str(output),
                        options=_options(keep="trainable", keep_failed=True))
    verified = json.loads((output / "manifest.json").read_text())["verified"]
    assert verified["passed"] is False and verified["max_rel_diff"] > verified["tolerance"]


def test_batch_worker_verifies_each_checkpoint_and_says_why_one_failed(prefix, tmp_path):
    from migrate.batch import jobs
    from migrate.batch import worker

    options = _options(keep="trainable")
    # The options reach workers as JSON.
    assert type(options).from_json(json.loads(json.dumps(options.to_json()))) == options
    from migrate.mapping.table import MappingTable

    settings = jobs.BatchSettings(
        table=ENTRY.table_path, table_text=open(ENTRY.table_path).read(),
        table_sha256=MappingTable.load(ENTRY.table_path).sha256, model=ENTRY.model_factory,
        options=options)
    job = jobs.Job(source=prefix, relative="model", output=str(tmp_path / "out"))
    result = worker.Converter(settings).convert(job)
    assert result.status == jobs.Status.FAILED
    assert "differs from the legacy graph" in result.reason and not os.path.exists(job.output)
