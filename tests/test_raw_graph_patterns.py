"""Issue-27 graphs as their repositories wrote them: drafted by `suggest`, proven by `convert`.

Raw-op biases added by `+ b` in a checkpoint and in its frozen `.pb`, a float input cast to ids,
time-major inputs, a fixed batch of 1, a constant feed of unknown length, and a `tf.layers`
ResNet without its `.meta`. Each graph is saved once per module.
"""

import dataclasses

import numpy as np
import pytest

import migrate
import raw_graph_patterns as patterns
import verify_graphs

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Returns `save(build) -> prefix`, saving each graph once per module."""
    prefixes = {}

    def save(build):
        if build not in prefixes:
            directory = tmp_path_factory.mktemp(build.__name__)
            prefixes[build] = verify_graphs.save_graph(directory, build)
        return prefixes[build]

    return save


def _suggest_and_convert(checkpoint, factory, settings, tmp_path, options=None):
    """Drafts a table unaided, asserts it is proven, converts with it under verification."""
    tmp_path.mkdir(exist_ok=True)
    draft = str(tmp_path / "draft.toml")
    report = migrate.suggest(checkpoint, factory, output=draft, verify=settings, options=options)
    assert report.ok, report.summary()
    assert report.parity.max_rel_diff <= TOLERANCE
    options = dataclasses.replace(options or migrate.ConversionOptions(), verify=settings)
    converted = migrate.convert(checkpoint, draft, factory, str(tmp_path / "converted"),
                                options=options)
    assert converted.verified["passed"], converted.summary()
    return report, converted


def _restored(factory, tmp_path):
    """A fresh model restored from what `_suggest_and_convert` wrote."""
    model = factory()
    migrate.restore(model, str(tmp_path / "converted"))
    return model


def test_raw_op_biases_are_weights_in_the_checkpoint_and_its_frozen_graph(saved, tmp_path,
                                                                          cli_in_process):
    prefix = saved(patterns.build_mnist_raw)
    settings = migrate.VerifySettings(output_tensor="y_conv:0", tolerance=TOLERANCE)
    _suggest_and_convert(prefix, patterns.mnist_model, settings, tmp_path / "checkpoint")
    frozen = patterns.freeze(prefix, "y_conv", str(tmp_path / "frozen_mnist.pb"))
    checkpoint = migrate.LegacyCheckpoint.open(frozen)
    assert sorted(checkpoint.variables) == ["BC1", "BC2", "BF1", "BF2", "W_conv1", "W_conv2",
                                            "W_fc1", "W_fc2"]
    assert checkpoint.variables["BC1"].reason == (
        "a bias: added by AddV2 add to Conv2D Conv2D, a product with a weight")
    # The command line, with no flag beyond the output's name.
    draft = tmp_path / "frozen.toml"
    model = "--model=raw_graph_patterns:mnist_model"
    result = cli_in_process("suggest", f"--checkpoint={frozen}", model, f"--output={draft}",
                            "--output_tensor=y_conv:0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "draft proven" in result.stdout
    result = cli_in_process("convert", f"--checkpoint={frozen}", f"--table={draft}", model,
                            f"--output={tmp_path / 'converted'}", "--verify",
                            "--output_tensor=y_conv:0")
    assert result.returncode == 0, result.stderr
    assert "verified: PASS" in result.stdout


def test_a_constant_a_table_names_is_a_weight(saved, tmp_path, cli_in_process):
    """A bias added after a reshape: no product feeds its Add, but the table names it."""
    prefix = saved(patterns.build_tagger_reshaped_bias)
    frozen = patterns.freeze(prefix, "logits", str(tmp_path / "tagger.pb"))
    assert "b_out" in migrate.LegacyCheckpoint.open(frozen).not_weights
    table = verify_graphs.write_table(tmp_path / "table.toml", "[[rule]]\nmatch = 'W_out'\n"
                                      "target = 'out/kernel'\n\n[[rule]]\nmatch = 'b_out'\n"
                                      "target = 'out/bias'\n")
    result = cli_in_process("lint", f"--table={table}", f"--checkpoint={frozen}")
    assert result.returncode == 0 and "matches no variable" not in result.stdout, result.stdout
    settings = migrate.VerifySettings(output_tensor="logits:0", tolerance=TOLERANCE)
    report = migrate.convert(frozen, table, patterns.tagger_model, str(tmp_path / "out"),
                             options=migrate.ConversionOptions(verify=settings))
    assert report.verified["passed"], report.summary()
    checkpoint = migrate.LegacyCheckpoint.open(frozen)
    migrate.plan(checkpoint, table, patterns.tagger_model)
    assert checkpoint.variables["b_out"].reason == (
        f"named by rule 2 (match 'b_out') of the table {table}")


def test_a_float_input_cast_to_ids_gets_ids_in_its_tables_range(saved, tmp_path):
    prefix = saved(patterns.build_keras_float_ids)
    settings = migrate.VerifySettings(output_tensor="probabilities:0", tolerance=TOLERANCE)
    report, _ = _suggest_and_convert(prefix, patterns.keras_float_ids_model, settings, tmp_path)
    assert report.parity.inputs["words:0"]["values"] == (
        f"ids in [0, {patterns.VOCAB}) (the {patterns.VOCAB} rows of embedding/embeddings, cast "
        f"to integers by the graph)")
    model = _restored(patterns.keras_float_ids_model, tmp_path)
    bounded = migrate.verify(prefix, model, output_tensor="probabilities:0", input_max=5)
    assert bounded.passed and bounded.inputs["words:0"]["values"].startswith("ids in [0, 5)")
    with pytest.raises(migrate.ArgumentError, match=r"a table of 17 rows.*input_max=50"):
        migrate.verify(prefix, model, output_tensor="probabilities:0", input_max=50)


def test_a_time_major_input_gets_its_batch_on_axis_1(saved, tmp_path):
    prefix = saved(patterns.build_time_major_encoder)
    settings = migrate.VerifySettings(output_tensor="logits:0", input_shapes=[(patterns.STEPS,)],
                                      batch_size=3, tolerance=TOLERANCE)
    report, _ = _suggest_and_convert(prefix, patterns.time_major_encoder_model, settings,
                                     tmp_path)
    fed = report.parity.inputs["encoder_inputs:0"]
    assert (fed["shape"], fed["batch_axis"], report.parity.batch_size) == ([patterns.STEPS, 3],
                                                                           1, 3)
    assert fed["batch_axis_from"].endswith("unstacks its axis 0 as time"), fed
    ids = np.random.default_rng(1).integers(0, patterns.VOCAB, size=(6, 4)).astype(np.int32)
    model = _restored(patterns.time_major_encoder_model, tmp_path)
    real = migrate.verify(prefix, model, output_tensor="logits:0",
                          inputs={"encoder_inputs:0": ids})
    assert real.passed and real.batch_size == 4, real.summary()
    # The axis given wins over the graph's: [2, 6] read time-major is a batch of 6.
    with pytest.raises(migrate.ModelError, match=r"Expected \[6, 3\]\. Received: "
                       r"keras_output_shape=\[2, 3\]"):
        migrate.verify(prefix, model, output_tensor="logits:0", input_shape=(6,), batch_axes=0)
    with pytest.raises(migrate.ArgumentError, match=r"has no axis 2\. .*batch_axes naming 2"):
        migrate.verify(prefix, model, output_tensor="logits:0", input_shape=(6,), batch_axes=2)


def test_the_batch_axis_flag_names_a_time_major_input(saved, tmp_path, cli_in_process):
    prefix = saved(patterns.build_time_major_encoder)
    common = ["verify", f"--checkpoint={prefix}", "--output_tensor=logits:0",
              "--model=raw_graph_patterns:time_major_encoder_model", "--input_shape=6",
              f"--converted={tmp_path / 'converted'}"]
    result = cli_in_process("convert", f"--checkpoint={prefix}",
                            f"--table={_write_encoder_table(tmp_path)}",
                            "--model=raw_graph_patterns:time_major_encoder_model",
                            f"--output={tmp_path / 'converted'}")
    assert result.returncode == 0, result.stderr
    result = cli_in_process(*common, "--batch_axis=1", "--batch_size=3")
    assert result.returncode == 0, result.stderr
    assert "batch 3" in result.stdout
    result = cli_in_process(*common, "--batch_axis=one")
    assert result.returncode == 2
    assert "Received: batch_axis='one'" in result.stderr


def _write_encoder_table(tmp_path):
    return verify_graphs.write_table(tmp_path / "encoder.toml", """
