"""The first layer that diverges: each deliberately broken conversion is pinned on its layer."""

import keras
import numpy as np
import pytest

import verify_graphs
from migrate import zoo

SIZE, CHANNELS, DEPTH = 6, 3, 4
UNITS, FEATURES, STEPS = 4, 3, 5


def _deep_convnet():
    tf = verify_graphs.tf_v1()
    images = tf.placeholder(tf.float32, [None, SIZE, SIZE, CHANNELS], name="images")
    net = images
    for index in range(1, DEPTH + 1):
        net = tf.layers.conv2d(net, CHANNELS, 3, padding="same", activation=tf.nn.relu,
                               name=f"conv{index}")
    tf.identity(tf.layers.dense(tf.layers.flatten(net), 2, name="logits"), name="output")


def _deep_convnet_model():
    images = keras.Input((SIZE, SIZE, CHANNELS), name="images")
    net = images
    for index in range(1, DEPTH + 1):
        net = keras.layers.Conv2D(CHANNELS, 3, padding="same", activation="relu",
                                  name=f"conv{index}")(net)
    net = keras.layers.Flatten(name="flatten")(net)
    return keras.Model(images, keras.layers.Dense(2, name="logits")(net))


_CONVNET_TABLE = """
[[rule]]
match = 'conv3/kernel'
target = 'conv3/kernel'
transform = [{broken}]

[[rule]]
match = '(conv\\d|logits)/(kernel|bias)'
target = '\\1/\\2'
"""


def test_a_transposed_kernel_in_one_convolution_is_named(tmp_path):
    import migrate

    prefix = verify_graphs.save_graph(tmp_path, _deep_convnet)
    right = verify_graphs.write_table(tmp_path / "right.toml", _CONVNET_TABLE.format(broken=""))
    model = verify_graphs.convert_and_restore(prefix, right, _deep_convnet_model,
                                              tmp_path / "right")
    report = migrate.verify(prefix, model, output_tensor="output:0", layers=True, table=right)
    assert report.passed and report.first_divergent_layer is None
    assert [item["layer"] for item in report.layers] == ["conv1", "conv2", "conv3", "conv4",
                                                          "logits"]
    assert report.layers[2]["legacy_tensor"] == "conv3/Relu:0"

    # The kernel's spatial axes swapped: the shapes still fit, the outputs do not.
    broken = verify_graphs.write_table(tmp_path / "broken.toml",
                                       _CONVNET_TABLE.format(broken="'transpose(1, 0, 2, 3)'"))
    model = verify_graphs.convert_and_restore(prefix, broken, _deep_convnet_model,
                                              tmp_path / "broken")
    # Parity fails, so the layers are compared without being asked; the table
    # comes from the converted output's manifest.
    report = migrate.verify(prefix, model, output_tensor="output:0",
                            converted=str(tmp_path / "broken"))
    assert not report.passed and report.first_divergent_layer == "conv3", report.summary()
    conv3 = report.layers[2]
    assert conv3["sources"] == ["conv3/kernel", "conv3/bias"] and conv3["rules"] == [1, 2]
    assert not report.layers[1]["diverged"]
    assert "first divergent layer conv3" in report.summary()


def _lstm_stack():
    tf = verify_graphs.tf_v1()
    net = tf.placeholder(tf.float32, [None, STEPS, FEATURES], name="inputs")
    for name in ("lstm1", "lstm2"):
        with tf.variable_scope(name):
            net, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.LSTMCell(UNITS), net, dtype=tf.float32)
    tf.identity(tf.layers.dense(net, 2, name="dense"), name="output")


def _lstm_stack_model():
    inputs = keras.Input((STEPS, FEATURES), name="inputs")
    net = keras.layers.LSTM(UNITS, return_sequences=True, name="lstm1")(inputs)
    net = keras.layers.LSTM(UNITS, return_sequences=True, name="lstm2")(net)
    return keras.Model(inputs, keras.layers.Dense(2, name="dense")(net))


