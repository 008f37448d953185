"""TF1 graphs of issue 27 as their repositories wrote them, with the Keras models users write.

Raw `tf.nn` ops with biases added by `+ b` and bare `tf.Variable`s named `W_conv1`/`BC1`
(an MNIST CNN shipped as a checkpoint and a frozen `.pb`); a `tf.keras` classifier built in
graph mode whose float input is cast to ids for its embedding; RNNs fed time-major
(`[T, B]` placeholders, `dynamic_rnn(time_major=True)`); a CNN+LSTM CTC recognizer whose
image placeholder has a fixed batch of 1 and whose logits are transposed time-major for
`ctc_loss`. Each `build_*` builds in the default graph (`verify_graphs.save_graph`).
"""

from verify_graphs import tf_v1

IMAGE, CONV1, CONV2, HIDDEN, DIGITS = 8, 4, 6, 8, 3
STEPS, VOCAB, EMBED, UNITS, CLASSES = 7, 17, 4, 5, 3
CTC_HEIGHT, CTC_WIDTH, CTC_FILTERS, CTC_CLASSES = 4, 6, 3, 5


def build_mnist_raw():
    """The TensorFlow tutorial's deep MNIST CNN as its users copied it: `conv2d(x, W) + b`."""
    tf = tf_v1()
    x = tf.placeholder(tf.float32, [None, IMAGE * IMAGE], name="x")
    x_image = tf.reshape(x, [-1, IMAGE, IMAGE, 1])
    W_conv1 = tf.Variable(tf.truncated_normal([3, 3, 1, CONV1], stddev=0.1), name="W_conv1")
    BC1 = tf.Variable(tf.constant(0.1, shape=[CONV1]), name="BC1")
    h_conv1 = tf.nn.relu(tf.nn.conv2d(x_image, W_conv1, strides=[1, 1, 1, 1], padding="SAME")
                         + BC1)
    h_pool1 = tf.nn.max_pool(h_conv1, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")
    W_conv2 = tf.Variable(tf.truncated_normal([3, 3, CONV1, CONV2], stddev=0.1), name="W_conv2")
    BC2 = tf.Variable(tf.constant(0.1, shape=[CONV2]), name="BC2")
    h_conv2 = tf.nn.relu(tf.nn.conv2d(h_pool1, W_conv2, strides=[1, 1, 1, 1], padding="SAME")
                         + BC2)
    h_pool2 = tf.nn.max_pool(h_conv2, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")
    flat_size = (IMAGE // 4) * (IMAGE // 4) * CONV2
    h_pool2_flat = tf.reshape(h_pool2, [-1, flat_size])
    W_fc1 = tf.Variable(tf.truncated_normal([flat_size, HIDDEN], stddev=0.1), name="W_fc1")
    BF1 = tf.Variable(tf.constant(0.1, shape=[HIDDEN]), name="BF1")
    h_fc1 = tf.nn.relu(tf.matmul(h_pool2_flat, W_fc1) + BF1)
    W_fc2 = tf.Variable(tf.truncated_normal([HIDDEN, DIGITS], stddev=0.1), name="W_fc2")
    BF2 = tf.Variable(tf.constant(0.1, shape=[DIGITS]), name="BF2")
    tf.add(tf.matmul(h_fc1, W_fc2), BF2, name="y_conv")


def mnist_model():
    import keras
    x = keras.Input((IMAGE * IMAGE,), name="x")
    net = keras.layers.Reshape((IMAGE, IMAGE, 1))(x)
    net = keras.layers.Conv2D(CONV1, 3, padding="same", activation="relu", name="conv1")(net)
    net = keras.layers.MaxPooling2D(2, 2, padding="same")(net)
    net = keras.layers.Conv2D(CONV2, 3, padding="same", activation="relu", name="conv2")(net)
    net = keras.layers.MaxPooling2D(2, 2, padding="same")(net)
    net = keras.layers.Flatten()(net)
    net = keras.layers.Dense(HIDDEN, activation="relu", name="fc1")(net)
    return keras.Model(x, keras.layers.Dense(DIGITS, name="fc2")(net))


def build_tagger_reshaped_bias():
    """A tagger whose bias is added after the projection is reshaped back to `[B, T, C]`: no
    product feeds its `Add`, so only a table naming it says it is a weight."""
    tf = tf_v1()
    inputs = tf.placeholder(tf.float32, [None, STEPS, EMBED], name="inputs")
    W_out = tf.Variable(tf.truncated_normal([EMBED, CLASSES], stddev=0.1), name="W_out")
    b_out = tf.Variable(tf.constant(0.1, shape=[CLASSES]), name="b_out")
    projected = tf.reshape(tf.matmul(tf.reshape(inputs, [-1, EMBED]), W_out), [-1, STEPS, CLASSES])
    tf.identity(projected + b_out, name="logits")


def tagger_model():
    import keras
    inputs = keras.Input((STEPS, EMBED), name="inputs")
    return keras.Model(inputs, keras.layers.Dense(CLASSES, name="out")(inputs))


def freeze(prefix, output_node, path):
    """Freezes a checkpoint's graph as TF1 users did (`legacy_graphs.exports.write_frozen`)."""
    from legacy_graphs import exports

    exports.write_frozen(tf_v1(), prefix, output_node, path)
    return path


def build_keras_float_ids():
    """A tf.keras text classifier built in graph mode: `Input(shape=(T,))` is float32, and
    Embedding casts it to int32 before its lookup."""
    tf = tf_v1()
    words = tf.keras.layers.Input(shape=(STEPS,), name="words")
    net = tf.keras.layers.Embedding(VOCAB, EMBED, name="embedding")(words)
    net = tf.keras.layers.GlobalAveragePooling1D()(net)
    net = tf.keras.layers.Dense(HIDDEN, activation="relu", name="hidden")(net)
    tf.identity(tf.keras.layers.Dense(CLASSES, name="output")(net), name="probabilities")


def keras_float_ids_model():
    import keras
    words = keras.Input((STEPS,), name="words")
    net = keras.layers.Embedding(VOCAB, EMBED, name="embedding")(words)
    net = keras.layers.GlobalAveragePooling1D()(net)
    net = keras.layers.Dense(HIDDEN, activation="relu", name="hidden")(net)
    return keras.Model(words, keras.layers.Dense(CLASSES, name="output")(net))


def build_time_major_encoder():
    """A seq2seq encoder fed `[max_time, batch]` ids, as `tf.contrib.seq2seq` tutorials did."""
    tf = tf_v1()
    encoder_inputs = tf.placeholder(tf.int32, [None, None], name="encoder_inputs")
    embedding = tf.get_variable("embedding", [VOCAB, EMBED])
    embedded = tf.nn.embedding_lookup(embedding, encoder_inputs)
    _, state = tf.nn.dynamic_rnn(tf.nn.rnn_cell.LSTMCell(UNITS), embedded, dtype=tf.float32,
                                 time_major=True, scope="encoder")
    tf.identity(tf.layers.dense(state.h, CLASSES, name="projection"), name="logits")


def time_major_encoder_model():
    import keras
    ids = keras.Input((None,), dtype="int32", name="encoder_inputs")
    net = keras.layers.Embedding(VOCAB, EMBED, name="embedding")(ids)
    net = keras.layers.LSTM(UNITS, name="encoder")(net)
    return keras.Model(ids, keras.layers.Dense(CLASSES, name="projection")(net))


def build_ctc_recognizer():
    """A CNN+LSTM CTC recognizer: one image at a time (`[1, H, W, 1]`), raw conv ops with
    `+ b`, the columns fed time-major to the LSTM, logits `[T, 1, C]` for `ctc_loss`."""
    tf = tf_v1()
    image = tf.placeholder(tf.float32, [1, CTC_HEIGHT, None, 1], name="image")
    W_conv = tf.Variable(tf.truncated_normal([3, 3, 1, CTC_FILTERS], stddev=0.1), name="W_conv")
    b_conv = tf.Variable(tf.constant(0.1, shape=[CTC_FILTERS]), name="b_conv")
    conv = tf.nn.relu(tf.nn.conv2d(image, W_conv, [1, 1, 1, 1], "SAME") + b_conv)
    columns = tf.transpose(conv, [0, 2, 1, 3])  # [1, W, H, C]: one step per column
    features = tf.reshape(columns, [1, -1, CTC_HEIGHT * CTC_FILTERS])
    time_major = tf.transpose(features, [1, 0, 2])
    outputs, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.LSTMCell(UNITS), time_major, dtype=tf.float32,
                                   time_major=True)
    W_out = tf.Variable(tf.truncated_normal([UNITS, CTC_CLASSES], stddev=0.1), name="W_out")
    b_out = tf.Variable(tf.constant(0.1, shape=[CTC_CLASSES]), name="b_out")
    logits = tf.matmul(tf.reshape(outputs, [-1, UNITS]), W_out) + b_out
    tf.reshape(logits, [-1, 1, CTC_CLASSES], name="logits")


def ctc_recognizer_model():
    import keras
    image = keras.Input((CTC_HEIGHT, None, 1), name="image")
    net = keras.layers.Conv2D(CTC_FILTERS, 3, padding="same", activation="relu",
                              name="conv")(image)
    net = keras.layers.Permute((2, 1, 3))(net)
    net = keras.layers.Reshape((-1, CTC_HEIGHT * CTC_FILTERS))(net)
    net = keras.layers.LSTM(UNITS, return_sequences=True, name="lstm")(net)
    return keras.Model(image, keras.layers.Dense(CTC_CLASSES, name="out")(net))


BOARD, FILTERS, BLOCKS, MOVES = 5, 4, 5, 6


def build_layers_resnet():
    """A policy/value ResNet written with `tf.layers` (convolutions with their default biases,
    `batch_normalization`, numbered layer names `conv2d_3`, `dense_1`)."""
    tf = tf_v1()
    board = tf.placeholder(tf.float32, [None, BOARD, BOARD, 2], name="board")

    def conv_bn(net, filters, size):
        net = tf.layers.conv2d(net, filters, size, padding="same")
        return tf.layers.batch_normalization(net, training=False)

    net = tf.nn.relu(conv_bn(board, FILTERS, 3))
    for _ in range(BLOCKS):
        shortcut = net
        net = tf.nn.relu(conv_bn(net, FILTERS, 3))
        net = tf.nn.relu(conv_bn(net, FILTERS, 3) + shortcut)
    policy = tf.nn.relu(conv_bn(net, 2, 1))
    policy = tf.layers.dense(tf.layers.flatten(policy), MOVES)
    value = tf.nn.relu(conv_bn(net, 1, 1))
    value = tf.layers.dense(tf.layers.flatten(value), FILTERS, activation=tf.nn.relu)
    value = tf.layers.dense(value, 1, activation=tf.nn.tanh)
    tf.identity(policy, name="policy")
    tf.identity(value, name="value")


def layers_resnet_model():
    import keras
    board = keras.Input((BOARD, BOARD, 2), name="board")
    count = iter(range(100))

    def conv_bn(net, filters, size):
        index = next(count)
        net = keras.layers.Conv2D(filters, size, padding="same", name=f"conv{index}")(net)
        return keras.layers.BatchNormalization(epsilon=1e-3, name=f"bn{index}")(net)

    net = keras.layers.ReLU()(conv_bn(board, FILTERS, 3))
    for _ in range(BLOCKS):
        shortcut = net
        net = keras.layers.ReLU()(conv_bn(net, FILTERS, 3))
        net = keras.layers.ReLU()(keras.layers.Add()([conv_bn(net, FILTERS, 3), shortcut]))
    policy = keras.layers.ReLU()(conv_bn(net, 2, 1))
    policy = keras.layers.Dense(MOVES, name="policy")(keras.layers.Flatten()(policy))
    value = keras.layers.ReLU()(conv_bn(net, 1, 1))
    value = keras.layers.Dense(FILTERS, activation="relu", name="value_hidden")(
        keras.layers.Flatten()(value))
    value = keras.layers.Dense(1, activation="tanh", name="value")(value)
    return keras.Model(board, [policy, value])


def build_masked_pooling():
    """BERT-style inputs of unknown length: `input_ids` and an `input_mask` the Keras model
    does not take (all ones), both `[None, None]`."""
    tf = tf_v1()
    input_ids = tf.placeholder(tf.int32, [None, None], name="input_ids")
    input_mask = tf.placeholder(tf.int32, [None, None], name="input_mask")
    embedding = tf.get_variable("word_embeddings", [VOCAB, EMBED])
    mask = tf.cast(tf.expand_dims(input_mask, -1), tf.float32)
    pooled = tf.reduce_sum(tf.nn.embedding_lookup(embedding, input_ids) * mask, axis=1)
    tf.identity(tf.layers.dense(pooled, CLASSES, name="classifier"), name="logits")


def masked_pooling_model():
    import keras
    ids = keras.Input((None,), dtype="int32", name="input_ids")
    net = keras.layers.Embedding(VOCAB, EMBED, name="word_embeddings")(ids)
    net = keras.layers.Lambda(lambda x: keras.ops.sum(x, axis=1), name="pool")(net)
    return keras.Model(ids, keras.layers.Dense(CLASSES, name="classifier")(net))
