"""Messages and refusals met on real TF 1.x checkpoints from public repositories (issue 27).

The graphs are written as those repositories wrote them: a training script
that makes its `Saver` early and its `learning_rate` variable later, an
inference builder beside the training `.meta`, a placeholder of unknown
width, a SavedModel exported for `train` only.
"""

import os
import re

import numpy as np
import pytest

import migrate
import tf1_builders
import verify_graphs
from migrate.mapping import lint
from migrate.output.report import inspect_summary
from migrate.source import graph_outputs

FEATURES, CLASSES = 3, 5
MODULE = "test_real_case_messages"
TABLE = """
[[rule]]
match = 'logits/(kernel|bias)'
target = 'logits/\\1'
"""


def _classifier(tf, features):
    return tf.layers.dense(features, CLASSES, name="logits")


def build_training_graph():
    """The training script: Saver made after the model, `learning_rate` and Adam after it.

    Returns the Saver, as the script kept it to save its checkpoints.
    """
    tf = verify_graphs.tf_v1()
    features = tf.placeholder(tf.float32, [None, FEATURES], name="features")
    labels = tf.placeholder(tf.int64, [None], name="labels")
    logits = _classifier(tf, features)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=logits), name="loss")
    tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), labels), tf.float32), name="accuracy")
    saver = tf.train.Saver()
    learning_rate = tf.Variable(0.01, name="learning_rate")  # Trainable: tf.Variable's default.
    tf.train.AdamOptimizer(learning_rate).minimize(loss)
    return saver


def build_inference_graph():
    """The repository's inference code: the same variables, and a softmax to serve."""
    tf = verify_graphs.tf_v1()
    features = tf.placeholder(tf.float32, [None, FEATURES], name="features")
    tf.nn.softmax(_classifier(tf, features), name="probabilities")


def build_unknown_width():
    """A placeholder of unknown width, reshaped before the dense layer, as feature code did."""
    tf = verify_graphs.tf_v1()
    features = tf.placeholder(tf.float32, [None, None], name="Placeholder")
    tf.identity(_classifier(tf, tf.reshape(features, [-1, FEATURES])), name="output")


def logits_model():
    import keras
    features = keras.Input((FEATURES,), name="features")
    return keras.Model(features, keras.layers.Dense(CLASSES, name="logits")(features))


def probabilities_model():
    import keras
    features = keras.Input((FEATURES,), name="features")
    return keras.Model(features, keras.layers.Dense(CLASSES, activation="softmax",
                                                    name="logits")(features))


def _save_training_checkpoint(directory):
    tf = verify_graphs.tf_v1()
    graph = tf.Graph()
    with graph.as_default():
        saver = build_training_graph()
        rng = np.random.default_rng(0)
        with tf.Session(graph=graph) as session:
            session.run(tf.global_variables_initializer())
            for variable in tf.trainable_variables():
                variable.load(rng.uniform(-0.5, 0.5, variable.shape.as_list()).astype("float32"),
                              session)
            prefix = saver.save(session, str(directory / "model.ckpt"), global_step=8140)
            saved_model = directory / "export"
            builder = tf.saved_model.Builder(str(saved_model))
            builder.add_meta_graph_and_variables(session, ["train"])
            builder.save()
    return prefix, str(saved_model)


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    """`(prefix, SavedModel directory)` of the training script's checkpoint and export."""
    return _save_training_checkpoint(tmp_path_factory.mktemp("training"))


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return verify_graphs.write_table(tmp_path_factory.mktemp("table") / "table.toml", TABLE)