# The second LSTM's fused kernel is cut into Keras's kernel and recurrent
# kernel as if TF1 kept Keras's gate order (i, f, c, o): it keeps (i, j, f, o).
_GATE_ORDER_MISTAKE = f"""
[[rule]]
match = 'lstm1/rnn/lstm_cell'
layout = 'lstm'
target = 'lstm1/lstm_cell'

[[rule]]
match = 'lstm2/rnn/lstm_cell/bias'
target = 'lstm2/lstm_cell/bias'

[[rule]]
match = 'lstm2/rnn/lstm_cell'
layout = 'split'
target = 'lstm2/lstm_cell'
source_part = 'kernel'
target_parts = ['kernel', 'recurrent_kernel']
axis = 0
sizes = [{UNITS}, {UNITS}]

[[rule]]
match = 'dense/(kernel|bias)'
target = 'dense/\\1'
"""


def test_a_gate_order_mistake_in_the_second_lstm_of_a_stack_is_named(tmp_path):
    import migrate

    prefix = verify_graphs.save_graph(tmp_path, _lstm_stack)
    table = verify_graphs.write_table(tmp_path / "table.toml", _GATE_ORDER_MISTAKE)
    model = verify_graphs.convert_and_restore(prefix, table, _lstm_stack_model,
                                              tmp_path / "converted")
    report = migrate.verify(prefix, model, output_tensor="output:0", table=table)
    assert not report.passed and report.first_divergent_layer == "lstm2", report.summary()
    first, second = report.layers[:2]
    assert first["layer"] == "lstm1" and not first["diverged"]
    assert first["max_rel_diff"] < 1e-5 and first["legacy_tensor"].startswith("lstm1/")
    assert second["rules"] == [2, 3]


def test_one_permuted_attention_head_is_named(legacy_checkpoint, tmp_path):
    import migrate

    entry = zoo.get("bert_encoder")
    prefix = legacy_checkpoint("bert_encoder")
    model = verify_graphs.convert_and_restore(prefix, entry.table_path, entry.build_model,
                                              tmp_path / "converted")
    assert migrate.verify(prefix, model, **entry.verify).passed
    # As a table that permuted the query heads of layer 1 would: heads 0 and 1 swapped.
    query = model.get_layer("layer_1_attention")._query_dense.kernel
    value = np.array(query)
    query.assign(value[:, [1, 0, *range(2, value.shape[1])], :])
    report = migrate.verify(prefix, model, table=entry.table_path, **entry.verify)
    assert not report.passed
    assert report.first_divergent_layer == "layer_1_attention", report.summary()
    assert all(not item["diverged"] for item in report.layers
               if item["layer"].startswith(("layer_0", "embeddings")))


def test_the_layer_plot_is_a_png_or_says_it_needs_matplotlib(tmp_path):
    import importlib.util

    import migrate
    from migrate.verification import layers

    items = [{"layer": "a", "max_rel_diff": 1e-7, "diverged": False},
             {"layer": "b", "max_rel_diff": 0.3, "diverged": True}]
    path = str(tmp_path / "layers.png")
    if importlib.util.find_spec("matplotlib") is None:  # the optional `plot` extra
        with pytest.raises(migrate.ArgumentError, match="needs matplotlib"):
            layers.plot(items, path, tolerance=1e-5)
        return
    assert layers.plot(items, path, tolerance=1e-5) == path
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layers.png"]


# Two embeddings of one shape, summed, then BatchNorm: a swapped pair must be
# blamed on the embeddings, not on the BatchNorm that first sees their sum.
VOCAB, EMBED = 9, 4


def _two_embeddings():
    tf = verify_graphs.tf_v1()
    words = tf.placeholder(tf.int32, [None, STEPS], name="words")
    tags = tf.placeholder(tf.int32, [None, STEPS], name="tags")
    word_table = tf.get_variable("word_embedding", [VOCAB, EMBED])
    tag_table = tf.get_variable("tag_embedding", [VOCAB, EMBED])
    summed = tf.nn.embedding_lookup(word_table, words) + tf.nn.embedding_lookup(tag_table, tags)
    normalized = tf.layers.batch_normalization(summed, training=False, name="norm")
    tf.identity(tf.layers.dense(normalized, 2, name="dense"), name="output")


