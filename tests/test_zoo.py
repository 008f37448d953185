"""Every zoo entry converts from its real legacy checkpoint and matches the legacy graph."""

import json

import pytest

import migrate
from migrate import zoo

FAST_ENTRIES = ("small_convnet", "lstm_language_model", "gru_classifier", "bilstm_tagger",
                "bert_encoder")


@pytest.mark.parametrize("name", FAST_ENTRIES)
def test_zoo_entry_matches_its_legacy_graph(name, legacy_checkpoint, tmp_path):
    entry = zoo.get(name)
    prefix = legacy_checkpoint(name)
    keep = "model_state" if entry.build_model().non_trainable_weights else "trainable"
    output = str(tmp_path / name)
    report = migrate.convert(prefix, entry.table_path, entry.build_model, output,
                             options=migrate.ConversionOptions(keep=keep))
    assert report.unwritten_targets == []
    assert report.roles["optimizer_slot"]["left_out"] > 0
    assert report.roles["trainable"]["kept"] + report.roles["trainable"]["dropped"] == \
        report.roles["trainable"]["count"]
    model = entry.build_model()
    assert migrate.restore(model, output).unchanged == []
    result = migrate.verify(prefix, model, **entry.verify)
    assert result.max_rel_diff <= entry.verify["tolerance"], result.summary()
    assert result.max_abs_diff > 0 or result.max_rel_diff == 0


@pytest.mark.slow
def test_vgg_16_fc_layers_as_dense_match_slim(legacy_checkpoint, tmp_path):
    # fc6 is a 7x7 VALID convolution in slim and a Dense after Flatten in Keras:
    # the 102M-parameter kernel makes this checkpoint about 1 GB even with 10 classes.
    from migrate.zoo import vgg_16

    entry = zoo.get("vgg_16")
    prefix = legacy_checkpoint("vgg_16", extra_flags=("--config=tiny",))
    output = str(tmp_path / "vgg")
    report = migrate.convert(prefix, entry.table_path, vgg_16.build_tiny_model, output)
    assert report.written_weights == 32
    assert report.roles["optimizer_slot"]["left_out"] == 32
    model = vgg_16.build_tiny_model()
    migrate.restore(model, output)
    result = migrate.verify(prefix, model, batch_size=1, **entry.verify)
    assert result.passed, result.summary()


def _table_without_forget_bias(tmp_path):
    entry = zoo.get("lstm_language_model")
    text = open(entry.table_path).read()
    assert "forget_bias = 1.0" in text
    path = tmp_path / "table.toml"
    path.write_text(text.replace("forget_bias = 1.0\n", ""))
    return entry, path


def test_lstm_forget_bias_is_read_from_the_graph(legacy_checkpoint, tmp_path):
    entry, table = _table_without_forget_bias(tmp_path)
    prefix = legacy_checkpoint("lstm_language_model")
    output = str(tmp_path / "out")
    migrate.convert(prefix, str(table), entry.build_model, output)
    model = entry.build_model()
    migrate.restore(model, output)
    assert migrate.verify(prefix, model, **entry.verify).passed

    without_graph = migrate.LegacyCheckpoint.open(prefix, use_meta=False)
    plan = migrate.plan(without_graph, str(table), entry.build_model)
    assert [problem.kind for problem in plan.problems] == ["layout", "layout"]
    assert "needs the LSTM forget_bias" in plan.problems[0].message


def test_a_table_value_that_contradicts_the_graph_is_refused(legacy_checkpoint, tmp_path):
    entry = zoo.get("lstm_language_model")
    table = tmp_path / "table.toml"
    table.write_text(open(entry.table_path).read().replace("forget_bias = 1.0", "forget_bias = 0.5"))
    plan = migrate.plan(legacy_checkpoint("lstm_language_model"), str(table), entry.build_model)
    assert {problem.kind for problem in plan.problems} == {"layout"}
    assert "disagree on forget_bias" in plan.problems[0].message
    assert "Expected forget_bias=1.0 (what the graph ran). Received: forget_bias=0.5" in (
        plan.problems[0].message)


def test_zoo_command_lists_every_entry(cli_in_process):
    result = cli_in_process("zoo", "--json")
    assert result.returncode == 0, result.stderr
    names = [entry["name"] for entry in json.loads(result.stdout)]
    assert names == list(zoo.ZOO_NAMES)


def test_an_unknown_entry_is_an_argument_error_naming_the_closest():
    with pytest.raises(migrate.ArgumentError) as raised:
        zoo.get("lstm_langauge_model")
    assert str(raised.value) == (
        f"Unknown zoo entry. Did you mean 'lstm_language_model'? Expected one of "
        f"{', '.join(zoo.ZOO_NAMES)}. Received: zoo='lstm_langauge_model'")
    assert isinstance(raised.value, ValueError)  # The command line's usage error.
