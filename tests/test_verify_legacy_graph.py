"""The legacy graph verification runs: dropout baked in, keep_prob placeholders, no `.meta`."""

import contextlib
import os

import numpy as np
import pytest

import migrate
import tf1_builders
import verify_graphs
from legacy_graphs import v1_format
from migrate.errors import ArgumentError
from migrate.errors import CheckpointError

CHAR_RNN_BUILDER = "tf1_builders:build_char_rnn"


def _converted(tmp_path, build, table_text, factory, *, tf1_style=False):
    """Saves `build`'s graph (with .meta), converts it; returns (prefix, table, restored model)."""
    (tmp_path / "legacy").mkdir()
    with tf1_builders.tf1_control_flow() if tf1_style else contextlib.nullcontext():
        prefix = verify_graphs.save_graph(tmp_path / "legacy", build)
    table = verify_graphs.write_table(tmp_path / "table.toml", table_text)
    model = verify_graphs.convert_and_restore(prefix, table, factory, tmp_path / "converted")
    return prefix, table, model


@pytest.fixture(scope="module", params=["tf1_while", "while_v2"])
def char_rnn(request, tmp_path_factory):
    """The DropoutWrapper(output_keep_prob=0.75) char-RNN, saved as TF 1.x and as TF 2.21 build it."""
    return _converted(tmp_path_factory.mktemp("char_rnn"), tf1_builders.build_char_rnn,
                      tf1_builders.CHAR_RNN_TABLE, tf1_builders.char_rnn_model,
                      tf1_style=request.param == "tf1_while")


def test_dropout_inside_the_rnn_loop_is_switched_off_and_named(char_rnn):
    prefix, _, model = char_rnn
    report = migrate.verify(prefix, model, output_tensor="outputs:0")
    assert report.passed and report.max_rel_diff < 1e-5, report.summary()
    assert report.dropout_off == ["char/while/dropout"]
    assert ("legacy graph in inference mode: dropout's constant keep probability set to 1 in "
            "char/while/dropout") in report.summary()
    assert report.manifest_entry()["dropout_off"] == ["char/while/dropout"]


def test_a_graph_run_as_saved_with_dropout_is_refused_naming_its_random_ops(char_rnn):
    prefix, _, model = char_rnn
    with pytest.raises(CheckpointError) as caught:
        migrate.verify(prefix, model, output_tensor="outputs:0", legacy_dropout="as_saved")
    message = str(caught.value)
    assert message.startswith("The legacy graph is not deterministic: two runs on the same input "
                              "differ")
    assert "char/while/dropout/random_uniform/RandomUniform" in message
    assert "legacy_dropout='off'" in message and caught.value.option == "legacy_dropout"


def test_feeding_the_keep_probability_inside_the_loop_is_one_clear_line(tmp_path):
    with tf1_builders.tf1_control_flow():
        prefix = verify_graphs.save_graph(tmp_path, tf1_builders.build_char_rnn)
    model = tf1_builders.char_rnn_model()
    with pytest.raises(ArgumentError) as caught:
        migrate.verify(prefix, model, output_tensor="outputs:0",
                       feeds={"char/while/dropout/GreaterEqual/y:0": 0.0})
    message = str(caught.value)
    assert message.startswith("The tensor char/while/dropout/GreaterEqual/y:0 cannot be fed: it "
                              "is inside the graph's control flow (char/while)")
    assert "\n" not in message and caught.value.option == "feeds"


def test_a_keep_prob_placeholder_is_fed_and_nothing_is_rewritten(tmp_path):
    prefix, _, model = _converted(tmp_path, tf1_builders.build_char_rnn_keep_prob_placeholder,
                                  tf1_builders.CHAR_RNN_TABLE, tf1_builders.char_rnn_model,
                                  tf1_style=True)
    report = migrate.verify(prefix, model, output_tensor="outputs:0", feeds={"keep_prob:0": 1.0})
    assert report.passed and report.dropout_off == [], report.summary()
    with pytest.raises(CheckpointError, match="not deterministic") as caught:
        migrate.verify(prefix, model, output_tensor="outputs:0", feeds={"keep_prob:0": 0.5})
    assert "char/while/dropout/random_uniform/RandomUniform" in str(caught.value)
    assert "feeds of 1.0 for the keep-probability placeholders" in str(caught.value)


def test_tf1_dropout_x_over_keep_prob_times_floor_is_switched_off(tmp_path):
    prefix, _, model = _converted(tmp_path, tf1_builders.build_tf1_dropout_classifier,
                                  tf1_builders.TF1_DROPOUT_CLASSIFIER_TABLE,
                                  tf1_builders.tf1_dropout_classifier_model)
    report = migrate.verify(prefix, model, output_tensor="output:0",
                            input_max=tf1_builders.VOCAB, batch_size=8)
    assert report.passed and report.dropout_off == ["dropout"], report.summary()


@pytest.fixture(scope="module")
def char_rnn_v1_without_meta(tmp_path_factory):
    """A 2016-style checkpoint: one V1 file, no .meta; the model code is `tf1_builders`."""
    directory = tmp_path_factory.mktemp("char_rnn_v1")
    with tf1_builders.tf1_control_flow():
        prefix = verify_graphs.save_graph(directory, tf1_builders.build_char_rnn)
    v1_format.rewrite_as_v1(prefix)
    os.remove(prefix + ".meta")
    return prefix