def _two_embeddings_model():
    words = keras.Input((STEPS,), dtype="int32", name="words")
    tags = keras.Input((STEPS,), dtype="int32", name="tags")
    summed = keras.layers.Add(name="add")([
        keras.layers.Embedding(VOCAB, EMBED, name="word_embedding")(words),
        keras.layers.Embedding(VOCAB, EMBED, name="tag_embedding")(tags)])
    normalized = keras.layers.BatchNormalization(epsilon=1e-3, name="norm")(summed)
    return keras.Model([words, tags], keras.layers.Dense(2, name="dense")(normalized))


_SWAPPED_EMBEDDINGS = """
[[rule]]
match = 'word_embedding'
target = 'tag_embedding/embeddings'

[[rule]]
match = 'tag_embedding'
target = 'word_embedding/embeddings'

[[rule]]
match = 'norm/(gamma|beta|moving_mean|moving_variance)'
target = 'norm/\\1'

[[rule]]
match = 'dense/(kernel|bias)'
target = 'dense/\\1'
"""


def test_a_swapped_pair_of_embeddings_is_blamed_on_the_embeddings(tmp_path):
    import migrate

    prefix = verify_graphs.save_graph(tmp_path, _two_embeddings)
    table = verify_graphs.write_table(tmp_path / "table.toml", _SWAPPED_EMBEDDINGS)
    migrate.convert(prefix, table, _two_embeddings_model(), str(tmp_path / "converted"),
                    options=migrate.ConversionOptions(keep="model_state"))
    model = _two_embeddings_model()
    migrate.restore(model, str(tmp_path / "converted"))
    report = migrate.verify(prefix, model, output_tensor="output:0", input_max=VOCAB,
                            table=table)
    assert not report.passed
    by_layer = {item["layer"]: item for item in report.layers}
    assert report.first_divergent_layer in ("word_embedding", "tag_embedding"), report.summary()
    for name, variable in (("word_embedding", "tag_embedding"),
                           ("tag_embedding", "word_embedding")):
        item = by_layer[name]
        assert item["diverged"] and item["sources"] == [variable], report.summary()
        # The lookup that reads the variable the layer's weights came from.
        assert item["legacy_tensor"].startswith("embedding_lookup"), report.summary()


# Two recurrent layers of one shape (features == units) after a dense projection.
def _recurrent_stack(cell):
    def build():
        tf = verify_graphs.tf_v1()
        inputs = tf.placeholder(tf.float32, [None, STEPS, FEATURES], name="inputs")
        net = tf.layers.dense(inputs, UNITS, name="proj")
        for name in ("rnn1", "rnn2"):
            with tf.variable_scope(name):
                net, _ = tf.nn.dynamic_rnn(cell(UNITS), net, dtype=tf.float32)
        tf.identity(tf.layers.dense(net, 2, name="dense"), name="output")
    return build


def _recurrent_stack_model(layer):
    def build():
        inputs = keras.Input((STEPS, FEATURES), name="inputs")
        net = keras.layers.Dense(UNITS, name="proj")(inputs)
        net = layer(UNITS, return_sequences=True, name="rnn1")(net)
        net = layer(UNITS, return_sequences=True, name="rnn2")(net)
        return keras.Model(inputs, keras.layers.Dense(2, name="dense")(net))
    return build


