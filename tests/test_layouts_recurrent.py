"""Recurrent layout converters against the real TF1 cells and their Keras 3 twins."""

import contextlib

import hypothesis
import keras
import numpy as np
import pytest
from hypothesis import strategies

from legacy_graphs import compat
from migrate.mapping import layouts
from migrate.mapping.layouts import LayoutError
from migrate.mapping.layouts import recurrent
from migrate.mapping.layouts import tf1_graph

tf = compat.import_tf_v1()

# Scaled by the largest reference output: outputs near zero make a plain
# element-wise relative error meaningless.
TOLERANCE = 1e-5
FEW_EXAMPLES = hypothesis.settings(max_examples=4, deadline=None, derandomize=True)


def _relative_error(actual, expected):
    scale = max(float(np.max(np.abs(expected))), 1e-6)
    return float(np.max(np.abs(np.asarray(actual) - np.asarray(expected)))) / scale


def _run_tf1(build, inputs, seed=0):
    """Runs a graph-mode TF1 RNN on `inputs` with random (non-zero) variables.

    Args:
        build: called inside a new graph with the input placeholder; returns the
            output tensor.
        inputs: float32 array [batch, time, features].
        seed: seed of the variable values.

    Returns:
        (outputs, variables) with `variables` keyed by variable op name.
    """
    graph = tf.Graph()
    with graph.as_default():
        placeholder = tf.placeholder(tf.float32, [None, None, inputs.shape[-1]], name="inputs")
        outputs = build(placeholder)
        rng = np.random.default_rng(seed)
        with tf.Session(graph=graph) as session:
            session.run(tf.global_variables_initializer())
            # Random biases too: the default zero (LSTM) and one (GRU gates)
            # initial biases would hide a wrong bias order.
            variables = {}
            for variable in tf.global_variables():
                value = rng.uniform(-0.5, 0.5, variable.shape.as_list()).astype(np.float32)
                variable.load(value, session)
                variables[variable.op.name] = value
            return session.run(outputs, {placeholder: inputs}), variables


def _convert(layout, variables, scope, target_layer, **parameters):
    """Converts the TF1 scope with `layout` and assigns it into `target_layer`'s cell."""
    converter = layouts.get(layout)
    sources = {part: variables[f"{scope}/{part}"] for part in converter.source_parts}
    target_shapes = _target_shapes(target_layer)
    shapes = converter.output_shapes({part: value.shape for part, value in sources.items()},
                                     target_shapes, parameters)
    arrays = converter.convert(sources, target_shapes, parameters)
    assert {part: array.shape for part, array in arrays.items()} == shapes
    by_part = {weight.path.rpartition("/")[2]: weight for weight in target_layer.weights}
    for part, array in arrays.items():
        by_part[part].assign(array)
    return arrays


def _target_shapes(layer):
    return {weight.path.rpartition("/")[2]: tuple(weight.shape) for weight in layer.weights}


def _keras_rnn(layer, input_dim):
    layer.build((None, None, input_dim))
    return layer


def _inputs(batch, time, features, seed=1):
    return np.random.default_rng(seed).normal(size=(batch, time, features)).astype(np.float32)


@pytest.mark.parametrize("cell_class,scope", [("LSTMCell", "rnn/lstm_cell"),
                                              ("BasicLSTMCell", "rnn/basic_lstm_cell")])
@FEW_EXAMPLES
@hypothesis.given(input_dim=strategies.integers(1, 6), units=strategies.integers(1, 6),
                  time=strategies.integers(1, 5),
                  forget_bias=strategies.sampled_from([1.0, 0.0, 0.3, 2.5]))
def test_lstm_cells_match_keras_lstm(cell_class, scope, input_dim, units, time, forget_bias):
    inputs = _inputs(3, time, input_dim)

    def build(placeholder):
        cell = getattr(tf.nn.rnn_cell, cell_class)(units, forget_bias=forget_bias)
        return tf.nn.dynamic_rnn(cell, placeholder, dtype=tf.float32)[0]

    expected, variables = _run_tf1(build, inputs)
    layer = _keras_rnn(keras.layers.LSTM(units, return_sequences=True), input_dim)
    _convert("lstm", variables, scope, layer, forget_bias=forget_bias)
    assert _relative_error(layer(inputs), expected) < TOLERANCE


