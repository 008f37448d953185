"""Numerical parity: run the legacy graph and the Keras model on one seeded batch and compare."""

import dataclasses

import numpy as np

from migrate.errors import CheckpointError
from migrate.errors import first_line


@dataclasses.dataclass
class VerifyReport:
    """The comparison of legacy and converted outputs.

    `max_rel_diff` is `max|legacy - keras| / max|legacy|` over the whole
    output: a scale-aware figure that does not blow up where single outputs
    are near zero.
    """

    output_tensor: str
    shape: tuple
    max_abs_diff: float
    max_rel_diff: float
    tolerance: float
    batch_size: int
    seed: int

    @property
    def passed(self):
        return bool(self.max_rel_diff <= self.tolerance)

    def summary(self):
        verdict = "PASS" if self.passed else "FAIL"
        return (f"verify {verdict}: {self.output_tensor} {list(self.shape)} max abs diff "
                f"{self.max_abs_diff:.3g}, max relative diff {self.max_rel_diff:.3g} "
                f"(tolerance {self.tolerance:g}, batch {self.batch_size}, seed {self.seed})")

    def to_json(self):
        document = dataclasses.asdict(self)
        document["passed"] = self.passed
        document["shape"] = list(self.shape)
        return document


def make_inputs(placeholder_shape, dtype, *, batch_size, input_shape=None, input_max=None, seed=0):
    """Returns a seeded random batch that fits a placeholder.

    Unknown dimensions come from `input_shape` (without the batch dimension)
    and `batch_size`. Integer inputs are drawn from `[0, input_max)`.
    """
    shape = list(placeholder_shape)
    if input_shape is not None:
        shape = [shape[0] if shape else None, *input_shape]
    shape = [batch_size if index == 0 and size is None else size for index, size in enumerate(shape)]
    if any(size is None for size in shape):
        raise ValueError(f"Cannot make inputs for shape {placeholder_shape}: pass --input_shape.")
    rng = np.random.default_rng(seed)
    if np.issubdtype(np.dtype(dtype), np.integer):
        if not input_max:
            raise ValueError("Integer inputs need --input_max (e.g. the vocabulary size).")
        return rng.integers(0, input_max, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def run_legacy(prefix, meta_path, input_tensor, output_tensor, *, batch_size=2, input_shape=None,
               input_max=None, seed=0, ema=False):
    """Runs the legacy graph from its `.meta` with all variables restored by its Saver.

    With `ema`, the variables are restored from their moving averages, as
    TF1 evaluation did with `ExponentialMovingAverage.variables_to_restore()`.

    Returns:
        `(inputs, outputs)` as NumPy arrays.
    """
    import tensorflow as tf

    from migrate.source.checkpoint import tensorflow_path

    graph = tf.Graph()
    with graph.as_default():
        try:
            saver = tf.compat.v1.train.import_meta_graph(meta_path, clear_devices=True)
        except Exception as error:
            raise CheckpointError(f"Cannot import {meta_path}: {first_line(error)}") from None
        try:
            inputs_tensor = graph.get_tensor_by_name(input_tensor)
            outputs_tensor = graph.get_tensor_by_name(output_tensor)
        except (KeyError, ValueError) as error:
            raise CheckpointError(f"The graph in {meta_path} has no such tensor: "
                                  f"{first_line(error)}") from None
        shape = inputs_tensor.shape.as_list() if inputs_tensor.shape.rank is not None else [None]
        inputs = make_inputs(shape, inputs_tensor.dtype.as_numpy_dtype, batch_size=batch_size,
                             input_shape=input_shape, input_max=input_max, seed=seed)
        if ema:
            saver = tf.compat.v1.train.Saver(_moving_average_var_list(graph, prefix))
        with tf.compat.v1.Session(graph=graph) as session:
            saver.restore(session, tensorflow_path(prefix))
            outputs = session.run(outputs_tensor, {inputs_tensor: inputs})
    return inputs, outputs


def _moving_average_var_list(graph, prefix):
    """Maps each variable to its EMA shadow's key where the checkpoint has one.

    This is what `ExponentialMovingAverage.variables_to_restore()` returns,
    built by hand because a new average in an imported graph would pick
    uniquified shadow names (`.../ExponentialMovingAverage_1`).
    """
    import tensorflow as tf

    from migrate.source.checkpoint import checkpoint_key
    from migrate.source.checkpoint import tensorflow_path
    from migrate.source.roles import EMA_SUFFIX

    keys = set(tf.compat.v1.train.NewCheckpointReader(tensorflow_path(prefix))
               .get_variable_to_shape_map())
    var_list = {}
    for variable in graph.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES):
        key = checkpoint_key(variable)
        if key.endswith("/" + EMA_SUFFIX):
            continue
        shadow = f"{key}/{EMA_SUFFIX}"
        var_list.setdefault(shadow if shadow in keys else key, []).append(variable)
    return {key: parts[0] if len(parts) == 1 else parts for key, parts in var_list.items()}