_SWAPPED_RECURRENT = """
[[rule]]
match = 'rnn1/rnn/{cell}'
layout = '{layout}'
target = 'rnn2/{cell}'

[[rule]]
match = 'rnn2/rnn/{cell}'
layout = '{layout}'
target = 'rnn1/{cell}'

[[rule]]
match = '(proj|dense)/(kernel|bias)'
target = '\\1/\\2'
"""


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("tf1_style", [False, True], ids=["while_v2", "tf1_while"])
def test_a_swapped_pair_of_recurrent_layers_is_blamed_on_the_first(tmp_path, kind, tf1_style):
    import contextlib

    import migrate
    import tf1_builders

    tf = verify_graphs.tf_v1()
    def gru(units, **kwargs):  # TF1's GRUCell resets before the recurrent product.
        return keras.layers.GRU(units, reset_after=False, **kwargs)

    cell, layer, name = {"lstm": (tf.nn.rnn_cell.LSTMCell, keras.layers.LSTM, "lstm_cell"),
                         "gru": (tf.nn.rnn_cell.GRUCell, gru, "gru_cell")}[kind]
    with tf1_builders.tf1_control_flow() if tf1_style else contextlib.nullcontext():
        prefix = verify_graphs.save_graph(tmp_path, _recurrent_stack(cell))
    table = verify_graphs.write_table(tmp_path / "table.toml",
                                      _SWAPPED_RECURRENT.format(cell=name, layout=kind))
    model = verify_graphs.convert_and_restore(prefix, table, _recurrent_stack_model(layer),
                                              tmp_path / "converted")
    report = migrate.verify(prefix, model, output_tensor="output:0", table=table)
    assert not report.passed and report.first_divergent_layer == "rnn1", report.summary()
    proj, rnn1, rnn2 = report.layers[:3]
    assert proj["layer"] == "proj" and proj["max_rel_diff"] < 1e-5
    # Each recurrent layer is compared with the output sequence of the loop
    # that reads the variables its weights came from (swapped: the other's).
    assert rnn1["sources"][0].startswith("rnn2/") and rnn1["diverged"]
    assert rnn1["legacy_tensor"].startswith("rnn2/rnn/"), report.summary()
    assert rnn2["legacy_tensor"].startswith("rnn1/rnn/"), report.summary()
    assert rnn2["max_rel_diff"] is not None and rnn2["compared"]


def _multi_rnn_cell_stack():
    tf = verify_graphs.tf_v1()
    inputs = tf.placeholder(tf.float32, [None, STEPS, FEATURES], name="inputs")
    cells = tf.nn.rnn_cell.MultiRNNCell([tf.nn.rnn_cell.LSTMCell(UNITS) for _ in range(2)])
    net, _ = tf.nn.dynamic_rnn(cells, inputs, dtype=tf.float32)
    tf.identity(tf.layers.dense(net, 2, name="dense"), name="output")


_MULTI_RNN_CELL_TABLE = """
[[rule]]
match = 'rnn/multi_rnn_cell/cell_(\\d)/lstm_cell'
layout = 'lstm'
target = 'lstm\\1/lstm_cell'

[[rule]]
match = 'dense/(kernel|bias)'
target = 'dense/\\1'
"""


def test_an_inner_cell_of_a_multi_rnn_cell_is_not_compared_never_agreeing(tmp_path):
    import migrate

    def model():
        inputs = keras.Input((STEPS, FEATURES), name="inputs")
        net = keras.layers.LSTM(UNITS, return_sequences=True, name="lstm0")(inputs)
        net = keras.layers.LSTM(UNITS, return_sequences=True, name="lstm1")(net)
        return keras.Model(inputs, keras.layers.Dense(2, name="dense")(net))

    prefix = verify_graphs.save_graph(tmp_path, _multi_rnn_cell_stack)
    table = verify_graphs.write_table(tmp_path / "table.toml", _MULTI_RNN_CELL_TABLE)
    restored = verify_graphs.convert_and_restore(prefix, table, model, tmp_path / "converted")
    report = migrate.verify(prefix, restored, output_tensor="output:0", layers=True, table=table)
    assert report.passed, report.summary()
    inner, last = report.layers[:2]
    assert not inner["compared"] and inner["legacy_tensor"] is None
    assert last["compared"] and last["max_rel_diff"] < 1e-5
    assert "lstm0  " in report.summary() and "not compared" in report.summary()
    assert "no compared layer diverges beyond the tolerance (1 not compared)" in report.summary()


