"""The benchmark's many-checkpoints workload: a stack of dense layers of a chosen size, and its twin.

    python scripts/dense_stack.py OUTPUT_DIR MEGABYTES

writes `OUTPUT_DIR/model.ckpt-1`: a TF1 graph of `LAYERS` square dense
layers (`dense_0/kernel`, `dense_0/bias`, ..., as `tf.layers.dense` names
them) as wide as makes their weights about MEGABYTES of float32 (the bytes a
conversion keeps), trained one step with Momentum (one slot per weight, left
out), and `table.toml`, which maps each layer onto the Keras layer of the
same name. `build_model` is the Keras
model it converts into; it reads the width from the environment variable
`WIDTH_VARIABLE` (a batch's workers inherit it), and the benchmark gives it
as `dense_stack:build_model` with this directory on `PYTHONPATH`.
"""

import math
import os
import sys

LAYERS = 4
WIDTH_VARIABLE = "TF1_MIGRATE_BENCHMARK_DENSE_WIDTH"
TABLE = "[[rule]]\nmatch = '(dense_\\d+)/(kernel|bias)'\ntarget = '\\1/\\2'\n"


def width_for(megabytes):
    """The width whose `LAYERS` square float32 kernels and biases hold about `megabytes` MB."""
    return max(1, int(math.sqrt(megabytes * 1e6 / 4 / LAYERS)))


def build_model():
    """Returns the Keras twin: `LAYERS` Dense layers `dense_0`... of the width in `WIDTH_VARIABLE`."""
    import keras

    width = int(os.environ[WIDTH_VARIABLE])
    inputs = keras.Input(shape=(width,), name="features")
    outputs = inputs
    for index in range(LAYERS):
        outputs = keras.layers.Dense(width, name=f"dense_{index}")(outputs)
    return keras.Model(inputs, outputs)


def write_checkpoint(output_dir, megabytes):
    """Writes the TF1 checkpoint and `table.toml` into `output_dir`; returns the prefix."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    tf1.disable_eager_execution()
    width = width_for(megabytes)
    os.makedirs(output_dir, exist_ok=True)
    with tf1.Graph().as_default():
        tf1.set_random_seed(1)
        outputs = tf1.placeholder(tf.float32, [None, width], name="features")
        for index in range(LAYERS):
            # As tf.layers.dense names its variables (raw variables: no Keras 2 needed here).
            with tf1.variable_scope(f"dense_{index}"):
                kernel = tf1.get_variable("kernel", [width, width],
                                          initializer=tf1.glorot_uniform_initializer())
                bias = tf1.get_variable("bias", [width], initializer=tf1.zeros_initializer())
            outputs = tf.matmul(outputs, kernel) + bias
        step = tf1.train.get_or_create_global_step()
        train = tf1.train.MomentumOptimizer(0.01, 0.9).minimize(
            tf.reduce_mean(tf.square(outputs)), global_step=step)
        saver = tf1.train.Saver()
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            session.run(train, {"features:0": [[1.0] * width]})
            prefix = saver.save(session, os.path.join(output_dir, "model.ckpt"), global_step=step)
    with open(os.path.join(output_dir, "table.toml"), "w", encoding="utf-8") as table:
        table.write(TABLE)
    return prefix


if __name__ == "__main__":
    print(write_checkpoint(sys.argv[1], float(sys.argv[2])))
