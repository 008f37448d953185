"""Numerical parity: run the legacy graph and the Keras model on one seeded batch and compare."""

import dataclasses

import numpy as np

from migrate.errors import ArgumentError
from migrate.errors import ModelError
from migrate.verification import inputs as inputs_lib
from migrate.verification import layers as layers_lib
from migrate.verification import legacy_run
from migrate.verify_settings import DEFAULT_BATCH_SIZE
from migrate.verify_settings import DEFAULT_TOLERANCE
from migrate.verify_settings import VerifySettings


@dataclasses.dataclass
class VerifyReport:
    """The comparison of legacy and converted outputs.

    `max_rel_diff` is `max|legacy - keras| / max|legacy|` over the whole
    output: a scale-aware figure that does not blow up where single outputs
    are near zero.

    Attributes:
        inputs: `{placeholder: {"shape", "dtype", "keras_input"}}` of what was fed.
        layers: the layer-by-layer comparison (`LayerDiff.to_json()` each),
            when asked for or when parity fails; None when not run.
        first_divergent_layer: the first Keras layer whose output differs
            beyond the tolerance, or None.
        batch_size: the rows actually fed (a placeholder of fixed batch size,
            or an inputs file, may feed other than the settings' batch size).
        dropout_off: the legacy graph's dropout scopes whose constant keep
            probability was set to 1 (`legacy_dropout="off"`).
        squeezed: how the outputs were compared when their shapes differed
            only in size-1 axes (`[N, 1, 1, 1000]` against `[N, 1000]`), else None.
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
    dropout_off: list = dataclasses.field(default_factory=list)
    squeezed: str | None = None

    @property
    def passed(self):
        return bool(self.max_rel_diff <= self.tolerance)

    def summary(self):
        verdict = "PASS" if self.passed else "FAIL"
        text = (f"verify {verdict}: {self.output_tensor} {list(self.shape)} max abs diff "
                f"{self.max_abs_diff:.3g}, max relative diff {self.max_rel_diff:.3g} "
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
                "dropout_off": list(self.dropout_off), "squeezed": self.squeezed}


def compare(legacy_outputs, keras_outputs):
    """Returns `(max_abs_diff, max_rel_diff)` of two output arrays.

    Raises:
        ModelError: the shapes differ.

    Example:

    >>> compare([1.0, -2.0], [1.0, -1.0])
    (1.0, 0.5)
    """
    legacy_outputs = np.asarray(legacy_outputs, np.float64)
    keras_outputs = np.asarray(keras_outputs, np.float64)
    if legacy_outputs.shape != keras_outputs.shape:
        raise ModelError(f"The Keras model's output does not have the legacy output's shape. "
                         f"Expected {list(legacy_outputs.shape)}. "
                         f"Received: keras_output_shape={list(keras_outputs.shape)}")
    max_abs = float(np.max(np.abs(legacy_outputs - keras_outputs))) if legacy_outputs.size else 0.0
    scale = float(np.max(np.abs(legacy_outputs))) if legacy_outputs.size else 0.0
    return max_abs, (max_abs / scale if scale > 0 else max_abs)


def squeeze_to_match(legacy_outputs, keras_outputs):
    """Returns both outputs without their size-1 axes when only those tell their shapes apart.

    A TF1 classifier's logits are often `[N, 1, 1, 1000]` (a 1x1 convolution)
    where the Keras model's are `[N, 1000]`: the same values.

    Returns:
        `(legacy, keras, note)`: the arrays as given and None when the shapes
        are equal or differ otherwise; else both squeezed and a note saying so.

    Example:

    >>> legacy, keras, note = squeeze_to_match(np.zeros([2, 1, 1, 3]), np.zeros([2, 3]))
    >>> legacy.shape, note
    ((2, 3), 'compared after removing size-1 axes: legacy [2, 1, 1, 3], Keras [2, 3]')
    """
    legacy_outputs, keras_outputs = np.asarray(legacy_outputs), np.asarray(keras_outputs)
    if legacy_outputs.shape == keras_outputs.shape:
        return legacy_outputs, keras_outputs, None
    legacy_kept = [size for size in legacy_outputs.shape if size != 1]
    keras_kept = [size for size in keras_outputs.shape if size != 1]
    if legacy_kept != keras_kept:
        return legacy_outputs, keras_outputs, None
    note = (f"compared after removing size-1 axes: legacy {list(legacy_outputs.shape)}, "
            f"Keras {list(keras_outputs.shape)}")
    return legacy_outputs.reshape(legacy_kept), keras_outputs.reshape(keras_kept), note


def settings_from_arguments(*, output_tensor=None, input_tensors=None, feeds=None, inputs=None,
                            input_shapes=None, input_max=None, batch_size=DEFAULT_BATCH_SIZE,
                            seed=0, tolerance=DEFAULT_TOLERANCE, layers=False, input_tensor=None,
                            input_shape=None, keep_failed=False, legacy_dropout=None):
    """Returns the `VerifySettings` that `verify`'s keyword arguments describe.

    `input_tensor` (one name, or names separated by commas) and `input_shape`
    (one shape for all inputs) are the single-input spellings of
    `input_tensors` and `input_shapes`; an integer `input_max` applies to all.
    `keep_failed` matters only to `convert`; `legacy_dropout` None is the
    settings' default ("off").

    Example:

    >>> settings_from_arguments(output_tensor="logits", input_tensor="a:0,b:0").input_tensors
    ('a:0', 'b:0')
    """
    if input_tensor is not None:
        if input_tensors is not None:
            raise ArgumentError(f"Expected input_tensor or input_tensors, not both. Received: "
                                f"input_tensor={input_tensor!r}, input_tensors={input_tensors!r}")
        input_tensors = [name.strip() for name in str(input_tensor).split(",") if name.strip()]
    if input_shape is not None:
        if input_shapes is not None:
            raise ArgumentError(f"Expected input_shape or input_shapes, not both. Received: "
                                f"input_shape={input_shape!r}, input_shapes={input_shapes!r}")
        input_shapes = [input_shape]
    if isinstance(input_max, int) and not isinstance(input_max, bool):
        input_max = [input_max]
    if output_tensor is None:
        raise ArgumentError("Verification compares one output of the legacy graph. Expected "
                            "output_tensor, such as 'logits:0'. Received: output_tensor=None",
                            option="output_tensor")
    return VerifySettings(
        output_tensor=output_tensor, input_tensors=tuple(input_tensors or ()),
        input_shapes=input_shapes, input_max=input_max, feeds=dict(feeds or {}),
        inputs_file=inputs if isinstance(inputs, str) else None, batch_size=batch_size,
        seed=seed, tolerance=tolerance, layers=layers, keep_failed=keep_failed,
        **({} if legacy_dropout is None else {"legacy_dropout": legacy_dropout}))


def verify(checkpoint, model, settings, *, ema=False, plan=None, planned_model=None,
           arrays=None):
    """Compares the legacy graph's output with the Keras model's on one batch.

    The verification stage itself: it takes what the caller opened and
    planned, and never resolves a path or plans again (`migrate.verify` opens
    the checkpoint and plans, then calls this). The legacy graph runs in
    inference mode (`legacy_run.run_legacy`); outputs that differ only in
    size-1 axes are compared without them, and the report says so.

    Args:
        checkpoint: the opened `LegacyCheckpoint`; its graph (the `.meta`
            beside it, or the builder that gave its roles) is run, restored
            by a Saver in graph mode.
        model: the Keras model, with the converted weights restored.
        settings: the `VerifySettings` (what to feed, which output, tolerance,
            `legacy_dropout`).
        ema: evaluate the legacy graph with its moving averages.
        plan: the `ConversionPlan` of the conversion (which TF1 variables and
            rules fed each weight), for the layer-by-layer comparison; None
            when no table is known (the report then says there is none).
        planned_model: the model `plan` was made for, when it is not `model`
            (a fresh model restored from the output): their layers correspond
            one to one.
        arrays: real arrays by tensor name, given as a dict.

    Returns:
        A `VerifyReport`.

    Raises:
        ArgumentError: tensors, feeds or shapes that do not fit the graph.
        CheckpointError: no `.meta` and no builder, the graph cannot be
            restored or run, or it is not deterministic.
        ModelError: the Keras output's shape differs from the legacy one
            (beyond size-1 axes).
    """
    keras_names = inputs_lib.keras_input_names(model)
    feed, legacy_outputs, _, legacy = legacy_run.run_legacy(checkpoint, settings, keras_names,
                                                            ema=ema, arrays=arrays)
    keras_outputs = _keras_outputs(model, feed.keras_inputs())
    legacy_outputs, keras_outputs, squeezed = squeeze_to_match(legacy_outputs, keras_outputs)
    max_abs, max_rel = compare(legacy_outputs, keras_outputs)
    report = VerifyReport(output_tensor=settings.output_tensor, shape=tuple(legacy_outputs.shape),
                          max_abs_diff=max_abs, max_rel_diff=max_rel,
                          tolerance=settings.tolerance, batch_size=_rows_fed(feed, settings),
                          seed=settings.seed, inputs=feed.describe(),
                          dropout_off=list(legacy.dropout_off), squeezed=squeezed)
    if settings.layers or not report.passed:
        layers_lib.attach(report, checkpoint, model, settings, ema=ema, arrays=feed.arrays,
                          plan=plan, planned_model=planned_model)
    return report


def _rows_fed(feed, settings):
    """The batch actually fed: the first Keras input's leading size (a fixed placeholder's)."""
    for name in feed.input_names:
        shape = np.shape(feed.arrays[name])
        if shape:
            return int(shape[0])
    return settings.batch_size


def _keras_outputs(model, keras_inputs):
    return np.asarray(model(keras_inputs, training=False))
