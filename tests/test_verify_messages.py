"""Messages seen on the way with real checkpoints: each says what happened, and nothing false."""

import keras
import numpy as np
import pytest

import migrate
import tf1_builders
import verify_graphs
from migrate.mapping.table import MappingTable
from migrate.suggest import run as suggest_run

FEATURES, CLASSES, ROWS = 3, 5, 100


def _logits_as_1x1_convolution():
    """A classifier head as slim wrote it: logits [N, 1, 1, classes] from a 1x1 convolution."""
    tf = verify_graphs.tf_v1()
    features = tf.placeholder(tf.float32, [None, FEATURES], name="features")
    net = tf.reshape(features, [-1, 1, 1, FEATURES])
    tf.identity(tf.layers.conv2d(net, CLASSES, 1, name="logits"), name="output")


def _fixed_batch_classifier():
    """A placeholder that takes exactly ROWS rows, as many TF1 input pipelines did."""
    tf = verify_graphs.tf_v1()
    features = tf.placeholder(tf.float32, [ROWS, FEATURES], name="features")
    tf.identity(tf.layers.dense(features, CLASSES, name="logits"), name="output")


def _dense_model():
    features = keras.Input((FEATURES,), name="features")
    return keras.Model(features, keras.layers.Dense(CLASSES, name="logits")(features))


_SQUEEZE_TABLE = """
[[rule]]
match = 'logits/kernel'
target = 'logits/kernel'
transform = ['reshape(3, 5)']

[[rule]]
match = 'logits/bias'
target = 'logits/bias'
"""


def test_a_logits_shape_with_size_1_axes_is_compared_squeezed_and_said(tmp_path):
    prefix = verify_graphs.save_graph(tmp_path, _logits_as_1x1_convolution)
    table = verify_graphs.write_table(tmp_path / "table.toml", _SQUEEZE_TABLE)
    model = verify_graphs.convert_and_restore(prefix, table, _dense_model, tmp_path / "out")
    report = migrate.verify(prefix, model, output_tensor="output:0")
    assert report.passed and report.max_rel_diff < 1e-5, report.summary()
    assert report.squeezed == ("compared after removing size-1 axes: legacy [2, 1, 1, 5], "
                               "Keras [2, 5]")
    assert report.squeezed in report.summary().splitlines()


def test_suggest_writes_its_draft_and_proves_it_through_the_squeeze(tmp_path):
    prefix = verify_graphs.save_graph(tmp_path, _logits_as_1x1_convolution)
    draft = tmp_path / "draft.toml"
    report = migrate.suggest(prefix, _dense_model, output=str(draft),
                             verify=migrate.VerifySettings(output_tensor="output:0"))
    assert report.ok and report.parity.passed, report.summary()
    assert "compared after removing size-1 axes" in report.summary()
    assert draft.exists()


def test_suggest_writes_its_draft_when_the_legacy_graph_cannot_be_compared(tmp_path):
    (tmp_path / "legacy").mkdir()
    prefix = verify_graphs.save_graph(tmp_path / "legacy", tf1_builders.build_char_rnn)
    draft = tmp_path / "draft.toml"
    settings = migrate.VerifySettings(output_tensor="outputs:0", legacy_dropout="as_saved")
    report = migrate.suggest(prefix, tf1_builders.char_rnn_model, output=str(draft),
                             verify=settings)
    assert not report.ok and report.parity is None and report.parity_failed
    assert draft.exists() and "parity not run: the legacy graph could not be compared" in \
        draft.read_text()
    assert report.unresolved[-1].startswith("parity: the legacy graph could not be compared: "
                                            "The legacy graph is not deterministic")
    # Run in inference mode (the default), the same draft is proven.
    report = migrate.suggest(prefix, tf1_builders.char_rnn_model, output=str(draft),
                             overwrite=True, verify=migrate.VerifySettings(
                                 output_tensor="outputs:0"))
    assert report.ok and report.parity.passed, report.summary()


def test_the_batch_reported_is_the_rows_fed(tmp_path):
    prefix = verify_graphs.save_graph(tmp_path, _fixed_batch_classifier)
    table = verify_graphs.write_table(tmp_path / "table.toml", """
[[rule]]
match = 'logits/(kernel|bias)'
target = 'logits/\\1'
""")
    model = verify_graphs.convert_and_restore(prefix, table, _dense_model, tmp_path / "out")
    report = migrate.verify(prefix, model, output_tensor="output:0")
    assert report.passed and report.batch_size == ROWS
    assert f"batch {ROWS}," in report.summary() and report.manifest_entry()["batch"] == ROWS


def _report(**fields):
    table = MappingTable.from_text("[[rule]]\nmatch = 'x'\ntarget = 'x'\n", origin="<draft>")
    defaults = {"table": table, "text": "", "output": "d.toml", "matches": [], "dropped": [],
                "unfilled": [], "ambiguous": [], "settled": [], "plan_problems": []}
    return suggest_run.SuggestReport(**{**defaults, **fields})


