"""`port`: canned Estimators written by TensorFlow 2.15's own tf.estimator, ported to Keras 3.

The artifacts under tests/data/estimators/ were written by
scripts/make_estimator_artifacts.py in a TensorFlow 2.15 virtualenv, with the
Estimator's own predictions on fixed rows (out-of-vocabulary values, values
on bucket boundaries, missing and repeated multivalent values); the ported
model must give them back.
"""

import importlib.util
import json
import os
import shutil
import sys

import numpy as np
import pytest

import docs_text
from migrate import estimator
from migrate.estimator import columns as columns_lib
from migrate.estimator import keras_code
from migrate.mapping import transforms
from migrate.verification import restore as restore_lib

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "estimators")
ESTIMATORS = ("dnn_regressor", "dnn_classifier", "linear_classifier",
              "dnn_linear_combined_classifier", "linear_regressor")
TOLERANCE = 1e-5


def _vocabularies(name):
    directory = os.path.join(DATA, name, "vocabularies")
    return (directory,) if os.path.isdir(directory) else ()


def _expected(name):
    with open(os.path.join(DATA, name, "predictions.json")) as file:
        saved = json.load(file)
    rows = {}
    for key, values in saved["rows"].items():
        array = np.array(values)
        rows[key] = array.astype(np.float32) if array.dtype.kind == "f" else array
    return rows, {key: np.array(value) for key, value in saved["outputs"].items()}


def _load_model_file(directory):
    spec = importlib.util.spec_from_file_location("ported_model",
                                                  os.path.join(directory, "model.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _assert_matches(outputs, expected):
    for key, want in expected.items():
        got = np.asarray(outputs[key]).reshape(want.shape)
        relative = np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-6))
        assert relative <= TOLERANCE, (key, relative, got, want)


@pytest.mark.parametrize("name, source", [
    *((name, source) for name in ESTIMATORS for source in ("model_dir", "export/example/1")),
    # Raw feature placeholders, named only by the export's signature.
    ("linear_regressor", "export/raw/1"),
    # As TensorFlow 1.x wrote them: feature columns v1, the head under dnn/head/.
    ("v1_dnn_linear_combined_classifier", "model_dir")])
def test_port_matches_the_estimators_own_predictions(name, source, tmp_path):
    output = tmp_path / "ported"
    report = estimator.port(os.path.join(DATA, name, source), str(output),
                            vocabulary_dirs=_vocabularies(name) if source == "model_dir" else ())
    assert sorted(os.listdir(output)) == ["checkpoint", "ckpt.data-00000-of-00001",
                                          "ckpt.index", "manifest.json", "model.py", "table.toml"]
    # port proved itself: the Estimator's graph (an export's predict signature, a
    # model_dir's training graph fed where its iterator dequeued the features) and the
    # ported model on the same raw rows.
    verified = report.conversion.verified
    assert verified["passed"] and verified["max_rel_diff"] <= TOLERANCE, verified
    compared = {item["keras_output"] for item in verified["outputs"]}
    assert compared == ({"predictions"} if "regressor" in name else {"logits", "probabilities"})
    if source == "model_dir":
        assert all(tensor.startswith("IteratorGetNext:") for tensor in verified["inputs"])
    model = _load_model_file(str(output)).build()
    restored = restore_lib.restore(model, str(output))
    assert len(restored.restored) == report.conversion.written_weights
    rows, expected = _expected(name)
    _assert_matches(model(rows), expected)


def test_port_reads_the_estimator_and_its_columns():
    report_spec = estimator.port.__module__  # The module is importable as documented.
    assert report_spec == "migrate.estimator.port"
    from migrate.source.checkpoint import LegacyCheckpoint
    from migrate.estimator.port import read_spec

    spec = read_spec(LegacyCheckpoint.open(os.path.join(DATA, "dnn_classifier", "model_dir")))
    assert (spec.kind, spec.n_classes, spec.hidden_units, spec.activation) == (
        "DNNClassifier", 3, (8, 6), "relu")
    by_name = {column.name: column for column in spec.dnn_columns}
    # The input layer's order: the columns sorted by name.
    assert list(by_name) == sorted(by_name)
    assert (by_name["income"].scale, by_name["income"].offset) == (0.5, -1.5)
    color = by_name["color_embedding"].categorical
    assert (color.kind, color.vocabulary, color.num_oov_buckets) == (
        "vocabulary", ("red", "green", "blue", "yellow"), 2)
    assert by_name["city_embedding"].combiner == "sqrtn"
    assert by_name["hours_bucketized_indicator"].categorical.boundaries == (10.0, 20.0, 40.0)