@FEW_EXAMPLES
@hypothesis.given(input_dim=strategies.integers(1, 6), units=strategies.integers(1, 6),
                  time=strategies.integers(1, 5))
def test_gru_cell_matches_keras_gru_without_reset_after(input_dim, units, time):
    inputs = _inputs(3, time, input_dim)

    def build(placeholder):
        return tf.nn.dynamic_rnn(tf.nn.rnn_cell.GRUCell(units), placeholder, dtype=tf.float32)[0]

    expected, variables = _run_tf1(build, inputs)
    layer = _keras_rnn(keras.layers.GRU(units, return_sequences=True, reset_after=False),
                       input_dim)
    _convert("gru", variables, "rnn/gru_cell", layer)
    assert _relative_error(layer(inputs), expected) < TOLERANCE


@FEW_EXAMPLES
@hypothesis.given(input_dim=strategies.integers(1, 6), units=strategies.integers(1, 6),
                  time=strategies.integers(1, 5))
def test_basic_rnn_cell_matches_keras_simple_rnn(input_dim, units, time):
    inputs = _inputs(3, time, input_dim)

    def build(placeholder):
        cell = tf.nn.rnn_cell.BasicRNNCell(units)
        return tf.nn.dynamic_rnn(cell, placeholder, dtype=tf.float32)[0]

    expected, variables = _run_tf1(build, inputs)
    layer = _keras_rnn(keras.layers.SimpleRNN(units, return_sequences=True), input_dim)
    _convert("simple_rnn", variables, "rnn/basic_rnn_cell", layer)
    assert _relative_error(layer(inputs), expected) < TOLERANCE


def test_a_basic_rnn_cell_stack_converts_to_stacked_simple_rnns_under_every_naming():
    input_dim, inputs = 3, _inputs(2, 4, 3)

    def build(placeholder):
        cells = tf.nn.rnn_cell.MultiRNNCell([tf.nn.rnn_cell.BasicRNNCell(5),
                                             tf.nn.rnn_cell.BasicRNNCell(4)])
        return tf.nn.dynamic_rnn(cells, placeholder, dtype=tf.float32)[0]

    expected, variables = _run_tf1(build, inputs)
    scopes = tuple(f"rnn/multi_rnn_cell/cell_{index}/basic_rnn_cell" for index in range(2))
    # The same values under the names TF 1.0-1.1 (weights, biases) and TF 0.x
    # (BasicRNNCell/Linear/Matrix, Linear/Bias) saved them.
    namings = {"simple_rnn": ("kernel", "bias"),
               "simple_rnn_legacy_names": ("weights", "biases"),
               "simple_rnn_linear_names": ("Linear/Matrix", "Linear/Bias")}
    for layout, (kernel, bias) in namings.items():
        renamed = {f"{scope}/{name}": variables[f"{scope}/{part}"] for scope in scopes
                   for name, part in ((kernel, "kernel"), (bias, "bias"))}
        first = _keras_rnn(keras.layers.SimpleRNN(5, return_sequences=True), input_dim)
        second = _keras_rnn(keras.layers.SimpleRNN(4, return_sequences=True), 5)
        _convert(layout, renamed, scopes[0], first)
        _convert(layout, renamed, scopes[1], second)
        assert _relative_error(second(first(inputs)), expected) < TOLERANCE, layout


def test_simple_rnn_shapes_are_checked_against_the_keras_cell():
    converter = layouts.get("simple_rnn")
    assert converter.output_shapes({"kernel": (7, 4), "bias": (4,)}, {}, {}) == {
        "kernel": (3, 4), "recurrent_kernel": (4, 4), "bias": (4,)}
    with pytest.raises(LayoutError, match=r"Expected 6 rows for input size 2. Received: "
                                          r"kernel.shape=\(7, 4\)"):
        converter.output_shapes({"kernel": (7, 4), "bias": (4,)},
                                {"kernel": (2, 4), "recurrent_kernel": (4, 4)}, {})