def compare(legacy_outputs, keras_outputs):
    """Returns `(max_abs_diff, max_rel_diff)` of two output arrays.

    Raises:
        ValueError: the shapes differ.
    """
    legacy_outputs = np.asarray(legacy_outputs, np.float64)
    keras_outputs = np.asarray(keras_outputs, np.float64)
    if legacy_outputs.shape != keras_outputs.shape:
        raise ValueError(f"Output shapes differ: legacy {list(legacy_outputs.shape)}, "
                         f"Keras {list(keras_outputs.shape)}")
    max_abs = float(np.max(np.abs(legacy_outputs - keras_outputs))) if legacy_outputs.size else 0.0
    scale = float(np.max(np.abs(legacy_outputs))) if legacy_outputs.size else 0.0
    return max_abs, (max_abs / scale if scale > 0 else max_abs)


def verify(checkpoint, model, *, input_tensor, output_tensor, input_shape=None, input_max=None,
           batch_size=2, seed=0, tolerance=1e-5, ema=False):
    """Compares the legacy graph's output with the Keras model's on one seeded batch.

    Args:
        checkpoint: the legacy checkpoint prefix (its `.meta` must exist).
        model: the Keras model, with the converted weights restored.
        input_tensor: the graph's input placeholder, e.g. `inputs:0`.
        output_tensor: the graph's output to compare, e.g. `logits:0`.
        input_shape: input shape without the batch dimension, where the
            placeholder leaves dimensions unknown.
        input_max: for integer inputs, values are drawn from `[0, input_max)`.
        batch_size: rows in the random batch.
        seed: NumPy seed of the batch.
        tolerance: largest accepted `max_rel_diff`.
        ema: evaluate the legacy graph with its moving averages (compare with
            an output converted with `ema=True`).

    Returns:
        A `VerifyReport`; `report.passed` tells whether the tolerance holds.

    Example:

        report = migrate.verify("train/model.ckpt-3", model, input_tensor="inputs:0",
                                output_tensor="logits:0")
        assert report.passed, report.summary()
    """
    from migrate import files
    from migrate.source.checkpoint import resolve_prefix

    prefix = resolve_prefix(checkpoint)
    meta_path = prefix + ".meta"
    if not files.exists(meta_path):
        raise CheckpointError(f"verify runs the legacy graph and needs {meta_path}, which does "
                              f"not exist.")
    inputs, legacy_outputs = run_legacy(
        prefix, meta_path, input_tensor, output_tensor, batch_size=batch_size,
        input_shape=input_shape, input_max=input_max, seed=seed, ema=ema)
    keras_outputs = model(inputs, training=False)
    keras_outputs = np.asarray(keras_outputs)
    max_abs, max_rel = compare(legacy_outputs, keras_outputs)
    return VerifyReport(output_tensor=output_tensor, shape=tuple(legacy_outputs.shape),
                        max_abs_diff=max_abs, max_rel_diff=max_rel, tolerance=tolerance,
                        batch_size=batch_size, seed=seed)
