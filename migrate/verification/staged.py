"""Verification inside `convert`: restore a fresh model from the staged output and prove it."""

from migrate.errors import ModelError
from migrate.errors import VerificationError
from migrate.errors import first_line
from migrate.planning import target as target_model
from migrate.verification import parity
from migrate.verification import restore as restore_lib


def fresh_model(model_spec, model, *, checkpoint=None):
    """Returns a new model of the same structure as `model`, to restore the output into.

    Args:
        model_spec: what `convert` was given: `module:callable` text, a
            factory, or a model instance.
        model: the built model the conversion assigned into.
        checkpoint: the legacy checkpoint's prefix, for a factory that sizes
            the model from it (see `planning.target.load_model`).

    Raises:
        ModelError: a model instance that Keras cannot clone (give a factory).
    """
    if isinstance(model_spec, str) or (callable(model_spec)
                                       and not hasattr(model_spec, "trainable_weights")):
        return target_model.load_model(model_spec, checkpoint=checkpoint)
    if target_model.is_keras_3(model):
        import keras
        clone = keras.models.clone_model
    else:
        import tf_keras
        clone = tf_keras.models.clone_model
    try:
        return target_model.load_model(clone(model))
    except (ValueError, TypeError, NotImplementedError) as error:
        raise ModelError(f"Verification restores the output into a fresh model, and this model "
                         f"cannot be cloned: {first_line(error)}. Expected a factory or "
                         f"'module:callable'. Received: model={type(model).__name__}") from None


def verify_staged(checkpoint, model_spec, model, staging, options, plan, *, unwritten_targets=(),
                  legacy=None):
    """Restores the staged output into a fresh model and compares it with the legacy graph.

    Args:
        checkpoint: the opened `LegacyCheckpoint` (a SavedModel's carries its tag
            set and signature).
        model_spec, model: as for `fresh_model`.
        staging: the temporary output directory, checkpoint written.
        options: the `ConversionOptions` (its `verify` settings and `ema`).
        plan: the conversion's `ConversionPlan` (made for `model`), for the
            layer-by-layer comparison.
        unwritten_targets: the model weights the output does not carry (as
            in the `ConversionReport`), named by a failure.
        legacy: the legacy graph `parity.prepare` imported before the
            conversion's work, or None.

    Returns:
        The `VerifyReport`.

    Raises:
        VerificationError: the outputs differ beyond the tolerance and
            `keep_failed` is not set (the staged output is then discarded).
    """
    fresh = fresh_model(model_spec, model, checkpoint=checkpoint.prefix)
    restore_lib.restore(fresh, staging)
    report = parity.verify(checkpoint, fresh, options.verify, ema=options.ema, plan=plan,
                           planned_model=model, legacy=legacy)
    if not report.passed and not options.verify.keep_failed:
        raise failure(report, kept=None, unwritten_targets=unwritten_targets)
    return report


def failure(report, *, kept, unwritten_targets=()):
    """Returns the `VerificationError` for a failed report.

    Args:
        report: the failed `VerifyReport`.
        kept: where the output stays, or None when it was discarded.
        unwritten_targets: model weights the output does not carry (with
            `keep="trainable"`, BatchNorm statistics): the likely cause, so
            the error names them and points at the `keep` option.
    """
    where = f"the output is kept at {kept}" if kept else "nothing was written"
    layer = (f"; first divergent layer {report.first_divergent_layer}"
             if report.first_divergent_layer else "")
    # Kept already: `keep_failed` was given, and pointing at it again would say nothing.
    cause, option = "", None if kept else "keep_failed"
    if unwritten_targets:
        examples = ", ".join(unwritten_targets[:3]) + (", ..." if len(unwritten_targets) > 3
                                                        else "")
        cause = (f"; the output does not carry {len(unwritten_targets)} non-trainable model "
                 f"weight(s) ({examples}), which keep='model_state' carries")
        option = "keep"
    # With several outputs compared, the Keras model's name of the one furthest off too.
    keras_output = next((item["keras_output"] for item in report.outputs
                         if item["output_tensor"] == report.output_tensor
                         and item["keras_output"] is not None), None)
    output = (f"{keras_output} ({report.output_tensor})" if keras_output is not None
              else report.output_tensor)
    return VerificationError(
        f"The converted model's output differs from the legacy graph's ({where}{cause}). "
        f"Expected max relative diff <= {report.tolerance:g}. Received: "
        f"max_rel_diff={report.max_rel_diff:.3g} on {output}{layer}",
        option=option)
