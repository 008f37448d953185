"""Feature-column graphs: proof through the tf.Example signature, the vocabulary OOV roll,
Keras-optimizer state, Estimator model directories.

The artifacts under tests/data/estimators were written by TensorFlow 2.15's own
tf.estimator (scripts/make_estimator_artifacts.py); `feature_column_graphs`
builds a small one with TF 2.21's tf.compat.v1 feature columns.
"""

import os
import shutil

import numpy as np
import pytest

import feature_column_graphs
import migrate
from migrate.mapping import layouts
from migrate.source import vocabulary
from migrate.source.roles import Role
from migrate.verification import examples
from migrate.verification import feature_values
from migrate.verification import legacy_graph
from migrate.verification import legacy_run

ESTIMATORS = os.path.join(os.path.dirname(__file__), "data", "estimators")
DNN_CLASSIFIER = os.path.join(ESTIMATORS, "dnn_classifier")
TWIN = "feature_column_graphs:dnn_classifier_twin"


@pytest.fixture(scope="module")
def own_graph(tmp_path_factory):
    """`(model_dir prefix, export)` of `feature_column_graphs.write`."""
    return feature_column_graphs.write(str(tmp_path_factory.mktemp("feature_columns")))


@pytest.fixture(scope="module")
def twin_draft(tmp_path_factory):
    """The draft suggest writes, unaided, for the DNNClassifier twin (and its report)."""
    import keras

    keras.backend.clear_session()
    draft = str(tmp_path_factory.mktemp("draft") / "table.toml")
    report = migrate.suggest(os.path.join(DNN_CLASSIFIER, "export", "example", "1"), TWIN,
                             output=draft, verify=migrate.VerifySettings(),
                             options=migrate.ConversionOptions(signature="predict"))
    return draft, report


def test_vocabulary_oov_roll_puts_the_buckets_first():
    converter = layouts.get("vocabulary_oov_roll")
    rows = np.arange(12, dtype=np.float32).reshape(6, 2)  # 4 words, then 2 OOV buckets.
    parameters = {**converter.parameters, "oov_buckets": 2}
    converted = converter.convert({"embedding_weights": rows}, {"embeddings": (6, 2)}, parameters)
    np.testing.assert_array_equal(converted["embeddings"], rows[[4, 5, 0, 1, 2, 3]])
    with pytest.raises(layouts.LayoutError, match="Expected oov_buckets in the rule"):
        converter.output_shapes({"embedding_weights": (6, 2)}, {}, converter.parameters)
    with pytest.raises(layouts.LayoutError, match=r"without a mask token.*\(7, 2\)"):
        converter.output_shapes({"embedding_weights": (6, 2)}, {"embeddings": (7, 2)},
                                parameters)


def test_the_graph_says_which_rows_a_vocabulary_looks_up_and_its_buckets(own_graph):
    from tensorflow.core.protobuf import meta_graph_pb2

    meta_graph = meta_graph_pb2.MetaGraphDef()
    with open(own_graph[0] + ".meta", "rb") as file:
        meta_graph.ParseFromString(file.read())
    # The hash-bucket column's rows are not looked up by vocabulary: no roll.
    assert vocabulary.oov_buckets(meta_graph.graph_def) == {
        "dnn/input_from_feature_columns/input_layer/color_embedding/embedding_weights": 2}


