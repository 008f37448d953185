"""Writes the converted model in the formats Keras users load: `.weights.h5`, `.keras`, SavedModel.

Keras 3's `load_weights` reads only `.weights.h5` and `.keras` files
(keras-team/keras#18709), so a TF2 checkpoint alone does not serve a Keras 3
user; serving stacks want a SavedModel. Each format is written from the model
the conversion filled, inside the conversion's staging directory, so it is
renamed into place and hashed into the manifest with the checkpoint.

Which to use when:

- `weights_h5` (`model.weights.h5`): `model.load_weights(path)` on a model
  built by your own code; Keras 3's everyday format (tf_keras targets: their
  own `save_weights` h5 layout).
- `keras` (`model.keras`): `keras.saving.load_model(path)` rebuilds the model
  without your code; only for models whose layers are all serializable.
- `saved_model` (`saved_model/`): `tf.saved_model.load(path).serve(inputs)`,
  for TF Serving and other consumers without Keras.

Example:

    check_exportable(model, ("weights_h5", "keras"))   # before anything is written
    write(staging_directory, model, ("weights_h5", "keras"))
"""

import contextlib
import io

from migrate import files
from migrate.errors import ModelError
from migrate.errors import OutputError
from migrate.errors import first_line
from migrate.options import FILE_NAMES
from migrate.options import KERAS
from migrate.options import WEIGHTS_H5
from migrate.planning import target as target_model

# The Keras 3 SavedModel endpoint (`model.export`), called on the model's inputs.
SERVE_ENDPOINT = "serve"
# Packages whose classes `load_model` imports by module name; any other class
# must be registered with `keras.saving.register_keras_serializable`.
_IMPORTABLE_PACKAGES = frozenset({"keras", "keras_hub", "keras_cv", "keras_nlp", "tf_keras"})


def check_exportable(model, formats):
    """Refuses, before anything is written, a model that a requested format cannot hold.

    `.keras` files rebuild the model from its layers' configs, so every layer
    needs a working `get_config()` and a class `load_model` can find (Keras's
    own, or registered with `keras.saving.register_keras_serializable`).

    Args:
        model: the built Keras model.
        formats: the export formats (`parse_formats`).

    Raises:
        ModelError: a layer cannot be serialized; the message names it.

    Example:

        check_exportable(model, ("keras",))
    """
    if KERAS not in formats:
        return
    saving = _saving_module(model)
    for layer in _layers(model):
        cls = type(layer)
        where = f"layer {layer.name!r} ({cls.__module__}.{cls.__qualname__})"
        try:
            layer.get_config()
        except Exception as error:  # NotImplementedError and whatever a custom get_config raises.
            raise ModelError(
                f"The model cannot be exported as {FILE_NAMES[KERAS]}: {where} has no working "
                f"get_config() ({first_line(error)}). Expected every layer to be serializable; "
                f"export weights_h5 instead, or give the layer a get_config(). "
                f"Received: exports={list(formats)!r}", option="exports") from None
        package = cls.__module__.split(".", 1)[0]
        registered = saving.get_registered_object(saving.get_registered_name(cls)) is cls
        if package not in _IMPORTABLE_PACKAGES and not registered:
            raise ModelError(
                f"The model cannot be exported as {FILE_NAMES[KERAS]}: {where} is not registered, "
                f"so load_model could not find its class. Expected custom classes to be decorated "
                f"with keras.saving.register_keras_serializable(); or export weights_h5 instead. "
                f"Received: exports={list(formats)!r}", option="exports")


def write(directory, model, formats):
    """Writes each requested format of `model` into `directory`.

    Args:
        directory: the (staging) output directory.
        model: the built Keras model holding the converted weights.
        formats: the export formats (`parse_formats`).

    Returns:
        The names written, relative to `directory`.

    Raises:
        OutputError: TensorFlow or Keras failed to write a format.
    """
    keras_3 = target_model.is_keras_3(model)
    written = []
    for name in formats:
        path = files.join(str(directory), FILE_NAMES[name])
        try:
            if name == WEIGHTS_H5:
                model.save_weights(path)
            elif name == KERAS:
                model.save(path)
            elif keras_3:
                model.export(path, format="tf_saved_model", verbose=False)
            else:
                # tf_keras's export has no `verbose`: it prints its endpoints
                # to standard output, where `--json` output goes.
                with contextlib.redirect_stdout(io.StringIO()):
                    model.export(path)
        except Exception as error:  # Keras and TensorFlow errors, translated.
            raise OutputError(
                f"Cannot write the {name} export {path}: {first_line(error)}") from None
        written.append(FILE_NAMES[name])
    return written


def _saving_module(model):
    if target_model.is_keras_3(model):
        import keras
        return keras.saving
    import tf_keras
    return tf_keras.saving


def _layers(model):
    """Every layer of the model, nested layers included, then the model itself.

    The model comes last: its `get_config()` fails whenever one of its layers'
    does, and the message should name that layer.
    """
    flatten = getattr(model, "_flatten_layers", None)
    inner = list(flatten(include_self=False, recursive=True)) if flatten else list(model.layers)
    return [*inner, model]
