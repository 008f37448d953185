"""tf-slim's ResNet-v1-50 (`tf_slim.nets.resnet_v1.resnet_v1_50`) on small images, trained briefly."""

import legacy_graphs
from legacy_graphs import compat
from legacy_graphs import training

NAME = "resnet_v1_50"
INPUT_TENSOR = "inputs:0"
OUTPUT_TENSOR = "logits:0"
INPUT_SHAPE = (64, 64, 3)
INPUT_DTYPE = "float32"
INPUT_MAX = None

NUM_CLASSES = 10
# Presets of the number of classes. "background" has 1001 logits, class 0 the
# background, as tf-slim's published Inception, ResNet-v2 and MobileNet
# ImageNet checkpoints have (its VGG and ResNet-v1 ones have 1000).
CONFIGS = {"small": NUM_CLASSES, "background": 1001}
DEFAULT_CONFIG = "small"
# A low decay lets a few training steps move the BatchNorm moving statistics
# far from their 0/1 initial values, so a conversion that loses them shows.
BATCH_NORM_DECAY = 0.5
BATCH_SIZE = 8
# The moving statistics trail the weights; at 0.01 the weights outran them
# and inference-mode logits reached 1e4. At 0.001 they stay near 20 on the
# training distribution, closer to a real checkpoint.
LEARNING_RATE = 0.001
MOMENTUM = 0.9


def num_classes_for(config=DEFAULT_CONFIG):
    """Returns the number of classes of the preset `config`.

    Raises:
        ValueError: `config` names no preset.
    """
    return legacy_graphs.preset(NAME, CONFIGS, config)


def define_graph(config=DEFAULT_CONFIG):
    """Builds the inference graph in the current default graph.

    The variables are named as in a tf-slim ResNet-v1-50 checkpoint
    (`resnet_v1_50/block1/unit_1/bottleneck_v1/conv1/weights`, ...).
    `is_training` is a placeholder that defaults to False, so feeding only
    the images runs BatchNorm on its moving statistics.

    Args:
        config: a preset name from `CONFIGS`.

    Returns:
        `(inputs, logits)`: the `[None, 64, 64, 3]` image placeholder and the
        `[None, num_classes]` logits, spatially squeezed.
    """
    tf = compat.import_tf_v1()
    slim = compat.import_tf_slim()
    # Importable only once compat has aliased tf-keras' legacy layers.
    from tf_slim.nets import resnet_v1

    inputs = tf.placeholder(tf.float32, (None, *INPUT_SHAPE), name="inputs")
    is_training = tf.placeholder_with_default(False, [], name="is_training")
    arg_scope = resnet_v1.resnet_arg_scope(batch_norm_decay=BATCH_NORM_DECAY,
                                           batch_norm_scale=True)
    with slim.arg_scope(arg_scope):
        # tf-slim 1.1.0's resnet_v1_50 has no spatial_squeeze: its logits
        # are [N, 1, 1, NUM_CLASSES].
        net, _ = resnet_v1.resnet_v1_50(inputs, num_classes=num_classes_for(config),
                                        is_training=is_training)
    logits = tf.squeeze(net, [1, 2], name="logits")
    return inputs, logits


def write_checkpoint(output_dir, *, steps=6, seed=0, config=DEFAULT_CONFIG):
    """Trains ResNet-v1-50 with momentum on seeded random images and saves it.

    Args:
        output_dir: directory that receives `model.ckpt-<steps>.*`.
        steps: number of training steps; after 6 at decay 0.5 the 0/1 start
            weighs under 2% in the moving statistics.
        seed: graph and data random seed.
        config: a preset name from `CONFIGS`.

    Returns:
        The checkpoint prefix.
    """
    return training.train_image_classifier(
        output_dir, lambda: define_graph(config), input_shape=INPUT_SHAPE,
        num_classes=num_classes_for(config), batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE, momentum=MOMENTUM, steps=steps, seed=seed)

