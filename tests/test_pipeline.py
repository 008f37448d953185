"""The core pipeline end to end on a small legacy model: read, plan, write, restore, verify."""

import hashlib
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import migrate
from migrate import zoo

ENTRY = zoo.get("small_convnet")
VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


@pytest.fixture(scope="module")
def prefix(legacy_checkpoint):
    return legacy_checkpoint("small_convnet")


def _stored_weights(output):
    prefix = tf.train.latest_checkpoint(output)
    return {name: shape for name, shape in tf.train.list_variables(prefix)
            if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def _hashes(prefix):
    directory = os.path.dirname(prefix)
    return {name: hashlib.sha256(open(os.path.join(directory, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(directory))}


def test_default_output_holds_exactly_the_trainable_weights(prefix, tmp_path):
    before = _hashes(prefix)
    output = str(tmp_path / "out")
    report = migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, output)
    stored = _stored_weights(output)
    assert len(stored) == 5 and all(name.endswith(VALUE_SUFFIX) for name in stored)
    assert report.written_weights == 5
    roles = report.roles
    assert (roles["trainable"]["kept"], roles["optimizer_slot"]["left_out"],
            roles["ema_shadow"]["left_out"], roles["bookkeeping"]["left_out"],
            roles["model_state"]["left_out"]) == (5, 5, 5, 1, 2)
    assert report.unwritten_targets == ["bn/moving_mean", "bn/moving_variance"]
    assert "Use keep='model_state' to carry them" in report.warnings[0]
    manifest = json.load(open(os.path.join(output, "manifest.json")))
    assert manifest["table"]["sha256"] == migrate.MappingTable.load(ENTRY.table_path).sha256
    assert {os.path.basename(f["path"]) for f in manifest["source"]["files"]} == {
        os.path.basename(prefix) + suffix
        for suffix in (".index", ".data-00000-of-00001", ".meta")}
    assert manifest["roles"]["optimizer_slot"]["left_out_bytes"] > 0
    assert {f["path"] for f in manifest["output_files"]} == {
        "checkpoint", "ckpt.index", "ckpt.data-00000-of-00001"}
    assert _hashes(prefix) == before, "the input must never be modified"
    assert [name for name in os.listdir(tmp_path) if name != "out"] == []


def test_model_state_matches_legacy_graph_and_trainable_only_says_why_not(prefix, tmp_path):
    complete = str(tmp_path / "complete")
    migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, complete,
                    options=migrate.ConversionOptions(keep="model_state"))
    model = ENTRY.build_model()
    restored = migrate.restore(model, complete)
    assert restored.unchanged == [] and len(restored.restored) == 7
    result = migrate.verify(prefix, model, **ENTRY.verify)
    assert result.passed and result.max_rel_diff < 1e-5, result.summary()

    trainable_only = str(tmp_path / "trainable")
    migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, trainable_only)
    model = ENTRY.build_model()
    restored = migrate.restore(model, trainable_only)
    assert restored.unchanged == ["bn/moving_mean", "bn/moving_variance"]
    assert migrate.verify(prefix, model, **ENTRY.verify).max_rel_diff > 1e-2


def test_ema_conversion_matches_the_graph_evaluated_with_its_averages(prefix, tmp_path):
    output = str(tmp_path / "ema")
    report = migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, output,
                             options=migrate.ConversionOptions(keep="model_state", ema=True))
    assert report.ema_swapped == 5
    model = ENTRY.build_model()
    migrate.restore(model, output)
    assert migrate.verify(prefix, model, ema=True, **ENTRY.verify).max_rel_diff < 1e-5
    # The averages differ from the raw weights, so the plain graph must not match.
    assert migrate.verify(prefix, model, **ENTRY.verify).max_rel_diff > 1e-3


def test_dry_run_and_plan_write_nothing(prefix, tmp_path):
    report = migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, str(tmp_path / "out"),
                             dry_run=True)
    assert report.dry_run and report.written_weights == 5
    assert os.listdir(tmp_path) == []
    plan = migrate.plan(prefix, ENTRY.table_path, ENTRY.build_model,
                        options=migrate.ConversionOptions(keep="model_state"))
    assert plan.problems == [] and len(plan.assignments) == 7


