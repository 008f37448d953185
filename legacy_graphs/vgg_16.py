"""tf-slim's VGG-16 (`tf_slim.nets.vgg.vgg_16`) on 224x224 images, trained a step with momentum."""

import legacy_graphs
from legacy_graphs import compat
from legacy_graphs import training

NAME = "vgg_16"
INPUT_TENSOR = "inputs:0"
OUTPUT_TENSOR = "logits:0"
# fc6 is a 7x7 VALID convolution: only 224x224 inputs leave it a 1x1 map,
# which is what makes it a Dense layer after Flatten.
INPUT_SHAPE = (224, 224, 3)
INPUT_DTYPE = "float32"
INPUT_MAX = None

# Presets of the number of classes. fc6 and fc7 (about 120M parameters) stay
# whatever the preset; "imagenet" is the benchmark's ~1.1 GB checkpoint.
CONFIGS = {"imagenet": 1000, "tiny": 10}
DEFAULT_CONFIG = "imagenet"

BATCH_SIZE = 1
# tf-slim train_image_classifier.py default; large enough that one step moves
# the biases away from their zero start.
LEARNING_RATE = 0.01
MOMENTUM = 0.9


def num_classes_for(config=DEFAULT_CONFIG):
    """Returns the number of classes of the preset `config`.

    Args:
        config: a preset name from `CONFIGS`.

    Returns:
        The number of classes (the size of fc8).

    Raises:
        ValueError: `config` names no preset.
    """
    return legacy_graphs.preset(NAME, CONFIGS, config)


def define_graph(config=DEFAULT_CONFIG):
    """Builds the inference graph in the current default graph.

    The variables are named as in tf-slim's VGG-16 checkpoint
    (`vgg_16/conv1/conv1_1/weights`, ..., `vgg_16/fc8/biases`). Dropout runs
    only when the `is_training` placeholder (default False) is fed True.

    Args:
        config: a preset name from `CONFIGS`.

    Returns:
        `(inputs, logits)`: the `[None, 224, 224, 3]` image placeholder and the
        `[None, num_classes]` logits.
    """
    tf = compat.import_tf_v1()
    slim = compat.import_tf_slim()
    from tf_slim.nets import vgg  # pylint: disable=g-import-not-at-top

    inputs = tf.placeholder(tf.float32, (None, *INPUT_SHAPE), name="inputs")
    is_training = tf.placeholder_with_default(False, [], name="is_training")
    with slim.arg_scope(vgg.vgg_arg_scope()):
        net, _ = vgg.vgg_16(inputs, num_classes=num_classes_for(config),
                            is_training=is_training)
    logits = tf.identity(net, name="logits")
    return inputs, logits


def write_checkpoint(output_dir, *, steps=1, seed=0, config=DEFAULT_CONFIG):
    """Trains VGG-16 with momentum on seeded random images and saves it.

    Args:
        output_dir: directory that receives `model.ckpt-<steps>.*`.
        steps: number of training steps (each is a batch of one image).
        seed: graph and data random seed.
        config: a preset name from `CONFIGS`: "imagenet" (1000 classes) or
            "tiny" (10 classes).

    Returns:
        The checkpoint prefix.
    """
    return training.train_image_classifier(
        output_dir, lambda: define_graph(config), input_shape=INPUT_SHAPE,
        num_classes=num_classes_for(config), batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE, momentum=MOMENTUM, steps=steps, seed=seed,
        tf1_control_flow=False)
