"""A sequence classifier: a GRUCell over float features, its last output to dense logits."""

from legacy_graphs import compat
from legacy_graphs import training

NAME = "gru_classifier"
INPUT_TENSOR = "features:0"
OUTPUT_TENSOR = "logits:0"
TIME_STEPS = 7
FEATURES = 5
UNITS = 16
CLASSES = 4
DROPOUT_RATE = 0.3
INPUT_SHAPE = (TIME_STEPS, FEATURES)
INPUT_DTYPE = "float32"
INPUT_MAX = None


def define_graph():
    """Builds the inference graph in the current default graph.

    Variables live under `classifier/`:
    `classifier/rnn/gru_cell/{gates,candidate}/{kernel,bias}` and
    `classifier/output/{kernel,bias}` (a `tf.compat.v1.layers.dense`).

    Returns:
        (features, logits): the float32 placeholder [batch, time, FEATURES] and
        the logits [batch, CLASSES] named `logits`.
    """
    tf = compat.import_tf_v1()
    features = tf.placeholder(tf.float32, [None, None, FEATURES], name="features")
    # Dropout runs only when training feeds is_training=True.
    is_training = tf.placeholder_with_default(False, [], name="is_training")
    with tf.variable_scope("classifier"):
        outputs, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.GRUCell(UNITS), features, dtype=tf.float32)
        last_output = tf.layers.dropout(outputs[:, -1, :], rate=DROPOUT_RATE,
                                        training=is_training)
        logits = tf.layers.dense(last_output, CLASSES, name="output")
    return features, tf.identity(logits, name="logits")


def write_checkpoint(output_dir, *, steps=3, seed=0):
    """Trains a few Adam steps on random sequences and saves a checkpoint.

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
        build=training.softmax_classifier(define_graph, label_rank=1, make_batch=lambda rng: (
            rng.normal(size=(8, TIME_STEPS, FEATURES)), rng.integers(0, CLASSES, size=8))),
        optimizer=lambda: tf.train.AdamOptimizer(0.01), steps=steps, seed=seed)