def _block_lstm(inputs, kernel, bias, forget_bias):
    """Runs TF's fused BlockLSTM kernel, the op behind contrib's LSTMBlockCell."""
    import tensorflow  # pylint: disable=g-import-not-at-top
    batch, _, _ = inputs.shape
    units = bias.shape[0] // 4
    zeros = np.zeros([units], np.float32)
    state = np.zeros([batch, units], np.float32)
    # cell_clip=-1 is what LSTMBlockCell(cell_clip=None) passed: no clipping.
    result = tensorflow.raw_ops.BlockLSTM(
        seq_len_max=np.int64(inputs.shape[1]), x=np.transpose(inputs, [1, 0, 2]),
        cs_prev=state, h_prev=state, w=kernel, wci=zeros, wcf=zeros, wco=zeros, b=bias,
        forget_bias=forget_bias, cell_clip=-1.0, use_peephole=False)
    return np.transpose(result.h.numpy(), [1, 0, 2])


@pytest.mark.parametrize("layout,forget_bias", [("lstm", 1.0), ("lstm", 0.4),
                                                ("cudnn_compatible_lstm", 0.0)])
def test_fused_lstm_block_kernel_matches_keras_lstm(layout, forget_bias):
    """LSTMBlockCell and CudnnCompatibleLSTMCell through the kernel they ran on.

    TF 2.21 has neither class: both lived in `tf.contrib.rnn`, which TF 2 removed,
    and no copy exists in `tf.compat.v1.nn.rnn_cell`, `tensorflow.python.ops` or
    tf_keras. Their kernel ops (`LSTMBlockCell`, `BlockLSTM`) do still exist.
    LSTMBlockCell called them with its `forget_bias` and `cell_clip=-1` (None);
    CudnnCompatibleLSTMCell was LSTMBlockCell(forget_bias=0) named
    `cudnn_compatible_lstm_cell`. Both stored `kernel` [D+U, 4U] and `bias`.
    The op's docstring claims gates [i, f, ci, o]; measured, they are i, ci, f, o
    like LSTMCell, which this test pins.
    """
    input_dim, units = 3, 5
    rng = np.random.default_rng(4)
    kernel = rng.uniform(-0.5, 0.5, [input_dim + units, 4 * units]).astype(np.float32)
    bias = rng.uniform(-0.5, 0.5, [4 * units]).astype(np.float32)
    inputs = _inputs(2, 6, input_dim)
    expected = _block_lstm(inputs, kernel, bias, forget_bias)
    layer = _keras_rnn(keras.layers.LSTM(units, return_sequences=True), input_dim)
    parameters = {"forget_bias": forget_bias} if layout == "lstm" else {}
    _convert(layout, {"cell/kernel": kernel, "cell/bias": bias}, "cell", layer, **parameters)
    assert _relative_error(layer(inputs), expected) < TOLERANCE


def test_forget_bias_is_folded_into_the_forget_gate_only():
    input_dim, units = 2, 4
    inputs = _inputs(2, 5, input_dim)

    def build(placeholder):
        cell = tf.nn.rnn_cell.LSTMCell(units, forget_bias=0.3)
        return tf.nn.dynamic_rnn(cell, placeholder, dtype=tf.float32)[0]

    expected, variables = _run_tf1(build, inputs)
    layer = _keras_rnn(keras.layers.LSTM(units, return_sequences=True), input_dim)
    arrays = _convert("lstm", variables, "rnn/lstm_cell", layer, forget_bias=0.3)
    assert _relative_error(layer(inputs), expected) < TOLERANCE

    unfolded = layouts.get("lstm").convert(
        {"kernel": variables["rnn/lstm_cell/kernel"], "bias": variables["rnn/lstm_cell/bias"]},
        _target_shapes(layer), {"forget_bias": 0.0})
    added = arrays["bias"] - unfolded["bias"]
    # Keras gate order i, f, c, o: only the second block moves.
    np.testing.assert_allclose(added[units:2 * units], 0.3, rtol=1e-6)
    np.testing.assert_array_equal(np.delete(added, np.s_[units:2 * units]), 0.0)

    # The test can tell: the cell's default forget bias gives other outputs.
    _convert("lstm", variables, "rnn/lstm_cell", layer, forget_bias=1.0)
    assert _relative_error(layer(inputs), expected) > 1e-3