def test_rows_are_generated_from_the_graph_and_serialized_as_examples(own_graph):
    checkpoint = migrate.LegacyCheckpoint.open(own_graph[1])
    legacy = legacy_graph.load(checkpoint)
    settings = migrate.VerifySettings(output_tensor="logits:0")
    keras_inputs = [("age", "float32"), ("hours", "float32"), ("color", "string"),
                    ("city", "string")]
    logits = legacy.graph.get_tensor_by_name("logits:0")
    feed = examples.example_feed(legacy.graph, [logits], settings, keras_inputs)
    rows = feed.keras_inputs(by_name=True)
    # Every word, both OOV values, every bucket of hours (never on a boundary).
    assert rows["color"][:, 0].tolist() == ["red", "green", "blue", "<out-of-vocabulary 0>",
                                            "<out-of-vocabulary 1>"]
    assert set(np.digitize(rows["hours"][:, 0], [10, 20, 40]).tolist()) == {0, 1, 2, 3}
    assert not set(rows["hours"][:, 0].tolist()) & {10.0, 20.0, 40.0}
    assert len(set(rows["city"][:, 0].tolist())) == 5
    import tensorflow as tf

    (serialized,) = [feed.arrays[name] for name in feed.input_names]
    parsed = tf.io.parse_example(serialized, {"color": tf.io.VarLenFeature(tf.string),
                                              "age": tf.io.FixedLenFeature([1], tf.float32)})
    assert [value.decode() for value in parsed["color"].values.numpy()] == \
        rows["color"][:, 0].tolist()
    np.testing.assert_array_equal(parsed["age"].numpy(), rows["age"])
    # The export's main op initializes the vocabulary table; a .meta's table_initializer does.
    assert [op.type for op in legacy.initializers] == ["NoOp"]
    meta = legacy_graph.load(migrate.LegacyCheckpoint.open(own_graph[0]))
    assert {op.type for op in meta.initializers} == {"LookupTableImportV2"}


def test_string_values_cover_a_vocabulary_and_hash_buckets():
    found = feature_values.FeatureFacts(vocabulary=["x", "y"], hashed=True)
    assert found.covering_rows == 4
    assert feature_values.values(feature_values.FeatureFacts(hashed=True), "string", 2).tolist() \
        == ["value 0", "value 1"]


def test_own_graph_twin_is_drafted_and_proven_from_the_model_dir_and_the_export(
        own_graph, tmp_path, cli_in_process):
    import keras

    keras.backend.clear_session()
    draft = str(tmp_path / "table.toml")
    report = migrate.suggest(own_graph[0], feature_column_graphs.keras_twin, output=draft,
                             verify=migrate.VerifySettings(output_pairs=(
                                 ("logits", "logits:0"), ("probabilities", "probabilities:0"))))
    assert report.ok and report.parity.passed, report.summary()
    assert "layout = 'vocabulary_oov_roll'\noov_buckets = 2\n" in open(draft).read()
    result = cli_in_process("convert", f"--checkpoint={own_graph[1]}", f"--table={draft}",
                            "--model=feature_column_graphs:keras_twin",
                            f"--output={tmp_path / 'out'}", "--verify")
    assert result.returncode == 0, result.stderr
    assert "verified: PASS" in result.stdout


def test_dnn_classifier_twin_is_drafted_by_suggest_unaided(twin_draft):
    draft, report = twin_draft
    assert report.ok and report.parity.passed, report.summary()
    assert report.parity.max_rel_diff < 1e-5
    text = open(draft).read()
    assert ("match = 'dnn/input_from_feature_columns/input_layer/color_embedding'\n"
            "layout = 'vocabulary_oov_roll'\noov_buckets = 2\ntarget = 'color_embedding'\n"
            in text)


