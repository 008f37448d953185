"""What one run of the legacy graph is fed (`LegacyFeed`), and the Keras inputs beside it."""

import dataclasses

import numpy as np

from migrate.errors import ArgumentError


@dataclasses.dataclass
class LegacyFeed:
    """What one run of the legacy graph is fed.

    Attributes:
        input_names: the placeholders also given to the Keras model, in the
            order of the Keras model's inputs.
        arrays: `{tensor name: array}` for every fed placeholder.
        batch_axes: `{placeholder: axis}` of the inputs whose batch is not on
            axis 0 (time-major); the Keras model takes their arrays with the
            batch moved to axis 0.
        batch_axis_from: `{placeholder: why}` for those axes (the loop that
            unstacks the input, or `batch_axes` when given).
        drawn: `{placeholder: how}` of generated ids (their bound and where it
            came from), for the report.
    """

    input_names: list
    arrays: dict
    keras_names: list = dataclasses.field(default_factory=list)
    keras_arrays: dict = dataclasses.field(default_factory=dict)
    keras_order: list = dataclasses.field(default_factory=list)
    batch_axes: dict = dataclasses.field(default_factory=dict)
    batch_axis_from: dict = dataclasses.field(default_factory=dict)
    drawn: dict = dataclasses.field(default_factory=dict)

    def keras_array(self, name):
        """The array of placeholder `name` as the Keras model takes it: batch on axis 0."""
        if name in self.batch_axes:
            return np.moveaxis(self.arrays[name], self.batch_axes[name], 0)
        return self.arrays[name]

    def rows(self, name):
        """The batch of the array fed to `name` (its size on the batch axis), or None."""
        shape = np.shape(self.arrays[name])
        axis = self.batch_axes.get(name, 0)
        return int(shape[axis]) if len(shape) > axis else None

    def keras_inputs(self, *, by_name=False):
        """Returns the Keras model's inputs: one array, a list in input order, or a dict.

        Args:
            by_name: return `{Keras input: array}` (for a model whose inputs
                are a dict); needs `keras_names`.
        """
        values = [self.keras_array(name) for name in self.input_names]
        if by_name or self.keras_order:
            named = {**dict(zip(self.keras_names, values)), **self.keras_arrays}
            if by_name:
                return named
            values = [named[name] for name in self.keras_order]
        return values[0] if len(values) == 1 else values

    def describe(self):
        """Returns `{name: {"shape", "dtype", "keras_input"}}` for the report.

        With Keras inputs named (pairs, constants or arrays by Keras name),
        `keras_name` says which Keras input a placeholder's array also goes
        to, and the arrays only the Keras model takes are listed under their
        Keras names, with `keras_only`.
        """
        keras_of = dict(zip(self.input_names, self.keras_names)) if self.keras_order else {}
        described = {}
        for name, array in self.arrays.items():
            described[name] = {"shape": list(array.shape), "dtype": str(array.dtype),
                               "keras_input": name in self.input_names}
            if name in keras_of:
                described[name]["keras_name"] = keras_of[name]
            if name in self.batch_axes:
                described[name]["batch_axis"] = self.batch_axes[name]
                described[name]["batch_axis_from"] = self.batch_axis_from.get(name, "")
            if name in self.drawn:
                described[name]["values"] = self.drawn[name]
        for name, array in self.keras_arrays.items():
            described[name] = {"shape": list(array.shape), "dtype": str(array.dtype),
                               "keras_input": True, "keras_name": name, "keras_only": True}
        return described


def check_keras_names(pairs, keras_inputs, option):
    """Refuses Keras input names the model does not have, listing those it has."""
    known = [name for name, _ in keras_inputs]
    unknown = [keras for keras, _ in pairs if keras not in known]
    if unknown:
        raise ArgumentError(f"The Keras model has no input {', '.join(map(repr, unknown))}. "
                            f"Expected one of its inputs: {', '.join(known)}. Received: "
                            f"{option}={dict(pairs)!r}", option=option)


def keras_arrays(feed, keras_only, settings, keras_inputs):
    """Returns the arrays of the Keras inputs no placeholder feeds: given, or constants.

    A constant takes the shape of the arrays the paired inputs take.

    Raises:
        ArgumentError: a Keras input is fed by nothing, or a constant has no
            paired input to take its shape from.
    """
    arrays = dict(keras_only)
    shaped = [feed.keras_array(name) for name in feed.input_names] + list(keras_only.values())
    dtypes = dict(keras_inputs)
    for name, value in settings.keras_feeds:
        if not shaped:
            raise ArgumentError(f"A constant Keras input takes the shape of the paired inputs' "
                                f"arrays, and no input is paired. Expected input_pairs or an "
                                f"array for another Keras input in the inputs file. Received: "
                                f"keras_feeds={dict(settings.keras_feeds)!r}",
                                option="keras_feeds")
        arrays[name] = np.full(shaped[0].shape, value, dtypes.get(name) or "float32")
    fed = set(feed.keras_names) | set(arrays)
    unfed = [name for name, _ in keras_inputs if name not in fed]
    if unfed:
        raise ArgumentError(
            f"The Keras model's input{'s' if len(unfed) > 1 else ''} {', '.join(unfed)} "
            f"{'are' if len(unfed) > 1 else 'is'} fed by nothing. Expected each of its inputs "
            f"({', '.join(name for name, _ in keras_inputs)}) paired with a placeholder, given "
            f"a constant in keras_feeds, or its array in the inputs file. Received: "
            f"input_pairs={dict(settings.input_pairs)!r}, "
            f"keras_feeds={dict(settings.keras_feeds)!r}", option="keras_feeds")
    return arrays


def takes_dict(model):
    """Whether a Keras model's inputs are a dict (keras-hub's backbones)."""
    try:
        return isinstance(model.input, dict)
    except (AttributeError, ValueError):  # Not built, or not functional.
        return False


def keras_input_names(model):
    """Returns `[(name, dtype name or None)]` of a Keras model's inputs (one unnamed input
    when the model does not say); a dict's keys name the inputs of a dict model."""
    if takes_dict(model):
        return [(key, str(getattr(tensor.dtype, "name", tensor.dtype)))
                for key, tensor in model.input.items()]
    inputs = getattr(model, "inputs", None)
    if not inputs:
        return [("input", None)]
    return [(str(getattr(tensor, "name", "input")).split(":")[0],
             str(getattr(tensor.dtype, "name", tensor.dtype)) if hasattr(tensor, "dtype") else None)
            for tensor in inputs]