def test_unreachable_weights_fail_in_plan_before_anything_is_written():
    import keras

    from migrate.source.checkpoint import LegacyCheckpoint
    from migrate.source.checkpoint import SourceVariable

    class ListHoldingModel(keras.Model):
        def __init__(self):
            super().__init__(name="m")
            # Keras 3 tracks these for `weights`, but tf.train.Checkpoint
            # does not reach layers held in plain lists and dicts.
            self.blocks = [keras.layers.Dense(3, name="b0"), keras.layers.Dense(2, name="b1")]
            self.heads = {"head": keras.layers.Dense(2, name="head")}
            self.out = keras.layers.Dense(1, name="out")

        def call(self, inputs):
            for block in self.blocks:
                inputs = block(inputs)
            return self.out(self.heads["head"](inputs))

    model = ListHoldingModel()
    model(np.zeros((1, 4), "float32"))
    variables = {
        weight.path: SourceVariable(weight.path, tuple(weight.shape), "float32",
                                    migrate.Role.TRAINABLE, migrate.RoleSource.GRAPH, "stand-in")
        for weight in model.trainable_weights}
    checkpoint = LegacyCheckpoint("in-memory", variables)
    table = migrate.MappingTable.from_text("[[rule]]\nmatch = '(.*)'\ntarget = '\\1'\n")
    with pytest.raises(migrate.ModelError) as raised:
        migrate.plan(checkpoint, table, model)
    message = str(raised.value)
    assert message.startswith("6 weight(s) cannot be reached from the model's object graph")
    assert "m/b0/kernel" in message and "m/head/bias" in message and "m/out/" not in message


def test_restore_refuses_a_checkpoint_of_another_architecture(prefix, tmp_path):
    import keras

    output = str(tmp_path / "out")
    migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, output)
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(migrate.ModelError, match="holds 5 weight\\(s\\) the model does not have"):
        migrate.restore(other, output)


def test_cli_convert_verify_and_check(prefix, tmp_path, cli_in_process):
    output = str(tmp_path / "cli")
    result = cli_in_process("convert", f"--checkpoint={prefix}", "--zoo=small_convnet",
                            f"--output={output}", "--keep=model_state", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["written_weights"] == 7 and report["roles"]["optimizer_slot"]["left_out"] == 5
    result = cli_in_process("verify", f"--checkpoint={prefix}", "--zoo=small_convnet",
                            f"--converted={output}")
    assert result.returncode == 0, result.stderr
    assert "verify PASS" in result.stdout
    result = cli_in_process("check", f"--output={output}")
    assert result.returncode == 0 and "check OK" in result.stdout
    data = os.path.join(output, "ckpt.data-00000-of-00001")
    content = bytearray(open(data, "rb").read())
    content[len(content) // 2] ^= 0xFF
    open(data, "wb").write(bytes(content))
    result = cli_in_process("check", f"--output={output}")
    assert result.returncode == 1 and "ckpt.data-00000-of-00001: changed" in result.stdout


def test_cli_wrong_table_fails_in_plan_naming_the_offender(prefix, tmp_path, cli_in_process):
    table = tmp_path / "wrong.toml"
    table.write_text(open(ENTRY.table_path).read().replace("target = 'conv/kernel'",
                                                           "target = 'conv/bias'"))
    output = tmp_path / "out"
    result = cli_in_process("convert", f"--checkpoint={prefix}", f"--table={table}",
                            f"--model={ENTRY.model_factory}", f"--output={output}")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: The conversion plan has 2 problem(s)")
    assert lines[1].startswith("  - no such target: conv/kernel [3, 3, 3, 4] -> conv/bias ?: "
                               "rule 1 (match 'conv/kernel') names a weight the model does not have")
    assert lines[2] == ("  - unfilled: conv/kernel [3, 3, 3, 4]: no source variable fills this "
                        "target weight")
    assert "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == ["wrong.toml"]


@pytest.mark.parametrize("arguments, code, message", [
    (["convert", "--checkpoint=/no/such/model.ckpt-1", "--zoo=small_convnet", "--output=o"], 1,
     "error: No checkpoint at /no/such/model.ckpt-1: the directory does not exist."),
    (["convert", "--checkpoint=PREFIX", "--table=TABLE", "--model=no_such_module:build",
      "--output=o"], 1, "error: Cannot import model module 'no_such_module'"),
    (["convert", "--checkpoint=PREFIX", "--zoo=small_convnet", "--output=EXISTING"], 1,
     "already exists. Expected a new directory, or overwrite=True to replace it. "
     "Received: output="),
    (["frobnicate"], 2, "Expected a command, one of inspect"),
    (["convert", "--checkpoint=PREFIX", "--output=o"], 2, "`convert` needs --table and --model"),
])
def test_cli_bad_input_is_one_line_without_traceback(prefix, tmp_path, arguments, code, message,
                                                     cli_in_process):
    existing = tmp_path / "existing"
    existing.mkdir()
    arguments = [argument.replace("PREFIX", prefix).replace("TABLE", ENTRY.table_path)
                 .replace("EXISTING", str(existing)) for argument in arguments]
    result = cli_in_process(*arguments, cwd=tmp_path)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert sorted(os.listdir(tmp_path)) == ["existing"]


def test_overwrite_replaces_an_existing_output(prefix, tmp_path):
    output = str(tmp_path / "out")
    migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, output)
    migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, output,
                    overwrite=True, options=migrate.ConversionOptions(keep="model_state"))
    assert len(_stored_weights(output)) == 7
    assert os.listdir(tmp_path) == ["out"]


