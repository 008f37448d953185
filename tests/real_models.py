"""Keras models written the way a user porting a real TF 1.x checkpoint would write them."""

import keras


def traffic_sign_lenet():
    """LeNet-5 for tests/data/traffic_sign_lenet: layers named by Keras, in the order of the code."""
    inputs = keras.Input((32, 32, 3), name="x")
    net = keras.layers.Conv2D(6, 5, activation="relu")(inputs)
    net = keras.layers.MaxPooling2D(2, padding="same")(net)
    net = keras.layers.Conv2D(16, 5, activation="relu")(net)
    net = keras.layers.MaxPooling2D(2, padding="same")(net)
    net = keras.layers.Flatten()(net)
    net = keras.layers.Dense(120, activation="relu")(net)
    net = keras.layers.Dense(84, activation="relu")(net)
    return keras.Model(inputs, keras.layers.Dense(43)(net))


def bilstm_sentiment():
    """The sentiment classifier of tests/data/bilstm_sentiment, as a user would port it.

    TF1 ran two `MultiRNNCell` stacks of three LSTMs in `bidirectional_dynamic_rnn`: each
    direction's three layers run on their own and meet only at the end, unlike stacked Keras
    `Bidirectional` layers, so each direction is its own chain of LSTMs here. The backward chain
    reads the sequence reversed and is flipped back, and the classifier takes both directions
    at the last time step, as the graph's `tf.gather(..., timesteps - 1)` did (for the backward
    direction, the output after its first step).
    """
    inputs = keras.Input((33,), dtype="int32", name="inputs")
    embedded = keras.layers.Embedding(2808, 50)(inputs)
    forward = embedded
    for _ in range(3):
        forward = keras.layers.LSTM(64, return_sequences=True)(forward)
    backward = keras.layers.LSTM(64, return_sequences=True, go_backwards=True)(embedded)
    for _ in range(2):
        backward = keras.layers.LSTM(64, return_sequences=True)(backward)
    backward = keras.ops.flip(backward, axis=1)
    last = keras.layers.Concatenate()([forward[:, -1], backward[:, -1]])
    return keras.Model(inputs, keras.layers.Dense(2)(last))
