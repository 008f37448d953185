"""Numerical parity: run the legacy graph and the Keras model on one seeded batch and compare."""

import dataclasses

import numpy as np

from migrate.errors import ArgumentError
from migrate.errors import ModelError
from migrate.errors import first_line
from migrate.mapping import class_axis
from migrate.verification import legacy_feed
from migrate.verification import layers as layers_lib
from migrate.verification import legacy_graph
from migrate.verification import legacy_run
from migrate.verify_settings import DEFAULT_BATCH_SIZE
from migrate.verify_settings import DEFAULT_TOLERANCE
from migrate.verify_settings import VerifySettings
from migrate.verify_settings import parse_pairs


@dataclasses.dataclass
class VerifyReport:
    """The comparison of legacy and converted outputs.

    `max_rel_diff` is `max|legacy - keras| / max|legacy|` over the whole
    output: a scale-aware figure that does not blow up where single outputs
    are near zero.

    With several outputs compared, `output_tensor`, `shape` and the figures
    are those of the one furthest off, and `outputs` holds each one's.

    Attributes:
        inputs: `{placeholder: {"shape", "dtype", "keras_input"}}` of what was fed.
        outputs: per compared output, `{"keras_output", "output_tensor",
            "shape", "max_abs_diff", "max_rel_diff", "passed"}` (`keras_output`
            None for a model's one output).
        layers: the layer-by-layer comparison (`LayerDiff.to_json()` each),
            when asked for or when parity fails; None when not run.
        first_divergent_layer: the first Keras layer whose output differs
            beyond the tolerance, or None.
        batch_size: the rows actually fed (a placeholder of fixed batch size,
            or an inputs file, may feed other than the settings' batch size).
        dropout_off: the legacy graph's dropout scopes whose constant keep
            probability was set to 1 (`legacy_dropout="off"`).
        squeezed: how the outputs were compared when their shapes differed
            only in layout (size-1 axes, merged leading axes) or in a
            background class (1001 legacy classes, 1000 Keras ones), else None.
    """

    output_tensor: str
    shape: tuple
    max_abs_diff: float
    max_rel_diff: float
    tolerance: float
    batch_size: int
    seed: int
    inputs: dict = dataclasses.field(default_factory=dict)
    layers: list | None = None
    first_divergent_layer: str | None = None
    layers_note: str | None = None
    outputs: list = dataclasses.field(default_factory=list)
    dropout_off: list = dataclasses.field(default_factory=list)
    squeezed: str | None = None

    @property
    def passed(self):
        return bool(self.max_rel_diff <= self.tolerance)

    def summary(self):
        verdict = "PASS" if self.passed else "FAIL"
        compared = self.outputs if len(self.outputs) > 1 else [{
            "keras_output": None, "output_tensor": self.output_tensor, "shape": self.shape,
            "max_abs_diff": self.max_abs_diff, "max_rel_diff": self.max_rel_diff}]
        figures = "; ".join(
            f"{'' if item['keras_output'] is None else item['keras_output'] + '='}"
            f"{item['output_tensor']} {list(item['shape'])} max abs diff "
            f"{item['max_abs_diff']:.3g}, max relative diff {item['max_rel_diff']:.3g}"
            for item in compared)
        text = (f"verify {verdict}: {figures} "
                f"(tolerance {self.tolerance:g}, batch {self.batch_size}, seed {self.seed}; "
                f"fed {', '.join(self.inputs) or 'nothing'})")
        if self.squeezed:
            text += f"\n{self.squeezed}"
        if self.dropout_off:
            text += (f"\nlegacy graph in inference mode: dropout's constant keep probability set "
                     f"to 1 in {', '.join(self.dropout_off)}")
        if self.layers is not None:
            text += "\n" + layers_lib.table_text(self.layers, self.first_divergent_layer)
        if self.layers_note:
            text += "\n" + self.layers_note
        return text

    def to_json(self):
        document = dataclasses.asdict(self)
        document["passed"] = self.passed
        document["shape"] = list(self.shape)
        return document

    def manifest_entry(self):
        """Returns what a converted output's manifest records under `verified`."""
        return {"inputs": self.inputs, "output_tensor": self.output_tensor,
                "batch": self.batch_size, "seed": self.seed, "max_abs_diff": self.max_abs_diff,
                "max_rel_diff": self.max_rel_diff, "tolerance": self.tolerance,
                "passed": self.passed, "first_divergent_layer": self.first_divergent_layer,
                "outputs": self.outputs, "dropout_off": list(self.dropout_off),
                "squeezed": self.squeezed}


