"""TF1 SavedModels, TF-Hub v1 modules and frozen GraphDefs as sources, converted at parity.

Each artifact is written by `legacy_graphs.exports` as TF 1.x code wrote it
(`SavedModelBuilder`, `simple_save`, a hub-style module, `convert_variables_to_constants`
on a tf.compat.v1.layers convnet, a tf-slim net and a GRU whose weights enter a while
loop, `optimize_for_inference` folding BatchNorm), once per session.
"""

import json
import os
import shutil

import pytest

from migrate import zoo
from test_cli import _error_line

SMALL_CONVNET = zoo.get("small_convnet")
GRU = zoo.get("gru_classifier")
TOLERANCE = 1e-5
SIGNATURE_SOURCES = ("saved_model/1712345678", "simple_save", "hub_module")
# The folded small_convnet: optimize_for_inference merged bn into conv.
FOLDED_TABLE = """
[[rule]]
match = 'conv/Conv2D_weights'
target = 'conv/kernel'

[[rule]]
match = 'conv/Conv2D_bn_offset'
target = 'conv/bias'

[[rule]]
match = 'logits/(kernel|bias)'
target = 'logits/\\1'
"""


def folded_convnet():
    """small_convnet as optimize_for_inference leaves it: the conv has a bias, no BatchNorm."""
    import keras

    inputs = keras.Input((8, 8, 3), name="images")
    net = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    net = keras.layers.ReLU()(net)
    net = keras.layers.MaxPooling2D(2, 2)(net)
    net = keras.layers.Flatten()(net)
    return keras.Model(inputs, keras.layers.Dense(5, name="logits")(net))


def slim_net():
    """The Keras twin of `legacy_graphs.exports`' tf-slim net (slim.conv2d has a ReLU)."""
    import keras

    inputs = keras.Input((6, 6, 2), name="inputs")
    net = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="conv1")(inputs)
    net = keras.layers.Conv2D(4, 1, padding="same", activation="relu", name="conv2")(net)
    net = keras.layers.Flatten()(net)
    return keras.Model(inputs, keras.layers.Dense(5, name="fc")(net))


def _path(other_sources, name):
    return os.path.join(other_sources, name)


def test_saved_model_weights_roles_and_signature(other_sources):
    from migrate.source.checkpoint import LegacyCheckpoint
    from migrate.source.roles import Role

    checkpoint = LegacyCheckpoint.open(_path(other_sources, "saved_model/1712345678"))
    roles = {name: variable.role for name, variable in checkpoint.variables.items()}
    assert roles["conv/kernel"] is Role.TRAINABLE
    assert roles["bn/moving_mean"] is Role.MODEL_STATE
    assert roles["global_step"] is Role.BOOKKEEPING
    assert checkpoint.has_bundle_reader and checkpoint.reader_path.endswith("variables/variables")
    assert checkpoint.artifact.signature.inputs == {"images": "images:0"}
    assert checkpoint.artifact.signature.outputs == {"logits": "logits/BiasAdd:0"}
    names = {os.path.basename(path) for path in checkpoint.source_files()}
    assert {"saved_model.pb", "variables.index"} <= names
    hub = LegacyCheckpoint.open(_path(other_sources, "hub_module"))
    assert hub.artifact.tags == () and hub.artifact.signature.name == "default"
    assert "global_step" not in hub.variables
    assert "tfhub_module.pb" in {os.path.basename(path) for path in hub.source_files()}


def test_saved_model_tag_sets_and_signatures_are_named_when_absent(other_sources):
    import migrate
    from migrate.source.checkpoint import LegacyCheckpoint

    path = _path(other_sources, "saved_model/1712345678")
    with pytest.raises(migrate.CheckpointError, match=r"Expected one of the tag sets present: "
                       r"serve; train\. Received: tags=\['gpu'\]") as raised:
        LegacyCheckpoint.open(path, tags=("gpu",))
    assert raised.value.option == "tags"
    with pytest.raises(migrate.CheckpointError, match="Did you mean 'serving_default'") as raised:
        LegacyCheckpoint.open(path, signature="serving_defualt")
    assert raised.value.option == "signature"
    # The train graph has no signature: roles still come from it.
    trained = LegacyCheckpoint.open(path, tags=["train"])
    assert trained.artifact.signature is None and "conv/kernel" in trained.variables
    from migrate.verification import legacy_graph
    with pytest.raises(migrate.ArgumentError, match=r"\(tags train\) has no signature\)\. "
                       r"Expected output_tensor"):
        legacy_graph.signature_settings(trained, migrate.VerifySettings(), [("images", None)],
                                        ["logits"])


