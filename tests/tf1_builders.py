"""TF1 model code as people wrote it, for checkpoints with dropout baked in and without `.meta`.

Each `build_*` function builds its graph in the default graph, as the
model's own training script did; the `module:callable` builders of
`--builder=tf1_builders:build_char_rnn` are these functions.
"""

import collections

import verify_graphs
from legacy_graphs.compat import tf1_control_flow  # noqa: F401  (the tests' `with` block)

UNITS, FEATURES, STEPS = 5, 3, 4
KEEP_PROB = 0.75
VOCAB, EMBED = 13, 4


def build_char_rnn():
    """A char-RNN whose LSTM output keeps 75% of its units: a float, so a constant in the loop."""
    tf = verify_graphs.tf_v1()
    data = tf.placeholder(tf.float32, [None, STEPS, FEATURES], name="data")
    cell = tf.nn.rnn_cell.DropoutWrapper(tf.nn.rnn_cell.LSTMCell(UNITS),
                                         output_keep_prob=KEEP_PROB)
    outputs, _ = tf.nn.dynamic_rnn(cell, data, dtype=tf.float32, scope="char")
    tf.identity(outputs, name="outputs")


# How many times each counted builder ran, by name.
BUILDS = collections.Counter()


def build_char_rnn_counted():
    """`build_char_rnn`, counted in `BUILDS`."""
    BUILDS["char_rnn"] += 1
    build_char_rnn()


def build_char_rnn_keep_prob_placeholder():
    """The same char-RNN with its keep probability fed through a `keep_prob` placeholder."""
    tf = verify_graphs.tf_v1()
    data = tf.placeholder(tf.float32, [None, STEPS, FEATURES], name="data")
    keep_prob = tf.placeholder(tf.float32, name="keep_prob")
    cell = tf.nn.rnn_cell.DropoutWrapper(tf.nn.rnn_cell.LSTMCell(UNITS),
                                         output_keep_prob=keep_prob)
    outputs, _ = tf.nn.dynamic_rnn(cell, data, dtype=tf.float32, scope="char")
    tf.identity(outputs, name="outputs")


def tf1_dropout(x, keep_prob):
    """`tf.nn.dropout` as TF 1.0-1.12 built it: `x / keep_prob * floor(keep_prob + uniform)`."""
    tf = verify_graphs.tf_v1()
    with tf.name_scope(None, "dropout", [x]) as scope:
        keep_prob = tf.convert_to_tensor(keep_prob, dtype=x.dtype, name="keep_prob")
        random_tensor = keep_prob + tf.random_uniform(tf.shape(x), dtype=x.dtype)
        binary_tensor = tf.floor(random_tensor)
        return tf.multiply(tf.div(x, keep_prob), binary_tensor, name=scope)


def build_tf1_dropout_classifier():
    """An embedding classifier with TF 1.x's dropout (keep 0.5) before its dense head."""
    tf = verify_graphs.tf_v1()
    ids = tf.placeholder(tf.int32, [None, STEPS], name="ids")
    embedding = tf.get_variable("embedding", [VOCAB, EMBED])
    pooled = tf.reduce_mean(tf.nn.embedding_lookup(embedding, ids), axis=1)
    dropped = tf1_dropout(pooled, 0.5)
    tf.identity(tf.layers.dense(dropped, 2, name="logits"), name="output")


def char_rnn_model():
    import keras

    data = keras.Input((STEPS, FEATURES), name="data")
    outputs = keras.layers.LSTM(UNITS, return_sequences=True, name="char")(data)
    return keras.Model(data, outputs)


CHAR_RNN_TABLE = """
[[rule]]
match = 'char/lstm_cell'
layout = 'lstm'
target = 'char/lstm_cell'
"""


def tf1_dropout_classifier_model():
    import keras

    ids = keras.Input((STEPS,), dtype="int32", name="ids")
    embedded = keras.layers.Embedding(VOCAB, EMBED, name="embedding")(ids)
    pooled = keras.layers.GlobalAveragePooling1D(name="pool")(embedded)
    dropped = keras.layers.Dropout(0.5, name="dropout")(pooled)
    return keras.Model(ids, keras.layers.Dense(2, name="logits")(dropped))


TF1_DROPOUT_CLASSIFIER_TABLE = """
[[rule]]
match = 'embedding'
target = 'embedding/embeddings'

[[rule]]
match = 'logits/(kernel|bias)'
target = 'logits/\\1'
"""