@pytest.mark.parametrize("forget_bias", [None, "1.0", True, float("nan")])
def test_lstm_forget_bias_must_be_a_number(forget_bias):
    converter = layouts.get("lstm")
    assert converter.parameters == {"forget_bias": None, "cell_clip": None}
    with pytest.raises(LayoutError, match=r"forget_bias.*Received: forget_bias="):
        converter.output_shapes({"kernel": (7, 16), "bias": (16,)}, {},
                                {"forget_bias": forget_bias})


def test_cell_clip_is_refused():
    with pytest.raises(LayoutError, match=r"does not clip.*Received: cell_clip=2.5"):
        layouts.get("lstm").output_shapes({"kernel": (7, 16), "bias": (16,)}, {},
                                          {"forget_bias": 1.0, "cell_clip": 2.5})


def test_cudnn_compatible_lstm_has_no_forget_bias_parameter():
    converter = layouts.get("cudnn_compatible_lstm")
    assert converter.parameters == {}
    bias = np.arange(8, dtype=np.float32)
    arrays = converter.convert({"kernel": np.zeros([3, 8], np.float32), "bias": bias}, {}, {})
    np.testing.assert_array_equal(arrays["bias"], [0, 1, 4, 5, 2, 3, 6, 7])


def test_peephole_and_projection_cells_are_refused_by_name():
    inputs = _inputs(2, 3, 4)

    def build(placeholder):
        cell = tf.nn.rnn_cell.LSTMCell(5, use_peepholes=True, num_proj=3)
        return tf.nn.dynamic_rnn(cell, placeholder, dtype=tf.float32)[0]

    _, variables = _run_tf1(build, inputs)
    converter = layouts.get("lstm")
    parts = {name.removeprefix("rnn/lstm_cell/") for name in variables}
    assert parts - set(converter.source_parts) == set(converter.unsupported_parts)
    assert parts - set(converter.source_parts) == {"w_f_diag", "w_i_diag", "w_o_diag",
                                                    "projection/kernel"}
    for part in ("w_f_diag", "w_i_diag", "w_o_diag"):
        assert "peephole" in converter.unsupported_parts[part]
    assert "num_proj" in converter.unsupported_parts["projection/kernel"]
    legacy = layouts.get("lstm_legacy_names")
    assert set(legacy.unsupported_parts) == {"w_f_diag", "w_i_diag", "w_o_diag",
                                             "projection/weights"}

    # The projection cell's kernel has D + num_proj rows: the Keras kernel's
    # input size exposes it even before the projection part is refused.
    with pytest.raises(LayoutError, match=r"Expected 9 rows.*Received: kernel.shape=\(7, 20\)"):
        converter.output_shapes({"kernel": (7, 20), "bias": (20,)},
                                {"kernel": (4, 20), "recurrent_kernel": (5, 20), "bias": (20,)},
                                {"forget_bias": 1.0})


def test_reset_after_gru_target_is_refused():
    layer = _keras_rnn(keras.layers.GRU(4), 3)  # Keras 3 defaults to reset_after=True.
    source_shapes = {"gates/kernel": (7, 8), "gates/bias": (8,), "candidate/kernel": (7, 4),
                     "candidate/bias": (4,)}
    with pytest.raises(LayoutError, match=r"reset_after=False.*Received: bias.shape=\(2, 12\)"):
        layouts.get("gru").output_shapes(source_shapes, _target_shapes(layer), {})


@pytest.mark.parametrize("layout,source_shapes,target_shapes,message", [
    ("lstm", {"kernel": (7, 16), "bias": (16,)}, {"recurrent_kernel": (5, 16)},
     r"Expected shape \(4, 16\)\. Received: recurrent_kernel.shape=\(5, 16\)"),
    ("lstm", {"kernel": (7, 16), "bias": (15,)}, {},
     r"vector of 4 \* units.*Received: bias.shape=\(15,\)"),
    ("lstm", {"kernel": (7, 12), "bias": (16,)}, {},
     r"16 columns.*Received: kernel.shape=\(7, 12\)"),
    ("lstm", {"kernel": (4, 16), "bias": (16,)}, {},
     r"Expected more than 4 rows\. Received: kernel.shape=\(4, 16\)"),
    ("gru", {"gates/kernel": (7, 8), "gates/bias": (8,), "candidate/kernel": (7, 5),
             "candidate/bias": (4,)}, {},
     r"Expected shape \(7, 4\)\. Received: candidate/kernel.shape=\(7, 5\)"),
    ("gru", {"gates/kernel": (7, 8), "gates/bias": (8,), "candidate/kernel": (7, 4),
             "candidate/bias": (4,)}, {"kernel": (2, 12)},
     r"Expected 6 rows for input size 2.*Received: gates/kernel.shape=\(7, 8\)"),
])
def test_shape_errors_name_expected_and_received(layout, source_shapes, target_shapes, message):
    with pytest.raises(LayoutError, match=message):
        layouts.get(layout).output_shapes(source_shapes, target_shapes, {"forget_bias": 1.0})