def compare(legacy_outputs, keras_outputs, *, name=None):
    """Returns `(max_abs_diff, max_rel_diff)` of two output arrays (`name`: the legacy one's).

    Raises:
        ModelError: the shapes differ.

    Example:

    >>> compare([1.0, -2.0], [1.0, -1.0])
    (1.0, 0.5)
    """
    legacy_outputs = np.asarray(legacy_outputs, np.float64)
    keras_outputs = np.asarray(keras_outputs, np.float64)
    if legacy_outputs.shape != keras_outputs.shape:
        raise ModelError(f"The Keras model's output does not have the legacy output"
                         f"{' ' + name if name else ''}'s shape. "
                         f"Expected {list(legacy_outputs.shape)}. "
                         f"Received: keras_output_shape={list(keras_outputs.shape)}")
    max_abs = float(np.max(np.abs(legacy_outputs - keras_outputs))) if legacy_outputs.size else 0.0
    scale = float(np.max(np.abs(legacy_outputs))) if legacy_outputs.size else 0.0
    return max_abs, (max_abs / scale if scale > 0 else max_abs)


def squeeze_to_match(legacy_outputs, keras_outputs):
    """Returns both outputs in one shape when they hold the same values laid out alike.

    Two layouts differ only in how the axes are written, never in the order
    of the values (C order), so the comparison stays exact:
    - size-1 axes: a TF1 classifier's logits are often `[N, 1, 1, 1000]` (a
      1x1 convolution) where the Keras model's are `[N, 1000]`;
    - leading axes merged: TF1 sequence models commonly flatten batch and
      time before their softmax (`tf.reshape(outputs, [-1, units])`), giving
      `[N * T, V]` where the Keras model gives `[N, T, V]`; the legacy output
      is compared in the Keras shape when the last axis and the number of
      values agree.

    Returns:
        `(legacy, keras, note)`: the arrays as given and None when the shapes
        are equal or differ otherwise; else both in one shape and a note
        saying how they were compared.

    Example:

    >>> legacy, keras, note = squeeze_to_match(np.zeros([2, 1, 1, 3]), np.zeros([2, 3]))
    >>> legacy.shape, note
    ((2, 3), 'compared after removing size-1 axes: legacy [2, 1, 1, 3], Keras [2, 3]')
    >>> legacy, keras, note = squeeze_to_match(np.zeros([6, 5]), np.zeros([2, 3, 5]))
    >>> legacy.shape, note
    ((2, 3, 5), 'compared with the leading axes merged as in the legacy graph: legacy [6, 5], Keras [2, 3, 5]')
    """
    legacy_outputs, keras_outputs = np.asarray(legacy_outputs), np.asarray(keras_outputs)
    if legacy_outputs.shape == keras_outputs.shape:
        return legacy_outputs, keras_outputs, None
    shapes = f"legacy {list(legacy_outputs.shape)}, Keras {list(keras_outputs.shape)}"
    legacy_kept = [size for size in legacy_outputs.shape if size != 1]
    keras_kept = [size for size in keras_outputs.shape if size != 1]
    if legacy_kept == keras_kept:
        return (legacy_outputs.reshape(legacy_kept), keras_outputs.reshape(keras_kept),
                f"compared after removing size-1 axes: {shapes}")
    trailing = legacy_outputs.shape[1:]
    merged = (legacy_outputs.ndim > 1 and keras_outputs.ndim > legacy_outputs.ndim
              and legacy_outputs.size == keras_outputs.size
              and keras_outputs.shape[keras_outputs.ndim - len(trailing):] == trailing)
    if merged:
        return (legacy_outputs.reshape(keras_outputs.shape), keras_outputs,
                f"compared with the leading axes merged as in the legacy graph: {shapes}")
    return legacy_outputs, keras_outputs, None