def test_suggest_summary_counts_what_it_lists_and_never_says_proven_without_parity():
    problems = [f"problem {index}" for index in range(6)]
    summary = _report(plan_problems=problems, parity_note="the draft's plan has problems "
                      "(listed above)").summary()
    assert ("plan: 6 problem(s): problem 0; problem 1; problem 2; problem 3; problem 4; "
            "and 1 more (all in the draft)") in summary
    assert "parity: not run (the draft's plan has problems (listed above))" in summary
    unproven = _report(parity_note=suggest_run.NO_OUTPUT_TENSOR)
    assert unproven.ok
    assert unproven.summary().splitlines()[-1] == (
        "draft planned clean, not proven: no output_tensor: give verify settings naming the "
        "output tensor to compare -> d.toml")
    assert "()" not in unproven.summary()


def test_the_counter_name_warning_names_only_layers_the_counter_named():
    keras.backend.clear_session()
    named = keras.Sequential([keras.Input((3, 2)), keras.layers.GRU(4, name="gru_1",
                                                                    return_sequences=True),
                              keras.layers.GRU(4, name="gru_2")])
    assert suggest_run._counter_named(named) == []
    counted = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3), keras.layers.Dense(3)])
    assert suggest_run._counter_named(counted) == ["dense_1"]


def test_an_inputs_array_of_the_wrong_shape_is_one_line_on_the_command_line(
        tmp_path, cli_in_process):
    prefix = verify_graphs.save_graph(tmp_path, _fixed_batch_classifier)
    table = verify_graphs.write_table(tmp_path / "table.toml", """
[[rule]]
match = 'logits/(kernel|bias)'
target = 'logits/\\1'
""")
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, features=np.zeros([603], np.float32))
    result = cli_in_process("convert", f"--checkpoint={prefix}", f"--table={table}",
                            "--model=test_verify_messages:_dense_model",
                            f"--output={tmp_path / 'out'}", "--verify",
                            "--output_tensor=output:0", f"--inputs={inputs}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: The array fed to features:0 does not fit its shape. Expected shape [{ROWS}, "
        f"{FEATURES}] (float32). Received: shape=[603] from inputs_file (see --inputs)")


@pytest.mark.parametrize("value", ["sometimes"])
def test_legacy_dropout_takes_off_or_as_saved(value):
    with pytest.raises(migrate.ArgumentError, match="Expected legacy_dropout to be one of off, "
                                                    "as_saved"):
        migrate.VerifySettings(output_tensor="out:0", legacy_dropout=value)


def _normalized_classifier():
    tf = verify_graphs.tf_v1()
    features = tf.placeholder(tf.float32, [None, FEATURES], name="features")
    net = tf.layers.batch_normalization(features, training=False, name="bn")
    tf.identity(tf.layers.dense(net, CLASSES, name="logits"), name="output")


def _normalized_model():
    features = keras.Input((FEATURES,), name="features")
    net = keras.layers.BatchNormalization(epsilon=1e-3, name="bn")(features)
    return keras.Model(features, keras.layers.Dense(CLASSES, name="logits")(net))


_NORMALIZED_TABLE = """
[[rule]]
match = 'bn/(gamma|beta|moving_mean|moving_variance)'
target = 'bn/\\1'

[[rule]]
match = 'logits/(kernel|bias)'
target = 'logits/\\1'
"""


def _save_trained_weights_only(directory):
    """Saves the graph with its trainable weights trained and its statistics never updated."""
    tf = verify_graphs.tf_v1()
    graph = tf.Graph()
    with graph.as_default():
        _normalized_classifier()
        rng = np.random.default_rng(0)
        with tf.Session(graph=graph) as session:
            session.run(tf.global_variables_initializer())
            for variable in tf.trainable_variables():
                variable.load(rng.uniform(-0.5, 0.5, variable.shape.as_list()), session)
            return tf.train.Saver().save(session, str(directory / "model.ckpt"))


def test_trainable_only_with_statistics_at_initial_values_says_nothing_is_lost(tmp_path):
    (tmp_path / "initial").mkdir()
    prefix = _save_trained_weights_only(tmp_path / "initial")
    table = verify_graphs.write_table(tmp_path / "table.toml", _NORMALIZED_TABLE)
    report = migrate.convert(prefix, table, _normalized_model(), str(tmp_path / "out"),
                             options=migrate.ConversionOptions(
                                 verify=migrate.VerifySettings(output_tensor="output:0")))
    assert report.unwritten_at_initial and report.warnings == [], report.summary()
    assert "nothing is lost, inference is the same" in report.summary()
    assert report.verified["passed"]
    # Statistics moved by training: the output does lose them, and says so.
    (tmp_path / "trained").mkdir()
    prefix = verify_graphs.save_graph(tmp_path / "trained", _normalized_classifier)
    report = migrate.convert(prefix, table, _normalized_model(), str(tmp_path / "out2"))
    assert not report.unwritten_at_initial
    assert "inference differs from the legacy graph" in report.warnings[0]