def test_shapes_follow_the_keras_cells():
    shapes = layouts.get("lstm").output_shapes({"kernel": (7, 16), "bias": (16,)}, {},
                                               {"forget_bias": 1.0})
    assert shapes == {"kernel": (3, 16), "recurrent_kernel": (4, 16), "bias": (16,)}
    layer = _keras_rnn(keras.layers.GRU(4, reset_after=False), 3)
    shapes = layouts.get("gru").output_shapes(
        {"gates/kernel": (7, 8), "gates/bias": (8,), "candidate/kernel": (7, 4),
         "candidate/bias": (4,)}, _target_shapes(layer), {})
    assert shapes == _target_shapes(layer)


def test_multi_rnn_cell_scopes_convert_to_stacked_keras_lstms():
    input_dim, inputs = 3, _inputs(2, 4, 3)

    def build(placeholder):
        cell = tf.nn.rnn_cell.MultiRNNCell([tf.nn.rnn_cell.LSTMCell(5, forget_bias=0.5),
                                            tf.nn.rnn_cell.LSTMCell(4, forget_bias=1.0)])
        with tf.variable_scope("lm"):
            return tf.nn.dynamic_rnn(cell, placeholder, dtype=tf.float32)[0]

    expected, variables = _run_tf1(build, inputs)
    first = _keras_rnn(keras.layers.LSTM(5, return_sequences=True), input_dim)
    second = _keras_rnn(keras.layers.LSTM(4, return_sequences=True), 5)
    _convert("lstm", variables, "lm/rnn/multi_rnn_cell/cell_0/lstm_cell", first,
             forget_bias=0.5)
    _convert("lstm", variables, "lm/rnn/multi_rnn_cell/cell_1/lstm_cell", second,
             forget_bias=1.0)
    assert _relative_error(second(first(inputs)), expected) < TOLERANCE


def test_bidirectional_scopes_convert_to_keras_bidirectional():
    input_dim, units, inputs = 3, 4, _inputs(2, 5, 3)

    def build(placeholder):
        outputs, _ = tf.nn.bidirectional_dynamic_rnn(
            tf.nn.rnn_cell.LSTMCell(units), tf.nn.rnn_cell.LSTMCell(units, forget_bias=0.2),
            placeholder, dtype=tf.float32)
        return tf.concat(outputs, axis=-1)

    expected, variables = _run_tf1(build, inputs)
    layer = keras.layers.Bidirectional(keras.layers.LSTM(units, return_sequences=True,
                                                         name="lstm"), name="bilstm")
    layer.build((None, None, input_dim))
    _convert("lstm", variables, "bidirectional_rnn/fw/lstm_cell", layer.forward_layer,
             forget_bias=1.0)
    _convert("lstm", variables, "bidirectional_rnn/bw/lstm_cell", layer.backward_layer,
             forget_bias=0.2)
    assert [weight.path for weight in layer.weights][::3] == [
        "bilstm/forward_lstm/lstm_cell/kernel", "bilstm/backward_lstm/lstm_cell/kernel"]
    assert _relative_error(layer(inputs), expected) < TOLERANCE


