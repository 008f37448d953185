"""`inspect --graph`: a legacy graph's placeholders and candidate outputs, read from the graph."""

import pytest

from migrate.source import graph_listing


def _decoder_graph():
    """A TF1 training graph as people wrote it: raw tf.nn, a v1 while loop writing a
    TensorArray, a layer norm, dropout's keep_prob, a learning rate fed to the optimizer only,
    a moving average updated beside the loss, and a summary."""
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    control_flow_v2 = v1.control_flow_v2_enabled()
    v1.disable_control_flow_v2()
    try:
        with graph.as_default():
            inputs = v1.placeholder(tf.float32, [None, 3, 4], name="inputs")
            keep_prob = v1.placeholder_with_default(1.0, [], name="keep_prob")
            learning_rate = v1.placeholder(tf.float32, [], name="learning_rate")
            labels = v1.placeholder(tf.int32, [None, 3], name="labels")
            weights = v1.get_variable("decoder/w", [4, 4])
            steps = v1.shape(inputs)[1]
            with v1.variable_scope("decoder"):
                array = tf.TensorArray(tf.float32, size=steps)

                def step(time, state, written):
                    state = tf.tanh(tf.matmul(inputs[:, time], weights) + state)
                    return time + 1, state, written.write(time, state)

                _, _, written = v1.while_loop(lambda time, *_: time < steps, step, (
                    tf.constant(0), tf.zeros_like(inputs[:, 0]), array))
                outputs = v1.transpose(written.stack(), [1, 0, 2])
            with v1.variable_scope("LayerNorm"):
                mean, variance = tf.nn.moments(outputs, [-1], keepdims=True)
                normed = (outputs - mean) * v1.rsqrt(variance + 1e-6)
            hidden = tf.nn.dropout(normed, rate=1 - keep_prob)
            projection = v1.get_variable("softmax_w", [4, 5])
            logits = tf.identity(tf.einsum("btd,dv->btv", hidden, projection), name="logits")
            tf.nn.softmax(logits, name="probabilities")
            loss = v1.losses.sparse_softmax_cross_entropy(labels, logits)
            average = v1.get_variable("loss_average", [], trainable=False)
            update = v1.assign_sub(average, 0.1 * (average - loss))
            v1.summary.scalar("loss", loss)
            with tf.control_dependencies([update]):
                v1.train.GradientDescentOptimizer(learning_rate).minimize(loss)
    finally:
        if control_flow_v2:
            v1.enable_control_flow_v2()
    return graph


def test_the_listing_finds_the_placeholders_and_the_outputs_a_user_compares():
    listing = graph_listing.describe(_decoder_graph())
    assert listing["placeholders"] == [
        {"name": "inputs:0", "dtype": "float32", "shape": [None, 3, 4], "forward": True},
        {"name": "keep_prob:0", "dtype": "float32", "shape": [], "forward": True},
        {"name": "learning_rate:0", "dtype": "float32", "shape": [], "forward": False},
        {"name": "labels:0", "dtype": "int32", "shape": [None, 3], "forward": True}]
    outputs = {entry["name"]: entry["why"] for entry in listing["outputs"]}
    assert outputs["logits:0"] == [graph_listing.LOGITS, graph_listing.NAMED]
    assert outputs["probabilities:0"] == [graph_listing.NO_FORWARD_CONSUMER,
                                          graph_listing.LAST_SOFTMAX]
    assert outputs["LayerNorm/mul:0"] == [graph_listing.LAST_LAYER_NORM]
    assert graph_listing.NO_FORWARD_CONSUMER in outputs["sparse_softmax_cross_entropy_loss/value:0"]
    # The loop's stacked outputs feed the model on: found, but not an end of the forward pass.
    assert not any(name.startswith(("gradients", "GradientDescent", "Assign"))
                   for name in outputs), outputs
    assert listing["more_outputs"] == 0
    lines = graph_listing.summary_lines(listing)
    assert "  learning_rate:0  float32  []         not read by the forward pass" in lines


def test_a_loops_stacked_output_with_no_consumer_is_a_candidate():
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    control_flow_v2 = v1.control_flow_v2_enabled()
    v1.disable_control_flow_v2()
    try:
        with graph.as_default():
            inputs = v1.placeholder(tf.float32, [None, 2], name="inputs")
            with v1.variable_scope("decoder"):
                array = tf.TensorArray(tf.float32, size=3)
                _, written = v1.while_loop(lambda time, _: time < 3, lambda time, written: (
                    time + 1, written.write(time, inputs * tf.cast(time, tf.float32))),
                    (tf.constant(0), array))
                written.stack()
    finally:
        if control_flow_v2:
            v1.enable_control_flow_v2()
    outputs = [entry["name"] for entry in graph_listing.describe(graph)["outputs"]]
    assert outputs == ["decoder/TensorArrayStack/TensorArrayGatherV3:0"]


def test_inspect_graph_prints_the_listing_and_refuses_a_checkpoint_without_a_graph(
        cli_in_process, legacy_checkpoint):
    prefix = legacy_checkpoint("small_convnet")
    result = cli_in_process("inspect", f"--checkpoint={prefix}", "--graph")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("graph placeholders (feed them with --input_tensor / --feed):")
    assert lines[start + 1:start + 4] == ["  is_training:0  bool     []",
                                          "  images:0       float32  [?, 8, 8, 3]",
                                          "  labels:0       int32    [?]"]
    assert lines[start + 4] == "candidate outputs (for --output_tensor):"
    assert lines[start + 5].split() == ["logits/BiasAdd:0", "float32", "[?,", "5]", "logits"]
    refused = cli_in_process("inspect", f"--checkpoint={prefix}", "--graph", "--use_meta=false")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: The checkpoint has no graph to list.")
    assert len(refused.stderr.splitlines()) == 1


@pytest.mark.parametrize("listing, expected", [
    ({"placeholders": [], "outputs": [], "more_outputs": 3},
     ["graph placeholders (feed them with --input_tensor / --feed):", "  (none)",
      "candidate outputs (for --output_tensor):", "  (none)",
      "  ... and 3 more tensor(s) with no forward consumer (all in the JSON report)"]),
])
def test_summary_lines_say_when_there_is_nothing_and_how_many_were_left_out(listing, expected):
    assert graph_listing.summary_lines(listing) == expected
