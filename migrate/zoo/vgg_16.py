"""tf-slim VGG-16 into keras.applications.VGG16 (logits, 224x224 inputs).

tf-slim writes the classifier as convolutions: fc6 a 7x7 VALID conv
`[7, 7, 512, 4096]`, fc7 and fc8 1x1 convs. On 224x224 inputs fc6 sees a
7x7 map, so it equals Keras' `fc1` Dense after a channels-last `Flatten`
with its kernel reshaped in C order to `[25088, 4096]`; fc7 and fc8 drop
their 1x1 axes. Weight paths: `block<B>_conv<C>/{kernel,bias}`,
`fc1`, `fc2`, `predictions`.
"""

import keras

from legacy_graphs import vgg_16 as legacy_vgg_16


def build_model(config=legacy_vgg_16.DEFAULT_CONFIG):
    """Returns a built `keras.applications.VGG16` that outputs logits.

    Args:
        config: a `legacy_graphs.vgg_16` preset: "imagenet" (1000 classes)
            or "tiny" (10 classes).

    Returns:
        The Keras model, with random weights.

    Raises:
        ValueError: `config` names no preset.
    """
    return keras.applications.VGG16(
        weights=None, classes=legacy_vgg_16.num_classes_for(config),
        classifier_activation=None)


def build_tiny_model():
    """Returns the built 10-class VGG16, for `--model=migrate.zoo.vgg_16:build_tiny_model`."""
    return build_model("tiny")
