"""Keras models as they come: keras-hub's BertBackbone (dict inputs and outputs, a Keras-only
input) from a google-research/bert checkpoint, proven on both outputs at once."""

import json
import os
import re
import shlex
import shutil
import sys

import numpy as np
import pytest

import docs_text
import migrate
from migrate import zoo
from migrate.verify_settings import VerifySettings

PAIRS = ("--input_tensor=token_ids=input_ids:0,segment_ids=segment_ids:0",
         "--feed=input_mask:0=1", "--keras_feed=padding_mask=1", "--input_max=100;2",
         "--output_tensor=sequence_output=sequence_output:0,pooled_output=pooled_output:0")
SWAPPED = ("--input_tensor=token_ids=segment_ids:0,segment_ids=input_ids:0", "--input_max=2")


@pytest.fixture(scope="session")
def bert_tiny(legacy_checkpoint):
    return legacy_checkpoint("google_bert")


@pytest.fixture(scope="session")
def converted_tiny(bert_tiny, tmp_path_factory):
    """The tiny checkpoint converted by the zoo entry (verified), shared by the tests."""
    output = str(tmp_path_factory.mktemp("backbone") / "backbone")
    from migrate.verification.parity import settings_from_arguments

    options = migrate.ConversionOptions(
        verify=settings_from_arguments(**zoo.get("google_bert").verify))
    migrate.convert(bert_tiny, zoo.table_path("google_bert"),
                    "migrate.zoo.google_bert:build_model", output, options=options)
    return output


def _verified(output):
    with open(os.path.join(output, "manifest.json"), encoding="utf-8") as file:
        return json.load(file)["verified"]


