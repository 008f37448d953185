"""The ResNet-v1-50 zoo model and its table, checked against tf-slim's layout without TF1."""

import re
import tomllib

import keras
import numpy as np
import pytest

import migrate.zoo
from legacy_graphs import resnet_v1_50 as legacy
from migrate.zoo import resnet_v1_50 as zoo

MOVING_STATISTICS = ("moving_mean", "moving_variance")


def _slim_variables(num_classes):
    """Returns `{name: shape}` of every variable tf-slim's resnet_v1_50 creates.

    Written out from `tf_slim/nets/resnet_v1.py` independently of the zoo
    module, so a slip in either shows up as a mismatch.
    """
    variables = {}

    def convolution(scope, shape):
        variables[f"resnet_v1_50/{scope}/weights"] = shape
        for parameter in ("beta", "gamma", *MOVING_STATISTICS):
            variables[f"resnet_v1_50/{scope}/BatchNorm/{parameter}"] = (shape[-1],)

    convolution("conv1", (7, 7, 3, 64))
    depth_in = 64
    for block, base_depth, num_units in ((1, 64, 3), (2, 128, 4), (3, 256, 6), (4, 512, 3)):
        depth = 4 * base_depth
        for unit in range(1, num_units + 1):
            scope = f"block{block}/unit_{unit}/bottleneck_v1"
            if depth_in != depth:
                convolution(f"{scope}/shortcut", (1, 1, depth_in, depth))
            convolution(f"{scope}/conv1", (1, 1, depth_in, base_depth))
            convolution(f"{scope}/conv2", (3, 3, base_depth, base_depth))
            convolution(f"{scope}/conv3", (1, 1, base_depth, depth))
            depth_in = depth
    variables["resnet_v1_50/logits/weights"] = (1, 1, 2048, num_classes)
    variables["resnet_v1_50/logits/biases"] = (num_classes,)
    return variables


def _apply_table(names):
    """Maps TF1 names through the zoo table: first full match wins, as the core does."""
    with open(migrate.zoo.table_path("resnet_v1_50"), "rb") as file:
        rules = tomllib.load(file)["rule"]
    mapped = {}
    rule_uses = [0] * len(rules)
    for name in names:
        for index, rule in enumerate(rules):
            match = re.fullmatch(rule["match"], name)
            if match is not None:
                rule_uses[index] += 1
                mapped[name] = (match.expand(rule["target"]), rule.get("transform", []))
                break
    return mapped, rule_uses


def _transformed_shape(shape, transforms):
    # The table only squeezes the logits' 1x1 spatial axes; anything else
    # here would mean the table changed and this test must learn about it.
    for transform in transforms:
        assert transform == "squeeze(0, 1)", transform
        shape = np.zeros(shape).squeeze((0, 1)).shape
    return tuple(shape)


@pytest.fixture(scope="module")
def model():
    return zoo.build_model()


def test_defaults_match_the_legacy_builder(model):
    assert tuple(model.input.shape) == (None, *legacy.INPUT_SHAPE)
    assert tuple(model.output.shape) == (None, legacy.NUM_CLASSES)
    assert model.name == "resnet_v1_50"


def test_trainable_weights_are_slim_weights_renamed(model):
    slim = _slim_variables(legacy.NUM_CLASSES)
    slim_trainable = {name: shape for name, shape in slim.items()
                      if not name.endswith(MOVING_STATISTICS)}
    assert len(slim_trainable) == 161
    weights = {weight.path: tuple(weight.shape) for weight in model.trainable_weights}
    assert len(weights) == 161
    assert weights["conv1/kernel"] == (7, 7, 3, 64)
    assert weights["conv1_bn/gamma"] == (64,)
    assert weights["block1_unit_1_shortcut/kernel"] == (1, 1, 64, 256)
    assert weights["block3_unit_6_conv2/kernel"] == (3, 3, 256, 256)
    assert weights["block4_unit_3_conv3_bn/beta"] == (2048,)
    assert weights["logits/kernel"] == (2048, 10)
    assert weights["logits/bias"] == (10,)
    kernels = [path for path in weights if path.endswith("/kernel")]
    assert len(kernels) == 54  # 53 convolutions without a bias, and the logits.
    assert [path for path in weights if path.endswith("/bias")] == ["logits/bias"]


def test_non_trainable_weights_are_the_batch_norm_statistics(model):
    paths = [weight.path for weight in model.non_trainable_weights]
    assert len(paths) == 106
    assert all(path.endswith(MOVING_STATISTICS) for path in paths)
    assert all(layer.epsilon == 1e-5 for layer in model.layers
               if isinstance(layer, keras.layers.BatchNormalization))


def test_table_maps_every_slim_variable_onto_exactly_one_weight(model):
    slim = _slim_variables(legacy.NUM_CLASSES)
    mapped, rule_uses = _apply_table(slim)
    assert sorted(set(slim) - set(mapped)) == []
    assert rule_uses == [1, 4, 52, 208, 1, 1]
    weights = {weight.path: tuple(weight.shape) for weight in model.weights}
    targets = [target for target, _ in mapped.values()]
    assert len(targets) == len(set(targets)) == 267
    assert set(targets) == set(weights)
    for name, (target, transforms) in mapped.items():
        assert _transformed_shape(slim[name], transforms) == weights[target], name
    trainable = {weight.path for weight in model.trainable_weights}
    assert {mapped[name][0] for name in slim if not name.endswith(MOVING_STATISTICS)} == trainable


def test_blocks_stride_in_their_last_unit_like_slim(model):
    def spatial(layer_name):
        return tuple(model.get_layer(layer_name).output.shape[1:3])

    assert spatial("conv1") == (32, 32)
    assert spatial("pool1") == (16, 16)
    assert spatial("block1_unit_2_conv2") == (16, 16)
    assert spatial("block1_unit_3_conv2") == (8, 8)
    assert spatial("block1_unit_3_shortcut") == (8, 8)
    assert isinstance(model.get_layer("block1_unit_3_shortcut"), keras.layers.MaxPooling2D)
    assert spatial("block2_unit_4_relu") == (4, 4)
    assert spatial("block3_unit_6_relu") == (2, 2)
    assert spatial("block4_unit_3_relu") == (2, 2)
    assert model.get_layer("block1_unit_3_conv2_pad").padding == ((1, 1), (1, 1))
    assert model.get_layer("conv1_pad").padding == ((3, 3), (3, 3))


def test_strided_conv_is_slim_conv2d_same(model):
    # resnet_utils.conv2d_same documents its contract: a stride-2 conv equals
    # the stride-1 SAME conv subsampled by 2. Keras "same" at stride 2 does not.
    unit_input = model.get_layer("block1_unit_3_conv1_relu").output
    strided = keras.Model(unit_input, model.get_layer("block1_unit_3_conv2").output)
    kernel = model.get_layer("block1_unit_3_conv2").kernel
    images = np.random.default_rng(0).standard_normal((2, 16, 16, 64)).astype("float32")

    got = np.asarray(strided(images))
    expected = np.asarray(keras.ops.conv(images, kernel, strides=1, padding="same"))[:, ::2, ::2]
    keras_same = np.asarray(keras.ops.conv(images, kernel, strides=2, padding="same"))

    assert got.shape == (2, 8, 8, 64)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert np.abs(keras_same - expected).max() > 0.1


def test_forward_pass_gives_finite_logits(model):
    images = np.random.default_rng(0).standard_normal((2, *legacy.INPUT_SHAPE)).astype("float32")
    logits = np.asarray(model(images, training=False))
    assert logits.shape == (2, 10)
    assert np.isfinite(logits).all()
