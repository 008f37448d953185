"""suggest matches by dataflow: GPT-2 into keras-hub, misleading names, shuffled creation order."""

import json
import os

import migrate
import verify_graphs


def test_gpt2_is_drafted_unaided_into_keras_hub_and_proven(legacy_checkpoint, tmp_path,
                                                           monkeypatch):
    """docs/targets.md's GPT-2 example, run as printed (the build is the session's)."""
    import shlex
    import shutil

    import docs_text

    runner = ("tests/test_suggest_dataflow.py::"
              "test_gpt2_is_drafted_unaided_into_keras_hub_and_proven")
    build, example = [block for block in docs_text.blocks(docs_text.page("targets"))
                      if block.runner == runner]
    (command,) = docs_text.commands(build.body)
    assert shlex.split(command.line) == ["python", "-m", "legacy_graphs", "gpt2",
                                         "--output_dir=gpt2"]
    shutil.copytree(os.path.dirname(legacy_checkpoint("gpt2")), tmp_path / "gpt2")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "gpt2_example"}
    exec(compile(example.body, "targets.md", "exec"), namespace)  # noqa: S102
    report = namespace["report"]
    assert report.ok and report.parity.passed, report.summary()
    assert report.dropped == [] and report.unfilled == []
    split = [rule for rule in report.table.rules if rule.layout == "split"]
    assert len(split) == 4  # c_attn w and b of both blocks, sizes from the graph's tf.split.
    # Every pair by dataflow: the fused c_attn's parts are query, key and value by where the
    # graph sends them, as keras-hub's projections are by where its call sends them.
    assert report.decided_by == {"dataflow": 36, "shape": 0, "name": 0, "order": 0}
    query = [match for match in report.matches
             if match["target"] == "transformer_layer_1/self_attention/query/kernel"]
    assert [match["source"] for match in query] == ["model/h1/attn/c_attn/w"]
    assert any("the query projection in both graphs" in note for note in query[0]["evidence"])
    projection = report.table.lookup("model/h0/attn/c_proj/w")
    assert projection.target == "transformer_layer_0/self_attention/attention_output/kernel"
    assert [str(step) for step in projection.rule.transforms] == ["reshape(2, 8, 16)"]
    # The unedited draft converts and proves.
    with open(tmp_path / "gpt2_converted" / "manifest.json", encoding="utf-8") as file:
        verified = json.load(file)["verified"]
    assert verified["passed"] and verified["max_rel_diff"] <= 1e-5


# Three same-shape dense layers: created last to first, scopes named against the data's order.
def _build_misleading(width=4):
    tf = verify_graphs.tf_v1()
    inputs = tf.placeholder(tf.float32, [None, width], name="inputs")
    variables = {}
    for scope in ("fc1", "fc2", "fc3"):  # fc1 is applied last.
        with tf.variable_scope(scope):
            if scope == "fc2":  # Names that say the other kind.
                bias, kernel = tf.get_variable("kernel", [4]), tf.get_variable("bias", [4, 4])
            else:
                kernel, bias = tf.get_variable("kernel", [4, 4]), tf.get_variable("bias", [4])
            variables[scope] = (kernel, bias)
    net = inputs
    for scope in ("fc3", "fc2", "fc1"):
        kernel, bias = variables[scope]
        net = tf.tanh(tf.matmul(net, kernel) + bias)
    tf.identity(net, name="outputs")


def _plain_model(names=("fc1", "fc2", "fc3")):
    import keras
    keras.backend.clear_session()
    inputs = keras.Input((4,), name="inputs")
    net = inputs
    for name in names:
        net = keras.layers.Dense(4, activation="tanh", name=name)(net)
    return keras.Model(inputs, net)


def test_misleading_names_and_creation_order_get_no_wrong_pair_marked_certain(tmp_path):
    prefix = verify_graphs.save_graph(tmp_path, _build_misleading)
    truth = {f"{source}/{leaf}": f"{target}/{leaf}" for source, target in
             (("fc3", "fc1"), ("fc1", "fc3")) for leaf in ("kernel", "bias")}
    truth.update({"fc2/bias": "fc2/kernel", "fc2/kernel": "fc2/bias"})
    report = migrate.suggest(prefix, _plain_model)  # No parity: certainty is the graph's alone.
    wrong = [match for match in report.matches
             if match["certain"] and truth[match["source"]] != match["target"]]
    assert wrong == []
    assert all(truth[match["source"]] == match["target"] for match in report.matches)
    assert report.decided_by["dataflow"] == 6
    # A model with a layer fewer: which two source layers it holds, nothing says for certain.
    report = migrate.suggest(prefix, lambda: _plain_model(("fc1", "fc3")))
    assert len(report.matches) == 4 and not any(match["certain"] for match in report.matches)