def _bidirectional(with_lengths):
    def build():
        tf = verify_graphs.tf_v1()
        inputs = tf.placeholder(tf.float32, [None, STEPS, FEATURES], name="inputs")
        # With lengths, the backward sequence is put back in time order by
        # ReverseSequence; without, by ReverseV2.
        lengths = tf.fill([tf.shape(inputs)[0]], STEPS) if with_lengths else None
        (forward, backward), _ = tf.nn.bidirectional_dynamic_rnn(
            tf.nn.rnn_cell.LSTMCell(UNITS), tf.nn.rnn_cell.LSTMCell(UNITS), inputs,
            sequence_length=lengths, dtype=tf.float32, scope="birnn")
        net = tf.concat([forward, backward], axis=-1)
        tf.identity(tf.layers.dense(net, 2, name="dense"), name="output")
    return build


def _bidirectional_model():
    inputs = keras.Input((STEPS, FEATURES), name="inputs")
    # Named: the wrapper names its copies forward_<name> and backward_<name>.
    net = keras.layers.Bidirectional(keras.layers.LSTM(UNITS, return_sequences=True,
                                                       name="lstm"), name="birnn")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="dense")(net))


_BIDIRECTIONAL = """
[[rule]]
match = 'birnn/fw/lstm_cell'
layout = 'lstm'
target = 'birnn/{forward}_lstm/lstm_cell'
forget_bias = 1.0

[[rule]]
match = 'birnn/bw/lstm_cell'
layout = 'lstm'
target = 'birnn/{backward}_lstm/lstm_cell'
forget_bias = 1.0

[[rule]]
match = 'dense/(kernel|bias)'
target = 'dense/\\1'
"""


@pytest.mark.parametrize("tf1_style, with_lengths", [(False, False), (True, True)],
                         ids=["while_v2-reverse", "tf1_while-reverse_sequence"])
def test_a_bidirectional_layer_is_compared_with_its_two_directions_merged(tmp_path, tf1_style,
                                                                        with_lengths):
    import contextlib

    import migrate
    import tf1_builders

    with tf1_builders.tf1_control_flow() if tf1_style else contextlib.nullcontext():
        prefix = verify_graphs.save_graph(tmp_path, _bidirectional(with_lengths))
    right = verify_graphs.write_table(tmp_path / "right.toml", _BIDIRECTIONAL.format(
        forward="forward", backward="backward"))
    model = verify_graphs.convert_and_restore(prefix, right, _bidirectional_model,
                                              tmp_path / "right")
    report = migrate.verify(prefix, model, output_tensor="output:0", layers=True, table=right)
    assert report.passed and report.first_divergent_layer is None, report.summary()
    birnn = report.layers[0]
    # Keras concatenates the forward sequence and the backward one, back in time order.
    assert birnn["layer"] == "birnn" and birnn["max_rel_diff"] < 1e-5, report.summary()
    assert birnn["legacy_tensor"].startswith("concat(birnn/fw/"), report.summary()
    assert "not compared" not in report.summary()

    # The two directions' weights swapped: the shapes fit, the sequences do not.
    swapped = verify_graphs.write_table(tmp_path / "swapped.toml", _BIDIRECTIONAL.format(
        forward="backward", backward="forward"))
    model = verify_graphs.convert_and_restore(prefix, swapped, _bidirectional_model,
                                              tmp_path / "swapped")
    report = migrate.verify(prefix, model, output_tensor="output:0", table=swapped)
    assert not report.passed and report.first_divergent_layer == "birnn", report.summary()


# An LSTM that also returns its states ([sequence, h, c]): compared on its sequence, and a
# failing parity run still reports its figure and the divergent layer.
def _stateful_lstm():
    tf = verify_graphs.tf_v1()
    inputs = tf.placeholder(tf.float32, [None, STEPS, FEATURES], name="inputs")
    sequence, state = tf.nn.dynamic_rnn(tf.nn.rnn_cell.LSTMCell(UNITS), inputs, dtype=tf.float32)
    summary = tf.concat([sequence[:, -1], state.c], axis=-1)
    tf.identity(tf.layers.dense(summary, 2, name="dense"), name="output")


