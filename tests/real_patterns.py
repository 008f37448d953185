"""TF1 graphs written the way people wrote them, with their Keras twins, for issue-17 patterns.

Each `build_*` defines an inference graph in the default graph (tf.compat.v1, saved with its
`.meta` by `verify_graphs.save_graph`); each `*_model` builds the Keras model a user would
write for it. Names, scopes and creation order are the TF1 code's own: heads built first as
bare `tf.Variable`s (`Variable`, `Variable_1`), raw `tf.nn` ops, partitioned embeddings,
`BasicRNNCell` stacks, tied weights, peephole cells under a custom scope.
"""

import numpy as np

from verify_graphs import tf_v1

STEPS, FEATURES, UNITS, CLASSES = 5, 3, 6, 4
VOCAB, EMBED, PARTITIONS = 23, 4, 3
AUTO_INPUT, AUTO_HIDDEN, AUTO_CODE = 9, 7, 3
LM_VOCAB, LM_EMBED, LM_STEPS = 13, 5, 4


# 1. A head created before the RNN, as bare tf.Variables: `Variable [UNITS, CLASSES]`,
#    `Variable_1 [CLASSES]`, then an LSTMCell under dynamic_rnn.
def build_head_first():
    tf = tf_v1()
    inputs = tf.placeholder(tf.float32, [None, STEPS, FEATURES], name="inputs")
    weight = tf.Variable(tf.random_normal([UNITS, CLASSES]))
    bias = tf.Variable(tf.zeros([CLASSES]))
    outputs, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.LSTMCell(UNITS), inputs, dtype=tf.float32)
    tf.identity(tf.matmul(outputs[:, -1, :], weight) + bias, name="logits")


def head_first_model():
    import keras
    inputs = keras.Input((STEPS, FEATURES), name="inputs")
    net = keras.layers.LSTM(UNITS, name="lstm")(inputs)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, name="classifier")(net))


# 1b. The same with a named scope whose names say nothing (`inference/weight2 [UNITS, 1]`),
#     a regression head over a GRUCell.
def build_named_head_first():
    tf = tf_v1()
    inputs = tf.placeholder(tf.float32, [None, STEPS, FEATURES], name="inputs")
    with tf.variable_scope("inference"):
        weight = tf.get_variable("weight2", [UNITS, 1])
        bias = tf.get_variable("bias2", [1])
        outputs, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.GRUCell(UNITS), inputs, dtype=tf.float32)
    tf.identity(tf.matmul(outputs[:, -1, :], weight) + bias, name="prediction")


def named_head_first_model():
    import keras
    inputs = keras.Input((STEPS, FEATURES), name="inputs")
    net = keras.layers.GRU(UNITS, reset_after=False, name="gru")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, name="regression")(net))


# 2. An embedding saved from PARTITIONS partitions, looked up `div` or `mod`.
def build_partitioned(strategy):
    def build():
        tf = tf_v1()
        ids = tf.placeholder(tf.int32, [None, STEPS], name="ids")
        with tf.variable_scope("model"):
            embedding = tf.get_variable(
                "embedding", [VOCAB, EMBED],
                partitioner=tf.fixed_size_partitioner(PARTITIONS))
            embedded = tf.nn.embedding_lookup(embedding, ids, partition_strategy=strategy)
            pooled = tf.reduce_mean(embedded, axis=1)
            weights = tf.get_variable("softmax_w", [EMBED, CLASSES])
            biases = tf.get_variable("softmax_b", [CLASSES])
        tf.identity(tf.nn.xw_plus_b(pooled, weights, biases), name="logits")
    return build


def partitioned_model():
    import keras
    ids = keras.Input((STEPS,), dtype="int32", name="ids")
    net = keras.layers.Embedding(VOCAB, EMBED, name="embedding")(ids)
    net = keras.layers.GlobalAveragePooling1D(name="pool")(net)
    return keras.Model(ids, keras.layers.Dense(CLASSES, name="softmax")(net))


