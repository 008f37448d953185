"""The benchmark's memory workload: a 1 GB embedding TF1 saved in 8 partitions, and its Keras twin.

    python scripts/partitioned_embedding.py OUTPUT_DIR

writes `OUTPUT_DIR/model.ckpt-1` (TF1, `tf.fixed_size_partitioner(8)`: one
key holding the whole table as 8 stored slices of uneven rows) and the two
tables that convert it: `mod.toml` (the table was looked up with TF1's
default `partition_strategy="mod"`, so its rows are not in id order:
`unpartition_mod(8)`) and `div.toml` (`partition_strategy="div"`: rows in
order, a plain rule). `build_model` is the Keras model both convert into;
the benchmark gives it as `partitioned_embedding:build_model` with this
directory on `PYTHONPATH`.
"""

import os
import sys

# 262147 rows (not a multiple of 8: the first three partitions hold one more)
# of 1024 float32: 1.07 GB, 134 MB per partition.
ROWS = 262147
WIDTH = 1024
PARTITIONS = 8
KEY = "model/embedding"
TABLES = {
    "mod": f"[[rule]]\nmatch = '{KEY}'\ntarget = 'embedding/embeddings'\n"
           f"transform = ['unpartition_mod({PARTITIONS})']\n",
    "div": f"[[rule]]\nmatch = '{KEY}'\ntarget = 'embedding/embeddings'\n",
}


def build_model():
    """Returns the Keras model: int32 ids -> `Embedding(ROWS, WIDTH)` named `embedding`."""
    import keras

    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    return keras.Model(ids, keras.layers.Embedding(ROWS, WIDTH, name="embedding")(ids))


def write_checkpoint(output_dir):
    """Writes the TF1 checkpoint and the two tables into `output_dir`; returns the prefix."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    tf1.disable_eager_execution()
    os.makedirs(output_dir, exist_ok=True)
    with tf1.Graph().as_default():
        tf1.get_variable(KEY, [ROWS, WIDTH], initializer=tf1.random_normal_initializer(seed=1),
                         partitioner=tf1.fixed_size_partitioner(PARTITIONS))
        saver = tf1.train.Saver()
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            prefix = saver.save(session, os.path.join(output_dir, "model.ckpt"), global_step=1)
    for name, text in TABLES.items():
        with open(os.path.join(output_dir, f"{name}.toml"), "w", encoding="utf-8") as table:
            table.write(text)
    return prefix


if __name__ == "__main__":
    print(write_checkpoint(sys.argv[1]))
