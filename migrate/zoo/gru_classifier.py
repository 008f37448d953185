"""GRU sequence classifier: Keras GRU(reset_after=False), last step, Dense logits."""

import keras

from legacy_graphs import gru_classifier as legacy


def build_model():
    """Returns the built Keras 3 twin of `legacy_graphs.gru_classifier`.

    Layer names fix the weight paths the table targets:
    `gru/gru_cell/{kernel,recurrent_kernel,bias}` and `output/{kernel,bias}`.
    The GRU uses `reset_after=False`: TF1's GRUCell applies the reset gate
    before the recurrent matrix product, which Keras' default
    (`reset_after=True`) does not.

    Returns:
        A `keras.Model` from float32 features [batch, time, features] to logits
        [batch, classes].
    """
    features = keras.Input(shape=(None, legacy.FEATURES), name="features")
    last_output = keras.layers.GRU(legacy.UNITS, reset_after=False, name="gru")(features)
    last_output = keras.layers.Dropout(legacy.DROPOUT_RATE, name="dropout")(last_output)
    logits = keras.layers.Dense(legacy.CLASSES, name="output")(last_output)
    return keras.Model(features, logits, name=legacy.NAME)
