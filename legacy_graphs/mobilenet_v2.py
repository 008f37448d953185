"""tf-slim's MobileNetV2 (tensorflow/models research/slim `nets/mobilenet`), 1001 classes.

tf-slim's pip package has no MobileNet, so this module rebuilds the authors'
`mobilenet_v2.mobilenet` with their own building blocks' semantics and scope
names: `V2_DEF`'s spec (a stride-2 `Conv`, seventeen `expanded_conv` blocks of
`expand` / `depthwise` / `project` with batch norm, the 1x1 `Conv_1`), the
depth multiplier's `_make_divisible` rounding (`min_depth` 8, divisible by 8),
`finegrain_classification_mode` (the last convolution keeps 1280 channels
below a multiplier of 1, as the published `mobilenet_v2_035` does), 'SAME'
padding, relu6, residuals where stride and depth allow, and the head
`Logits/Conv2d_1c_1x1` over an average pool with 1001 classes (class 0 is
"background"). The variables are those of the published checkpoints:
`MobilenetV2/Conv/weights`, `MobilenetV2/expanded_conv_3/depthwise/
depthwise_weights`, `.../project/BatchNorm/moving_mean`,
`MobilenetV2/Logits/Conv2d_1c_1x1/biases`.
"""

from legacy_graphs import compat
from legacy_graphs import training

NAME = "mobilenet_v2"
INPUT_TENSOR = "inputs:0"
OUTPUT_TENSOR = "logits:0"
# Small so the test is cheap; 32 is the smallest input keras.applications takes.
INPUT_SHAPE = (32, 32, 3)
INPUT_DTYPE = "float32"
INPUT_MAX = None
NUM_CLASSES = 1001
DEPTH_MULTIPLIER = 0.35

BATCH_SIZE = 2
LEARNING_RATE = 0.01
MOMENTUM = 0.9
# mobilenet.training_scope's defaults.
WEIGHT_DECAY = 0.00004
STDDEV = 0.09
DROPOUT_KEEP_PROB = 0.8
BN_DECAY = 0.997

# V2_DEF's spec: (op, stride, num_outputs), with `expanded_conv`'s expansion
# factor (the first block does not expand).
_CONV, _EXPANDED = "conv", "expanded_conv"
_SPEC = (
    (_CONV, 2, 32, None),
    (_EXPANDED, 1, 16, 1),
    (_EXPANDED, 2, 24, 6), (_EXPANDED, 1, 24, 6),
    (_EXPANDED, 2, 32, 6), (_EXPANDED, 1, 32, 6), (_EXPANDED, 1, 32, 6),
    (_EXPANDED, 2, 64, 6), (_EXPANDED, 1, 64, 6), (_EXPANDED, 1, 64, 6), (_EXPANDED, 1, 64, 6),
    (_EXPANDED, 1, 96, 6), (_EXPANDED, 1, 96, 6), (_EXPANDED, 1, 96, 6),
    (_EXPANDED, 2, 160, 6), (_EXPANDED, 1, 160, 6), (_EXPANDED, 1, 160, 6),
    (_EXPANDED, 1, 320, 6),
    (_CONV, 1, 1280, None),
)