def test_dnn_classifier_twin_is_proven_by_convert_verify_with_its_draft(twin_draft,
                                                                      cli_in_process, tmp_path):
    draft, _ = twin_draft
    export = os.path.join(DNN_CLASSIFIER, "export", "example", "1")
    result = cli_in_process("convert", f"--checkpoint={export}", "--signature=predict",
                            f"--table={draft}", f"--model={TWIN}",
                            f"--output={tmp_path / 'out'}", "--verify")
    assert result.returncode == 0, result.stderr
    assert "verified: PASS" in result.stdout
    # The default signature classifies (classes, scores): the error names the one that fits.
    result = cli_in_process("convert", f"--checkpoint={export}", f"--table={draft}",
                            f"--model={TWIN}", f"--output={tmp_path / 'default'}", "--verify")
    assert result.returncode != 0
    assert "or signature naming 'predict', whose outputs are named like them" in result.stderr
    assert not os.path.exists(tmp_path / "default")
    # Without the roll, the same twin is wrong on the OOV and vocabulary rows.
    unrolled = tmp_path / "unrolled.toml"
    unrolled.write_text(open(draft).read().replace(
        "layout = 'vocabulary_oov_roll'\noov_buckets = 2\ntarget = 'color_embedding'",
        "target = 'color_embedding'").replace(
        "match = 'dnn/input_from_feature_columns/input_layer/color_embedding'",
        "match = 'dnn/input_from_feature_columns/input_layer/color_embedding/embedding_weights'"
    ).replace("target = 'color_embedding'", "target = 'color_embedding/embeddings'"))
    result = cli_in_process("convert", f"--checkpoint={export}", "--signature=predict",
                            f"--table={unrolled}", f"--model={TWIN}",
                            f"--output={tmp_path / 'wrong'}", "--verify")
    assert result.returncode != 0
    assert "first divergent layer color_embedding" in result.stdout + result.stderr


@pytest.mark.parametrize("estimator, slot, per_variable, hyperparameter", [
    ("dnn_classifier", "training/Adam/dnn/hiddenlayer_0/kernel/m", 2, "training/Adam/beta_1"),
    ("dnn_regressor", "training/Adagrad/dnn/logits/kernel/accumulator", 1,
     "training/Adagrad/learning_rate"),
    ("linear_classifier", "training/Ftrl/linear/linear_model/color/weights/linear", 2,
     "training/Ftrl/learning_rate_power"),
    ("dnn_linear_combined_classifier", "training/Ftrl/linear/linear_model/hours_bucketized/"
     "weights/accumulator", None, "training/Ftrl/iter"),
])
def test_keras_optimizer_state_of_the_estimators_is_counted_not_unknown(
        estimator, slot, per_variable, hyperparameter):
    checkpoint = migrate.LegacyCheckpoint.open(os.path.join(ESTIMATORS, estimator, "model_dir"))
    roles = {name: variable.role for name, variable in checkpoint.variables.items()}
    assert not [name for name, role in roles.items() if role is Role.UNKNOWN]
    slots = [name for name, role in roles.items() if role is Role.OPTIMIZER_SLOT]
    assert slot in slots
    if per_variable is not None:
        trainable = [role for role in roles.values() if role is Role.TRAINABLE]
        assert len(slots) == per_variable * len(trainable)
    assert roles[hyperparameter] is Role.BOOKKEEPING


def test_batch_converts_an_estimator_model_dir_and_its_newest_export(twin_draft, tmp_path):
    draft, _ = twin_draft
    model_dir = tmp_path / "models" / "dnn_classifier"
    shutil.copytree(os.path.join(DNN_CLASSIFIER, "model_dir"), model_dir)
    exports = model_dir / "export" / "example"
    shutil.copytree(os.path.join(DNN_CLASSIFIER, "export", "example", "1"), exports / "1")
    shutil.copytree(os.path.join(DNN_CLASSIFIER, "export", "example", "1"), exports / "2")
    report = migrate.convert_batch(str(tmp_path / "models"), str(tmp_path / "converted"), draft,
                                   TWIN, latest_only=True, workers=0)
    assert [(item.relative, item.status) for item in report.items] == [
        ("dnn_classifier/export/example/2", "converted"),
        ("dnn_classifier/model.ckpt-30", "converted")], report.summary()