@pytest.mark.parametrize("name", SIGNATURE_SOURCES)
def test_saved_models_convert_at_parity_through_their_signature(other_sources, name, tmp_path):
    import migrate

    options = migrate.ConversionOptions(keep="model_state", verify=migrate.VerifySettings())
    report = migrate.convert(_path(other_sources, name), SMALL_CONVNET.table_path,
                             SMALL_CONVNET.model_factory, str(tmp_path / "out"), options=options)
    assert report.verified["passed"] and report.verified["max_rel_diff"] <= TOLERANCE
    assert report.verified["output_tensor"] == "logits/BiasAdd:0"
    assert list(report.verified["inputs"]) == ["images:0"]


def test_done_when_commands(other_sources, cli_in_process, tmp_path):
    """The issue's commands: a SavedModel with no tensor flags, a frozen graph with them."""
    export = _path(other_sources, "saved_model/1712345678")
    result = cli_in_process("convert", f"--checkpoint={export}", "--zoo=small_convnet",
                            f"--output={tmp_path / 'export'}", "--keep=model_state", "--verify",
                            "--json")
    assert result.returncode == 0, result.stderr
    verified = json.loads(result.stdout)["verified"]
    assert verified["passed"] and verified["max_rel_diff"] <= TOLERANCE
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert {os.path.basename(entry["path"]) for entry in manifest["source"]["files"]} == {
        "saved_model.pb", "variables.index", "variables.data-00000-of-00001"}
    assert cli_in_process("check", f"--output={tmp_path / 'export'}").returncode == 0
    frozen = _path(other_sources, "frozen_convnet.pb")
    result = cli_in_process("convert", f"--checkpoint={frozen}", "--zoo=small_convnet",
                            f"--output={tmp_path / 'frozen'}", "--keep=model_state", "--verify",
                            "--input_tensor=images:0", "--output_tensor=logits/BiasAdd:0",
                            "--json")
    assert result.returncode == 0, result.stderr
    verified = json.loads(result.stdout)["verified"]
    assert verified["passed"] and verified["max_rel_diff"] <= TOLERANCE
    # verify alone, with no tensor flag and no zoo: the SavedModel's signature names them.
    result = cli_in_process("verify", f"--checkpoint={export}",
                            f"--converted={tmp_path / 'export'}",
                            f"--model={SMALL_CONVNET.model_factory}")
    assert result.returncode == 0, result.stderr
    assert "verify PASS: logits/BiasAdd:0" in result.stdout


@pytest.mark.parametrize("name, flags", [
    ("hub_module", ()),
    ("frozen_convnet.pb", ("--output_tensor=logits/BiasAdd:0",)),
])
def test_suggest_drafts_and_proves_the_table(other_sources, cli_in_process, tmp_path, name,
                                             flags):
    draft = tmp_path / "draft.toml"
    result = cli_in_process("suggest", f"--checkpoint={_path(other_sources, name)}",
                            f"--model={SMALL_CONVNET.model_factory}", f"--output={draft}",
                            "--keep=model_state", *flags)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "draft proven" in result.stdout and "verify PASS" in result.stdout


def test_frozen_graph_constants_are_weights_or_said_not_to_be(other_sources, cli_in_process):
    from migrate.source.checkpoint import LegacyCheckpoint
    from migrate.source.roles import Role

    checkpoint = LegacyCheckpoint.open(_path(other_sources, "frozen_convnet.pb"))
    assert sorted(checkpoint.variables) == sorted(
        ["conv/kernel", "bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance",
         "logits/kernel", "logits/bias"])
    assert checkpoint.variables["bn/moving_variance"].role is Role.MODEL_STATE
    assert not checkpoint.has_bundle_reader and not checkpoint.folded
    assert "flatten/Const" in checkpoint.not_weights
    result = cli_in_process("inspect", f"--checkpoint={_path(other_sources, 'frozen_slim.pbtxt')}")
    assert result.returncode == 0, result.stderr
    assert "conv1/weights: read through conv1/weights/read" in result.stdout
    assert "constants that are not weights" in result.stdout


@pytest.mark.parametrize("name, loop_op", [("frozen_gru.pb", "StatelessWhile"),
                                           ("frozen_gru_v1_loop.pb", "Enter")])
def test_frozen_rnn_converts_at_parity(other_sources, tmp_path, name, loop_op):
    """gru_classifier frozen: its cell's weights enter the while loop as constants (control
    flow v2's While op, or TF 1.x's Enter frames)."""
    import migrate

    checkpoint = migrate.LegacyCheckpoint.open(_path(other_sources, name))
    assert "classifier/rnn/gru_cell/gates/kernel" in checkpoint.variables
    assert loop_op in {node.op for node in checkpoint.artifact.graph_def.node}
    settings = migrate.VerifySettings(input_tensors=[GRU.verify["input_tensor"]],
                                      output_tensor=GRU.verify["output_tensor"],
                                      input_shapes=[GRU.verify["input_shape"]])
    report = migrate.convert(checkpoint, GRU.table_path, GRU.model_factory, str(tmp_path / "out"),
                             options=migrate.ConversionOptions(verify=settings))
    assert report.verified["passed"] and report.verified["max_rel_diff"] <= TOLERANCE


