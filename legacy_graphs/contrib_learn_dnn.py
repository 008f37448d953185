"""A DNNClassifier as TF 1.0's `tf.contrib.learn` saved it, rebuilt name for name in tf.compat.v1.

The iris quickstart of TensorFlow 1.0 (`real_valued_column("", dimension=4)`,
`hidden_units=[10, 20, 10]`, `n_classes=3`, `fit(x=..., y=...)`) wrote a
model_dir whose graph differs from `tf.estimator`'s in every name:

- the features were a bare array, which contrib.learn put in a dict under
  the key "" (the real-valued column named ""), fed by the data feeder's
  placeholders `input` and `output`;
- the input layer is `dnn/input_from_feature_columns/input_from_feature_columns`,
  and `concat` of its one column is an Identity;
- `layers.fully_connected` named the weights `weights` and `biases`, and
  the layer partitioner (`min_max_variable_partitioner(max_partitions=0)`)
  made each one partition: variables `.../weights/part_0`, saved under the
  whole name `dnn/hiddenlayer_0/weights` as a slice;
- a `centered_bias_weight` (in the global variables, not the trainable
  ones, trained by its own Adagrad step) is added to the logits;
- the training graph has no prediction ops: the loss says the head
  (`sparse_softmax_cross_entropy_loss` for more than two classes).

Not a `BUILDER_NAMES` entry: it writes a model_dir, not one of the zoo's
checkpoints. `write_model_dir` needs no Keras and runs in any process.
"""

import os

import numpy as np

NAME = "contrib_learn_dnn"
HIDDEN_UNITS = (10, 20, 10)
N_CLASSES = 3
DIMENSION = 4
INPUT_TENSOR = "input:0"
# The logits with the centered bias: what contrib.learn's predictions were computed from.
LOGITS_TENSOR = "BiasAdd:0"


def _partitioned(tf, name, shape, initializer):
    return tf.get_variable(name, shape, initializer=initializer,
                           partitioner=tf.fixed_size_partitioner(1))


def _build(tf):
    features = tf.placeholder(tf.float32, [None, DIMENSION], name="input")
    targets = tf.placeholder(tf.int64, [None], name="output")
    with tf.variable_scope("dnn/input_from_feature_columns"):
        with tf.variable_scope("input_from_feature_columns"):
            # `concat(1, [one tensor])` in TF 1.0 is an Identity.
            net = tf.identity(features, name="concat")
    sizes = (DIMENSION, *HIDDEN_UNITS)
    for index, units in enumerate(HIDDEN_UNITS):
        with tf.variable_scope(f"dnn/hiddenlayer_{index}"):
            weights = _partitioned(tf, "weights", [sizes[index], units],
                                   tf.glorot_uniform_initializer(seed=index))
            biases = _partitioned(tf, "biases", [units], tf.zeros_initializer())
            net = tf.nn.bias_add(tf.matmul(net, weights, name="MatMul"), biases,
                                 name="BiasAdd")
            net = tf.nn.relu(net, name="Relu")
    with tf.variable_scope("dnn/logits"):
        weights = _partitioned(tf, "weights", [HIDDEN_UNITS[-1], N_CLASSES],
                               tf.glorot_uniform_initializer(seed=9))
        biases = _partitioned(tf, "biases", [N_CLASSES], tf.zeros_initializer())
        logits = tf.nn.bias_add(tf.matmul(net, weights, name="MatMul"), biases,
                                name="BiasAdd")
    centered_bias = tf.Variable(tf.zeros([N_CLASSES]), name="centered_bias_weight",
                                collections=["centered_bias",
                                             tf.GraphKeys.GLOBAL_VARIABLES],
                                trainable=False)
    logits = tf.nn.bias_add(logits, centered_bias, name="BiasAdd")
    with tf.name_scope("sparse_softmax_cross_entropy_loss"):
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=targets, logits=logits, name="xentropy"), name="value")
    return features, targets, logits, centered_bias, loss


def write_model_dir(output_dir, *, steps=20, seed=0):
    """Trains a few Adagrad steps on iris-like data and saves as `fit` did; returns the prefix.

    Also returns fixed rows and the graph's logits for them:
    `(prefix, rows, logits)`.
    """
    import tensorflow as tf_module

    tf = tf_module.compat.v1
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(seed)
        features, targets, logits, centered_bias, loss = _build(tf)
        global_step = tf.train.get_or_create_global_step()
        trainable = tf.trainable_variables()
        train = tf.group(
            tf.train.AdagradOptimizer(0.5).minimize(loss, global_step, var_list=trainable,
                                                   name="dnn/train"),
            # contrib.learn's _centered_bias_step: its own Adagrad on the bias only.
            tf.train.AdagradOptimizer(0.1).minimize(loss, var_list=[centered_bias],
                                                   name="centered_bias_step"))
        rows = rng.normal(size=(8, DIMENSION)).astype(np.float32) * 2 + 3
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            for _ in range(steps):
                batch = rng.normal(size=(16, DIMENSION)).astype(np.float32) * 2 + 3
                labels = (batch.sum(axis=1) > 12).astype(np.int64) + (batch[:, 0] > 3)
                session.run(train, {features: batch, targets: labels})
            os.makedirs(output_dir, exist_ok=True)
            prefix = tf.train.Saver().save(session, os.path.join(output_dir, "model.ckpt"),
                                           global_step=global_step)
            expected = session.run(logits, {features: rows})
    return prefix, rows, expected
