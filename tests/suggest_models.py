"""Keras models that are NOT equivalent to a legacy graph, for the suggest tests (`module:callable`)."""


def small_convnet_without_batch_norm():
    """small_convnet's twin with its batch norm left out."""
    import keras

    from legacy_graphs import small_convnet as legacy

    images = keras.Input(legacy.INPUT_SHAPE)
    net = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(images)
    net = keras.layers.ReLU()(net)
    net = keras.layers.MaxPooling2D(2)(net)
    net = keras.layers.Flatten()(net)
    return keras.Model(images, keras.layers.Dense(legacy.NUM_CLASSES, name="logits")(net))