def settings_from_arguments(*, output_tensor=None, input_tensors=None, feeds=None, inputs=None,
                            input_shapes=None, input_max=None, batch_size=DEFAULT_BATCH_SIZE,
                            seed=0, tolerance=DEFAULT_TOLERANCE, layers=False, input_tensor=None,
                            input_shape=None, keep_failed=False, keras_feeds=None,
                            legacy_dropout=None, batch_axes=None):
    """Returns the `VerifySettings` that `verify`'s keyword arguments describe.

    `input_tensor` (one name, or names separated by commas) and `input_shape`
    (one shape for all inputs) are the single-input spellings of
    `input_tensors` and `input_shapes`; an integer `input_max` or
    `batch_axes` applies to all. Names written `KERAS=TENSOR` (or a dict
    `{Keras name: tensor}`) pair the Keras model's inputs, or outputs for
    `output_tensor`, with the legacy graph's tensors. `keep_failed` matters
    only to `convert`; `legacy_dropout` None is the settings' default ("off").

    Example:

    >>> settings_from_arguments(output_tensor="logits", input_tensor="a:0,b:0").input_tensors
    ('a:0', 'b:0')
    >>> settings = settings_from_arguments(output_tensor="seq=sequence_output,pool=pooled",
    ...                                    input_tensors={"token_ids": "input_ids"})
    >>> settings.output_pairs, settings.input_pairs
    ((('seq', 'sequence_output:0'), ('pool', 'pooled:0')), (('token_ids', 'input_ids:0'),))
    """
    input_pairs = output_pairs = ()
    if input_tensor is not None:
        if input_tensors is not None:
            raise ArgumentError(f"Expected input_tensor or input_tensors, not both. Received: "
                                f"input_tensor={input_tensor!r}, input_tensors={input_tensors!r}")
        input_pairs = parse_pairs(input_tensor, "input_tensor") or ()
        input_tensors = [] if input_pairs else [
            name.strip() for name in str(input_tensor).split(",") if name.strip()]
    elif isinstance(input_tensors, dict):
        input_pairs, input_tensors = tuple(input_tensors.items()), None
    if isinstance(output_tensor, dict):
        output_pairs, output_tensor = tuple(output_tensor.items()), None
    elif output_tensor is not None:
        output_pairs = parse_pairs(output_tensor, "output_tensor") or ()
        if output_pairs:
            output_tensor = None
    if input_shape is not None:
        if input_shapes is not None:
            raise ArgumentError(f"Expected input_shape or input_shapes, not both. Received: "
                                f"input_shape={input_shape!r}, input_shapes={input_shapes!r}")
        input_shapes = [input_shape]
    if isinstance(input_max, int) and not isinstance(input_max, bool):
        input_max = [input_max]
    if isinstance(batch_axes, int) and not isinstance(batch_axes, bool):
        batch_axes = [batch_axes]
    # Without output_tensor, a SavedModel's signature names the output
    # (`legacy_graph.signature_settings`); other sources refuse it there.
    return VerifySettings(
        output_tensor=output_tensor, input_tensors=tuple(input_tensors or ()),
        input_pairs=input_pairs, output_pairs=output_pairs, keras_feeds=dict(keras_feeds or {}),
        input_shapes=input_shapes, input_max=input_max, batch_axes=batch_axes,
        feeds=dict(feeds or {}),
        inputs_file=inputs if isinstance(inputs, str) else None, batch_size=batch_size,
        seed=seed, tolerance=tolerance, layers=layers, keep_failed=keep_failed,
        **({} if legacy_dropout is None else {"legacy_dropout": legacy_dropout}))