def make_divisible(value, divisor, min_value=None):
    """slim's `_make_divisible`: round to a multiple of `divisor`, never down by more than 10%."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def define_graph(depth_multiplier=DEPTH_MULTIPLIER):
    """Builds the inference graph in the current default graph.

    Batch norm uses its moving statistics and dropout is off unless the
    `is_training` placeholder (default False) is fed True.

    Returns:
        `(inputs, logits)`: the `[None, 32, 32, 3]` image placeholder and the
        `[None, 1001]` logits.
    """
    tf = compat.import_tf_v1()
    slim = compat.import_tf_slim()

    inputs = tf.placeholder(tf.float32, (None, *INPUT_SHAPE), name="inputs")
    is_training = tf.placeholder_with_default(False, [], name="is_training")
    batch_norm = {"center": True, "scale": True, "decay": BN_DECAY, "is_training": is_training}
    with slim.arg_scope([slim.conv2d, slim.separable_conv2d],
                        weights_initializer=tf.truncated_normal_initializer(stddev=STDDEV),
                        normalizer_fn=slim.batch_norm, activation_fn=tf.nn.relu6,
                        padding="SAME"), \
            slim.arg_scope([slim.batch_norm], **batch_norm), \
            slim.arg_scope([slim.conv2d], weights_regularizer=slim.l2_regularizer(WEIGHT_DECAY)), \
            slim.arg_scope([slim.separable_conv2d], weights_regularizer=None):
        with tf.variable_scope("MobilenetV2") as scope, tf.name_scope(scope.original_name_scope):
            net = tf.identity(inputs, "input")
            for index, (op, stride, outputs, expansion) in enumerate(_SPEC):
                if index == len(_SPEC) - 1 and depth_multiplier < 1:
                    outputs = outputs / depth_multiplier  # finegrain_classification_mode
                outputs = make_divisible(outputs * depth_multiplier, 8, 8)
                if op == _CONV:
                    kernel = [3, 3] if index == 0 else [1, 1]
                    net = slim.conv2d(net, outputs, kernel, stride=stride)
                else:
                    net = _expanded_conv(tf, slim, net, outputs, stride, expansion)
            net = tf.identity(net, name="embedding")
            with tf.variable_scope("Logits"):
                size = net.get_shape().as_list()[1:3]
                net = tf.nn.avg_pool(net, ksize=[1, *size, 1], strides=[1, 1, 1, 1],
                                     padding="VALID")
                net = slim.dropout(net, keep_prob=DROPOUT_KEEP_PROB, is_training=is_training,
                                   scope="Dropout")
                net = slim.conv2d(net, NUM_CLASSES, [1, 1], activation_fn=None,
                                  normalizer_fn=None, biases_initializer=tf.zeros_initializer(),
                                  scope="Conv2d_1c_1x1")
                net = tf.identity(tf.squeeze(net, [1, 2]), name="output")
            slim.softmax(net, scope="Predictions")
    logits = tf.identity(net, name="logits")
    return inputs, logits


def _expanded_conv(tf, slim, inputs, outputs, stride, expansion):
    """`conv_blocks.expanded_conv`: expand (1x1) -> depthwise (3x3) -> project (1x1), residual."""
    with tf.variable_scope(None, default_name="expanded_conv") as scope, \
            tf.name_scope(scope.original_name_scope):
        inputs = tf.identity(inputs, "input")
        depth = inputs.get_shape().as_list()[3]
        inner = make_divisible(depth * expansion, 1 if expansion == 1 else 8)
        net = inputs
        if inner > depth:
            net = slim.conv2d(net, inner, [1, 1], stride=1, scope="expand")
            net = tf.identity(net, "expansion_output")
        net = slim.separable_conv2d(net, None, [3, 3], depth_multiplier=1, stride=stride,
                                    scope="depthwise")
        net = tf.identity(net, name="depthwise_output")
        net = slim.conv2d(net, outputs, [1, 1], stride=1, activation_fn=tf.identity,
                          scope="project")
        if stride == 1 and net.get_shape().as_list()[3] == depth:
            net += inputs
        return tf.identity(net, name="output")


def keras_model():
    """Returns the Keras model this checkpoint ports into, as a user builds it: built.

    `keras.applications.MobileNetV2` of the same size (`alpha` is the depth
    multiplier) with 1000 classes, scoring logits (no softmax), so that they
    compare with the legacy logits without the background class. Keras 3,
    so call it in a process without `TF_USE_LEGACY_KERAS`
    (`--model=legacy_graphs.mobilenet_v2:keras_model`).
    """
    import keras  # pylint: disable=g-import-not-at-top

    return keras.applications.MobileNetV2(
        weights=None, input_shape=INPUT_SHAPE, alpha=DEPTH_MULTIPLIER, classes=1000,
        classifier_activation=None)


def write_checkpoint(output_dir, *, steps=2, seed=0):
    """Trains MobileNetV2 a few momentum steps on seeded random images and saves it.

    Args:
        output_dir: directory that receives `model.ckpt-<steps>.*`.
        steps: number of training steps (each moves the batch norm statistics).
        seed: graph and data random seed.

    Returns:
        The checkpoint prefix.
    """
    return training.train_image_classifier(
        output_dir, define_graph, input_shape=INPUT_SHAPE, num_classes=NUM_CLASSES,
        batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE, momentum=MOMENTUM, steps=steps,
        seed=seed)