# 3. A BasicRNNCell stack (MultiRNNCell), then a dense head.
def build_basic_rnn_stack():
    tf = tf_v1()
    inputs = tf.placeholder(tf.float32, [None, STEPS, FEATURES], name="inputs")
    cells = tf.nn.rnn_cell.MultiRNNCell([tf.nn.rnn_cell.BasicRNNCell(UNITS) for _ in range(2)])
    outputs, _ = tf.nn.dynamic_rnn(cells, inputs, dtype=tf.float32)
    logits = tf.layers.dense(outputs[:, -1, :], CLASSES, name="output")
    tf.identity(logits, name="logits")


def basic_rnn_stack_model():
    import keras
    inputs = keras.Input((STEPS, FEATURES), name="inputs")
    net = keras.layers.SimpleRNN(UNITS, return_sequences=True, name="rnn_0")(inputs)
    net = keras.layers.SimpleRNN(UNITS, name="rnn_1")(net)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, name="output")(net))


# 4a. An autoencoder whose decoder reuses the encoder's matrices transposed.
def build_tied_autoencoder():
    tf = tf_v1()
    inputs = tf.placeholder(tf.float32, [None, AUTO_INPUT], name="inputs")
    with tf.variable_scope("encoder"):
        w1 = tf.get_variable("w1", [AUTO_INPUT, AUTO_HIDDEN])
        b1 = tf.get_variable("b1", [AUTO_HIDDEN])
        w2 = tf.get_variable("w2", [AUTO_HIDDEN, AUTO_CODE])
        b2 = tf.get_variable("b2", [AUTO_CODE])
    with tf.variable_scope("decoder"):
        b3 = tf.get_variable("b3", [AUTO_HIDDEN])
        b4 = tf.get_variable("b4", [AUTO_INPUT])
    hidden = tf.nn.sigmoid(tf.matmul(inputs, w1) + b1)
    code = tf.nn.sigmoid(tf.matmul(hidden, w2) + b2)
    hidden_out = tf.nn.sigmoid(tf.matmul(code, tf.transpose(w2)) + b3)
    tf.identity(tf.matmul(hidden_out, w1, transpose_b=True) + b4, name="reconstruction")


def tied_autoencoder_model():
    import keras
    inputs = keras.Input((AUTO_INPUT,), name="inputs")
    net = keras.layers.Dense(AUTO_HIDDEN, activation="sigmoid", name="encoder_1")(inputs)
    net = keras.layers.Dense(AUTO_CODE, activation="sigmoid", name="encoder_2")(net)
    net = keras.layers.Dense(AUTO_HIDDEN, activation="sigmoid", name="decoder_1")(net)
    return keras.Model(inputs, keras.layers.Dense(AUTO_INPUT, name="decoder_2")(net))


def build_square_tied_autoencoder():
    """One hidden layer as wide as the input: the tied matrix is square, so only the graph's
    `transpose_b=True` (not the shapes) says the decoder reads it transposed."""
    tf = tf_v1()
    inputs = tf.placeholder(tf.float32, [None, AUTO_INPUT], name="inputs")
    with tf.variable_scope("encoder"):
        w = tf.get_variable("w", [AUTO_INPUT, AUTO_INPUT])
        b = tf.get_variable("b", [AUTO_INPUT], initializer=tf.random_normal_initializer())
    with tf.variable_scope("decoder"):
        b_out = tf.get_variable("b", [AUTO_INPUT], initializer=tf.random_normal_initializer())
    hidden = tf.nn.sigmoid(tf.matmul(inputs, w) + b)
    tf.identity(tf.matmul(hidden, w, transpose_b=True) + b_out, name="reconstruction")


def square_tied_autoencoder_model():
    import keras
    inputs = keras.Input((AUTO_INPUT,), name="inputs")
    net = keras.layers.Dense(AUTO_INPUT, activation="sigmoid", name="encoder")(inputs)
    return keras.Model(inputs, keras.layers.Dense(AUTO_INPUT, name="decoder")(net))


