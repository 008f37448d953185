"""A sequence tagger: embedding, bidirectional_dynamic_rnn of LSTMCells, per-step dense tags."""

from legacy_graphs import compat
from legacy_graphs import training

NAME = "bilstm_tagger"
INPUT_TENSOR = "tokens:0"
OUTPUT_TENSOR = "logits:0"
VOCABULARY_SIZE = 50
EMBEDDING_SIZE = 12
UNITS = 16
TAGS = 6
TIME_STEPS = 8
FORGET_BIAS = 1.0
DROPOUT_RATE = 0.2
INPUT_SHAPE = (TIME_STEPS,)
INPUT_DTYPE = "int32"
INPUT_MAX = VOCABULARY_SIZE


def define_graph():
    """Builds the inference graph in the current default graph.

    Variables live under `tagger/`: `tagger/embedding`,
    `tagger/bidirectional_rnn/{fw,bw}/lstm_cell/{kernel,bias}` and
    `tagger/tags/{kernel,bias}` (a `tf.compat.v1.layers.dense` on every step).

    Returns:
        (tokens, logits): the int32 placeholder [batch, time] and the logits
        [batch, time, TAGS] named `logits`.
    """
    tf = compat.import_tf_v1()
    tokens = tf.placeholder(tf.int32, [None, None], name="tokens")
    # Dropout runs only when training feeds is_training=True.
    is_training = tf.placeholder_with_default(False, [], name="is_training")
    with tf.variable_scope("tagger"):
        embedding = tf.get_variable("embedding", [VOCABULARY_SIZE, EMBEDDING_SIZE])
        inputs = tf.layers.dropout(tf.nn.embedding_lookup(embedding, tokens), rate=DROPOUT_RATE,
                                   training=is_training)
        (forward, backward), _ = tf.nn.bidirectional_dynamic_rnn(
            tf.nn.rnn_cell.LSTMCell(UNITS, forget_bias=FORGET_BIAS),
            tf.nn.rnn_cell.LSTMCell(UNITS, forget_bias=FORGET_BIAS),
            inputs, dtype=tf.float32)
        outputs = tf.layers.dropout(tf.concat([forward, backward], axis=-1), rate=DROPOUT_RATE,
                                    training=is_training)
        logits = tf.layers.dense(outputs, TAGS, name="tags")
    return tokens, tf.identity(logits, name="logits")


def write_checkpoint(output_dir, *, steps=3, seed=0):
    """Trains a few Momentum steps on random token/tag sequences and saves a checkpoint.

    Args:
        output_dir: directory for `model.ckpt-<steps>.*` and its `.meta`.
        steps: training steps.
        seed: seed for the variables and the training data.

    Returns:
        The checkpoint prefix.
    """
    tf = compat.import_tf_v1()
    return training.train_and_save(
        output_dir=output_dir,
        build=training.softmax_classifier(define_graph, label_rank=2, make_batch=lambda rng: (
            rng.integers(0, VOCABULARY_SIZE, size=(4, TIME_STEPS)),
            rng.integers(0, TAGS, size=(4, TIME_STEPS)))),
        optimizer=lambda: tf.train.MomentumOptimizer(0.1, momentum=0.9), steps=steps, seed=seed)