@pytest.mark.parametrize("name", ["frozen_slim.pb", "frozen_slim.pbtxt"])
def test_frozen_slim_net_drafts_and_proves(other_sources, name):
    import migrate

    report = migrate.suggest(_path(other_sources, name), slim_net,
                             verify=migrate.VerifySettings(output_tensor="fc/BiasAdd:0"))
    assert report.ok, report.unresolved
    assert report.parity.max_rel_diff <= TOLERANCE
    assert {match["source"] for match in report.matches} >= {"conv1/weights", "fc/biases"}


@pytest.mark.parametrize("name, output_tensor", [
    ("frozen_slim_dropout.pb", "fc/BiasAdd:0"),
    ("simple_save_dropout", None),  # its signature names the output
])
def test_dropout_baked_into_an_export_is_switched_off_to_prove_it(other_sources, name,
                                                                  output_tensor):
    import migrate
    from migrate.verification import legacy_graph

    report = migrate.suggest(_path(other_sources, name), slim_net,
                             verify=migrate.VerifySettings(output_tensor=output_tensor))
    assert report.ok, report.unresolved
    assert report.parity.max_rel_diff <= TOLERANCE
    assert report.parity.dropout_off == ["dropout/dropout_1"], report.parity.summary()
    # The artifact's own GraphDef (a frozen graph's holds the weights) is rewritten for the
    # import only, and left as saved.
    checkpoint = migrate.LegacyCheckpoint.open(_path(other_sources, name))
    saved = checkpoint.artifact.graph_def.SerializeToString(deterministic=True)
    assert legacy_graph.load(checkpoint).dropout_off == ["dropout/dropout_1"]
    assert checkpoint.artifact.graph_def.SerializeToString(deterministic=True) == saved
    assert legacy_graph.load(checkpoint, legacy_dropout="as_saved").dropout_off == []


def test_converting_a_frozen_graph_never_imports_it(other_sources, tmp_path, monkeypatch):
    """Importing copies every constant into TensorFlow: the weights would be held twice more."""
    import migrate
    from migrate.source import frozen_graph

    def refuse(self):
        raise AssertionError(f"{self.path} was imported")

    monkeypatch.setattr(frozen_graph.FrozenGraph, "import_graph", refuse)
    report = migrate.convert(_path(other_sources, "frozen_convnet.pb"), SMALL_CONVNET.table_path,
                             SMALL_CONVNET.model_factory, str(tmp_path / "out"),
                             options=migrate.ConversionOptions(keep="model_state"))
    assert report.roles["trainable"]["kept"] == report.roles["trainable"]["count"] > 0


def test_folded_graph_needs_the_folded_model(other_sources, tmp_path):
    import migrate

    path = _path(other_sources, "optimized_convnet.pb")
    checkpoint = migrate.LegacyCheckpoint.open(path)
    assert checkpoint.folded
    conversion_plan = migrate.plan(checkpoint, SMALL_CONVNET.table_path,
                                   SMALL_CONVNET.model_factory)
    unfilled = [problem.describe() for problem in conversion_plan.problems
                if problem.kind == "unfilled" and problem.target == "bn/gamma"]
    assert len(unfilled) == 1 and "the Keras model must be the folded one" in unfilled[0]
    table = tmp_path / "folded.toml"
    table.write_text(FOLDED_TABLE)
    settings = migrate.VerifySettings(output_tensor="logits/BiasAdd:0")
    report = migrate.convert(checkpoint, str(table), folded_convnet, str(tmp_path / "out"),
                             options=migrate.ConversionOptions(verify=settings))
    assert report.verified["passed"] and report.verified["max_rel_diff"] <= TOLERANCE


def _graph_def_without_weights(path, *, with_variable):
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        inputs = tf.compat.v1.placeholder(tf.float32, [None, 4], name="inputs")
        net = tf.reshape(inputs, [-1, 2, 2])
        if with_variable:
            net = net * tf.compat.v1.Variable(1.0, name="scale")
    tf.io.write_graph(graph.as_graph_def(), os.path.dirname(path), os.path.basename(path),
                      as_text=path.endswith(".pbtxt"))
    return path


