"""`suggest` drafts what names alone miss: Keras 3 depthwise kernels, slim's 1001 classes,
and the target weights a model sets itself; verification compares logits without class 0."""

import numpy as np
import pytest

import migrate
from migrate.mapping import class_axis
from migrate.planning.target import TargetWeight
from migrate.suggest import align
from migrate.suggest import items
from migrate.source.checkpoint import SourceVariable
from migrate.source.roles import Role
from migrate.source.roles import RoleSource


def _variable(name, shape):
    return SourceVariable(name, tuple(shape), "float32", Role.TRAINABLE, RoleSource.NAME_RULE,
                          "stand-in")


def _target(path, shape):
    return TargetWeight(path, tuple(shape), "float32", True)


def _mobilenet_v2():
    import keras

    from legacy_graphs import mobilenet_v2

    # As a user builds it: the application, sized like the checkpoint, scoring logits.
    return keras.applications.MobileNetV2(
        weights=None, input_shape=mobilenet_v2.INPUT_SHAPE, alpha=mobilenet_v2.DEPTH_MULTIPLIER,
        classes=1000, classifier_activation=None)


def test_slim_mobilenet_v2_1001_classes_drafted_unaided_and_proven(legacy_checkpoint, tmp_path):
    from legacy_graphs import mobilenet_v2

    prefix = legacy_checkpoint("mobilenet_v2")
    draft = str(tmp_path / "draft.toml")
    settings = migrate.VerifySettings(input_tensors=(mobilenet_v2.INPUT_TENSOR,),
                                      output_tensor=mobilenet_v2.OUTPUT_TENSOR, tolerance=1e-5)
    options = migrate.ConversionOptions(keep="model_state")
    report = migrate.suggest(prefix, _mobilenet_v2, output=draft, options=options,
                             verify=settings)
    assert report.ok and report.dropped == [] and report.unfilled == [], report.summary()
    # Keras 3's DepthwiseConv2D calls its weight `kernel`: the layer's class says what it is.
    depthwise = report.table.lookup("MobilenetV2/expanded_conv_3/depthwise/depthwise_weights")
    assert depthwise.target == "block_3_depthwise/kernel"
    logits = report.table.lookup("MobilenetV2/Logits/Conv2d_1c_1x1/weights").rule
    assert [str(step) for step in logits.transforms] == ["squeeze(0, 1)", class_axis.SLICE]
    bias = report.table.lookup("MobilenetV2/Logits/Conv2d_1c_1x1/biases").rule
    assert [str(step) for step in bias.transforms] == [class_axis.SLICE]
    assert "background class 0" in report.text
    assert report.parity.squeezed.startswith("compared without the background class 0")
    converted = migrate.convert(prefix, draft, _mobilenet_v2, str(tmp_path / "converted"),
                                options=migrate.ConversionOptions(keep="model_state",
                                                                  verify=settings))
    assert converted.verified["passed"] and converted.verified["max_rel_diff"] <= 1e-5
    assert "background class 0" in converted.summary()


def test_a_keras_3_depthwise_kernel_has_the_depthwise_kind_by_its_layer_class():
    sources = items.source_items([_variable("net/depthwise/depthwise_weights", (3, 3, 8, 1)),
                                  _variable("net/conv/weights", (1, 1, 8, 16))], order=())
    weights = [_target("conv_dw_1/kernel", (3, 3, 8, 1)),
               _target("conv_pw_1/kernel", (1, 1, 8, 16))]
    classes = {"conv_dw_1/kernel": "DepthwiseConv2D", "conv_pw_1/kernel": "Conv2D"}
    targets = items.target_items(weights, lambda weight: True, classes)
    assert [(target.kind, target.layer_class) for target in targets] == [
        ("depthwise_kernel", "DepthwiseConv2D"), ("kernel", "Conv2D")]
    matches, unmatched_sources, unmatched_targets = align.align(sources, targets)
    assert sorted((match.source.name, match.target.name) for match in matches) == [
        ("net/conv/weights", "conv_pw_1/kernel"),
        ("net/depthwise/depthwise_weights", "conv_dw_1/kernel")]
    assert unmatched_sources == unmatched_targets == []


def test_layer_classes_name_the_innermost_layer_owning_each_weight():
    import keras

    from migrate.planning.target import weight_path

    inputs = keras.Input((8, 8, 4))
    hidden = keras.layers.DepthwiseConv2D(3, name="dw")(inputs)
    outputs = keras.layers.Dense(2, name="head")(keras.layers.Flatten()(hidden))
    model = keras.Model(inputs, outputs)
    classes = items.layer_classes(model, weight_path)
    assert classes["dw/kernel"] == "DepthwiseConv2D" and classes["head/bias"] == "Dense"


def test_1001_classes_fill_1000_with_the_slice_and_nothing_else_does():
    sources = items.source_items([_variable("logits/weights", (1, 1, 6, 1001)),
                                  _variable("logits/biases", (1001,)),
                                  _variable("other/gamma", (1001,))], order=())
    targets = items.target_items([_target("predictions/kernel", (6, 1000)),
                                  _target("predictions/bias", (1000,)),
                                  _target("bn/gamma", (1000,))], lambda weight: True)
    found = {(match.source.name, match.target.name): match.transforms
             for match in align.align(sources, targets)[0]}
    assert found == {("logits/weights", "predictions/kernel"): ("squeeze(0, 1)", class_axis.SLICE),
                     ("logits/biases", "predictions/bias"): (class_axis.SLICE,)}


@pytest.mark.parametrize("legacy_shape, keras_shape, compared", [
    ((2, 1001), (2, 1000), (2, 1000)), ((2, 1, 1, 1001), (2, 1000), (2, 1000)),
    ((2, 1001), (2, 999), None), ((3, 1001), (2, 1000), None), ((2, 1000), (2, 1000), None)])
def test_legacy_logits_are_compared_without_the_background_class(legacy_shape, keras_shape,
                                                                 compared):
    legacy = np.arange(np.prod(legacy_shape), dtype="float32").reshape(legacy_shape)
    kept, note = class_axis.without_background_class(legacy, np.zeros(keras_shape))
    if compared is None:
        assert note is None and kept.shape == legacy_shape
        return
    assert "background class 0" in note and f"legacy {list(legacy_shape)}" in note
    np.testing.assert_array_equal(kept.reshape(compared), legacy.reshape(compared[0], -1)[:, 1:])
