"""Real TF 1.x checkpoints, as their authors committed them, drafted for, converted and proven.

Each lives under tests/data/ with its license and a note on where it came from and how its
code was written.
"""

import collections
import json
import os
import pathlib
import shutil

import pytest

from conftest import run_cli

TESTS = pathlib.Path(__file__).resolve().parent
TRAFFIC_SIGN = TESTS / "data" / "traffic_sign_lenet"
BILSTM = TESTS / "data" / "bilstm_sentiment"
# The raw tf.nn graph drops units through its keep_prob placeholder: 1.0 is inference.
TRAFFIC_SIGN_PARITY = ["--output_tensor=logits:0", "--feed=keep_prob:0=1.0"]


@pytest.fixture(scope="module")
def traffic_sign(tmp_path_factory):
    """A copy of the published checkpoint directory (its `checkpoint` state file included)."""
    directory = tmp_path_factory.mktemp("traffic_sign") / "checkpoints"
    shutil.copytree(TRAFFIC_SIGN, directory)
    return str(directory)


def test_the_published_traffic_sign_checkpoint_is_read_with_its_graphs_roles(traffic_sign):
    result = run_cli("inspect", f"--checkpoint={traffic_sign}", "--json", cwd=TESTS)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["role_origin"].startswith("graph collections of")
    roles = {name: entry["count"] for name, entry in document["roles"].items()
             if entry["count"]}
    # Ten weights and biases, Adam's two slots each, Adam's beta powers.
    assert roles == {"trainable": 10, "optimizer_slot": 20, "bookkeeping": 2}, roles


def _drafted_and_proven(checkpoint, model, parity, tmp_path):
    """Runs `suggest` unaided, then `convert --verify` with its draft; returns the draft's text."""
    draft = tmp_path / "draft.toml"
    result = run_cli("suggest", f"--checkpoint={checkpoint}", f"--model={model}",
                     f"--output={draft}", *parity, cwd=TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "draft proven" in result.stdout, result.stdout
    output = tmp_path / "converted"
    result = run_cli("convert", f"--checkpoint={checkpoint}", f"--table={draft}",
                     f"--model={model}", f"--output={output}", "--verify", *parity,
                     "--tolerance=1e-5", "--json", cwd=TESTS)
    assert result.returncode == 0, result.stderr
    verified = json.loads((output / "manifest.json").read_text())["verified"]
    assert verified["passed"] and verified["max_rel_diff"] <= 1e-5, verified
    return draft.read_text()


def test_suggest_drafts_the_traffic_sign_table_unaided_and_convert_proves_it(traffic_sign,
                                                                              tmp_path):
    text = _drafted_and_proven(traffic_sign, "real_models:traffic_sign_lenet",
                               TRAFFIC_SIGN_PARITY, tmp_path)
    # The weights were all created before the biases: a unique shape still finds its layer.
    assert "match = 'convLayer2_weights'" in text
    assert sorted(os.listdir(TRAFFIC_SIGN)) == sorted(os.listdir(traffic_sign))


def test_suggest_drafts_the_bidirectional_lstm_table_unaided_and_convert_proves_it(tmp_path):
    import keras

    import migrate
    import real_models

    directory = tmp_path / "checkpoints"
    shutil.copytree(BILSTM, directory)
    prefix = str(directory / "model.ckpt")
    roles = collections.Counter(variable.role.value for variable
                                in migrate.LegacyCheckpoint.open(prefix).variables.values())
    # 3 LSTMs each way, the embedding and the dense layer; Adam's slots and beta powers.
    assert roles == {"trainable": 15, "optimizer_slot": 30, "bookkeeping": 2}, roles
    # In this process, as the command line does in its own (the traffic-sign test runs it): the
    # layers are named by Keras' counter, so each model is built after a fresh session.
    # DropoutWrapper's keep probabilities are placeholders (1.0 is inference); word ids run up
    # to the vocabulary's size.
    settings = migrate.VerifySettings(
        output_tensor="dense/BiasAdd:0", feeds={"dropout_input:0": 1.0, "dropout_output:0": 1.0},
        input_max=[2808], tolerance=1e-5)
    keras.backend.clear_session()
    draft = str(tmp_path / "draft.toml")
    report = migrate.suggest(prefix, real_models.bilstm_sentiment, output=draft, verify=settings)
    assert report.ok and report.parity.max_rel_diff <= 1e-5, report.summary()
    text = report.text
    # The bare tf.Variable embedding, and each direction's stack cell by cell.
    assert "match = 'Variable'" in text and "bw/multi_rnn_cell/cell_2/lstm_cell" in text, text
    keras.backend.clear_session()
    converted = migrate.convert(prefix, draft, real_models.bilstm_sentiment,
                                str(tmp_path / "converted"),
                                options=migrate.ConversionOptions(verify=settings))
    assert converted.verified["passed"] and converted.verified["max_rel_diff"] <= 1e-5
    assert sorted(os.listdir(BILSTM)) == sorted(os.listdir(directory))