def test_bad_sources_are_one_line_errors(other_sources, cli_in_process, tmp_path):
    no_variables = tmp_path / "no_variables"
    shutil.copytree(_path(other_sources, "simple_save"), no_variables)
    shutil.rmtree(no_variables / "variables")
    junk = tmp_path / "junk.pb"
    junk.write_bytes(b"\xff\x00 not a protocol buffer")
    cases = [
        (str(no_variables), "has no variables/ checkpoint, so it holds no weights"),
        (_path(other_sources, "tf2_saved_model"), "is a TF2 SavedModel"),
        (str(junk), "is not a GraphDef"),
        (_graph_def_without_weights(str(tmp_path / "plain.pb"), with_variable=False),
         "holds no weight constants: 1 constant(s), none a weight"),
        (_graph_def_without_weights(str(tmp_path / "graph.pbtxt"), with_variable=True),
         "so it is not frozen"),
    ]
    for path, message in cases:
        result = cli_in_process("inspect", f"--checkpoint={path}")
        assert result.returncode == 1, (path, result.stderr)
        assert message in _error_line(result)
    result = cli_in_process("inspect", f"--checkpoint={_path(other_sources, 'tf2_saved_model')}")
    assert "tf.saved_model.load(path)" in result.stderr and "TFSMLayer" in result.stderr
    result = cli_in_process("inspect", f"--checkpoint={_path(other_sources, 'simple_save')}",
                            "--tags=gpu")
    assert result.returncode == 1
    assert "Expected one of the tag sets present: serve" in _error_line(result)
    assert "(see --tags)" in result.stderr


def test_options_validate_tags_and_signature():
    import migrate

    assert migrate.ConversionOptions(tags="").tags == ()
    with pytest.raises(migrate.ArgumentError, match="Received: tags=5"):
        migrate.ConversionOptions(tags=5)
    with pytest.raises(migrate.ArgumentError, match="Received: signature=''"):
        migrate.ConversionOptions(signature="")


def test_batch_finds_saved_models_and_frozen_graphs_and_resumes(other_sources, tmp_path):
    import migrate
    from migrate.batch import scan

    inputs = tmp_path / "in"
    shutil.copytree(_path(other_sources, "saved_model"), inputs / "saved_model")
    (inputs / "frozen").mkdir()
    shutil.copy(_path(other_sources, "frozen_convnet.pb"), inputs / "frozen")
    found = [item.relative for item in scan.find_checkpoints(str(inputs)).found]
    assert found == ["frozen/frozen_convnet.pb", "saved_model/1712345678"]
    options = migrate.ConversionOptions(keep="model_state")
    arguments = (str(inputs), str(tmp_path / "out"), SMALL_CONVNET.table_path,
                 SMALL_CONVNET.model_factory)
    first = migrate.convert_batch(*arguments, options=options, workers=0)
    assert first.ok and len(first.with_status("converted")) == 2
    assert len(migrate.convert_batch(*arguments, options=options,
                                     workers=0).with_status("skipped")) == 2
    # The fingerprint covers a frozen graph's bytes: a changed weight is converted again.
    frozen = inputs / "frozen" / "frozen_convnet.pb"
    data = bytearray(frozen.read_bytes())
    data[-1] ^= 1
    frozen.write_bytes(bytes(data))
    third = migrate.convert_batch(*arguments, options=options, workers=0)
    assert [item.relative for item in third.with_status("skipped")] == ["saved_model/1712345678"]


def test_constants_are_told_apart_by_their_use():
    """Without reads (optimize_for_inference removes them), a weight is known by where it goes."""
    import numpy as np
    import tensorflow as tf

    from migrate.source import frozen_graph

    graph = tf.Graph()
    with graph.as_default():
        ids = tf.compat.v1.placeholder(tf.int32, [None], name="ids")
        table = tf.constant(np.ones((7, 3), np.float32), name="embedding/table")
        net = tf.gather(table, ids, name="embedding/lookup")
        net = tf.matmul(net, tf.constant(np.ones((3, 2), np.float32), name="dense/kernel"))
        with tf.name_scope("bn"):
            tf.nn.batch_normalization(
                net, tf.constant([0.5, 0.1], name="moving_mean"),
                tf.constant([2.0, 3.0], name="moving_variance"),
                tf.constant([0.0, 1.0], name="beta"),
                tf.constant([1.0, 2.0], name="gamma"), 1e-3)
        tf.constant([1.0, 2.0], name="unused")
    constants = frozen_graph.classify_constants(graph.as_graph_def())
    weights = sorted(name for name, constant in constants.items() if constant.is_weight)
    assert weights == ["bn/beta", "bn/gamma", "bn/moving_mean", "bn/moving_variance",
                       "dense/kernel", "embedding/table"]
    assert constants["embedding/table"].reason == "input 0 of GatherV2 embedding/lookup"
    assert constants["unused"].reason == "used by no op"
    epsilon = [constant for name, constant in constants.items() if name.startswith("bn/")
               and not constant.is_weight]
    assert epsilon and all(constant.shape == () for constant in epsilon)
