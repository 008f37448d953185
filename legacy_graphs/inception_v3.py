"""tf-slim's Inception-v3 (`tf_slim.nets.inception_v3`) on small images, trained with momentum."""

from legacy_graphs import compat
from legacy_graphs import training

NAME = "inception_v3"
INPUT_TENSOR = "inputs:0"
OUTPUT_TENSOR = "logits:0"
# The smallest input tf-slim's auxiliary head accepts (its 5x5 VALID pool needs
# a 5x5 Mixed_6e map). tf-slim shrinks its final average pool to the 2x2 map
# that is left, which is what Keras' global average pooling computes.
INPUT_SHAPE = (107, 107, 3)
INPUT_DTYPE = "float32"
INPUT_MAX = None
NUM_CLASSES = 5

BATCH_SIZE = 2
LEARNING_RATE = 0.01
MOMENTUM = 0.9


def define_graph():
    """Builds the inference graph in the current default graph.

    The variables are named as in tf-slim's Inception-v3 checkpoints
    (`InceptionV3/Conv2d_1a_3x3/weights`, `.../BatchNorm/beta`, the auxiliary
    head under `InceptionV3/AuxLogits`, `InceptionV3/Logits/Conv2d_1c_1x1`).
    Batch norm uses its moving statistics and dropout is off unless the
    `is_training` placeholder (default False) is fed True.

    Returns:
        `(inputs, logits)`: the `[None, 107, 107, 3]` image placeholder and the
        `[None, NUM_CLASSES]` logits.
    """
    tf = compat.import_tf_v1()
    slim = compat.import_tf_slim()
    from tf_slim.nets import inception_v3  # pylint: disable=g-import-not-at-top

    inputs = tf.placeholder(tf.float32, (None, *INPUT_SHAPE), name="inputs")
    is_training = tf.placeholder_with_default(False, [], name="is_training")
    with slim.arg_scope(inception_v3.inception_v3_arg_scope()):
        net, _ = inception_v3.inception_v3(inputs, num_classes=NUM_CLASSES,
                                           is_training=is_training)
    logits = tf.identity(net, name="logits")
    return inputs, logits


def write_checkpoint(output_dir, *, steps=2, seed=0):
    """Trains Inception-v3 a few momentum steps on seeded random images and saves it.

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