# 4b. A language model whose output projection is its input embedding.
def build_tied_lm():
    tf = tf_v1()
    ids = tf.placeholder(tf.int32, [None, LM_STEPS], name="ids")
    embedding = tf.get_variable("embedding", [LM_VOCAB, LM_EMBED])
    inputs = tf.nn.embedding_lookup(embedding, ids)
    outputs, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.BasicRNNCell(LM_EMBED), inputs,
                                   dtype=tf.float32)
    softmax_b = tf.get_variable("softmax_b", [LM_VOCAB])
    flat = tf.reshape(outputs, [-1, LM_EMBED])
    logits = tf.matmul(flat, embedding, transpose_b=True) + softmax_b
    tf.identity(tf.reshape(logits, [-1, LM_STEPS, LM_VOCAB]), name="logits")


def build_tied_lm_einsum():
    """The tied LM with its projection written as an einsum: no transpose op to read."""
    tf = tf_v1()
    ids = tf.placeholder(tf.int32, [None, LM_STEPS], name="ids")
    embedding = tf.get_variable("embedding", [LM_VOCAB, LM_EMBED])
    inputs = tf.nn.embedding_lookup(embedding, ids)
    outputs, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.BasicRNNCell(LM_EMBED), inputs,
                                   dtype=tf.float32)
    softmax_b = tf.get_variable("softmax_b", [LM_VOCAB])
    tf.identity(tf.einsum("bte,ve->btv", outputs, embedding) + softmax_b, name="logits")


def build_tied_lm_partitioned():
    """The tied LM with its embedding saved from partitions, looked up 'mod' (TF1's default)."""
    tf = tf_v1()
    ids = tf.placeholder(tf.int32, [None, LM_STEPS], name="ids")
    embedding = tf.get_variable("embedding", [LM_VOCAB, LM_EMBED],
                                partitioner=tf.fixed_size_partitioner(PARTITIONS))
    inputs = tf.nn.embedding_lookup(embedding, ids)
    outputs, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.BasicRNNCell(LM_EMBED), inputs,
                                   dtype=tf.float32)
    softmax_b = tf.get_variable("softmax_b", [LM_VOCAB])
    flat = tf.reshape(outputs, [-1, LM_EMBED])
    # The projection reads the parts concatenated: rows in saved order, not id order.
    logits = tf.matmul(flat, embedding, transpose_b=True) + softmax_b
    tf.identity(tf.reshape(logits, [-1, LM_STEPS, LM_VOCAB]), name="logits")


def tied_lm_model():
    import keras
    ids = keras.Input((LM_STEPS,), dtype="int32", name="ids")
    net = keras.layers.Embedding(LM_VOCAB, LM_EMBED, name="embedding")(ids)
    net = keras.layers.SimpleRNN(LM_EMBED, return_sequences=True, name="rnn")(net)
    return keras.Model(ids, keras.layers.Dense(LM_VOCAB, name="softmax")(net))


# 7. An LSTMCell with peepholes under a custom variable scope and cell name.
def build_peephole_custom_scope():
    tf = tf_v1()
    inputs = tf.placeholder(tf.float32, [None, STEPS, FEATURES], name="inputs")
    with tf.variable_scope("encoder"):
        cell = tf.nn.rnn_cell.LSTMCell(UNITS, use_peepholes=True, name="enc")
        outputs, _ = tf.nn.dynamic_rnn(cell, inputs, dtype=tf.float32)
    logits = tf.layers.dense(outputs[:, -1, :], CLASSES, name="output")
    tf.identity(logits, name="logits")


def peephole_model():
    import keras
    inputs = keras.Input((STEPS, FEATURES), name="inputs")
    net = keras.layers.LSTM(UNITS, name="encoder")(inputs)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, name="output")(net))


def random_ids(count, high, seed=0):
    return np.random.default_rng(seed).integers(0, high, size=count)