def test_legacy_names_convert_like_the_current_names():
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(7, 12)).astype(np.float32)
    bias = rng.normal(size=12).astype(np.float32)
    current = layouts.get("lstm").convert({"kernel": kernel, "bias": bias}, {},
                                          {"forget_bias": 0.5})
    legacy = layouts.get("lstm_legacy_names").convert({"weights": kernel, "biases": bias}, {},
                                                      {"forget_bias": 0.5})
    # TF 0.x's BasicLSTMCell: the same fused kernel under `Linear/Matrix`, gates i, j, f, o.
    linear = layouts.get("lstm_linear_names").convert(
        {"Linear/Matrix": kernel, "Linear/Bias": bias}, {}, {"forget_bias": 0.5})
    for part in recurrent.TARGET_PARTS:
        np.testing.assert_array_equal(legacy[part], current[part])
        np.testing.assert_array_equal(linear[part], current[part])

    gru_sources = {"gates/kernel": rng.normal(size=(7, 8)), "gates/bias": rng.normal(size=8),
                   "candidate/kernel": rng.normal(size=(7, 4)),
                   "candidate/bias": rng.normal(size=4)}
    current = layouts.get("gru").convert(gru_sources, {}, {})
    legacy = layouts.get("gru_legacy_names").convert(
        {name.replace("kernel", "weights").replace("bias", "biases"): value
         for name, value in gru_sources.items()}, {}, {})
    for part in recurrent.TARGET_PARTS:
        np.testing.assert_array_equal(legacy[part], current[part])


def test_converters_are_registered():
    assert {"lstm", "lstm_legacy_names", "cudnn_compatible_lstm", "gru",
            "gru_legacy_names"} <= set(layouts.names())
    assert layouts.get("gru").source_parts == ("gates/kernel", "gates/bias",
                                               "candidate/kernel", "candidate/bias")


@pytest.mark.parametrize("tf1_style", [False, True], ids=["while_v2", "tf1_while"])
def test_lstm_graph_facts_read_the_forget_bias_from_a_meta_graph(tmp_path, tf1_style):
    with compat.tf1_control_flow() if tf1_style else contextlib.nullcontext():
        graph = tf.Graph()
        with graph.as_default():
            inputs = tf.placeholder(tf.float32, [None, 4, 2])
            with tf.variable_scope("lm"):
                stacked = tf.nn.rnn_cell.MultiRNNCell([
                    tf.nn.rnn_cell.LSTMCell(3, forget_bias=0.7, cell_clip=2.5),
                    tf.nn.rnn_cell.BasicLSTMCell(3, forget_bias=0.3)])
                tf.nn.dynamic_rnn(stacked, inputs, dtype=tf.float32)
            # Both directions' loop bodies name their ops `lstm_cell/add`.
            tf.nn.bidirectional_dynamic_rnn(tf.nn.rnn_cell.LSTMCell(3, forget_bias=1.1),
                                            tf.nn.rnn_cell.LSTMCell(3, forget_bias=0.0),
                                            inputs, dtype=tf.float32)
            tf.nn.static_rnn(tf.nn.rnn_cell.BasicLSTMCell(3, forget_bias=2.0),
                             tf.unstack(inputs, axis=1), dtype=tf.float32, scope="static")
            tf.train.export_meta_graph(str(tmp_path / "model.meta"))
    imported = tf.Graph()
    with imported.as_default():
        tf.train.import_meta_graph(str(tmp_path / "model.meta"), clear_devices=True)

    expected = {
        "lm/rnn/multi_rnn_cell/cell_0/lstm_cell": (0.7, 2.5),
        "lm/rnn/multi_rnn_cell/cell_1/basic_lstm_cell": (0.3, None),
        "bidirectional_rnn/fw/lstm_cell": (1.1, None),
        "bidirectional_rnn/bw/lstm_cell": (0.0, None),
        "static/basic_lstm_cell": (2.0, None),
    }
    for scope, (forget_bias, cell_clip) in expected.items():
        facts = tf1_graph.lstm_graph_facts(imported, scope)
        assert (facts.cell_op, facts.forget_bias, facts.cell_clip) == ("MatMul", forget_bias,
                                                                      cell_clip), scope
        assert facts.parts == ("bias", "kernel")
        assert bool(facts.problems()) == (cell_clip is not None)
    assert "cell_clip" in tf1_graph.lstm_graph_facts(
        imported, "lm/rnn/multi_rnn_cell/cell_0/lstm_cell").problems()[0]
    assert tf1_graph.facts_parameters(
        tf1_graph.lstm_graph_facts(imported, "bidirectional_rnn/fw/lstm_cell")) == {
            "forget_bias": 1.1}
    # What the core's plan receives for parameters the table left unset.
    assert layouts.get("lstm").graph_parameters(
        imported, "lm/rnn/multi_rnn_cell/cell_0/lstm_cell") == {"forget_bias": 0.7,
                                                                 "cell_clip": 2.5}


