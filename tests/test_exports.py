"""Exports Keras users load (`model.weights.h5`, `model.keras`, `saved_model/`), each at parity."""

import json
import os

import numpy as np
import pytest

import migrate
from migrate import zoo
from migrate.zoo import small_convnet

ENTRY = zoo.get("small_convnet")
ALL_EXPORTS = ("weights_h5", "keras", "saved_model")


@pytest.fixture(scope="module")
def prefix(legacy_checkpoint):
    return legacy_checkpoint("small_convnet")


@pytest.fixture(scope="module")
def exported(prefix, tmp_path_factory):
    output = str(tmp_path_factory.mktemp("exports") / "out")
    report = migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, output,
                             options=migrate.ConversionOptions(keep="model_state",
                                                               exports=ALL_EXPORTS))
    return output, report


class _ServeEndpoint:
    """Lets `migrate.verify` call a loaded SavedModel's `serve` endpoint like a model."""

    def __init__(self, loaded):
        self.loaded = loaded

    def __call__(self, inputs, training=False):
        del training  # The endpoint is the inference function.
        return self.loaded.serve(inputs)


def test_weights_h5_loads_into_a_fresh_model_at_parity(prefix, exported):
    output, report = exported
    assert report.exports == list(ALL_EXPORTS) and report.warnings == []
    model = ENTRY.build_model()
    model.load_weights(os.path.join(output, "model.weights.h5"))
    result = migrate.verify(prefix, model, **ENTRY.verify)
    assert result.passed and result.max_rel_diff < 1e-5, result.summary()


def test_keras_file_rebuilds_the_model_at_parity(prefix, exported):
    import keras

    model = keras.saving.load_model(os.path.join(exported[0], "model.keras"))
    result = migrate.verify(prefix, model, **ENTRY.verify)
    assert result.passed and result.max_rel_diff < 1e-5, result.summary()


def test_saved_model_serve_endpoint_at_parity(prefix, exported):
    import tensorflow as tf

    loaded = tf.saved_model.load(os.path.join(exported[0], "saved_model"))
    result = migrate.verify(prefix, _ServeEndpoint(loaded), **ENTRY.verify)
    assert result.passed and result.max_rel_diff < 1e-5, result.summary()


def test_exports_are_in_the_manifest_file_by_file_and_checked(exported, tmp_path):
    import shutil

    output, _ = exported
    manifest = json.load(open(os.path.join(output, "manifest.json")))
    paths = {entry["path"] for entry in manifest["output_files"]}
    assert {"model.weights.h5", "model.keras", "saved_model/saved_model.pb"} <= paths
    assert any(path.startswith("saved_model/variables/") for path in paths)
    assert manifest["exports"] == list(ALL_EXPORTS)
    assert migrate.ConversionOptions(exports=ALL_EXPORTS).to_json()["exports"] == list(ALL_EXPORTS)
    from migrate.output import manifest as manifest_lib

    assert manifest_lib.check(output).ok
    copy = str(tmp_path / "copy")
    shutil.copytree(output, copy)
    variables = sorted(path for path in paths if path.startswith("saved_model/variables/"))
    with open(os.path.join(copy, variables[-1]), "r+b") as file:
        first = file.read(1)
        file.seek(0)
        file.write(bytes([first[0] ^ 0xFF]))
    os.remove(os.path.join(copy, "model.keras"))
    report = manifest_lib.check(copy)
    assert report.mismatched == [variables[-1]] and report.missing == ["model.keras"]


def test_trainable_only_exports_warn_that_statistics_are_initial(prefix, tmp_path):
    output = str(tmp_path / "trainable")
    report = migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, output,
                             options=migrate.ConversionOptions(exports=["weights_h5"]))
    assert any("model.weights.h5) hold every weight of the model" in note
               and "initial values" in note for note in report.warnings)
    model = ENTRY.build_model()
    model.load_weights(os.path.join(output, "model.weights.h5"))
    np.testing.assert_array_equal(model.get_layer("bn").moving_variance.numpy(), np.ones(4))


def test_tf_keras_target_exports_load_at_parity(prefix, tmp_path, capsys):
    import tensorflow as tf
    import tf_keras

    output = str(tmp_path / "keras2")
    migrate.convert(prefix, ENTRY.table_path, small_convnet.build_tf_keras_model, output,
                    options=migrate.ConversionOptions(keep="model_state", exports=ALL_EXPORTS))
    assert capsys.readouterr().out == "", "exports must not print to standard output"
    model = small_convnet.build_tf_keras_model()
    model.load_weights(os.path.join(output, "model.weights.h5"))  # tf_keras's own h5 layout
    loaded = tf.saved_model.load(os.path.join(output, "saved_model"))
    for candidate in (model, tf_keras.models.load_model(os.path.join(output, "model.keras")),
                      _ServeEndpoint(loaded)):
        result = migrate.verify(prefix, candidate, **ENTRY.verify)
        assert result.passed and result.max_rel_diff < 1e-5, result.summary()


def _model_with_custom_layer(layer):
    import keras

    inputs = keras.Input((4,), name="x")
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(layer(inputs)))


def test_a_model_keras_cannot_serialize_is_refused_naming_the_layer(prefix, tmp_path):
    import keras

    class Unregistered(keras.layers.Layer):
        def call(self, inputs):
            return inputs * 2.0

    class NoConfig(keras.layers.Layer):
        def __init__(self, table, **kwargs):  # an argument get_config cannot capture
            super().__init__(**kwargs)
            self.table = table

        def call(self, inputs):
            return inputs

    cases = [(Unregistered(name="doubler"), "layer 'doubler' .* is not registered"),
             (NoConfig(object(), name="lookup"), "layer 'lookup' .* has no working get_config")]
    for layer, message in cases:
        output = tmp_path / layer.name
        with pytest.raises(migrate.ModelError, match=message) as raised:
            migrate.convert(prefix, ENTRY.table_path, _model_with_custom_layer(layer),
                            str(output), options=migrate.ConversionOptions(exports=["keras"]))
        assert raised.value.option == "exports"
        assert not output.exists() and os.listdir(tmp_path) == [
            name for name in os.listdir(tmp_path) if not name.startswith(".")]


@pytest.mark.parametrize("exports, message", [
    (["h5"], "Expected exports to be among weights_h5, keras, saved_model"),
    ("keras,keras", "Expected each export format once"),
    ([3], "Expected exports to be a list of format names"),
])
def test_bad_export_lists_are_argument_errors(exports, message):
    with pytest.raises(migrate.ArgumentError, match=message):
        migrate.ConversionOptions(exports=exports)