def test_inspect_lists_roles_from_the_graph(prefix):
    description = migrate.inspect(prefix)
    roles = {variable["name"]: (variable["role"], variable["role_source"])
             for variable in description["variables"]}
    assert roles["conv/kernel"] == ("trainable", "graph collection")
    assert roles["conv/kernel/Momentum"] == ("optimizer_slot", "graph collection")
    assert roles["global_step"] == ("bookkeeping", "graph collection")
    assert roles["bn/moving_mean"] == ("model_state", "name rule")
    assert description["roles"]["ema_shadow"]["count"] == 5


def test_absl_script_runs_the_same_command(prefix):
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "plan_conversion.py")
    result = subprocess.run([sys.executable, script, f"--checkpoint={prefix}", "--zoo=small_convnet",
                             "--json"], capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["dry_run"] is True


def test_without_meta_a_builder_graph_or_name_rules_give_the_roles(prefix, tmp_path):
    from migrate.source.checkpoint import LegacyCheckpoint

    from_builder = LegacyCheckpoint.open(prefix, builder="small_convnet", use_meta=False)
    assert from_builder.role_origin == "graph of builder 'small_convnet'"
    assert from_builder.variables["conv/kernel"].role_source.value == "builder graph"
    from_names = LegacyCheckpoint.open(prefix, use_meta=False)
    assert from_names.role_origin == "name rules"
    for checkpoint in (from_builder, from_names):
        roles = {name: variable.role.value for name, variable in checkpoint.variables.items()}
        assert roles == {name: variable.role.value
                         for name, variable in migrate.LegacyCheckpoint.open(prefix).variables.items()}
    output = str(tmp_path / "names")
    report = migrate.convert(from_names, ENTRY.table_path, ENTRY.build_model, output,
                             options=migrate.ConversionOptions(keep="model_state"))
    assert report.role_origin == "name rules" and report.written_weights == 7


def test_overwrite_never_replaces_what_this_tool_did_not_write(prefix, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(migrate.OutputError, match="not a converted output"):
        migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, str(precious),
                        overwrite=True)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_assign_into_model_assigns_only_a_clean_plan(prefix):
    from migrate import pipeline

    options = migrate.ConversionOptions(keep="model_state")
    model = ENTRY.build_model()
    before = [np.array(weight) for weight in model.weights]
    # An empty table plans with problems: nothing is read into the model.
    conversion_plan = pipeline.assign_into_model(prefix, None, model, options=options)
    assert conversion_plan.problems
    assert all(np.array_equal(old, np.array(new)) for old, new in zip(before, model.weights))
    conversion_plan = pipeline.assign_into_model(prefix, ENTRY.table_path, model, options=options)
    assert conversion_plan.problems == []
    report = migrate.verify(prefix, model, **ENTRY.verify)
    assert report.passed, report.summary()
