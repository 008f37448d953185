"""The legacy graph of a SavedModel or a frozen GraphDef, as verification runs it.

A checkpoint's graph is its `.meta`, restored by its own Saver
(`parity.run_legacy`). A TF1 SavedModel's is the MetaGraphDef chosen by tag
set, restored from its `variables/` checkpoint, and its SignatureDef names the
inputs and outputs so that nobody has to; a frozen GraphDef runs as it is,
with nothing to restore, fed as a `.meta`'s graph is.
"""

import dataclasses

from migrate.errors import ArgumentError
from migrate.errors import CheckpointError
from migrate.source import locate
from migrate.source.checkpoint import LegacyCheckpoint


@dataclasses.dataclass(frozen=True)
class LoadedGraph:
    """A legacy graph ready to run.

    Attributes:
        graph: the `tf.Graph`.
        saver: the `tf.compat.v1.train.Saver` restoring its variables, or
            None when it has none (a frozen graph).
        restore_path: what the saver restores from, or None.
        origin: the source, for messages.
    """

    graph: object
    saver: object
    restore_path: str | None
    origin: str


def source_of(checkpoint):
    """Returns what verification runs for `checkpoint`.

    Args:
        checkpoint: a path (checkpoint prefix or directory, SavedModel
            directory, frozen GraphDef), or a `LegacyCheckpoint`.

    Returns:
        The opened `LegacyCheckpoint` of a SavedModel or frozen GraphDef
        (its tag set and signature as opened), or a checkpoint's prefix.

    Example:

        source = source_of("export/1712345678")  # a LegacyCheckpoint with its signature
    """
    if isinstance(checkpoint, LegacyCheckpoint):
        return checkpoint if checkpoint.artifact is not None else checkpoint.prefix
    kind, _ = locate.source_kind(checkpoint)
    if kind == locate.KIND_CHECKPOINT:
        return locate.resolve_prefix(checkpoint)
    return LegacyCheckpoint.open(checkpoint)


def load(source, *, ema=False):
    """Imports a SavedModel's or frozen GraphDef's graph; None for a checkpoint prefix.

    Args:
        source: what `source_of` returned.
        ema: restore moving averages (a frozen graph has none to restore).

    Returns:
        A `LoadedGraph`, or None when `source` is a checkpoint prefix (whose
        `.meta` `parity.run_legacy` imports itself).

    Raises:
        CheckpointError: the graph cannot be imported, or `ema` for a frozen
            graph (`option` is `ema`).
    """
    if not isinstance(source, LegacyCheckpoint):
        return None
    artifact = source.artifact
    restore_path = getattr(artifact, "variables_prefix", None)
    if ema and restore_path is None:
        raise CheckpointError(
            f"The {artifact.description} holds its weights as constants, without moving "
            f"averages to restore in their place. Expected ema=False. Received: ema=True",
            option="ema")
    graph, saver = artifact.import_graph()
    return LoadedGraph(graph=graph, saver=saver, restore_path=restore_path,
                       origin=artifact.description)


def signature_settings(source, settings, keras_inputs, keras_outputs):
    """Returns `settings` with a SavedModel signature's tensors where they name none.

    The signature's inputs are fed to the Keras inputs named like their keys
    (in the Keras model's order), or, one input each, as they are; the output
    compared is the one whose key names a Keras output, or the only one.

    Args:
        source: what `source_of` returned.
        settings: a `VerifySettings`.
        keras_inputs: `inputs.keras_input_names(model)`.
        keras_outputs: the Keras model's output names.

    Returns:
        A `VerifySettings` naming its output tensor.

    Raises:
        ArgumentError: no output tensor is named and no signature names one
            (or the signature's outputs cannot be told apart).

    Example:

        settings = signature_settings(source, VerifySettings(), [("images", "float32")],
                                      ["logits"])
        settings.output_tensor  # 'logits/BiasAdd:0', from serving_default
    """
    artifact = getattr(source, "artifact", None)
    signature = getattr(artifact, "signature", None)
    if signature is None:
        if settings.output_tensor is None:
            which = ""
            if hasattr(artifact, "signature_names"):
                present = ", ".join(artifact.signature_names)
                which = (f" (the signatures of the {artifact.description}, {present}, include "
                         f"no default)" if present else
                         f" (the {artifact.description} has no signature)")
            raise ArgumentError(f"Verification compares one output of the legacy graph{which}. "
                                f"Expected output_tensor, such as 'logits:0'. Received: "
                                f"output_tensor=None", option="output_tensor")
        return settings
    changes = {}
    if settings.output_tensor is None:
        changes["output_tensor"] = _signature_output(signature, keras_outputs)
    if not settings.input_tensors:
        changes["input_tensors"] = _signature_inputs(signature, [name for name, _ in keras_inputs])
    return dataclasses.replace(settings, **changes) if changes else settings


def _signature_output(signature, keras_outputs):
    outputs = signature.outputs
    for name in keras_outputs:
        if name in outputs:
            return outputs[name]
    if len(outputs) == 1:
        return next(iter(outputs.values()))
    raise ArgumentError(
        f"The signature {signature.name!r} has {len(outputs)} outputs and none is named like "
        f"the Keras model's outputs ({', '.join(keras_outputs) or 'unnamed'}). Expected "
        f"output_tensor naming one of {', '.join(f'{key}={name}' for key, name in outputs.items())}"
        f". Received: output_tensor=None", option="output_tensor")


def _signature_inputs(signature, keras_names):
    inputs = signature.inputs
    if set(keras_names) <= set(inputs) and len(keras_names) == len(inputs):
        return tuple(inputs[name] for name in keras_names)
    if len(inputs) == len(keras_names) == 1:
        return tuple(inputs.values())
    # Inputs the Keras model lacks (keep_prob) must be fed; the placeholders
    # found in the graph decide, as for a checkpoint's `.meta`.
    return ()


def keras_output_names(model):
    """Returns the names of a Keras model's outputs (their layers' names), possibly empty."""
    names = getattr(model, "output_names", None)
    if names:
        return list(names)
    outputs = getattr(model, "outputs", None) or []
    return [str(getattr(tensor, "name", "")).split(":")[0].split("/")[0] for tensor in outputs]
