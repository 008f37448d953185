"""tf_keras (Keras 2) targets: the same table, restore, and `load_weights` of the output."""

import tensorflow as tf

import migrate
from migrate import zoo
from migrate.zoo import small_convnet

ENTRY = zoo.get("small_convnet")
FACTORY = "migrate.zoo.small_convnet:build_tf_keras_model"


def test_tf_keras_target_restores_and_loads_weights(legacy_checkpoint, tmp_path):
    prefix = legacy_checkpoint("small_convnet")
    output = str(tmp_path / "keras2")
    report = migrate.convert(prefix, ENTRY.table_path, small_convnet.build_tf_keras_model, output,
                             options=migrate.ConversionOptions(keep="model_state"))
    assert report.written_weights == 7
    stored = [name for name, _ in tf.train.list_variables(tf.train.latest_checkpoint(output))
              if name != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    assert len(stored) == 7, "each weight is stored once even though it has two paths"

    model = small_convnet.build_tf_keras_model()
    restored = migrate.restore(model, output)
    assert restored.unchanged == [] and len(restored.restored) == 7
    assert migrate.verify(prefix, model, **ENTRY.verify).max_rel_diff < 1e-5

    loaded = small_convnet.build_tf_keras_model()
    loaded.load_weights(tf.train.latest_checkpoint(output)).assert_existing_objects_matched()
    assert migrate.verify(prefix, loaded, **ENTRY.verify).max_rel_diff < 1e-5


def test_tf_keras_target_from_the_command_line(legacy_checkpoint, tmp_path, cli_in_process):
    prefix = legacy_checkpoint("small_convnet")
    output = tmp_path / "cli"
    result = cli_in_process("convert", f"--checkpoint={prefix}", f"--table={ENTRY.table_path}",
                            f"--model={FACTORY}", f"--output={output}", "--keep=model_state")
    assert result.returncode == 0, result.stderr
    result = cli_in_process("verify", f"--checkpoint={prefix}", "--zoo=small_convnet",
                            f"--model={FACTORY}", f"--converted={output}")
    assert result.returncode == 0, result.stderr
    assert "verify PASS" in result.stdout
