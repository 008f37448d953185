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
