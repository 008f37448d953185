"""A slim classifier as published: V1, no `.meta`, 1001 classes, into a 1000-class Keras model."""

import os
import shutil

import numpy as np
import pytest

import migrate
from migrate import zoo

ENTRY = zoo.get("resnet_v1_50")
pytestmark = pytest.mark.slow  # builds a 1001-class ResNet-v1-50 checkpoint
# The logits rules of the zoo table, with slim's background class 0 sliced off.
BACKGROUND_RULES = {
    "transform = [\"squeeze(0, 1)\"]\n\n[[rule]]\nmatch = 'resnet_v1_50/logits/biases'\n"
    "target = 'logits/bias'":
    "transform = [\"squeeze(0, 1)\", \"slice(-1, 1, 1001)\"]\n\n[[rule]]\n"
    "match = 'resnet_v1_50/logits/biases'\ntarget = 'logits/bias'\n"
    "transform = [\"slice(-1, 1, 1001)\"]",
}


@pytest.fixture(scope="module")
def trained(legacy_checkpoint):
    """The 1001-class slim ResNet-v1-50, written in the V1 format (its `.meta` beside it)."""
    return legacy_checkpoint("resnet_v1_50", steps=2, extra_flags=(
        "--config=background", "--write_version=V1"))


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    text = open(ENTRY.table_path).read()
    for old, new in BACKGROUND_RULES.items():
        assert old in text, "the zoo table's logits rules changed; update this test"
        text = text.replace(old, new)
    path = tmp_path_factory.mktemp("table") / "resnet_v1_50_background.toml"
    path.write_text(text)
    return str(path)


def _published_copy(prefix, directory):
    """Only the checkpoint file, as slim shipped it: no `.meta`, no `checkpoint` state file."""
    os.makedirs(directory)
    shutil.copy(prefix, directory)
    return os.path.join(directory, os.path.basename(prefix))


def test_1001_class_v1_checkpoint_without_meta_matches_legacy_logits_without_background(
        trained, table, tmp_path):
    from migrate.verification import legacy_feed
    from migrate.verification import legacy_run
    from migrate.verification import parity
    from migrate.zoo import resnet_v1_50

    published = _published_copy(trained, str(tmp_path / "published"))
    description = migrate.inspect(published)
    assert description["format"] == "V1" and description["role_origin"].startswith("name rules")
    output = str(tmp_path / "converted")
    report = migrate.convert(published, table, lambda: resnet_v1_50.build_model(num_classes=1000),
                             output, options=migrate.ConversionOptions(keep="model_state"))
    assert report.unwritten_targets == [] and report.roles["optimizer_slot"]["left_out"] > 0

    model = resnet_v1_50.build_model(num_classes=1000)
    assert migrate.restore(model, output).unchanged == []
    verify = ENTRY.verify
    # The test keeps the `.meta` aside (beside the trained copy) to run the legacy graph.
    settings = parity.settings_from_arguments(**verify, batch_size=2)
    feed, (legacy_logits,), _, _ = legacy_run.run_legacy(
        migrate.LegacyCheckpoint.open(trained), settings, legacy_feed.keras_input_names(model))
    assert legacy_logits.shape == (2, 1001)
    keras_logits = np.asarray(model(feed.keras_inputs(), training=False))
    max_abs, max_rel = parity.compare(legacy_logits[:, 1:], keras_logits)
    assert max_rel <= ENTRY.verify["tolerance"], (max_abs, max_rel)
    assert max_abs > 0


def test_without_the_slice_the_plan_names_the_1001_to_1000_mismatch(trained, tmp_path):
    from migrate.zoo import resnet_v1_50

    published = _published_copy(trained, str(tmp_path / "published"))
    plan = migrate.plan(published, ENTRY.table_path,
                        lambda: resnet_v1_50.build_model(num_classes=1000))
    messages = " ".join(problem.describe() for problem in plan.problems)
    assert "resnet_v1_50/logits/weights" in messages and "1001" in messages
