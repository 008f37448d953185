"""Small TF1 graphs (graph mode, saved with .meta) and their Keras twins for the verify tests."""

import numpy as np

VOCAB, TYPES, HIDDEN, SEQ = 11, 2, 6, 4
CHAR_UNITS, CHAR_FEATURES, CHAR_STEPS = 5, 3, 4


def tf_v1():
    from legacy_graphs import compat
    return compat.import_tf_v1()


def save_graph(directory, build, *, seed=0):
    """Builds `build()` in a new graph, fills every variable at random, saves it with its .meta.

    Returns:
        The checkpoint prefix.
    """
    tf = tf_v1()
    graph = tf.Graph()
    with graph.as_default():
        build()
        rng = np.random.default_rng(seed)
        with tf.Session(graph=graph) as session:
            session.run(tf.global_variables_initializer())
            for variable in tf.global_variables():
                value = rng.uniform(-0.5, 0.5, variable.shape.as_list())
                if variable.op.name.endswith("moving_variance"):
                    value = np.abs(value) + 0.5  # Positive, as training leaves it.
                variable.load(value.astype(variable.dtype.as_numpy_dtype), session)
            return tf.train.Saver().save(session, str(directory / "model.ckpt"))


def write_table(path, text):
    path.write_text(text)
    return str(path)


# A BERT-style encoder input: word + token type embeddings, then a dense layer.
def build_bert_style():
    tf = tf_v1()
    input_ids = tf.placeholder(tf.int32, [None, SEQ], name="input_ids")
    token_type_ids = tf.placeholder(tf.int32, [None, SEQ], name="token_type_ids")
    with tf.variable_scope("bert/embeddings"):
        words = tf.get_variable("word_embeddings", [VOCAB, HIDDEN])
        types = tf.get_variable("token_type_embeddings", [TYPES, HIDDEN])
        embedded = tf.gather(words, input_ids) + tf.gather(types, token_type_ids)
    with tf.variable_scope("bert/pooler"):
        kernel = tf.get_variable("dense/kernel", [HIDDEN, HIDDEN])
        bias = tf.get_variable("dense/bias", [HIDDEN])
        output = tf.tanh(tf.tensordot(embedded, kernel, 1) + bias)
    tf.identity(output, name="encoded")


BERT_STYLE_TABLE = """
[[rule]]
match = 'bert/embeddings/(word|token_type)_embeddings'
target = '\\1_embeddings/embeddings'

[[rule]]
match = 'bert/pooler/dense/(kernel|bias)'
target = 'pooler/\\1'
"""


def bert_style_model():
    import keras
    input_ids = keras.Input((SEQ,), dtype="int32", name="input_ids")
    token_type_ids = keras.Input((SEQ,), dtype="int32", name="token_type_ids")
    embedded = keras.layers.Add(name="add")([
        keras.layers.Embedding(VOCAB, HIDDEN, name="word_embeddings")(input_ids),
        keras.layers.Embedding(TYPES, HIDDEN, name="token_type_embeddings")(token_type_ids)])
    output = keras.layers.Dense(HIDDEN, activation="tanh", name="pooler")(embedded)
    return keras.Model([input_ids, token_type_ids], output)


# A TF 1.1-style char-RNN: data placeholder, initial-state placeholder `istate`
# (state_is_tuple=False: [batch, 2 * units]) and an unknown-rank `keep_prob`.
def build_char_rnn():
    tf = tf_v1()
    data = tf.placeholder(tf.float32, [None, CHAR_STEPS, CHAR_FEATURES], name="data")
    istate = tf.placeholder(tf.float32, [None, 2 * CHAR_UNITS], name="istate")
    keep_prob = tf.placeholder(tf.float32, name="keep_prob")
    cell = tf.nn.rnn_cell.LSTMCell(CHAR_UNITS, state_is_tuple=False)
    outputs, _ = tf.nn.dynamic_rnn(cell, tf.nn.dropout(data, keep_prob=keep_prob),
                                   initial_state=istate, scope="char")
    tf.identity(outputs, name="outputs")


CHAR_RNN_TABLE = """
[[rule]]
match = 'char/lstm_cell'
layout = 'lstm'
target = 'char/lstm_cell'
"""


def char_rnn_model():
    import keras
    data = keras.Input((CHAR_STEPS, CHAR_FEATURES), name="data")
    outputs = keras.layers.LSTM(CHAR_UNITS, return_sequences=True, name="char")(data)
    return keras.Model(data, outputs)


def convert_and_restore(prefix, table, factory, output):
    """Converts with `table` into `output` and returns a fresh model restored from it."""
    import migrate
    migrate.convert(prefix, table, factory(), str(output))
    model = factory()
    migrate.restore(model, str(output))
    return model


# A TF 1.x training graph fed by an input queue (`shuffle_batch` style): its training set
# baked in as constants, enqueued whole; the model reads the dequeued batch, no placeholder.
QUEUED_BATCH = 4


def build_queued_classifier():
    tf = tf_v1()
    rng = np.random.default_rng(1)
    images = tf.constant(rng.normal(size=(16, HIDDEN)).astype(np.float32), name="train_images")
    labels = tf.constant(rng.integers(0, 3, size=16), name="train_labels")
    queue = tf.FIFOQueue(32, [tf.float32, tf.int64], shapes=[[HIDDEN], []])
    queue.enqueue_many([images, labels])
    features, targets = queue.dequeue_many(QUEUED_BATCH)
    with tf.variable_scope("dense"):
        kernel = tf.get_variable("kernel", [HIDDEN, 3])
        bias = tf.get_variable("bias", [3])
    logits = tf.identity(tf.matmul(features, kernel) + bias, name="logits")
    tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets,
                                                                  logits=logits), name="loss")


QUEUED_TABLE = """
[[rule]]
match = 'dense/(kernel|bias)'
target = 'dense/\\1'
"""


def queued_classifier_model():
    import keras
    images = keras.Input((HIDDEN,), name="images")
    return keras.Model(images, keras.layers.Dense(3, name="dense")(images))