# 2b. A partitioned embedding read without tf.nn.embedding_lookup: the code reassembles the
#     parts and gathers rows itself, the 'mod' way. Nothing in the graph names the strategy.
def build_hand_mod_lookup():
    tf = tf_v1()
    ids = tf.placeholder(tf.int32, [None, STEPS], name="ids")
    with tf.variable_scope("model"):
        embedding = tf.get_variable("embedding", [VOCAB, EMBED],
                                    partitioner=tf.fixed_size_partitioner(PARTITIONS))
        sizes = [VOCAB // PARTITIONS + (1 if part < VOCAB % PARTITIONS else 0)
                 for part in range(PARTITIONS)]
        offsets = tf.constant(np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype("int32"))
        rows = tf.gather(offsets, ids % PARTITIONS) + ids // PARTITIONS
        embedded = tf.gather(tf.concat(list(embedding), axis=0), rows)
        pooled = tf.reduce_mean(embedded, axis=1)
        weights = tf.get_variable("softmax_w", [EMBED, CLASSES])
        biases = tf.get_variable("softmax_b", [CLASSES])
    tf.identity(tf.nn.xw_plus_b(pooled, weights, biases), name="logits")


# 8. TF 0.x (0.9-0.12): BasicLSTMCells stacked in a MultiRNNCell and unrolled by the static
#    `tf.nn.rnn` over a list of steps, written as rnn_cell.py wrote them then; the variables are
#    `RNN/MultiRNNCell/Cell<i>/BasicLSTMCell/Linear/Matrix` and `.../Linear/Bias`, the head's
#    `softmax_w`, `softmax_b`.
class BasicLSTMCell0x:
    """TF 0.12's BasicLSTMCell (state_is_tuple): one `_linear` over [inputs, h], gates i,j,f,o."""

    def __init__(self, num_units, forget_bias=1.0):
        self._num_units, self._forget_bias = num_units, forget_bias

    def __call__(self, inputs, state, scope=None):
        tf = tf_v1()
        with tf.variable_scope(scope or "BasicLSTMCell"):
            c, h = state
            concat = _linear0x([inputs, h], 4 * self._num_units)
            i, j, f, o = tf.split(concat, 4, axis=1)
            new_c = c * tf.sigmoid(f + self._forget_bias) + tf.sigmoid(i) * tf.tanh(j)
            new_h = tf.tanh(new_c) * tf.sigmoid(o)
            return new_h, (new_c, new_h)


def _linear0x(args, output_size):
    """TF 0.12's rnn_cell._linear: `Linear/Matrix` over the concatenated args, plus `Linear/Bias`."""
    tf = tf_v1()
    total = sum(arg.get_shape().as_list()[1] for arg in args)
    with tf.variable_scope("Linear"):
        matrix = tf.get_variable("Matrix", [total, output_size])
        res = tf.matmul(tf.concat(args, 1), matrix)
        bias_term = tf.get_variable("Bias", [output_size],
                                    initializer=tf.constant_initializer(0.0))
    return res + bias_term


class MultiRNNCell0x:
    """TF 0.12's MultiRNNCell: each cell under `Cell<i>`, inside `MultiRNNCell`."""

    def __init__(self, cells):
        self._cells = cells

    def __call__(self, inputs, state, scope=None):
        tf = tf_v1()
        with tf.variable_scope(scope or "MultiRNNCell"):
            current, states = inputs, []
            for index, cell in enumerate(self._cells):
                with tf.variable_scope(f"Cell{index}"):
                    current, new_state = cell(current, state[index])
                    states.append(new_state)
        return current, tuple(states)


def rnn0x(cell, inputs, initial_state):
    """TF 0.12's static `tf.nn.rnn`: one cell call per step under `RNN`, reusing the variables."""
    tf = tf_v1()
    outputs, state = [], initial_state
    with tf.variable_scope("RNN") as scope:
        for time, step in enumerate(inputs):
            if time > 0:
                scope.reuse_variables()
            output, state = cell(step, state)
            outputs.append(output)
    return outputs, state