def test_a_variable_made_after_the_saver_is_left_out_and_counted(training, table, tmp_path,
                                                                 cli_in_process):
    prefix, _ = training
    description = migrate.inspect(prefix)
    assert description["not_saved"] == ["learning_rate"]
    assert ("  not saved: 1 trainable graph variable the checkpoint lacks, left out (made after "
            "the Saver or outside its var_list, so no weight of the model): learning_rate"
            ) in inspect_summary(description).splitlines()
    result = cli_in_process("inspect", f"--checkpoint={prefix}")
    assert result.returncode == 0 and "learning_rate" in result.stdout, result.stderr
    result = cli_in_process("convert", f"--checkpoint={prefix}", f"--table={table}",
                            f"--model={MODULE}:logits_model", f"--output={tmp_path / 'out'}",
                            "--verify", "--output_tensor=logits/BiasAdd:0")
    assert result.returncode == 0, result.stderr
    assert "verified: PASS" in result.stdout and "not saved: 1" in result.stdout
    # Off a terminal nothing comes before the results: no progress lines.
    assert result.stderr == ""


def test_the_builder_alone_gets_past_a_variable_the_checkpoint_lacks(training, table, tmp_path):
    prefix, _ = training
    options = migrate.ConversionOptions(
        builder=f"{MODULE}:build_training_graph", use_meta=False,
        verify=migrate.VerifySettings(output_tensor="logits/BiasAdd:0"))
    report = migrate.convert(prefix, table, logits_model, str(tmp_path / "out"), options=options)
    assert report.not_saved == ["learning_rate"] and report.verified["passed"]


def test_a_builder_given_beside_a_meta_is_used_and_said(training, table, tmp_path,
                                                        cli_in_process):
    prefix, _ = training
    # The training .meta has no `probabilities`; the inference builder does.
    result = cli_in_process("convert", f"--checkpoint={prefix}", f"--table={table}",
                            f"--model={MODULE}:probabilities_model",
                            f"--builder={MODULE}:build_inference_graph",
                            f"--output={tmp_path / 'out'}", "--verify",
                            "--output_tensor=probabilities:0")
    assert result.returncode == 0, result.stderr
    assert (f"(roles from graph of builder '{MODULE}:build_inference_graph', given in place of "
            f"{prefix}.meta)") in result.stdout
    assert "verified: PASS" in result.stdout


def test_a_wrong_output_tensor_lists_the_graphs_candidate_outputs(training, cli_in_process,
                                                                  tmp_path):
    prefix, _ = training
    with pytest.raises(migrate.ArgumentError) as raised:
        migrate.verify(prefix, logits_model(), output_tensor="logit:0")
    message = str(raised.value)
    assert raised.value.option == "output_tensor"
    assert message.startswith("The legacy graph has no tensor logit:0. Did you mean "
                              "'logits/BiasAdd:0'?")
    assert ("Expected one of its candidate outputs (tensors nothing in its forward pass reads): "
            "logits/BiasAdd:0, ArgMax:0. Received: output_tensor naming 'logit:0'") in message
    assert "such as 'logits:0'" not in message


def test_candidate_outputs_leave_out_training_and_read_graph_defs_alike(training):
    from tensorflow.core.protobuf import meta_graph_pb2

    prefix, _ = training
    meta = meta_graph_pb2.MetaGraphDef()
    with open(prefix + ".meta", "rb") as file:
        meta.ParseFromString(file.read())
    # Not the loss or the accuracy (they read the labels), nor anything of Adam or the Saver.
    assert graph_outputs.candidate_outputs(meta) == ["logits/BiasAdd:0", "ArgMax:0"]
    assert graph_outputs.placeholders(meta.graph_def) == ["features:0", "labels:0"]
    tf = verify_graphs.tf_v1()
    graph = tf.Graph()
    with graph.as_default():
        build_inference_graph()
    assert graph_outputs.candidate_outputs(graph) == ["probabilities:0"]
    # A TF 1.x RNN loop: its outputs first; its counters, and the zero state sized by the
    # batch (it reads only the input's shape), never.
    graph = tf.Graph()
    with graph.as_default():
        tf1_builders.build_char_rnn()
    found = graph_outputs.candidate_outputs(graph)
    assert found[0] == "outputs:0", found
    assert not any("ZeroState" in name or graph.get_tensor_by_name(name).dtype.is_integer
                   for name in found), found