def test_a_v1_checkpoint_without_meta_verifies_with_a_module_callable_builder(
        char_rnn_v1_without_meta, tmp_path):
    prefix = char_rnn_v1_without_meta
    table = verify_graphs.write_table(tmp_path / "table.toml", tf1_builders.CHAR_RNN_TABLE)
    checkpoint = migrate.LegacyCheckpoint.open(prefix, builder=CHAR_RNN_BUILDER)
    assert checkpoint.meta_path is None and checkpoint.builder == CHAR_RNN_BUILDER
    assert checkpoint.role_origin == f"graph of builder {CHAR_RNN_BUILDER!r}"
    model = verify_graphs.convert_and_restore(checkpoint, table, tf1_builders.char_rnn_model,
                                              tmp_path / "converted")
    report = migrate.verify(prefix, model, output_tensor="outputs:0", builder=CHAR_RNN_BUILDER)
    assert report.passed and report.dropout_off == ["char/while/dropout"], report.summary()
    with pytest.raises(CheckpointError, match="or a builder \\(module:callable\\)"):
        migrate.verify(prefix, model, output_tensor="outputs:0")


def test_the_builder_runs_once_for_the_roles_and_verification(char_rnn_v1_without_meta,
                                                              tmp_path):
    prefix = char_rnn_v1_without_meta
    table = verify_graphs.write_table(tmp_path / "table.toml", tf1_builders.CHAR_RNN_TABLE)
    tf1_builders.BUILDS.clear()
    checkpoint = migrate.LegacyCheckpoint.open(prefix,
                                               builder="tf1_builders:build_char_rnn_counted")
    operations = [operation.name for operation in checkpoint.graph.get_operations()]
    model = verify_graphs.convert_and_restore(checkpoint, table, tf1_builders.char_rnn_model,
                                              tmp_path / "converted")
    report = migrate.verify(checkpoint, model, output_tensor="outputs:0")
    assert report.passed and report.dropout_off == ["char/while/dropout"], report.summary()
    assert tf1_builders.BUILDS == {"char_rnn": 1}
    # Verification ran a copy: the graph that gave the roles is as the builder left it.
    assert [operation.name for operation in checkpoint.graph.get_operations()] == operations


def test_a_builder_that_is_not_module_callable_or_fails_is_one_line():
    with pytest.raises(ArgumentError, match="Expected a graph builder as module:callable"):
        migrate.ConversionOptions(builder="tf1_builders:")
    from migrate.source import meta_graph
    with pytest.raises(CheckpointError, match="has no callable 'nothing'"):
        meta_graph.builder_graph("tf1_builders:nothing")
    with pytest.raises(CheckpointError, match="The graph builder made no variables"):
        meta_graph.builder_graph("tf1_builders:tf1_control_flow")


def test_convert_verify_and_suggest_take_the_builder_on_the_command_line(
        char_rnn_v1_without_meta, cli_in_process, tmp_path):
    prefix = char_rnn_v1_without_meta
    table = verify_graphs.write_table(tmp_path / "table.toml", tf1_builders.CHAR_RNN_TABLE)
    model = "tf1_builders:char_rnn_model"
    result = cli_in_process("convert", f"--checkpoint={prefix}", f"--table={table}",
                            f"--model={model}", f"--output={tmp_path / 'converted'}",
                            f"--builder={CHAR_RNN_BUILDER}", "--verify",
                            "--output_tensor=outputs:0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verified: PASS" in result.stdout
    result = cli_in_process("verify", f"--checkpoint={prefix}", f"--model={model}",
                            f"--converted={tmp_path / 'converted'}",
                            f"--builder={CHAR_RNN_BUILDER}", "--output_tensor=outputs:0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "set to 1 in char/while/dropout" in result.stdout
    draft = tmp_path / "draft.toml"
    result = cli_in_process("suggest", f"--checkpoint={prefix}", f"--model={model}",
                            f"--output={draft}", f"--builder={CHAR_RNN_BUILDER}",
                            "--output_tensor=outputs:0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == f"draft proven -> {draft}"
    result = cli_in_process("inspect", f"--checkpoint={prefix}", f"--builder={CHAR_RNN_BUILDER}")
    assert result.returncode == 0 and f"graph of builder {CHAR_RNN_BUILDER!r}" in result.stdout
    result = cli_in_process("inspect", f"--checkpoint={prefix}", "--builder=tf1_builders:absent")
    assert result.returncode == 1 and result.stderr.strip() == (
        "error: Module 'tf1_builders' has no callable 'absent'. Expected module:callable. "
        "Received: builder='tf1_builders:absent' (see --builder)")


def test_an_inputs_array_of_the_wrong_shape_is_one_line(char_rnn, tmp_path):
    prefix, _, model = char_rnn
    with pytest.raises(ArgumentError) as caught:
        migrate.verify(prefix, model, output_tensor="outputs:0",
                       inputs={"data:0": np.zeros([603], np.float32)})
    assert str(caught.value) == ("The array fed to data:0 does not fit its shape. Expected shape "
                                 "[?, 4, 3] (float32). Received: shape=[603] from inputs_file")


def test_batch_workers_build_the_graph_with_the_builder_and_verify(char_rnn_v1_without_meta,
                                                                   tmp_path):
    import shutil

    tree = tmp_path / "tree" / "run1"
    tree.mkdir(parents=True)
    shutil.copy(char_rnn_v1_without_meta, tree / "model.ckpt")
    table = verify_graphs.write_table(tmp_path / "table.toml", tf1_builders.CHAR_RNN_TABLE)
    options = migrate.ConversionOptions(
        builder=CHAR_RNN_BUILDER, verify=migrate.VerifySettings(output_tensor="outputs:0"))
    # A worker process: it imports the builder's module from this process's path.
    report = migrate.convert_batch(str(tmp_path / "tree"), str(tmp_path / "out"), table,
                                   "tf1_builders:char_rnn_model", options=options, workers=1)
    assert report.ok, report.summary()
    manifest = (tmp_path / "out" / "run1" / "model.ckpt" / "manifest.json").read_text()
    assert '"dropout_off": [\n      "char/while/dropout"\n    ]' in manifest