def test_an_attention_block_is_known_by_its_parts_whatever_its_scope(tmp_path):
    import functools

    from legacy_graphs import bert_encoder
    from migrate.zoo import bert_encoder as zoo_bert_encoder

    prefix = verify_graphs.save_graph(tmp_path, functools.partial(
        bert_encoder.define_graph, attention_scope="attention_1"))
    settings = migrate.VerifySettings(output_tensor=bert_encoder.OUTPUT_TENSOR,
                                      input_shapes=[bert_encoder.INPUT_SHAPE],
                                      input_max=[bert_encoder.INPUT_MAX])
    report = migrate.suggest(prefix, zoo_bert_encoder.build_model, verify=settings)
    assert report.ok and report.parity.passed, report.summary()
    attention = report.table.lookup("bert/encoder/layer_1/attention_1/self/query/kernel")
    assert attention.rule.layout == "bert_attention"
    # The graph shows each projection in the role its scope names: the blocks pair by dataflow.
    assert {match["decided_by"] for match in report.matches
            if match["layout"] == "bert_attention"} == {"dataflow"}
    # The pooler does not feed the sequence output.
    assert report.dropped == [("bert/pooler/dense/kernel", (32, 32)),
                              ("bert/pooler/dense/bias", (32,))]
    assert "not on the path to sequence_output:0" in report.text


UNITS, FEATURES, STEPS = 3, 2, 4


# A BasicRNNCell stack whose cells were named by their author: `cell_0/cell_1/kernel`.
def _build_rnn_stack():
    tf = verify_graphs.tf_v1()
    data = tf.placeholder(tf.float32, [None, STEPS, FEATURES], name="data")
    cells = [tf.nn.rnn_cell.BasicRNNCell(UNITS, name=f"cell_{index + 1}") for index in range(2)]
    outputs, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.MultiRNNCell(cells), data, dtype=tf.float32)
    tf.identity(outputs, name="outputs")


def _rnn_stack_model():
    import keras
    keras.backend.clear_session()
    data = keras.Input((STEPS, FEATURES), name="data")
    net = keras.layers.SimpleRNN(UNITS, return_sequences=True, name="first")(data)
    return keras.Model(data, keras.layers.SimpleRNN(UNITS, return_sequences=True,
                                                    name="second")(net))


def test_a_basic_rnn_cell_stack_is_known_by_its_loop_whatever_its_cells_are_named(tmp_path):
    prefix = verify_graphs.save_graph(tmp_path, _build_rnn_stack)
    report = migrate.suggest(prefix, _rnn_stack_model,
                             verify=migrate.VerifySettings(output_tensor="outputs:0"))
    assert report.ok and report.parity.passed, report.summary()
    assert [(rule.layout, rule.target) for rule in report.table.rules] == [
        ("simple_rnn", "first/simple_rnn_cell"), ("simple_rnn", "second/simple_rnn_cell")]
    assert report.table.lookup("rnn/multi_rnn_cell/cell_0/cell_1/kernel") is not None


def _subclassed_model():
    """The same three layers in a subclassed model that builds the last one first."""
    import keras
    import numpy as np

    class ThreeLayers(keras.Model):
        def __init__(self):
            super().__init__(name="three_layers")
            self.fc1, self.fc2, self.fc3 = (keras.layers.Dense(4, activation="tanh", name=name)
                                            for name in ("fc1", "fc2", "fc3"))
            self.fc3.build((None, 4))

        def call(self, inputs):
            return self.fc3(self.fc2(self.fc1(inputs)))

    keras.backend.clear_session()
    model = ThreeLayers()
    model(np.zeros((1, 4), "float32"))
    return model


def test_a_subclassed_model_is_traced_on_the_shape_it_was_built_with(tmp_path):
    prefix = verify_graphs.save_graph(tmp_path, _build_misleading)
    report = migrate.suggest(prefix, _subclassed_model)
    found = {match["source"]: match["target"].split("/")[-2:] for match in report.matches}
    assert found["fc3/kernel"] == ["fc1", "kernel"] and found["fc1/bias"] == ["fc3", "bias"]
    assert found["fc2/bias"] == ["fc2", "kernel"]
    assert all(match["certain"] for match in report.matches), report.summary()


WIDTH, HEADS, SEQUENCE = 8, 2, 4