def _stateful_lstm_model():
    inputs = keras.Input((STEPS, FEATURES), name="inputs")
    _, last, cell_state = keras.layers.LSTM(UNITS, return_sequences=True, return_state=True,
                                            name="lstm")(inputs)
    summary = keras.layers.Concatenate(name="summary")([last, cell_state])
    return keras.Model(inputs, keras.layers.Dense(2, name="dense")(summary))


_STATEFUL_LSTM_TABLE = """
[[rule]]
match = 'rnn/lstm_cell'
layout = 'lstm'
target = 'lstm/lstm_cell'
forget_bias = {forget_bias}

[[rule]]
match = 'dense/(kernel|bias)'
target = 'dense/\\1'
"""


def test_a_layer_returning_its_states_is_compared_on_its_sequence(tmp_path):
    import migrate

    prefix = verify_graphs.save_graph(tmp_path, _stateful_lstm)
    right = verify_graphs.write_table(tmp_path / "right.toml",
                                      _STATEFUL_LSTM_TABLE.format(forget_bias=1.0))
    model = verify_graphs.convert_and_restore(prefix, right, _stateful_lstm_model,
                                              tmp_path / "right")
    report = migrate.verify(prefix, model, output_tensor="output:0", layers=True, table=right)
    assert report.passed, report.summary()
    lstm = report.layers[0]
    assert lstm["layer"] == "lstm" and lstm["shape"] == [2, STEPS, UNITS]
    assert lstm["max_rel_diff"] < 1e-5 and lstm["legacy_tensor"].startswith("rnn/")

    # The graph shows forget_bias 1.0, the table says 0.0: the plan refuses, so the
    # broken weights are put in by hand as such a table would have made them.
    bias = model.get_layer("lstm").cell.bias
    bias.assign(np.asarray(bias) - np.repeat([0.0, 1.0, 0.0, 0.0], UNITS))
    report = migrate.verify(prefix, model, output_tensor="output:0", table=right)
    assert not report.passed and report.max_rel_diff > 1e-5
    assert report.first_divergent_layer == "lstm", report.summary()


# TF 0.x's static stack of three BasicLSTMCells, the first cut as if TF1 kept Keras' gate order.
_TF0X_FIRST_LAYER_MISTAKE = """
[[rule]]
match = 'RNN/MultiRNNCell/Cell0/BasicLSTMCell/Linear/Bias'
target = 'lstm_0/lstm_cell/bias'

[[rule]]
match = 'RNN/MultiRNNCell/Cell0/BasicLSTMCell'
layout = 'split'
target = 'lstm_0/lstm_cell'
source_part = 'Linear/Matrix'
target_parts = ['kernel', 'recurrent_kernel']
axis = 0
sizes = [{features}, {units}]

[[rule]]
match = 'RNN/MultiRNNCell/Cell(\\d)/BasicLSTMCell'
layout = 'lstm_linear_names'
target = 'lstm_\\1/lstm_cell'

[[rule]]
match = 'softmax_w'
target = 'softmax/kernel'

[[rule]]
match = 'softmax_b'
target = 'softmax/bias'
"""


def test_a_gate_order_mistake_in_the_first_of_three_static_lstms_is_named(tmp_path):
    import migrate
    import real_patterns

    prefix = verify_graphs.save_graph(tmp_path, real_patterns.build_tf0x_lstm_stack)
    table = verify_graphs.write_table(tmp_path / "table.toml", _TF0X_FIRST_LAYER_MISTAKE.format(
        features=real_patterns.FEATURES, units=real_patterns.UNITS))
    model = verify_graphs.convert_and_restore(prefix, table, real_patterns.tf0x_lstm_stack_model,
                                              tmp_path / "converted")
    report = migrate.verify(prefix, model, output_tensor="logits:0", table=table)
    assert not report.passed and report.first_divergent_layer == "lstm_0", report.summary()
    # Each layer against the stack of its own steps' outputs (no loop: one cell call a step),
    # the last LSTM against its last step, the head against its matmul plus bias.
    lstm_0, _, lstm_2, softmax = report.layers
    assert lstm_0["legacy_tensor"].startswith("stack(RNN/MultiRNNCell/Cell0/BasicLSTMCell/")
    assert lstm_2["legacy_tensor"].endswith("/Cell2/BasicLSTMCell/mul_2:0)[:, -1]")
    assert softmax["compared"] and "not compared" not in report.summary()