def test_lstm_graph_facts_detect_peepholes_projection_and_fused_ops():
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.placeholder(tf.float32, [None, 4, 2])
        cell = tf.nn.rnn_cell.LSTMCell(3, forget_bias=0.25, use_peepholes=True, num_proj=2,
                                       proj_clip=1.5)
        tf.nn.dynamic_rnn(cell, inputs, dtype=tf.float32)
        kernel = tf.get_variable("block/lstm_cell/kernel", [5, 12])
        bias = tf.get_variable("block/lstm_cell/bias", [12])
        zeros, state = tf.zeros([3]), tf.zeros([tf.shape(inputs)[0], 3])
        tf.raw_ops.BlockLSTM(seq_len_max=tf.constant(4, tf.int64),
                             x=tf.transpose(inputs, [1, 0, 2]), cs_prev=state, h_prev=state,
                             w=kernel, wci=zeros, wcf=zeros, wco=zeros, b=bias,
                             forget_bias=0.0, cell_clip=-1.0)

    facts = tf1_graph.lstm_graph_facts(graph, "rnn/lstm_cell")
    assert (facts.peepholes, facts.projection, facts.forget_bias) == (True, True, 0.25)
    # proj_clip bounds the projection, not the cell state.
    assert facts.cell_clip is None
    problems = " ".join(facts.problems())
    assert "peephole" in problems and "num_proj" in problems

    fused = tf1_graph.lstm_graph_facts(graph, "block/lstm_cell")
    assert (fused.cell_op, fused.forget_bias, fused.cell_clip, fused.problems()) == (
        "BlockLSTM", 0.0, None, ())

    absent = tf1_graph.lstm_graph_facts(graph.as_graph_def(), "no/such/cell")
    assert (absent.parts, absent.cell_op, absent.forget_bias) == ((), None, None)


def _save_lstm_checkpoint(directory, **cell_arguments):
    """Saves a one-LSTMCell graph (inputs [batch, 5, 3] -> outputs) with random weights."""
    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.placeholder(tf.float32, [None, None, 3], name="inputs")
        with tf.variable_scope("encoder"):
            outputs, _ = tf.nn.dynamic_rnn(tf.nn.rnn_cell.LSTMCell(4, **cell_arguments), inputs,
                                           dtype=tf.float32)
        tf.identity(outputs, name="outputs")
        rng = np.random.default_rng(3)
        with tf.Session(graph=graph) as session:
            session.run(tf.global_variables_initializer())
            for variable in tf.global_variables():
                variable.load(rng.uniform(-0.5, 0.5, variable.shape.as_list()), session)
            return tf.train.Saver().save(session, str(directory / "model.ckpt"))


def _encoder_model():
    inputs = keras.Input((None, 3), name="inputs")
    outputs = keras.layers.LSTM(4, return_sequences=True, name="encoder")(inputs)
    return keras.Model(inputs, outputs)


_TABLE_WITHOUT_FORGET_BIAS = """
[[rule]]
match = 'encoder/rnn/lstm_cell'
layout = 'lstm'
target = 'encoder/lstm_cell'
"""


def test_core_reads_forget_bias_and_cell_clip_from_the_meta_graph(tmp_path):
    import migrate  # pylint: disable=g-import-not-at-top

    table = tmp_path / "table.toml"
    table.write_text(_TABLE_WITHOUT_FORGET_BIAS)
    (tmp_path / "plain").mkdir()
    prefix = _save_lstm_checkpoint(tmp_path / "plain", forget_bias=0.4)
    migrate.convert(prefix, str(table), _encoder_model(), str(tmp_path / "converted"))
    model = _encoder_model()
    migrate.restore(model, str(tmp_path / "converted"))
    report = migrate.verify(prefix, model, input_tensor="inputs:0", output_tensor="outputs:0",
                            input_shape=(5, 3))
    assert report.passed and report.max_rel_diff < TOLERANCE

    (tmp_path / "clipped").mkdir()
    prefix = _save_lstm_checkpoint(tmp_path / "clipped", cell_clip=3.0)
    problems = migrate.plan(prefix, str(table), _encoder_model()).problems
    assert len(problems) == 1 and "Received: cell_clip=3.0" in problems[0].describe()