def test_raw_feature_export_gets_strings_from_the_graph_and_real_rows_by_name(
        own_graph, tmp_path, cli_in_process):
    # The raw export's string placeholders are fed vocabulary words, OOV values and
    # strings for the hash buckets (not floats), after its main op filled the table.
    draft = str(tmp_path / "table.toml")
    result = cli_in_process("suggest", f"--checkpoint={own_graph[2]}",
                            "--model=feature_column_graphs:keras_twin", f"--output={draft}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verify PASS" in result.stdout and "batch 5" in result.stdout
    # Real rows by feature name feed both graphs (serialized for the tf.Example export).
    rows = tmp_path / "rows.npz"
    np.savez(rows, **feature_column_graphs.rows())
    for export in own_graph[1:]:
        result = cli_in_process("convert", f"--checkpoint={export}", f"--table={draft}",
                                "--model=feature_column_graphs:keras_twin", f"--inputs={rows}",
                                f"--output={tmp_path / os.path.basename(os.path.dirname(export))}",
                                "--verify")
        assert result.returncode == 0, result.stderr
        assert "verified: PASS" in result.stdout and "batch 5" in result.stdout, result.stdout


def test_vocabulary_files_from_the_exports_assets_and_identity_ids_bounded_by_the_graph():
    # Written by TF 2.15: a vocabulary file listed in the saved_model_assets collection,
    # named in the graph by the training machine's path; an identity column of 7 ids.
    export = os.path.join(ESTIMATORS, "dnn_linear_combined_classifier", "export", "example", "1")
    legacy = legacy_graph.load(migrate.LegacyCheckpoint.open(export))
    assert list(legacy.assets.values()) == [os.path.join(export, "assets", "occupation.txt")]
    features = {feature.key: feature for feature in examples.parsed_features(
        legacy.graph.get_tensor_by_name("input_example_tensor:0"))}
    occupation = feature_values.facts(legacy.graph, features["occupation"].tensor,
                                      assets=legacy.assets)
    assert occupation.vocabulary == ["clerk", "driver", "nurse", "teacher", "welder"]
    assert occupation.hashed
    weekday = feature_values.facts(legacy.graph, features["weekday"].tensor)
    assert weekday.id_bound == 7
    assert feature_values.values(weekday, "int64", 9).tolist() == [0, 1, 2, 3, 4, 5, 6, 0, 1]
    import tensorflow as tf

    with tf.compat.v1.Session(graph=legacy.graph) as session:
        legacy.saver.restore(session, legacy.restore_path)
        session.run(legacy.initializers, legacy_run._asset_feeds(legacy.graph, legacy.assets))


@pytest.mark.parametrize("estimator, expected", [
    # A crossed column hashes the crossing of color's ids: its rows are not rolled.
    ("linear_classifier", {"linear/linear_model/color/weights": 1}),
    # A vocabulary without buckets (default_value=0) looks up its rows in order.
    ("dnn_linear_combined_classifier", {
        "dnn/input_from_feature_columns/input_layer/occupation_embedding/embedding_weights": 1,
        "linear/linear_model/color/weights": 0}),
])
def test_vocabulary_lookups_of_the_estimators_as_tf_2_15_saved_them(estimator, expected):
    from tensorflow.core.protobuf import meta_graph_pb2

    meta_graph = meta_graph_pb2.MetaGraphDef()
    with open(os.path.join(ESTIMATORS, estimator, "model_dir", "model.ckpt-30.meta"), "rb") as file:
        meta_graph.ParseFromString(file.read())
    assert vocabulary.oov_buckets(meta_graph.graph_def) == expected


def test_the_documented_twin_commands_run(cli_in_process, tmp_path, monkeypatch):
    """docs/estimators.md's suggest and convert of a hand-written twin, with the DNNClassifier's
    export in export/ and the twin's factory in my_twin.py."""
    import shlex

    import docs_text

    shutil.copytree(os.path.join(DNN_CLASSIFIER, "export"), tmp_path / "export")
    (tmp_path / "my_twin.py").write_text(
        "from feature_column_graphs import dnn_classifier_twin as build\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    runner = "tests/test_feature_columns.py::test_the_documented_twin_commands_run"
    (block,) = [block for block in docs_text.blocks(docs_text.page("estimators"))
                if block.runner == runner]
    commands = docs_text.commands(block.body)
    assert [shlex.split(command.line)[3] for command in commands] == ["suggest", "convert"]
    for command in commands:
        result = cli_in_process(*shlex.split(command.line)[3:], cwd=str(tmp_path))
        assert result.returncode == 0, (command.line, result.stdout, result.stderr)
    assert "verified: PASS" in result.stdout
