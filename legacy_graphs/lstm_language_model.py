"""A PTB-style word language model: partitioned embedding, two stacked LSTMCells, softmax."""

from legacy_graphs import compat
from legacy_graphs import training

NAME = "lstm_language_model"
INPUT_TENSOR = "tokens:0"
OUTPUT_TENSOR = "logits:0"
# Not divisible by EMBEDDING_PARTITIONS on purpose: the partitions have uneven
# sizes (21, 20, 20), which the table's unpartition_mod(3) must undo exactly.
VOCABULARY_SIZE = 61
EMBEDDING_SIZE = 16
UNITS = 24
LAYERS = 2
TIME_STEPS = 6
FORGET_BIAS = 1.0
EMBEDDING_PARTITIONS = 3
DROPOUT_RATE = 0.2
INPUT_SHAPE = (TIME_STEPS,)
INPUT_DTYPE = "int32"
INPUT_MAX = VOCABULARY_SIZE


def define_graph():
    """Builds the inference graph in the current default graph.

    Variables live under `lm/`: `lm/embedding` (partitioned in 3 slices, one
    checkpoint key), `lm/rnn/multi_rnn_cell/cell_<n>/lstm_cell/{kernel,bias}`,
    `lm/softmax_w` [UNITS, VOCABULARY_SIZE] and `lm/softmax_b`.

    The embedding is looked up with TF1's default `partition_strategy="mod"`:
    token `i` is row `i // 3` of partition `i % 3`, so the checkpoint's
    concatenated `lm/embedding` is NOT in token order.

    Returns:
        (tokens, logits): the int32 placeholder [batch, time] and the logits
        [batch, time, VOCABULARY_SIZE] named `logits`.
    """
    tf = compat.import_tf_v1()
    tokens = tf.placeholder(tf.int32, [None, None], name="tokens")
    # Dropout runs only when training feeds is_training=True; the saved
    # graph evaluates in inference mode when only the tokens are fed.
    is_training = tf.placeholder_with_default(False, [], name="is_training")
    with tf.variable_scope("lm"):
        embedding = tf.get_variable(
            "embedding", [VOCABULARY_SIZE, EMBEDDING_SIZE],
            partitioner=tf.fixed_size_partitioner(EMBEDDING_PARTITIONS))
        inputs = tf.nn.embedding_lookup(embedding, tokens)
        inputs = tf.layers.dropout(inputs, rate=DROPOUT_RATE, training=is_training)
        cell = tf.nn.rnn_cell.MultiRNNCell(
            [tf.nn.rnn_cell.LSTMCell(UNITS, forget_bias=FORGET_BIAS) for _ in range(LAYERS)])
        outputs, _ = tf.nn.dynamic_rnn(cell, inputs, dtype=tf.float32)
        outputs = tf.layers.dropout(outputs, rate=DROPOUT_RATE, training=is_training)
        softmax_w = tf.get_variable("softmax_w", [UNITS, VOCABULARY_SIZE])
        softmax_b = tf.get_variable("softmax_b", [VOCABULARY_SIZE])
        batch_size, time_steps = tf.shape(tokens)[0], tf.shape(tokens)[1]
        flat_logits = tf.nn.xw_plus_b(tf.reshape(outputs, [-1, UNITS]), softmax_w, softmax_b)
    logits = tf.reshape(flat_logits, [batch_size, time_steps, VOCABULARY_SIZE], name="logits")
    return tokens, logits


def write_checkpoint(output_dir, *, steps=3, seed=0):
    """Trains a few Adagrad steps on random token streams and saves a checkpoint.

    Args:
        output_dir: directory for `model.ckpt-<steps>.*` and its `.meta`.
        steps: training steps.
        seed: seed for the variables and the token streams.

    Returns:
        The checkpoint prefix.
    """
    tf = compat.import_tf_v1()
    return training.train_and_save(
        output_dir=output_dir,
        build=training.softmax_classifier(define_graph, label_rank=2, make_batch=_next_tokens),
        optimizer=lambda: tf.train.AdagradOptimizer(0.5), steps=steps, seed=seed)


def _next_tokens(rng):
    """One batch of random token streams: each position's label is the next token."""
    stream = rng.integers(0, VOCABULARY_SIZE, size=(4, TIME_STEPS + 1))
    return stream[:, :-1], stream[:, 1:]
