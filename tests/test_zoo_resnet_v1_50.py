"""The ResNet-v1-50 zoo entry end to end: a real tf-slim checkpoint, converted, restored, verified."""

import os

import numpy as np
import pytest
import tensorflow as tf

import migrate
from migrate import zoo

pytestmark = pytest.mark.slow

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


@pytest.fixture(scope="module")
def entry():
    return zoo.get("resnet_v1_50")


@pytest.fixture(scope="module")
def legacy_prefix(legacy_checkpoint):
    # The session's build, shared with the zoo, suggest and reader tests (read only here).
    return legacy_checkpoint("resnet_v1_50")


@pytest.fixture(scope="module")
def legacy_reader(legacy_prefix):
    return tf.train.load_checkpoint(legacy_prefix)


def _convert(entry, legacy_prefix, directory, keep):
    output = str(directory / "converted")
    report = migrate.convert(legacy_prefix, entry.table_path, entry.build_model(), output,
                             options=migrate.ConversionOptions(keep=keep))
    return output, report


@pytest.fixture(scope="module")
def trainable_conversion(entry, legacy_prefix, tmp_path_factory):
    return _convert(entry, legacy_prefix, tmp_path_factory.mktemp("trainable"), "trainable")


@pytest.fixture(scope="module")
def model_state_conversion(entry, legacy_prefix, tmp_path_factory):
    return _convert(entry, legacy_prefix, tmp_path_factory.mktemp("model_state"), "model_state")


def _saved_weight_keys(directory):
    return [name for name, _ in tf.train.list_variables(tf.train.latest_checkpoint(directory))
            if name != OBJECT_GRAPH_KEY]


def _restored_model(entry, directory):
    model = entry.build_model()
    migrate.restore(model, directory)
    return {weight.path: weight.numpy() for weight in model.weights}, model


def test_default_keep_writes_exactly_the_trainable_weights(entry, legacy_reader,
                                                           trainable_conversion):
    output, report = trainable_conversion

    assert report.written_weights == 161
    assert len(_saved_weight_keys(output)) == 161
    weights, _ = _restored_model(entry, output)
    np.testing.assert_array_equal(
        weights["block3_unit_6_conv2/kernel"],
        legacy_reader.get_tensor("resnet_v1_50/block3/unit_6/bottleneck_v1/conv2/weights"))
    np.testing.assert_array_equal(
        weights["block1_unit_1_shortcut_bn/gamma"],
        legacy_reader.get_tensor("resnet_v1_50/block1/unit_1/bottleneck_v1/shortcut/BatchNorm/gamma"))
    np.testing.assert_array_equal(
        weights["logits/kernel"], legacy_reader.get_tensor("resnet_v1_50/logits/weights")[0, 0])
    # Trainable-only output leaves BatchNorm statistics at Keras' initial values.
    np.testing.assert_array_equal(weights["conv1_bn/moving_mean"], np.zeros(64, "float32"))
    np.testing.assert_array_equal(weights["conv1_bn/moving_variance"], np.ones(64, "float32"))


def test_model_state_carries_batch_norm_statistics_and_verifies(entry, legacy_prefix,
                                                                legacy_reader,
                                                                model_state_conversion):
    output, report = model_state_conversion

    assert report.written_weights == 267
    assert len(_saved_weight_keys(output)) == 267
    weights, model = _restored_model(entry, output)
    legacy_moving_mean = legacy_reader.get_tensor(
        "resnet_v1_50/block2/unit_4/bottleneck_v1/conv3/BatchNorm/moving_mean")
    # The builder's low decay moves the statistics well away from 0/1.
    assert np.abs(legacy_moving_mean).mean() > 0.1
    np.testing.assert_array_equal(weights["block2_unit_4_conv3_bn/moving_mean"],
                                  legacy_moving_mean)

    result = migrate.verify(legacy_prefix, model, **entry.verify)
    assert result.tolerance == pytest.approx(1e-4)
    assert result.passed, result.summary()
    assert result.max_rel_diff < 1e-4
    assert result.shape == (2, 10)


def test_without_batch_norm_statistics_logits_are_far_off(entry, legacy_prefix,
                                                          trainable_conversion):
    output, _ = trainable_conversion
    _, model = _restored_model(entry, output)

    result = migrate.verify(legacy_prefix, model, **entry.verify)

    assert not result.passed
    assert result.max_rel_diff > 0.05


@pytest.mark.parametrize("original, broken, offender, kind", [
    (r"target = '\1_\2_\3/kernel'", r"target = '\1_\2_\3_conv/kernel'",
     "block1_unit_1_conv1_conv/kernel", "no such target"),
    ('transform = ["squeeze(0, 1)"]', "", "resnet_v1_50/logits/weights", "shape mismatch"),
], ids=["renamed_target", "missing_squeeze"])
def test_broken_table_fails_at_plan_naming_the_offender(entry, legacy_prefix, tmp_path,
                                                        original, broken, offender, kind):
    with open(entry.table_path, encoding="utf-8") as file:
        text = file.read()
    assert original in text
    table = migrate.MappingTable.from_text(text.replace(original, broken))
    output = str(tmp_path / "converted")

    with pytest.raises(migrate.PlanError) as raised:
        migrate.convert(legacy_prefix, table, entry.build_model(), output)

    assert offender in str(raised.value)
    assert kind in {problem.kind for problem in raised.value.problems}
    assert not os.path.exists(output)