def prepare(checkpoint, model, settings, *, ema=False, arrays=None):
    """Checks that verification `settings` fit the legacy graph and `model`, running nothing.

    A conversion calls this before it reads any weight, so settings that
    cannot work (an output tensor the graph lacks, a placeholder without a
    feed, a shape that cannot be guessed) are refused first; what it returns
    goes to `verify(..., legacy=)`, which does not import the graph again.

    Args:
        checkpoint, model, settings, ema, arrays: as for `verify` (`model`
            only gives its inputs' and outputs' names).

    Returns:
        The imported `legacy_graph.LegacyGraph`.

    Raises:
        ArgumentError: tensors, feeds or shapes that do not fit the graph.
        CheckpointError: no `.meta` and no builder, or the graph cannot be imported.
    """
    keras_names = legacy_feed.keras_input_names(model)
    settings = _with_signature(checkpoint, model, settings, keras_names)
    return legacy_run.prepare(checkpoint, settings, keras_names, ema=ema, arrays=arrays)


def _with_signature(checkpoint, model, settings, keras_names):
    output_groups = keras_output_names(model)
    return legacy_graph.signature_settings(
        checkpoint, settings, keras_names,
        [name for names, _ in output_groups for name in sorted(names)], output_groups)


def verify(checkpoint, model, settings, *, ema=False, plan=None, planned_model=None,
           arrays=None, legacy=None):
    """Compares the legacy graph's output with the Keras model's on one batch.

    The verification stage itself: it takes what the caller opened and
    planned, and never resolves a path or plans again (`migrate.verify` opens
    the checkpoint and plans, then calls this). The legacy graph runs in
    inference mode (`legacy_run.run_legacy`); outputs that differ only in
    size-1 axes are compared without them, legacy logits of 1001 classes
    against 1000 without the background class 0, and the report says so.

    Args:
        checkpoint: the opened `LegacyCheckpoint`; its graph (the `.meta`
            beside it, or the builder that gave its roles) is run, restored
            by a Saver in graph mode.
        model: the Keras model, with the converted weights restored.
        settings: the `VerifySettings` (what to feed, which outputs, with
            pairs naming Keras inputs and outputs, tolerance, `legacy_dropout`).
        ema: evaluate the legacy graph with its moving averages.
        plan: the `ConversionPlan` of the conversion (which TF1 variables and
            rules fed each weight), for the layer-by-layer comparison; None
            when no table is known (the report then says there is none).
        planned_model: the model `plan` was made for, when it is not `model`
            (a fresh model restored from the output): their layers correspond
            one to one.
        arrays: real arrays by tensor name, given as a dict.
        legacy: the graph `prepare` imported for these settings, or None.

    Returns:
        A `VerifyReport`.

    Raises:
        ArgumentError: tensors, feeds or shapes that do not fit the graph.
        CheckpointError: no `.meta` and no builder, the graph cannot be
            restored or run, or it is not deterministic.
        ModelError: the Keras output's shape differs from the legacy one
            (beyond size-1 axes).
    """
    keras_names = legacy_feed.keras_input_names(model)
    settings = _with_signature(checkpoint, model, settings, keras_names)
    feed, legacy_outputs, _, legacy = legacy_run.run_legacy(checkpoint, settings, keras_names,
                                                            ema=ema, arrays=arrays, legacy=legacy)
    keras_result = _run_keras(model, feed.keras_inputs(by_name=legacy_feed.takes_dict(model)))
    compared, notes = [], []
    for (keras_output, tensor), legacy_output in zip(settings.compared_outputs(),
                                                     legacy_outputs):
        keras_value = (np.asarray(keras_result) if keras_output is None
                       else keras_output_named(model, keras_result, keras_output))
        legacy_output, background = class_axis.without_background_class(legacy_output,
                                                                         keras_value)
        legacy_output, keras_value, note = squeeze_to_match(legacy_output, keras_value)
        for text in (background, note):
            if text:
                notes.append(text if len(legacy_outputs) == 1 else f"{tensor}: {text}")
        max_abs, max_rel = compare(legacy_output, keras_value, name=tensor)
        compared.append({"keras_output": keras_output, "output_tensor": tensor,
                         "shape": list(np.shape(legacy_output)), "max_abs_diff": max_abs,
                         "max_rel_diff": max_rel, "passed": bool(max_rel <= settings.tolerance)})
    worst = max(compared, key=lambda item: item["max_rel_diff"])
    report = VerifyReport(output_tensor=worst["output_tensor"], shape=tuple(worst["shape"]),
                          max_abs_diff=worst["max_abs_diff"], max_rel_diff=worst["max_rel_diff"],
                          tolerance=settings.tolerance, batch_size=_rows_fed(feed, settings),
                          seed=settings.seed, inputs=feed.describe(), outputs=compared,
                          dropout_off=list(legacy.dropout_off),
                          squeezed="; ".join(notes) or None)
    if settings.layers or not report.passed:
        layers_lib.attach(report, checkpoint, model, settings, ema=ema, arrays=feed.arrays,
                          plan=plan, planned_model=planned_model)
    return report


