"""tf-slim ResNet-v1-50 (`tf_slim.nets.resnet_v1`) as an exact Keras 3 functional model."""

import keras

# Measured on float32 CPU over seeds 0-4: logits agree within 1.6e-6 to 3e-6
# (max |difference| / max |logit|). 1e-4 leaves room for other machines'
# oneDNN kernels, whose summation order differs across 53 convolutions.
TOLERANCE = 1e-4

# (scope, bottleneck depth, number of units, stride of the block's last unit)
BLOCKS = (
    ("block1", 64, 3, 2),
    ("block2", 128, 4, 2),
    ("block3", 256, 6, 2),
    ("block4", 512, 3, 1),
)
ROOT_DEPTH = 64
BOTTLENECK_EXPANSION = 4
# resnet_utils.resnet_arg_scope's defaults; epsilon changes inference, the
# momentum only matters when the model is trained further.
BATCH_NORM_EPSILON = 1e-5
BATCH_NORM_MOMENTUM = 0.997


def build_model(num_classes=10, input_shape=(64, 64, 3)):
    """Builds tf-slim's `resnet_v1_50(inputs, num_classes)` in Keras 3.

    This is not `keras.applications.ResNet50`: tf-slim strides the last unit
    of a block (in its 3x3 conv), pads strided convolutions explicitly
    (`resnet_utils.conv2d_same`), subsamples an identity shortcut with a 1x1
    max pool, and computes the logits with a 1x1 convolution after global
    average pooling (here a Dense layer: the same matrix). Layers are named
    after the slim scopes, so the mapping table is a few regular expressions:

        resnet_v1_50/conv1/weights                   -> conv1/kernel
        resnet_v1_50/conv1/BatchNorm/moving_mean     -> conv1_bn/moving_mean
        resnet_v1_50/block1/unit_1/bottleneck_v1/shortcut/weights
                                                     -> block1_unit_1_shortcut/kernel
        resnet_v1_50/block3/unit_6/bottleneck_v1/conv2/BatchNorm/gamma
                                                     -> block3_unit_6_conv2_bn/gamma
        resnet_v1_50/logits/weights [1, 1, 2048, N]  -> logits/kernel [2048, N]

    Args:
        num_classes: number of logits; the legacy builder uses 10.
        input_shape: image shape without the batch dimension, channels last.

    Returns:
        A built `keras.Model` named `resnet_v1_50` mapping `[N, *input_shape]`
        images to `[N, num_classes]` logits.

    Raises:
        ValueError: `input_shape` is not `(height, width, channels)`.
    """
    if len(input_shape) != 3:
        raise ValueError(
            "Expected input_shape to be (height, width, channels). "
            f"Received: input_shape={input_shape!r}")
    inputs = keras.Input(shape=tuple(input_shape), name="inputs")
    net = _conv2d_same(inputs, ROOT_DEPTH, 7, stride=2, name="conv1")
    net = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(net)
    for scope, depth_bottleneck, num_units, stride in BLOCKS:
        for unit in range(1, num_units + 1):
            net = _bottleneck(
                net,
                depth=depth_bottleneck * BOTTLENECK_EXPANSION,
                depth_bottleneck=depth_bottleneck,
                stride=stride if unit == num_units else 1,
                name=f"{scope}_unit_{unit}")
    net = keras.layers.GlobalAveragePooling2D(name="pool5")(net)
    logits = keras.layers.Dense(num_classes, name="logits")(net)
    return keras.Model(inputs, logits, name="resnet_v1_50")


def _bottleneck(inputs, *, depth, depth_bottleneck, stride, name):
    # resnet_v1.bottleneck: the shortcut is a projection only when the depth
    # changes; otherwise the input itself, subsampled when the unit strides.
    if inputs.shape[-1] == depth:
        shortcut = inputs
        if stride > 1:
            shortcut = keras.layers.MaxPooling2D(
                1, strides=stride, padding="same", name=f"{name}_shortcut")(inputs)
    else:
        shortcut = _conv2d_same(inputs, depth, 1, stride=stride, name=f"{name}_shortcut",
                                activation=False)
    residual = _conv2d_same(inputs, depth_bottleneck, 1, stride=1, name=f"{name}_conv1")
    residual = _conv2d_same(residual, depth_bottleneck, 3, stride=stride, name=f"{name}_conv2")
    residual = _conv2d_same(residual, depth, 1, stride=1, name=f"{name}_conv3",
                            activation=False)
    net = keras.layers.Add(name=f"{name}_add")([shortcut, residual])
    return keras.layers.ReLU(name=f"{name}_relu")(net)


def _conv2d_same(inputs, filters, kernel_size, *, stride, name, activation=True):
    # resnet_utils.conv2d_same: a strided convolution pads (k - 1) // 2 zeros
    # before and the rest after, then convolves VALID. "same" at stride 2 on
    # an even input pads one less zero before, shifting every output pixel.
    # At stride 1, and for the 1x1 projection shortcut, "same" is exact.
    padding = "same"
    pad_total = kernel_size - 1
    if stride > 1:
        padding = "valid"
        if pad_total > 0:
            pad_begin = pad_total // 2
            pad_end = pad_total - pad_begin
            inputs = keras.layers.ZeroPadding2D(
                ((pad_begin, pad_end), (pad_begin, pad_end)), name=f"{name}_pad")(inputs)
    net = keras.layers.Conv2D(filters, kernel_size, strides=stride, padding=padding,
                              use_bias=False, name=name)(inputs)
    net = keras.layers.BatchNormalization(
        momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON, name=f"{name}_bn")(net)
    if activation:
        net = keras.layers.ReLU(name=f"{name}_relu")(net)
    return net