def test_the_oov_roll_is_what_makes_the_vocabulary_embedding_right(tmp_path):
    """Without the roll the twin is silently wrong on every color row, OOV or not."""
    output = tmp_path / "ported"
    # Its verification is test_port_matches_the_estimators_own_predictions's.
    estimator.port(os.path.join(DATA, "dnn_classifier", "model_dir"), str(output), verify=False)
    table = (output / "table.toml").read_text()
    assert 'transform = ["vocabulary_oov_roll(2)"]' in table
    model = _load_model_file(str(output)).build()
    restore_lib.restore(model, str(output))
    rows, expected = _expected("dnn_classifier")
    embedding = model.get_layer("color_embedding")
    rolled = embedding.get_weights()[0]
    embedding.set_weights([np.roll(rolled, -2, axis=0)])  # The feature column's order.
    logits = np.asarray(model(rows)["logits"])
    assert np.max(np.abs(logits - expected["logits"])) > 1e-3
    assert transforms.apply_all(transforms.parse_all(["vocabulary_oov_roll(2)"]),
                                np.arange(6)).tolist() == [4, 5, 0, 1, 2, 3]


def test_the_ported_model_saves_to_keras_and_loads_back(tmp_path):
    import keras

    from migrate.options import ConversionOptions

    output = tmp_path / "ported"
    name = "dnn_linear_combined_classifier"
    estimator.port(os.path.join(DATA, name, "export", "example", "1"), str(output),
                   options=ConversionOptions(exports=("keras",)), verify=False)
    _load_model_file(str(output))  # Registers model.py's layers, as a user's import does.
    loaded = keras.saving.load_model(str(output / "model.keras"))
    rows, expected = _expected(name)
    _assert_matches(loaded(rows), expected)


def test_port_reads_graph_pbtxt_when_there_is_no_meta(tmp_path):
    model_dir = tmp_path / "model_dir"
    shutil.copytree(os.path.join(DATA, "dnn_classifier", "model_dir"), model_dir)
    (model_dir / "model.ckpt-30.meta").unlink()
    output = tmp_path / "ported"
    # graph.pbtxt says which Estimator it is, and, its variables restored by
    # their names (it holds no Saver), proves the port.
    report = estimator.port(str(model_dir), str(output))
    verified = report.conversion.verified
    assert verified["passed"] and verified["max_rel_diff"] <= TOLERANCE, verified
    assert all(tensor.startswith("IteratorGetNext:") for tensor in verified["inputs"])
    model = _load_model_file(str(output)).build()
    restore_lib.restore(model, str(output))
    rows, expected = _expected("dnn_classifier")
    _assert_matches(model(rows), expected)