def _rows_fed(feed, settings):
    """The batch actually fed: the first Keras input's size on its batch axis (a fixed
    placeholder's, or axis 1 of a time-major one)."""
    for name in feed.input_names:
        rows = feed.rows(name)
        if rows is not None:
            return rows
    return settings.batch_size


def _run_keras(model, keras_inputs):
    """Runs the Keras model; its errors become one `ModelError` line."""
    try:
        return model(keras_inputs, training=False)
    except Exception as error:  # Keras's and TensorFlow's many errors, translated.
        raise ModelError(f"The Keras model failed on the fed inputs: {first_line(error)}. "
                         f"Expected inputs that fit it. Received: inputs of shapes "
                         f"{_shapes(keras_inputs)}") from None


def _shapes(structure):
    if isinstance(structure, dict):
        return {name: list(np.shape(value)) for name, value in structure.items()}
    if isinstance(structure, (list, tuple)):
        return [list(np.shape(value)) for value in structure]
    return list(np.shape(structure))


def keras_output_names(model):
    """Returns `[(names, key)]` for each output: what may name it, and how to take it.

    An output is named by its dict key, its index, or its layer's name; `key`
    takes it from what the model returns (a dict key, or an index).

    Example:

        keras_output_names(backbone)[0][0]  # {"pooled_output", "0", "pooled_dense"}
    """
    try:
        structure = model.output
    except (AttributeError, ValueError):  # Not functional: the dict keys of a call only.
        return []
    items = (list(structure.items()) if isinstance(structure, dict)
             else list(enumerate(structure if isinstance(structure, (list, tuple))
                                 else [structure])))
    found = []
    for index, (key, tensor) in enumerate(items):
        names = {str(key), str(index)}
        history = getattr(tensor, "_keras_history", None)
        if history is not None:
            # Keras 3's history starts with the operation, tf_keras's with the layer.
            names.add(history[0].name)
        found.append((names, key))
    return found


def keras_output_named(model, result, name):
    """Returns the Keras model's output called `name` (a dict key, layer name or index) in
    `result`, what the model returned.

    Raises:
        ArgumentError: no output is called `name`; the message lists them.
    """
    for names, key in keras_output_names(model):
        if name in names:
            if isinstance(result, dict):
                return np.asarray(result[key])
            return np.asarray(result[key] if isinstance(result, (list, tuple)) else result)
    if isinstance(result, dict) and name in result:
        return np.asarray(result[name])
    if not isinstance(result, dict) and name.isdigit():
        values = result if isinstance(result, (list, tuple)) else [result]
        if int(name) < len(values):
            return np.asarray(values[int(name)])
    known = [" or ".join(sorted(names, key=lambda text: (text.isdigit(), text)))
             for names, _ in keras_output_names(model)]
    if not known:
        known = list(result) if isinstance(result, dict) else [str(index) for index in range(
            len(result) if isinstance(result, (list, tuple)) else 1)]
    raise ArgumentError(f"The Keras model has no output {name!r}. Expected one of its outputs: "
                        f"{'; '.join(known)}. Received: output_pairs naming {name!r}",
                        option="output_pairs")
