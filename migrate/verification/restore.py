"""Restores a converted checkpoint into a Keras model and says what stayed at its initial value."""

import dataclasses

from migrate import files
from migrate.errors import CheckpointError
from migrate.errors import ModelError
from migrate.errors import first_line
from migrate.output import checkpoint as output_checkpoint
from migrate.planning import target as target_model

_VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


@dataclasses.dataclass
class RestoreReport:
    """What `restore` did.

    Attributes:
        prefix: the checkpoint prefix read.
        restored: paths of the model weights set from the checkpoint.
        unchanged: paths of the model weights the checkpoint does not hold;
            they keep their initial values.
    """

    prefix: str
    restored: list
    unchanged: list

    def summary(self):
        text = f"Restored {len(self.restored)} weight(s) from {self.prefix}"
        if self.unchanged:
            text += (f"; {len(self.unchanged)} kept their initial values: "
                     f"{', '.join(self.unchanged[:5])}{', ...' if len(self.unchanged) > 5 else ''}")
        return text


def checkpoint_prefix(path):
    """Returns the prefix of a converted checkpoint given its directory or prefix."""
    import tensorflow as tf

    path = str(path)
    if files.exists(path + ".index"):
        return path
    if files.is_directory(path):
        prefix = tf.train.latest_checkpoint(path)
        if prefix:
            return prefix
    raise CheckpointError(f"No TF2 checkpoint at {path}: expected a directory written by "
                          f"`migrate convert` or a checkpoint prefix.")


def restore(model, path):
    """Restores a converted checkpoint into `model`.

    Works for Keras 3 and tf_keras (Keras 2) models. Every weight the
    checkpoint holds must exist in the model; weights the checkpoint does
    not hold keep their initial values and are listed in the report.

    Which output to load when: this TF2 checkpoint carries exactly what the
    conversion kept, and `restore` says what it did not. An output converted
    with `exports` also holds `model.weights.h5` (`model.load_weights`, the
    format Keras 3 users load), `model.keras` (`keras.saving.load_model`,
    no model code needed) and `saved_model/` (`tf.saved_model.load(...).serve`,
    for serving without Keras); those store every weight of the model, so
    weights the conversion did not keep are at their initial values there.

    Args:
        model: a built Keras model of the same structure as the target model.
        path: the output directory of `migrate.convert`, or a checkpoint prefix.

    Returns:
        A `RestoreReport`.

    Raises:
        CheckpointError: there is no checkpoint at `path`.
        ModelError: the checkpoint holds weights this model does not have.

    Example:

        model = build_model()
        report = migrate.restore(model, "converted")
        print(report.summary())
    """
    import tensorflow as tf

    prefix = checkpoint_prefix(path)
    try:
        keys = {name[:-len(_VALUE_SUFFIX)] for name, _ in tf.train.list_variables(prefix)
                if name.endswith(_VALUE_SUFFIX)}
    except Exception as error:
        raise CheckpointError(f"Cannot read checkpoint {prefix}: {first_line(error)}") from None
    weights = target_model.weights(model)
    paths = target_model.object_paths(tf.train.Checkpoint(**{output_checkpoint.ROOT_NAME: model}))
    by_key = {}
    for path_name, (_, variable) in weights.items():
        object_path = paths.get(id(variable))
        if object_path is not None:
            by_key["/".join(object_path)] = path_name
            # Outputs for tf_keras models also hold the model's children at the
            # root (for `load_weights`), where the stored key has no `model/`.
            by_key["/".join(object_path[1:])] = path_name
    unexpected = sorted(keys - set(by_key))
    if unexpected:
        raise ModelError(
            f"Checkpoint {prefix} holds {len(unexpected)} weight(s) the model does not have "
            f"(is it the same architecture?): {', '.join(unexpected[:5])}")
    status = tf.train.Checkpoint(**{output_checkpoint.ROOT_NAME: model}).read(prefix)
    status.expect_partial()
    restored = sorted(by_key[key] for key in keys)
    unchanged = sorted(set(weights) - set(restored))
    return RestoreReport(prefix=prefix, restored=restored, unchanged=unchanged)