# BERT's projections in BERT's scopes, each scope holding another's: `self/key` the value
# projection, `self/query` the key's, `self/value` the query's; created value, key, query.
def _build_shuffled_attention():
    import math

    tf = verify_graphs.tf_v1()
    inputs = tf.placeholder(tf.float32, [None, SEQUENCE, WIDTH], name="inputs")
    projections = {}
    with tf.variable_scope("encoder/attention"):
        for role, scope in (("value", "self/key"), ("key", "self/query"),
                            ("query", "self/value"), ("output", "output/dense")):
            with tf.variable_scope(scope):
                projections[role] = (tf.get_variable("kernel", [WIDTH, WIDTH]),
                                     tf.get_variable("bias", [WIDTH]))

    def dense(net, role):
        kernel, bias = projections[role]
        return tf.nn.bias_add(tf.matmul(net, kernel), bias)

    def heads(net):
        net = tf.reshape(net, [-1, SEQUENCE, HEADS, WIDTH // HEADS])
        return tf.transpose(net, [0, 2, 1, 3])

    flat = tf.reshape(inputs, [-1, WIDTH])
    query, key, value = (heads(dense(flat, role)) for role in ("query", "key", "value"))
    scores = tf.matmul(query, key, transpose_b=True) * (1.0 / math.sqrt(WIDTH // HEADS))
    context = tf.matmul(tf.nn.softmax(scores), value)
    context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [-1, WIDTH])
    tf.identity(tf.reshape(dense(context, "output"), [-1, SEQUENCE, WIDTH]), name="outputs")


def _attention_model():
    import keras
    keras.backend.clear_session()
    inputs = keras.Input((SEQUENCE, WIDTH), name="inputs")
    attention = keras.layers.MultiHeadAttention(HEADS, WIDTH // HEADS, name="attention")
    return keras.Model(inputs, attention(inputs, inputs))


def test_attention_projections_are_told_apart_by_the_graph_not_their_names(tmp_path):
    prefix = verify_graphs.save_graph(tmp_path, _build_shuffled_attention)
    truth = {f"encoder/attention/{scope}/{leaf}": f"attention/{target}/{leaf}"
             for scope, target in (("self/key", "value"), ("self/query", "key"),
                                   ("self/value", "query"), ("output/dense", "attention_output"))
             for leaf in ("kernel", "bias")}
    report = migrate.suggest(prefix, _attention_model)  # No parity: the graphs' word alone.
    assert {match["source"]: match["target"] for match in report.matches} == truth
    assert all(match["certain"] and match["decided_by"] == "dataflow"
               for match in report.matches), report.summary()
    settings = migrate.VerifySettings(output_tensor="outputs:0")
    table = str(tmp_path / "draft.toml")
    report = migrate.suggest(prefix, _attention_model, output=table, verify=settings)
    assert report.ok and report.parity.passed, report.summary()
    assert report.decided_by["dataflow"] == 8
    converted = migrate.convert(prefix, table, _attention_model(), str(tmp_path / "converted"),
                                options=migrate.ConversionOptions(verify=settings))
    assert converted.verified["passed"] and converted.verified["max_rel_diff"] <= 1e-5


class _NeverCalled:
    """The three layers of `_subclassed_model`, returned before any call: no weights yet."""

    def __call__(self):
        import keras

        class ThreeLayers(keras.Model):
            def __init__(self):
                super().__init__(name="three_layers")
                self.fc1, self.fc2, self.fc3 = (keras.layers.Dense(4, activation="tanh", name=name)
                                                for name in ("fc1", "fc2", "fc3"))

            def call(self, inputs):
                return self.fc3(self.fc2(self.fc1(inputs)))

        keras.backend.clear_session()
        return ThreeLayers()


def test_a_subclassed_model_never_called_is_built_on_the_graphs_input_shapes(tmp_path):
    prefix = verify_graphs.save_graph(tmp_path, _build_misleading)
    report = migrate.suggest(prefix, _NeverCalled(),
                             verify=migrate.VerifySettings(output_tensor="outputs:0"))
    assert report.ok and report.parity.passed, report.summary()
    assert report.decided_by["dataflow"] == 6  # Its call was traced, as a built model's is.


def test_a_never_called_model_the_graph_cannot_size_says_what_to_give(tmp_path):
    import functools

    import pytest

    prefix = verify_graphs.save_graph(tmp_path, functools.partial(_build_misleading, None))
    with pytest.raises(migrate.ModelError, match=r"inputs:0 \[None, None\] has unknown sizes") \
            as caught:
        migrate.suggest(prefix, _NeverCalled())
    assert caught.value.option == "input_shape"
    # Given the width, it is built, drafted and proven.
    report = migrate.suggest(prefix, _NeverCalled(), verify=migrate.VerifySettings(
        output_tensor="outputs:0", input_shapes=[(4,)]))
    assert report.ok and report.parity.passed, report.summary()