def test_zoo_convert_proves_sequence_and_pooled_outputs(cli_in_process, bert_tiny, tmp_path):
    output = tmp_path / "backbone"
    result = cli_in_process("convert", "--zoo=google_bert", f"--checkpoint={bert_tiny}",
                            f"--output={output}", "--verify", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # run_pretraining.py's 7 cls/ variables dropped; 92 adam_m/adam_v slots and global_step left out.
    assert report["roles"]["trainable"] == {**report["roles"]["trainable"], "count": 46,
                                            "kept": 39, "dropped": 7}
    assert report["roles"]["optimizer_slot"]["left_out"] == 92
    assert report["roles"]["bookkeeping"]["left_out"] == 1
    assert sorted(report["dropped"])[0] == "cls/predictions/output_bias"
    verified = _verified(output)
    assert verified["passed"]
    assert [(item["keras_output"], item["output_tensor"]) for item in verified["outputs"]] == [
        ("sequence_output", "sequence_output:0"), ("pooled_output", "pooled_output:0")]
    for item in verified["outputs"]:
        assert item["passed"] and 0 < item["max_rel_diff"] <= 1e-5, item
    assert verified["inputs"]["padding_mask"] == {"shape": [2, 8], "dtype": "int32",
                                                  "keras_input": True,
                                                  "keras_name": "padding_mask",
                                                  "keras_only": True}
    assert verified["inputs"]["input_ids:0"]["keras_name"] == "token_ids"
    assert verified["inputs"]["input_mask:0"]["keras_input"] is False


def test_the_small_size_is_read_from_the_shapes_alone(cli_in_process, legacy_checkpoint,
                                                      tmp_path):
    source = legacy_checkpoint("google_bert", extra_flags=("--config=small",))
    directory = tmp_path / "no_config"
    directory.mkdir()
    for name in os.listdir(os.path.dirname(source)):
        if name != "bert_config.json":
            shutil.copy(os.path.join(os.path.dirname(source), name), directory)
    from migrate.zoo import google_bert
    assert google_bert.backbone_config(str(directory)) == {
        "vocabulary_size": 120, "num_layers": 2, "num_heads": 2, "hidden_dim": 128,
        "intermediate_dim": 512, "max_sequence_length": 24, "num_segments": 3}
    result = cli_in_process("convert", "--zoo=google_bert", f"--checkpoint={directory}",
                            f"--output={tmp_path / 'out'}", "--verify")
    assert result.returncode == 0, result.stderr
    assert all(item["max_rel_diff"] <= 1e-5 for item in _verified(tmp_path / "out")["outputs"])


def test_heads_unknown_from_shapes_and_keras_hub_missing_are_one_line_errors(
        cli_in_process, bert_tiny, tmp_path, monkeypatch):
    directory = tmp_path / "no_config"
    directory.mkdir()
    for name in os.listdir(os.path.dirname(bert_tiny)):
        if name != "bert_config.json":
            shutil.copy(os.path.join(os.path.dirname(bert_tiny), name), directory)
    result = cli_in_process("convert", "--zoo=google_bert", f"--checkpoint={directory}",
                            f"--output={tmp_path / 'out'}")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "hidden size 32 is no multiple of the released models' 64-wide heads. Expected " \
           "bert_config.json beside the checkpoint." in result.stderr
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # What `import` sees when not installed.
    with pytest.raises(migrate.ModelError, match=re.escape(
            "Expected it installed: pip install 'tf1-migrate[hub]' (or pip install keras-hub).")):
        zoo.get("google_bert").build_model(checkpoint=bert_tiny)
    assert not os.path.exists(tmp_path / "out")


def test_suggest_drafts_the_zoo_table_unaided_and_convert_verify_passes(cli_in_process,
                                                                       bert_tiny, tmp_path):
    draft = tmp_path / "draft.toml"
    result = cli_in_process("suggest", f"--checkpoint={bert_tiny}",
                            "--model=migrate.zoo.google_bert:build_model", f"--output={draft}",
                            *PAIRS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "unfilled" not in result.stdout.split("dropped")[0] or "0 target weight(s) unfilled" \
        in result.stdout
    assert "sequence_output=sequence_output:0" in result.stdout
    assert "pooled_output=pooled_output:0" in result.stdout
    # The same source -> target pairs as the zoo's table.
    model = zoo.get("google_bert").build_model(checkpoint=bert_tiny)
    pairs = []
    for table in (str(draft), zoo.table_path("google_bert")):
        conversion_plan = migrate.plan(bert_tiny, table, model)
        assert conversion_plan.problems == []
        pairs.append(sorted((tuple(item.sources), tuple(item.targets))
                            for item in conversion_plan.assignments))
    assert pairs[0] == pairs[1]
    output = tmp_path / "drafted"
    result = cli_in_process("convert", f"--checkpoint={bert_tiny}", f"--table={draft}",
                            "--model=migrate.zoo.google_bert:build_model", f"--output={output}",
                            "--verify", *PAIRS)
    assert result.returncode == 0, result.stderr
    assert [item["keras_output"] for item in _verified(output)["outputs"]] == [
        "sequence_output", "pooled_output"]


def test_swapped_token_and_segment_inputs_fail_and_name_the_embedding_layers(
        cli_in_process, bert_tiny, converted_tiny):
    result = cli_in_process("verify", "--zoo=google_bert", f"--checkpoint={bert_tiny}",
                            f"--converted={converted_tiny}", *SWAPPED, "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert not report["passed"]
    assert [item["passed"] for item in report["outputs"]] == [False, False]
    assert report["first_divergent_layer"] == "token_embedding"
    diverged = {item["layer"] for item in report["layers"] if item["diverged"]}
    assert {"token_embedding", "segment_embedding"} <= diverged
    assert "position_embedding" not in diverged
    # Paired rightly, the same flags pass, layer by layer too.
    result = cli_in_process("verify", "--zoo=google_bert", f"--checkpoint={bert_tiny}",
                            f"--converted={converted_tiny}", "--layers", "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["first_divergent_layer"] is None


@pytest.mark.parametrize("flags, message", [
    (("--input_tensor=tokens=input_ids:0,segment_ids=segment_ids:0",),
     "The Keras model has no input 'tokens'. Expected one of its inputs: token_ids, "
     "segment_ids, padding_mask."),
    (("--output_tensor=sequence=sequence_output:0",),
     "The Keras model has no output 'sequence'. Expected one of its outputs: "),
    (("--input_tensor=token_ids=input_ids:0,segment_ids=segment_ids:0",
      "--keras_feed=padding_mask=1", "--keras_feed=mask=1"),
     "The Keras model has no input 'mask'. Expected one of its inputs: token_ids, segment_ids, "
     "padding_mask."),
])
def test_a_wrong_keras_name_lists_the_names_that_exist(cli_in_process, bert_tiny, converted_tiny,
                                                       flags, message):
    result = cli_in_process("verify", "--zoo=google_bert", f"--checkpoint={bert_tiny}",
                            f"--converted={converted_tiny}", *flags)
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_pairs_written_wrongly_are_usage_errors(cli_in_process, bert_tiny, tmp_path):
    result = cli_in_process("convert", "--zoo=google_bert", f"--checkpoint={bert_tiny}",
                            f"--output={tmp_path / 'out'}", "--verify",
                            "--input_tensor=token_ids=input_ids:0,segment_ids:0")
    assert result.returncode == 2
    assert "Expected every entry written KERAS_NAME=TENSOR when one is" in result.stderr


def test_keras_inputs_by_name_drive_a_model_when_the_legacy_output_needs_no_placeholder(
        bert_tiny, tmp_path):
    import keras

    # The embedding table is a legacy tensor that depends on no placeholder;
    # the Keras model looks every id up, so it needs its ids from the inputs file.
    ids = keras.Input((1,), dtype="int32", name="ids")
    table = keras.layers.Embedding(100, 32, name="word_embeddings")
    model = keras.Model({"ids": ids}, {"table": keras.layers.Flatten()(table(ids))})
    reader = migrate.LegacyCheckpoint.open(bert_tiny)
    table.embeddings.assign(reader.read("bert/embeddings/word_embeddings"))
    path = str(tmp_path / "ids.npz")
    np.savez(path, ids=np.arange(100, dtype="int32")[:, None])
    report = migrate.verify(bert_tiny, model, inputs=path, batch_size=100,
                            output_tensor={"table": "bert/embeddings/word_embeddings/Read/ReadVariableOp:0"})
    assert report.passed and report.max_abs_diff == 0, report.summary()
    assert report.inputs == {"ids": {"shape": [100, 1], "dtype": "int32", "keras_input": True,
                                     "keras_name": "ids", "keras_only": True}}
    # Without the ids, the error says the Keras input has nothing to match.
    with pytest.raises(migrate.ArgumentError, match=re.escape(
            "depends on 0 placeholder(s) not fed by a constant, and the Keras model takes 1 "
            "input(s)")):
        migrate.verify(bert_tiny, model,
                       output_tensor={"table": "bert/embeddings/word_embeddings/Read/ReadVariableOp:0"})


def test_verify_settings_pairs_validate_and_round_trip_and_old_documents_load():
    settings = VerifySettings(input_pairs={"token_ids": "input_ids"},
                              output_pairs=[("0", "logits")], keras_feeds={"mask": True})
    assert settings.output_tensor == "logits:0"
    assert settings.compared_outputs() == (("0", "logits:0"),)
    assert VerifySettings.from_json(json.loads(json.dumps(settings.to_json()))) == settings
    # A manifest written before pairs existed records its settings without them.
    old = {"output_tensor": "logits:0", "input_tensors": ["x:0"], "input_shapes": [],
           "input_max": [], "feeds": {}, "inputs_file": None, "batch_size": 2, "seed": 0,
           "tolerance": 1e-5, "layers": False, "keep_failed": False}
    assert VerifySettings.from_json(old).compared_outputs() == ((None, "logits:0"),)
    for arguments, message in [
            ({"output_pairs": [("a", "x"), ("a", "y")]}, "Expected each Keras name once"),
            ({"output_pairs": "a=x"}, "Expected output_pairs to be (Keras name, legacy tensor)"),
            ({"output_pairs": [("a", "x")], "output_tensor": "y"},
             "Expected output_tensor to be one of output_pairs' legacy tensors"),
            ({"output_tensor": "o", "input_pairs": {"a": "x"}, "input_tensors": ["y"]},
             "Expected input_tensors to be input_pairs' placeholders"),
            ({"output_tensor": "o", "input_pairs": {"a": "x"}, "keras_feeds": {"a": 1}},
             "Expected each Keras input fed once"),
            ({"output_tensor": "o", "keras_feeds": {"a": "one"}}, "finite number")]:
        with pytest.raises(migrate.ArgumentError, match=re.escape(message)):
            VerifySettings(**arguments)


def test_docs_keras_hub_commands_run_as_written(cli_in_process, bert_tiny, tmp_path):
    text = docs_text.page("targets")
    section = text[text.index("## Porting into keras-hub"):text.index("## keras.applications")]
    runner = "tests/test_keras_hub.py::test_docs_keras_hub_commands_run_as_written"
    (block,) = [block for block in docs_text.blocks(section) if block.runner == runner]
    build, *commands = [shlex.split(command.line) for command in docs_text.commands(block.body)]
    assert build == ["python", "-m", "legacy_graphs", "google_bert", "--output_dir=bert"]
    # What that command writes (the session's build of it, with the same defaults).
    shutil.copytree(os.path.dirname(bert_tiny), tmp_path / "bert")
    assert [command[3] for command in commands] == ["convert", "suggest", "convert"]
    for command in commands:
        assert command[:3] == ["python", "-m", "migrate"]
        result = cli_in_process(*command[3:], cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
    figures = re.search(r"printed `(verified: PASS, .*?)`", section.replace("\n", " ")).group(1)
    for output in ("backbone", "drafted"):
        verified = _verified(tmp_path / output)
        assert [item["keras_output"] for item in verified["outputs"]] == [
            "sequence_output", "pooled_output"]
        assert all(item["max_rel_diff"] <= 1e-5 for item in verified["outputs"])
    assert "sequence_output:0" in figures and "pooled_output:0" in figures


@pytest.mark.slow  # Two conversions and proofs in one process: about a minute.
def test_batch_verify_sizes_each_checkpoints_backbone(cli_in_process, bert_tiny,
                                                      legacy_checkpoint, tmp_path):
    small = legacy_checkpoint("google_bert", extra_flags=("--config=small",))
    for name, prefix in (("tiny", bert_tiny), ("small", small)):
        shutil.copytree(os.path.dirname(prefix), tmp_path / "train" / name)
    result = cli_in_process("batch", "--zoo=google_bert", f"--input_dir={tmp_path / 'train'}",
                            f"--output_dir={tmp_path / 'converted'}", "--verify", "--workers=0")
    assert result.returncode == 0, result.stdout + result.stderr
    for name, hidden in (("tiny", 32), ("small", 128)):
        verified = _verified(tmp_path / "converted" / name / "model.ckpt-3")
        assert verified["passed"] and len(verified["outputs"]) == 2
        assert verified["outputs"][0]["shape"] == [2, 8, hidden]