def test_port_command_line(cli_in_process, tmp_path):
    name = "dnn_linear_combined_classifier"
    model_dir = os.path.join(DATA, name, "model_dir")
    output = tmp_path / "ported"
    # The vocabulary file is named by the training machine's path: refused in one line.
    refused = cli_in_process("port", f"--checkpoint={model_dir}", f"--output={output}")
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "occupation.txt" in refused.stderr
    assert "--vocabulary_dir" in refused.stderr and "assets/" in refused.stderr
    assert not output.exists()
    # Real rows by feature name (the Estimator's saved ones) prove the port from the
    # model_dir: each fed where the training graph dequeued that feature.
    rows, _ = _expected(name)
    np.savez(tmp_path / "rows.npz", **rows)
    done = cli_in_process("port", f"--checkpoint={model_dir}", f"--output={output}",
                          f"--vocabulary_dir={_vocabularies(name)[0]}",
                          f"--inputs={tmp_path / 'rows.npz'}", "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["estimator"] == "DNNLinearCombinedClassifier"
    assert [column["name"] for column in document["linear_columns"]] == [
        "color", "hours_bucketized", "weekday"]
    verified = document["conversion"]["verified"]
    assert verified["passed"] and verified["batch"] == len(rows["age"])
    assert verified["max_rel_diff"] <= TOLERANCE
    fed = {item.get("keras_name"): tensor for tensor, item in verified["inputs"].items()}
    assert fed["occupation"].startswith("IteratorGetNext:")
    # Opting out: --noverify; the verification's flags then have nothing to do.
    usage = cli_in_process("port", f"--checkpoint={model_dir}", f"--output={output}",
                           "--noverify", f"--inputs={tmp_path / 'rows.npz'}")
    assert usage.returncode == 2 and "--noverify" in usage.stderr


def test_a_port_that_differs_from_the_estimator_fails_and_writes_nothing(
        cli_in_process, tmp_path, monkeypatch):
    """The vocabulary's rolled rows left out of the table: verification names the output."""
    written = keras_code.write_table
    monkeypatch.setattr(keras_code, "write_table", lambda *args, **kwargs: written(
        *args, **kwargs).replace('transform = ["vocabulary_oov_roll(2)"]', "transform = []"))
    output = tmp_path / "ported"
    result = cli_in_process("port", f"--checkpoint={os.path.join(DATA, 'dnn_classifier')}"
                            f"/model_dir", f"--output={output}")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "nothing was written" in result.stderr
    assert "on logits (dnn/logits/BiasAdd:0); first divergent layer color_embedding" in (
        result.stderr)
    assert not output.exists()


def test_convert_verify_feeds_a_model_dirs_training_graph(cli_in_process, tmp_path,
                                                          monkeypatch):
    """A Keras model for an Estimator's model_dir, proven by convert --verify: the training
    graph's features are fed where its tf.data iterator dequeued them."""
    model_dir = os.path.join(DATA, "dnn_classifier", "model_dir")
    ported = tmp_path / "ported"
    estimator.port(model_dir, str(ported), verify=False)
    monkeypatch.syspath_prepend(str(ported))
    monkeypatch.delitem(sys.modules, "model", raising=False)
    result = cli_in_process(
        "convert", f"--checkpoint={model_dir}", f"--table={ported / 'table.toml'}",
        "--model=model:build", f"--output={tmp_path / 'converted'}", "--verify",
        "--output_tensor=logits=dnn/logits/BiasAdd:0,"
        "probabilities=head/predictions/probabilities:0")
    sys.modules.pop("model", None)
    assert result.returncode == 0, result.stderr
    assert "verified: PASS" in result.stdout


def test_a_tf_1_0_contrib_learn_dnn_is_ported(tmp_path):
    """TF 1.0's iris quickstart: weights/biases in one partition, the column "", a centered bias."""
    from legacy_graphs import contrib_learn_dnn

    _, rows, expected = contrib_learn_dnn.write_model_dir(str(tmp_path / "model_dir"))
    output = tmp_path / "ported"
    report = estimator.port(str(tmp_path / "model_dir"), str(output))
    assert (report.estimator, report.spec.hidden_units) == ("DNNClassifier", (10, 20, 10))
    table = (output / "table.toml").read_text()
    assert "match = 'dnn/hiddenlayer_0/weights'" in table
    model = _load_model_file(str(output)).build()
    restore_lib.restore(model, str(output))
    assert np.any(model.get_layer("centered_bias").get_weights()[0] != 0)
    logits = np.asarray(model({"": rows})["logits"])
    np.testing.assert_allclose(logits, expected, rtol=TOLERANCE, atol=1e-6)
    # Proven through its training graph: fed at the data feeder's placeholder, the logits
    # with the centered bias compared (the graph has no probabilities).
    verified = report.conversion.verified
    assert verified["passed"] and list(verified["inputs"]) == ["input:0"]
    assert [item["output_tensor"] for item in verified["outputs"]] == [
        contrib_learn_dnn.LOGITS_TENSOR]


def test_a_normalizer_that_is_not_affine_is_refused_by_name():
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        values = tf.compat.v1.placeholder(tf.float32, [None, 1])
        with tf.name_scope("income_1"):
            tf.math.log(values - 1.0)
    scope_ops = [op for op in graph.get_operations() if op.name.startswith("income_1/")]
    with pytest.raises(columns_lib.EstimatorError, match=r"'income' .*not affine \(Log"):
        columns_lib.numeric_column("income", scope_ops, 1)


def test_a_checkpoint_that_is_no_estimator_is_refused_in_one_line(cli_in_process, tmp_path):
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session() as session:
        tf.compat.v1.get_variable("conv/kernel", [3, 3])
        session.run(tf.compat.v1.global_variables_initializer())
        tf.compat.v1.train.Saver().save(session, str(tmp_path / "model.ckpt"))
    result = cli_in_process("port", f"--checkpoint={tmp_path / 'model.ckpt'}",
                            f"--output={tmp_path / 'ported'}")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "Expected a canned Estimator's graph" in result.stderr
    assert not (tmp_path / "ported").exists()


def test_columns_without_a_keras_equivalent_are_refused_by_name():
    for name in ("color_shared_embedding", "tags_weighted_by_counts"):
        with pytest.raises(columns_lib.EstimatorError, match=name):
            columns_lib.refuse_unknown_column(name)


def test_the_other_columns_are_read_as_they_ran():
    """Integer vocabulary and hash, identity with a default, no OOV buckets, a raw cross."""
    from migrate.source.checkpoint import LegacyCheckpoint
    from migrate.estimator.port import read_spec

    spec = read_spec(LegacyCheckpoint.open(os.path.join(DATA, "linear_regressor", "model_dir")))
    by_name = {column.name: column for column in spec.linear_columns}
    assert spec.kind == "LinearRegressor"
    assert (by_name["size"].width, by_name["size"].scale, by_name["size"].offset) == (
        2, 0.25, 1.0)
    zipcode = by_name["zipcode"].categorical
    assert (zipcode.dtype, zipcode.vocabulary, zipcode.num_oov_buckets) == (
        "int64", (75001, 10115, 1010, 8001), 2)
    assert (by_name["store"].categorical.kind, by_name["store"].categorical.dtype) == (
        "hash", "int64")
    assert by_name["shelf"].categorical.default_value == 0
    assert by_name["grade"].categorical.default_value == -1
    cross = by_name["color_X_grade"].categorical
    # crossed_column(["grade", "color"]): hashed in the order given, not the name's.
    assert [(leaf.kind, leaf.key) for leaf in cross.crossed] == [
        ("raw", "grade"), ("raw", "color")]


def test_the_raw_inputs_are_the_estimators_features():
    from migrate.source.checkpoint import LegacyCheckpoint
    from migrate.estimator.port import read_spec

    spec = read_spec(LegacyCheckpoint.open(
        os.path.join(DATA, "linear_classifier", "export", "example", "1")))
    inputs = keras_code.raw_inputs(spec)
    assert inputs == {"age": ("float32", (1,)), "color": ("string", (1,)),
                      "hours": ("float32", (1,)), "weekday": ("int64", (None,))}


def test_the_documented_commands_run(cli_in_process, tmp_path, monkeypatch):
    """docs/estimators.md's commands and example, on the combined classifier's artifacts."""
    import shlex
    import sys

    name = "dnn_linear_combined_classifier"
    for part in ("model_dir", "export", "vocabularies"):
        shutil.copytree(os.path.join(DATA, name, part), tmp_path / part)
    blocks = [block for block in docs_text.blocks(docs_text.page("estimators"))
              if block.runner and block.runner.endswith("::test_the_documented_commands_run")]
    commands = [command.line for block in blocks if block.kind == "sh"
                for command in docs_text.commands(block.body)]
    assert len(commands) == 2
    for command in commands:
        result = cli_in_process(*shlex.split(command)[3:], cwd=str(tmp_path))
        assert result.returncode == 0, (command, result.stderr)
    assert (tmp_path / "ported_from_export" / "model.keras").exists()
    (example,) = [block.body for block in blocks if block.kind == "python"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "model", raising=False)
    namespace = {"__name__": "estimators_example"}
    exec(compile(example, "estimators.md", "exec"), namespace)  # noqa: S102
    sys.modules.pop("model", None)
    probabilities = np.asarray(namespace["outputs"]["probabilities"])
    assert probabilities.shape == (2, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    # Its first row is the Estimator's first saved row.
    _, expected = _expected(name)
    np.testing.assert_allclose(probabilities[0], expected["probabilities"][0], rtol=TOLERANCE)


def test_the_readme_estimators_section_runs(cli_in_process, tmp_path):
    """README's Estimators command, on the combined classifier's artifacts: ported and proven."""
    import shlex

    name = "dnn_linear_combined_classifier"
    for part in ("model_dir", "vocabularies"):
        shutil.copytree(os.path.join(DATA, name, part), tmp_path / part)
    (block,) = [block for block in docs_text.blocks(docs_text.page("README"))
                if block.runner
                and block.runner.endswith("::test_the_readme_estimators_section_runs")]
    (command,) = docs_text.commands(block.body)
    result = cli_in_process(*shlex.split(command.line)[3:], cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "verified: PASS" in result.stdout
    assert {"model.py", "table.toml", "manifest.json"} <= set(os.listdir(tmp_path / "ported"))


def test_a_training_graph_whose_features_cannot_be_told_apart_is_refused_in_one_line():
    import dataclasses

    from migrate.estimator import training_graph
    from migrate.estimator.port import read_spec
    from migrate.source.checkpoint import LegacyCheckpoint

    checkpoint = LegacyCheckpoint.open(os.path.join(DATA, "dnn_classifier", "model_dir"))
    spec = read_spec(checkpoint)
    outputs = training_graph.compared_outputs(checkpoint.graph, spec)
    assert outputs == (("logits", "dnn/logits/BiasAdd:0"),
                       ("probabilities", "head/predictions/probabilities:0"))
    assert dict(training_graph.feature_inputs(checkpoint.graph, spec, outputs)) == {
        "age": "IteratorGetNext:0", "city": "IteratorGetNext:1", "color": "IteratorGetNext:2",
        "hours": "IteratorGetNext:3", "income": "IteratorGetNext:4", "tags": "IteratorGetNext:5"}
    # A dequeued tensor read by no column the spec knows: which feature is it?
    partial = dataclasses.replace(spec, dnn_columns=spec.dnn_columns[:-1])
    with pytest.raises(columns_lib.EstimatorError, match=r"IteratorGetNext:5 \(no feature\)"
                                                         r".*port the export") as refused:
        training_graph.feature_inputs(checkpoint.graph, partial, outputs)
    assert "\n" not in str(refused.value)