@pytest.fixture(scope="module")
def unknown_width(tmp_path_factory):
    directory = tmp_path_factory.mktemp("unknown_width")
    return verify_graphs.save_graph(directory, build_unknown_width), directory


def test_verification_settings_are_refused_before_any_weight_is_read(unknown_width, table,
                                                                      tmp_path, capsys):
    prefix, _ = unknown_width
    options = migrate.ConversionOptions(verify=migrate.VerifySettings(output_tensor="output:0"))
    capsys.readouterr()
    with pytest.raises(migrate.ArgumentError, match=r"Received: input_shape=None") as raised:
        migrate.convert(prefix, table, logits_model, str(tmp_path / "out"), options=options,
                        show_progress=True)
    assert raised.value.option == "input_shape"
    # Progress off a terminal writes a line per tenth of the work: none was done.
    assert capsys.readouterr().err == "" and os.listdir(tmp_path) == []


def test_suggests_unresolved_lines_name_the_flags(unknown_width, cli_in_process):
    prefix, directory = unknown_width
    common = ("suggest", f"--checkpoint={prefix}", f"--model={MODULE}:logits_model",
              f"--output={directory / 'draft.toml'}", "--overwrite")
    result = cli_in_process(*common, "--output_tensor=output:0")
    assert result.returncode == 1, result.stderr
    unresolved = result.stdout.split("unresolved (marked in the draft", 1)[1].splitlines()[1:]
    (line,) = unresolved
    assert line.startswith("  - parity: the legacy graph could not be compared: Placeholder ")
    assert line.endswith("Received: input_shape=None (see --input_shape)"), line
    result = cli_in_process(*common)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith("(see --output_tensor) -> "
                                                   f"{directory / 'draft.toml'}")
    report = migrate.suggest(prefix, logits_model)
    assert report.parity_option == "output_tensor" and "--" not in report.summary()


def test_a_saved_model_with_one_tag_set_is_read_without_tags(training, cli_in_process):
    _, saved_model = training
    checkpoint = migrate.LegacyCheckpoint.open(saved_model)
    assert checkpoint.artifact.tags == ("train",)
    assert checkpoint.not_saved == ()  # A SavedModel saves every variable.
    result = cli_in_process("inspect", f"--checkpoint={saved_model}")
    assert result.returncode == 0, result.stderr
    assert (f"roles from graph collections of the TF1 SavedModel {saved_model} (tags train, "
            f"its only tag set, used since it has no serve tag set))") in result.stdout
    with pytest.raises(migrate.CheckpointError, match="Expected one of the tag sets present: "
                       "train. Received: tags=\\['serve'\\]"):
        migrate.LegacyCheckpoint.open(saved_model, tags=["serve"])
    # An export for training has no signature: its own outputs are named instead.
    with pytest.raises(migrate.ArgumentError, match=re.escape(
            "has no signature). Expected output_tensor naming one of its candidate outputs "
            "(tensors nothing in its forward pass reads): logits/BiasAdd:0, ArgMax:0. Received: "
            "output_tensor=None")):
        migrate.verify(saved_model, logits_model())


def test_lint_tells_layout_rules_of_one_match_apart_by_the_parts_they_read(tmp_path):
    rule = """
[[rule]]
match = 'model/h(\\d+)/attn/c_attn'
layout = 'split'
target = 'block_\\1_attention'
source_part = '{part}'
target_parts = ['query/{kind}', 'key/{kind}', 'value/{kind}']
axis = -1
"""
    path = tmp_path / "table.toml"
    path.write_text(rule.format(part="w", kind="kernel") + rule.format(part="b", kind="bias"))
    report = lint.lint_table(str(path), names=["model/h0/attn/c_attn/w", "model/h0/attn/c_attn/b"])
    assert report.ok and report.warnings == [], report.warnings
    path.write_text(rule.format(part="w", kind="kernel") * 2)
    warnings = lint.lint_table(str(path)).warnings
    assert warnings[0].startswith("rule 2 repeats the match of rule 1 and can never win")