# One Keras layer of two tables (token and position embeddings, summed, as GPT-2's graph sums
# its `wte` and `wpe` lookups), then an exact-erf GELU where the graph has tanh's approximation.
POSITIONS = STEPS


def _token_and_position():
    tf = verify_graphs.tf_v1()
    ids = tf.placeholder(tf.int32, [None, STEPS], name="ids")
    with tf.variable_scope("model"):
        wte = tf.get_variable("wte", [VOCAB, EMBED])
        wpe = tf.get_variable("wpe", [POSITIONS, EMBED])
        positions = tf.tile(tf.range(tf.shape(ids)[1])[None], [tf.shape(ids)[0], 1])
        hidden = tf.gather(wte, ids) + tf.gather(wpe, positions)
        with tf.variable_scope("mlp"):
            inner = tf.layers.dense(hidden, 2 * EMBED, name="fc")
            inner = 0.5 * inner * (1 + tf.tanh(np.sqrt(2 / np.pi) * (inner + 0.044715 * inner**3)))
        output = tf.layers.dense(inner, 2, name="proj")
    tf.identity(output, name="output")


class _TokenAndPosition(keras.layers.Layer):
    def build(self, input_shape):
        self.token_embeddings = self.add_weight(shape=(VOCAB, EMBED), name="token_embeddings")
        self.position_embeddings = self.add_weight(shape=(POSITIONS, EMBED),
                                                   name="position_embeddings")

    def call(self, ids):
        return keras.ops.take(self.token_embeddings, ids, axis=0) + self.position_embeddings


def _token_and_position_model():
    ids = keras.Input((STEPS,), dtype="int32", name="ids")
    hidden = _TokenAndPosition(name="embeddings")(ids)
    inner = keras.layers.Dense(2 * EMBED, activation="gelu", name="fc")(hidden)  # Exact erf.
    return keras.Model(ids, keras.layers.Dense(2, name="proj")(inner))


_TOKEN_AND_POSITION_TABLE = """
[[rule]]
match = 'model/wte'
target = 'embeddings/token_embeddings'

[[rule]]
match = 'model/wpe'
target = 'embeddings/position_embeddings'

[[rule]]
match = 'model/mlp/fc/(kernel|bias)'
target = 'fc/\\1'

[[rule]]
match = 'model/proj/(kernel|bias)'
target = 'proj/\\1'
"""


def test_a_layer_of_two_tables_is_compared_where_its_lookups_meet(tmp_path):
    import migrate

    prefix = verify_graphs.save_graph(tmp_path, _token_and_position)
    table = verify_graphs.write_table(tmp_path / "table.toml", _TOKEN_AND_POSITION_TABLE)
    model = verify_graphs.convert_and_restore(prefix, table, _token_and_position_model,
                                              tmp_path / "converted")
    report = migrate.verify(prefix, model, output_tensor="output:0", input_max=VOCAB,
                            table=table)
    assert not report.passed
    embeddings = report.layers[0]
    # Not one table's lookup (which differs by the other), but their sum.
    assert embeddings["max_rel_diff"] < 1e-6 and embeddings["legacy_tensor"] == "model/add:0"
    assert report.first_divergent_layer == "fc", report.summary()


def test_the_layers_before_the_first_divergent_that_were_not_compared_are_named():
    from migrate.verification import layers

    items = [{"layer": name, "max_rel_diff": diff, "legacy_tensor": twin, "sources": ["x"],
              "rules": [1]} for name, diff, twin in (("lstm0", None, None),
                                                     ("lstm1", 0.3, "rnn/transpose_1:0"))]
    text = layers.table_text(items, "lstm1")
    assert text.splitlines()[-1] == ("not compared before it (the divergence may start there): "
                                     "lstm0")
