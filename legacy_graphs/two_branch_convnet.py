"""Two parallel same-shape convolution branches, concatenated: the case only values can settle."""

from legacy_graphs import compat
from legacy_graphs import training

NAME = "two_branch_convnet"
INPUT_TENSOR = "images:0"
OUTPUT_TENSOR = "logits/BiasAdd:0"
INPUT_SHAPE = (6, 6, 3)
INPUT_DTYPE = "float32"
INPUT_MAX = None
NUM_CLASSES = 4
BRANCH_FILTERS = 5


def define_graph():
    """Builds `images -> [branch_a, branch_b] (3x3 convs, same shape) -> concat -> dense`.

    The two branches have kernels of the same shape and run in parallel, so
    neither shape nor the graph's order says which Keras convolution is which;
    the concat order (a, then b) is what makes them different.

    Returns:
        `(images, logits)`.
    """
    tf = compat.import_tf_v1()
    tf.placeholder_with_default(False, [], name="is_training")
    images = tf.placeholder(tf.float32, [None, *INPUT_SHAPE], name="images")
    branch_a = tf.layers.conv2d(images, BRANCH_FILTERS, 3, padding="same", name="branch_a")
    branch_b = tf.layers.conv2d(images, BRANCH_FILTERS, 3, padding="same", name="branch_b")
    net = tf.concat([tf.nn.relu(branch_a), tf.nn.relu(branch_b)], axis=-1)
    net = tf.layers.flatten(net, name="flatten")
    logits = tf.layers.dense(net, NUM_CLASSES, name="logits")
    return images, logits


def write_checkpoint(output_dir, *, steps=2, seed=0):
    """Trains a few Momentum steps on seeded random images and saves with a .meta."""
    tf = compat.import_tf_v1()
    return training.train_and_save(
        output_dir=output_dir,
        build=training.image_classifier(define_graph, input_shape=INPUT_SHAPE,
                                        num_classes=NUM_CLASSES, batch_size=4),
        optimizer=lambda: tf.train.MomentumOptimizer(0.1, 0.9),
        steps=steps, seed=seed)
