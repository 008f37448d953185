"""Small tf.layers convnet with batch norm (Momentum + EMA): the quick end-to-end example."""

import keras

from legacy_graphs import small_convnet as legacy


def build_model():
    """Returns the Keras 3 twin of `legacy_graphs.small_convnet`, built."""
    inputs = keras.Input(legacy.INPUT_SHAPE, name="images")
    net = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inputs)
    # tf.layers.batch_normalization's epsilon is 1e-3, as Keras's default.
    net = keras.layers.BatchNormalization(epsilon=1e-3, name="bn")(net)
    net = keras.layers.ReLU(name="relu")(net)
    net = keras.layers.MaxPooling2D(2, 2, name="pool")(net)
    net = keras.layers.Flatten(name="flatten")(net)
    logits = keras.layers.Dense(legacy.NUM_CLASSES, name="logits")(net)
    return keras.Model(inputs, logits, name="small_convnet")


def build_tf_keras_model():
    """Returns the same network in tf_keras (Keras 2), built: a Keras 2 target.

    tf_keras names weights `conv/kernel:0`; tables target them without `:0`,
    so the Keras 3 table serves both.
    """
    import tf_keras

    inputs = tf_keras.Input(legacy.INPUT_SHAPE, name="images")
    net = tf_keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inputs)
    net = tf_keras.layers.BatchNormalization(epsilon=1e-3, name="bn")(net)
    net = tf_keras.layers.ReLU(name="relu")(net)
    net = tf_keras.layers.MaxPooling2D(2, 2, name="pool")(net)
    net = tf_keras.layers.Flatten(name="flatten")(net)
    logits = tf_keras.layers.Dense(legacy.NUM_CLASSES, name="logits")(net)
    return tf_keras.Model(inputs, logits, name="small_convnet")