[[rule]]
match = 'embedding'
target = 'embedding/embeddings'

[[rule]]
match = 'encoder/lstm_cell'
layout = 'lstm'
target = 'encoder/lstm_cell'

[[rule]]
match = 'projection/(kernel|bias)'
target = 'projection/\\1'
""")


def test_a_fixed_batch_of_one_holds_under_an_input_shape(saved, tmp_path):
    """The CTC recognizer: image `[1, H, ?, 1]`, LSTM time-major, logits `[T, 1, C]`."""
    prefix = saved(patterns.build_ctc_recognizer)
    settings = migrate.VerifySettings(
        output_tensor="logits:0", input_shapes=[(patterns.CTC_HEIGHT, patterns.CTC_WIDTH, 1)],
        tolerance=TOLERANCE)
    report, _ = _suggest_and_convert(prefix, patterns.ctc_recognizer_model, settings, tmp_path)
    assert report.parity.batch_size == 1
    assert report.parity.inputs["image:0"]["shape"] == [1, patterns.CTC_HEIGHT,
                                                        patterns.CTC_WIDTH, 1]
    with pytest.raises(migrate.ArgumentError, match=r"shape \[1, 4, \?, 1\], whose fixed sizes"):
        migrate.verify(prefix, _restored(patterns.ctc_recognizer_model, tmp_path),
                       output_tensor="logits:0", input_shape=(5, 6, 1))


def test_a_constant_feed_takes_the_shape_of_the_inputs(saved, tmp_path):
    prefix = saved(patterns.build_masked_pooling)
    settings = migrate.VerifySettings(output_tensor="logits:0", input_shapes=[(6,)],
                                      feeds={"input_mask": 1}, tolerance=TOLERANCE)
    report, _ = _suggest_and_convert(prefix, patterns.masked_pooling_model, settings, tmp_path)
    assert report.parity.inputs["input_mask:0"]["shape"] == [2, 6]
    # Real ids from a file: the mask takes their shape, batch included.
    ids = np.random.default_rng(2).integers(0, patterns.VOCAB, size=(3, 5)).astype(np.int32)
    real = migrate.verify(prefix, _restored(patterns.masked_pooling_model, tmp_path),
                          output_tensor="logits:0", feeds={"input_mask": 1},
                          inputs={"input_ids": ids})
    assert real.passed and real.inputs["input_mask:0"]["shape"] == [3, 5], real.summary()


def test_a_layers_resnet_without_its_meta_is_drafted_in_its_names_order(saved, tmp_path):
    """No graph gives the creation order: `conv2d_10` must not come before `conv2d_2`."""
    prefix = saved(patterns.build_layers_resnet)
    settings = migrate.VerifySettings(output_pairs=[("policy", "policy:0"), ("value", "value:0")],
                                      tolerance=TOLERANCE)
    options = migrate.ConversionOptions(use_meta=False, keep="model_state")
    report = migrate.suggest(prefix, patterns.layers_resnet_model, verify=settings,
                             options=options)
    assert report.ok and report.parity.max_rel_diff <= TOLERANCE, report.summary()
    targets = {match["source"]: match["target"] for match in report.matches}
    assert targets["conv2d_10/bias"] == "conv10/bias"
    assert targets["batch_normalization_12/beta"] == "bn12/beta"


@pytest.mark.parametrize("time_major", [True, False])
@pytest.mark.parametrize("tf1_loops", [True, False])
def test_the_graph_tells_an_inputs_batch_axis_and_id_range(time_major, tf1_loops):
    """TF 1.x loops (TensorArrayScatterV3) and while_v2 (TensorListFromTensor), time-major
    or transposed by dynamic_rnn; static_rnn's Unpack."""
    import contextlib

    from legacy_graphs import compat
    from migrate.verification import input_graph

    tf = verify_graphs.tf_v1()
    graph = tf.Graph()
    with compat.tf1_control_flow() if tf1_loops else contextlib.nullcontext(), \
            graph.as_default():
        ids = tf.placeholder(tf.float32, [None, None], name="ids")
        table = tf.get_variable("table", [patterns.VOCAB, patterns.EMBED])
        embedded = tf.nn.embedding_lookup(table, tf.cast(ids, tf.int32))
        tf.nn.dynamic_rnn(tf.nn.rnn_cell.BasicRNNCell(2), embedded, dtype=tf.float32,
                          time_major=time_major)
        frames = tf.placeholder(tf.float32, [None, 3, 2], name="frames")
        tf.nn.static_rnn(tf.nn.rnn_cell.BasicRNNCell(2), tf.unstack(frames, axis=1),
                         dtype=tf.float32, scope="static")
        steps = tf.placeholder(tf.float32, [3, None, 2], name="steps")
        tf.nn.static_rnn(tf.nn.rnn_cell.BasicRNNCell(2), tf.unstack(steps),
                         dtype=tf.float32, scope="static_time_major")
    facts = input_graph.input_facts(graph.get_tensor_by_name("ids:0"))
    assert (facts.batch_axis, facts.id_rows, facts.id_table, facts.cast_to_int) == (
        1 if time_major else 0, patterns.VOCAB, "table", True)
    static = input_graph.input_facts(graph.get_tensor_by_name("frames:0"))
    assert (static.batch_axis, static.id_rows) == (0, None)
    assert input_graph.input_facts(graph.get_tensor_by_name("steps:0")).batch_axis == 1


def test_only_a_vector_added_to_a_product_with_a_weight_is_a_bias():
    import tensorflow as tf

    from migrate.source import frozen_graph

    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.compat.v1.placeholder(tf.float32, [None, 3, 2], name="inputs")
        kernel = tf.constant(np.ones((2, 2), np.float32), name="kernel")
        projected = tf.matmul(inputs, kernel)
        net = tf.add(projected, tf.constant([0.5, 0.1], name="bias"), name="plus_bias")
        net += tf.matmul(inputs, kernel) + tf.constant(np.ones((3, 2), np.float32),
                                                        name="positions")
        scores = tf.matmul(net, net, transpose_b=True)
        tf.add(scores, tf.constant([1.0, 2.0, 3.0], name="score_offset"))
    constants = frozen_graph.classify_constants(graph.as_graph_def())
    assert constants["bias"].reason == ("a bias: added by AddV2 plus_bias to BatchMatMulV2 "
                                        "MatMul, a product with a weight")
    assert not constants["positions"].is_weight and not constants["score_offset"].is_weight
