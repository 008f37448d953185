"""Partitioned embeddings read a partition at a time, checked against the legacy graph's lookups."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import migrate
from migrate.output import direct_read
from migrate.output import manifest as manifest_lib
from migrate.source.checkpoint import LegacyCheckpoint

# Uneven partitions (129 rows for the first three, 128 for the others), and at
# least direct_read.MIN_BYTES, so the partition-at-a-time read is the one taken.
ROWS, WIDTH, PARTITIONS = 1027, 256, 8

# TF1 as people wrote it: one get_variable with a fixed_size_partitioner,
# looked up with each partition strategy; the lookups of every id are what
# the converted Keras embedding must hold, row for row.
_BUILD = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    tf1 = tf.compat.v1
    tf1.disable_eager_execution()
    rows, width, partitions = (int(argument) for argument in sys.argv[1:4])
    directory = sys.argv[4]
    with tf1.Graph().as_default():
        embedding = tf1.get_variable(
            "model/embedding", [rows, width], initializer=tf1.random_normal_initializer(seed=1),
            partitioner=tf1.fixed_size_partitioner(partitions))
        ids = tf1.placeholder(tf.int32, [None], name="ids")
        lookups = {strategy: tf1.nn.embedding_lookup(embedding, ids, partition_strategy=strategy)
                   for strategy in ("mod", "div")}
        saver = tf1.train.Saver()
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            saver.save(session, directory + "/model.ckpt", global_step=1)
            for strategy, lookup in lookups.items():
                np.save(f"{directory}/{strategy}.npy",
                        session.run(lookup, {ids: np.arange(rows, dtype=np.int32)}))
""")

_TABLES = {
    "mod": f"[[rule]]\nmatch = 'model/embedding'\ntarget = 'embedding/embeddings'\n"
           f"transform = ['unpartition_mod({PARTITIONS})']\n",
    "div": "[[rule]]\nmatch = 'model/embedding'\ntarget = 'embedding/embeddings'\n",
}


@pytest.fixture(scope="module")
def partitioned(tmp_path_factory):
    directory = tmp_path_factory.mktemp("partitioned")
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, "-c", _BUILD, str(ROWS), str(WIDTH), str(PARTITIONS),
                    str(directory)], check=True, env=environment, capture_output=True)
    return str(directory)


def _embedding_model():
    import keras

    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    embedded = keras.layers.Embedding(ROWS, WIDTH, name="embedding")(ids)
    return keras.Model(ids, embedded)


@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_a_partitioned_embedding_converts_to_the_legacy_lookups(partitioned, strategy, tmp_path):
    table = tmp_path / "table.toml"
    table.write_text(_TABLES[strategy])
    output = str(tmp_path / "out")
    migrate.convert(os.path.join(partitioned, "model.ckpt-1"), str(table), _embedding_model,
                    output)
    model = _embedding_model()
    migrate.restore(model, output)
    expected = np.load(os.path.join(partitioned, f"{strategy}.npy"))
    np.testing.assert_array_equal(model.get_layer("embedding").embeddings.numpy(), expected)
    assert manifest_lib.check(output).ok


def test_the_mod_table_reads_a_partition_at_a_time_and_only_when_the_slices_fit(partitioned,
                                                                                 tmp_path):
    prefix = os.path.join(partitioned, "model.ckpt-1")
    checkpoint = LegacyCheckpoint.open(prefix)
    source = checkpoint.variables["model/embedding"]
    sizes = [129] * 3 + [128] * 5
    assert direct_read.stored_row_slices(checkpoint, source.name) == [
        (sum(sizes[:part]), size) for part, size in enumerate(sizes)]
    model = _embedding_model()
    variable = model.get_layer("embedding").embeddings

    def assignment(partitions):
        table = migrate.MappingTable.from_text(
            _TABLES["mod"].replace(f"({PARTITIONS})", f"({partitions})"))
        (only,) = migrate.plan(checkpoint, table, model).assignments
        return only

    assert direct_read.mod_partitions(assignment(8), source, variable, checkpoint) == 8
    # Stored as 8 slices, read as 4 partitions: the slices do not fit, NumPy converts it.
    assert direct_read.mod_partitions(assignment(4), source, variable, checkpoint) == 0
    nonfinite = direct_read.restore_mod_partitions(checkpoint.reader_path, source.name, variable,
                                                   PARTITIONS)
    assert nonfinite == 0
    np.testing.assert_array_equal(variable.numpy(),
                                  np.load(os.path.join(partitioned, "mod.npy")))
