"""A small tf.compat.v1.layers convnet with batch norm, trained with Momentum and an EMA.

Small enough for unit tests: conv -> batch norm -> relu -> max pool -> dense.
"""

from legacy_graphs import compat
from legacy_graphs import training

NAME = "small_convnet"
INPUT_TENSOR = "images:0"
OUTPUT_TENSOR = "logits/BiasAdd:0"
INPUT_SHAPE = (8, 8, 3)
INPUT_DTYPE = "float32"
INPUT_MAX = None
NUM_CLASSES = 5


def define_graph(is_training=None):
    """Builds the inference graph in the current default graph; returns (images, logits)."""
    tf = compat.import_tf_v1()
    if is_training is None:
        is_training = tf.placeholder_with_default(False, [], name="is_training")
    images = tf.placeholder(tf.float32, [None, *INPUT_SHAPE], name="images")
    net = tf.layers.conv2d(images, 4, 3, padding="same", use_bias=False, name="conv")
    # momentum 0.5 so a few steps move the statistics far from 0 and 1.
    net = tf.layers.batch_normalization(net, momentum=0.5, training=is_training, name="bn")
    net = tf.nn.relu(net)
    net = tf.layers.max_pooling2d(net, 2, 2, name="pool")
    net = tf.layers.flatten(net, name="flatten")
    logits = tf.layers.dense(net, NUM_CLASSES, name="logits")
    return images, logits


def write_checkpoint(output_dir, *, steps=3, seed=0, moving_average_decay=0.9):
    """Trains a few Momentum steps (with an EMA of the weights) and saves with a .meta."""
    tf = compat.import_tf_v1()

    def build():
        is_training = tf.placeholder_with_default(False, [], name="is_training")
        images, logits = define_graph(is_training)
        labels = tf.placeholder(tf.int32, [None], name="labels")
        loss = tf.losses.sparse_softmax_cross_entropy(labels, logits)

        def make_feed(rng):
            return {images: rng.standard_normal((4, *INPUT_SHAPE)).astype("float32") * 2 + 1,
                    labels: rng.integers(0, NUM_CLASSES, 4), is_training: True}
        return loss, make_feed

    return training.train_and_save(
        output_dir=output_dir, build=build, steps=steps, seed=seed,
        optimizer=lambda: tf.train.MomentumOptimizer(0.1, 0.9),
        moving_average_decay=moving_average_decay)
