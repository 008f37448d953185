"""No silently wrong layout: what the graph shows about a cell is read and checked by the plan."""

import keras

import verify_graphs

UNITS, FEATURES, STEPS = 4, 3, 5
# num_proj equal to num_units: every shape fits a Keras LSTM followed by a Dense.
PROJECTION = UNITS


def _partitioned_lstm(forget_bias, **cell_arguments):
    def build():
        tf = verify_graphs.tf_v1()
        inputs = tf.placeholder(tf.float32, [None, STEPS, FEATURES], name="inputs")
        # The loop reads the kernel through ConcatV2 of kernel/part_0..1.
        with tf.variable_scope("encoder", partitioner=tf.fixed_size_partitioner(2)):
            outputs, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.LSTMCell(UNITS, forget_bias=forget_bias,
                                                                   **cell_arguments),
                                           inputs, dtype=tf.float32)
        tf.identity(outputs, name="outputs")
    return build


def _lstm_model():
    inputs = keras.Input((STEPS, FEATURES), name="inputs")
    return keras.Model(inputs, keras.layers.LSTM(UNITS, return_sequences=True,
                                                 name="encoder")(inputs))


_LSTM_TABLE = """
[[rule]]
match = 'encoder/rnn/lstm_cell'
layout = 'lstm'
target = 'encoder/lstm_cell'
{extra}
"""


def test_partitioned_lstm_forget_bias_is_read_through_the_concat(tmp_path):
    import migrate
    from migrate.mapping.layouts import tf1_graph

    prefix = verify_graphs.save_graph(tmp_path, _partitioned_lstm(0.5))
    graph = migrate.LegacyCheckpoint.open(prefix).graph
    facts = tf1_graph.lstm_graph_facts(graph, "encoder/rnn/lstm_cell")
    assert (facts.cell_op, facts.forget_bias) == ("MatMul", 0.5)
    # Finding 4: a table saying 1.0 (the graph used 0.5) converted without a word.
    wrong = verify_graphs.write_table(tmp_path / "wrong.toml",
                                      _LSTM_TABLE.format(extra="forget_bias = 1.0"))
    problems = migrate.plan(prefix, wrong, _lstm_model()).problems
    assert len(problems) == 1 and "Expected forget_bias=0.5 (what the graph ran)" in (
        problems[0].describe())
    # Without a table value, the graph's 0.5 is used and the outputs agree.
    table = verify_graphs.write_table(tmp_path / "table.toml", _LSTM_TABLE.format(extra=""))
    model = verify_graphs.convert_and_restore(prefix, table, _lstm_model, tmp_path / "converted")
    report = migrate.verify(prefix, model, output_tensor="outputs:0")
    assert report.passed, report.summary()


def test_partitioned_lstm_cell_clipping_is_seen(tmp_path):
    import migrate

    prefix = verify_graphs.save_graph(tmp_path, _partitioned_lstm(1.0, cell_clip=3.0))
    table = verify_graphs.write_table(tmp_path / "table.toml", _LSTM_TABLE.format(extra=""))
    problems = migrate.plan(prefix, table, _lstm_model()).problems
    assert len(problems) == 1 and "Received: cell_clip=3.0" in problems[0].describe()


def test_a_graph_that_does_not_show_the_forget_bias_is_a_plan_problem_not_a_default(tmp_path):
    import migrate

    def build():
        tf = verify_graphs.tf_v1()
        # Only the variables: nothing in the graph reads them.
        tf.get_variable("encoder/rnn/lstm_cell/kernel", [FEATURES + UNITS, 4 * UNITS])
        tf.get_variable("encoder/rnn/lstm_cell/bias", [4 * UNITS])

    prefix = verify_graphs.save_graph(tmp_path, build)
    for extra in ("", "forget_bias = 1.0"):
        table = verify_graphs.write_table(tmp_path / "table.toml", _LSTM_TABLE.format(extra=extra))
        problems = migrate.plan(prefix, table, _lstm_model()).problems
        assert len(problems) == 1, [problem.describe() for problem in problems]
        message = problems[0].describe()
        assert "no op that reads encoder/rnn/lstm_cell's kernel" in message
        assert "default" not in message


def test_projection_mapped_by_a_plain_rule_is_a_plan_problem(tmp_path):
    import migrate

    def build():
        tf = verify_graphs.tf_v1()
        inputs = tf.placeholder(tf.float32, [None, STEPS, FEATURES], name="inputs")
        with tf.variable_scope("encoder"):
            outputs, _ = tf.nn.dynamic_rnn(
                tf.nn.rnn_cell.LSTMCell(UNITS, num_proj=PROJECTION), inputs, dtype=tf.float32)
        tf.identity(outputs, name="outputs")

    prefix = verify_graphs.save_graph(tmp_path, build)

    def model():
        inputs = keras.Input((STEPS, FEATURES), name="inputs")
        hidden = keras.layers.LSTM(UNITS, return_sequences=True, name="encoder")(inputs)
        return keras.Model(inputs, keras.layers.Dense(PROJECTION, use_bias=False,
                                                      name="projection")(hidden))

    table = verify_graphs.write_table(tmp_path / "table.toml", """
[[rule]]
match = 'encoder/rnn/lstm_cell/projection/kernel'
target = 'projection/kernel'

[[rule]]
match = 'encoder/rnn/lstm_cell'
layout = 'lstm'
target = 'encoder/lstm_cell'
""")
    # Finding 5: the graph facts knew of the projection, but only tests asked them.
    problems = migrate.plan(prefix, table, model()).problems
    graph_problems = [problem for problem in problems if problem.kind == "graph"]
    assert len(graph_problems) == 1, [problem.describe() for problem in problems]
    assert "num_proj" in graph_problems[0].describe()
    assert "encoder/rnn/lstm_cell/projection/kernel" in graph_problems[0].describe()