TF0X_LAYERS = 3


def build_tf0x_lstm_stack():
    tf = tf_v1()
    inputs = tf.placeholder(tf.float32, [None, STEPS, FEATURES], name="inputs")
    cell = MultiRNNCell0x([BasicLSTMCell0x(UNITS, forget_bias=1.0) for _ in range(TF0X_LAYERS)])
    batch = tf.shape(inputs)[0]
    zeros = tf.zeros([batch, UNITS])
    steps = tf.unstack(tf.transpose(inputs, [1, 0, 2]))  # `tf.unpack` then.
    outputs, _ = rnn0x(cell, steps, tuple((zeros, zeros) for _ in range(TF0X_LAYERS)))
    softmax_w = tf.get_variable("softmax_w", [UNITS, CLASSES])
    softmax_b = tf.get_variable("softmax_b", [CLASSES])
    tf.identity(tf.matmul(outputs[-1], softmax_w) + softmax_b, name="logits")


def tf0x_lstm_stack_model():
    import keras
    inputs = keras.Input((STEPS, FEATURES), name="inputs")
    net = inputs
    for index in range(TF0X_LAYERS):
        net = keras.layers.LSTM(UNITS, return_sequences=index < TF0X_LAYERS - 1,
                                name=f"lstm_{index}")(net)
    return keras.Model(inputs, keras.layers.Dense(CLASSES, name="softmax")(net))


# 9. A seq2seq model whose encoder's one LSTMCell is given to bidirectional_dynamic_rnn for both
#    directions (`cell_fw=cell, cell_bw=cell`): only `encoder/fw/lstm_cell/*` exist, and the
#    backward loop reads them. The decoder starts from the forward final state; the encoder's
#    mean output is the decoder's context at every step (feature frames in, as speech models fed).
def build_shared_cell_seq2seq():
    tf = tf_v1()
    encoder_inputs = tf.placeholder(tf.float32, [None, STEPS, FEATURES], name="encoder_inputs")
    decoder_inputs = tf.placeholder(tf.float32, [None, STEPS, FEATURES], name="decoder_inputs")
    cell = tf.nn.rnn_cell.LSTMCell(UNITS)
    (forward, backward), (state_fw, _) = tf.nn.bidirectional_dynamic_rnn(
        cell_fw=cell, cell_bw=cell, inputs=encoder_inputs, dtype=tf.float32, scope="encoder")
    context = tf.reduce_mean(tf.concat([forward, backward], axis=2), axis=1)
    decoded, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.LSTMCell(UNITS), decoder_inputs,
                                   initial_state=state_fw, scope="decoder")
    context = tf.tile(context[:, None], [1, STEPS, 1])
    logits = tf.layers.dense(tf.concat([decoded, context], axis=2), CLASSES, name="output_projection")
    tf.identity(logits, name="logits")


def shared_cell_seq2seq_model():
    import keras
    encoder_inputs = keras.Input((STEPS, FEATURES), name="encoder_inputs")
    decoder_inputs = keras.Input((STEPS, FEATURES), name="decoder_inputs")
    # Named: the wrapper names its copies forward_<name> and backward_<name>.
    encoded, forward_h, forward_c, _, _ = keras.layers.Bidirectional(
        keras.layers.LSTM(UNITS, return_sequences=True, return_state=True, name="lstm"),
        name="encoder")(encoder_inputs)
    context = keras.layers.GlobalAveragePooling1D(name="context")(encoded)
    decoded = keras.layers.LSTM(UNITS, return_sequences=True, name="decoder")(
        decoder_inputs, initial_state=[forward_h, forward_c])
    context = keras.layers.RepeatVector(STEPS, name="repeat")(context)
    joined = keras.layers.Concatenate(name="joined")([decoded, context])
    return keras.Model([encoder_inputs, decoder_inputs],
                       keras.layers.Dense(CLASSES, name="output_projection")(joined))
