"""`concat` against the real TF1 graph: separate q/k/v projections into one fused Keras Dense."""

import keras

import migrate
from legacy_graphs import compat

HIDDEN, SEQUENCE = 6, 4

CONCAT_TABLE = """
[[rule]]
match = 'encoder/attention'
layout = 'concat'
target = 'fused_projection'
source_parts = ['query/kernel', 'key/kernel', 'value/kernel']
target_part = 'kernel'
axis = 1

[[rule]]
match = 'encoder/attention'
layout = 'concat'
target = 'fused_projection'
source_parts = ['query/bias', 'key/bias', 'value/bias']
target_part = 'bias'
axis = 0
"""


def _write_separate_projections(directory):
    tf = compat.import_tf_v1()
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(1)
        inputs = tf.placeholder(tf.float32, [None, SEQUENCE, HIDDEN], name="inputs")
        initializer = tf.random_normal_initializer(stddev=0.5)
        with tf.variable_scope("encoder/attention"):
            projections = [tf.layers.dense(inputs, HIDDEN, name=name,
                                           kernel_initializer=initializer,
                                           bias_initializer=initializer)
                           for name in ("query", "key", "value")]
        tf.identity(tf.concat(projections, axis=-1), name="outputs")
        saver = tf.train.Saver()
        with tf.Session(graph=graph) as session:
            session.run(tf.global_variables_initializer())
            return saver.save(session, str(directory / "model.ckpt"))


def _fused_model():
    inputs = keras.Input((SEQUENCE, HIDDEN))
    return keras.Model(inputs, keras.layers.Dense(3 * HIDDEN, name="fused_projection")(inputs))


def test_concat_of_separate_projections_matches_tf1(tmp_path):
    prefix = _write_separate_projections(tmp_path)
    table = migrate.MappingTable.from_text(CONCAT_TABLE)
    report = migrate.convert(prefix, table, _fused_model, str(tmp_path / "converted"))
    assert report.written_weights == 2 and report.roles["trainable"]["kept"] == 6
    model = _fused_model()
    migrate.restore(model, str(tmp_path / "converted"))
    result = migrate.verify(prefix, model, input_tensor="inputs:0", output_tensor="outputs:0",
                            input_shape=(SEQUENCE, HIDDEN))
    assert result.max_rel_diff < 1e-6, result.summary()
    # The order of the parts matters: value before query would not match.
    swapped = CONCAT_TABLE.replace("['query/kernel', 'key/kernel', 'value/kernel']",
                                   "['value/kernel', 'key/kernel', 'query/kernel']")
    migrate.convert(prefix, migrate.MappingTable.from_text(swapped), _fused_model,
                    str(tmp_path / "swapped"))
    model = _fused_model()
    migrate.restore(model, str(tmp_path / "swapped"))
    assert migrate.verify(prefix, model, input_tensor="inputs:0", output_tensor="outputs:0",
                          input_shape=(SEQUENCE, HIDDEN)).max_rel_diff > 1e-2
