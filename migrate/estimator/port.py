"""`port`: a canned Estimator's model_dir (or export) in; Keras code, its table and weights out.

The Estimator is read from its graph (`spec.read_estimator`), written as
Keras code and a mapping table (`keras_code`), and its weights converted by
the normal pipeline into the same output directory, so that

    import migrate, model      # DIR/model.py
    migrate.restore(model.build(), DIR)

fills the ported model. The code is run here, from the text written, to
build the model the conversion fills: what is converted is what the file
builds.
"""

import dataclasses
import importlib.util
import os
import tempfile

from migrate import files
from migrate import pipeline
from migrate.errors import CheckpointError
from migrate.estimator import keras_code
from migrate.estimator import spec as spec_lib
from migrate.estimator import training_graph
from migrate.estimator.columns import EstimatorError
from migrate.mapping.table import MappingTable
from migrate.options import ConversionOptions
from migrate.source import meta_graph
from migrate.verify_settings import VerifySettings

ASSETS_DIRECTORY = "assets"
# An export's signature with the logits and probabilities (or predictions) the
# ported model returns; its default one classifies (classes, scores).
PREDICT_SIGNATURE = "predict"


@dataclasses.dataclass
class PortReport:
    """What `port` wrote.

    Attributes:
        estimator: the Estimator's class name, e.g. `DNNClassifier`.
        spec: the `spec.EstimatorSpec` read from the graph.
        conversion: the `ConversionReport` of the weights.
        output: the output directory.
    """

    estimator: str
    spec: object
    conversion: object
    output: str

    def summary(self):
        spec = self.spec
        lines = [f"ported {self.estimator} -> {self.output}/{keras_code.MODEL_FILE} "
                 f"({keras_code.FACTORY}()), {keras_code.TABLE_FILE} and its weights"]
        if spec.has_dnn:
            names = ", ".join(column.name or '""' for column in spec.dnn_columns)
            lines.append(f"  dnn: hidden units {list(spec.hidden_units)}, {spec.activation}; "
                         f"input layer: {names}")
        if spec.has_linear:
            lines.append(f"  linear: {', '.join(c.name for c in spec.linear_columns)}")
        lines.append(self.conversion.summary())
        if self.conversion.verified is None:
            lines.append("  not verified: written unproven (--noverify, verify=False)")
        return "\n".join(lines)

    def to_json(self):
        spec = self.spec
        return {"estimator": self.estimator, "output": self.output,
                "model": f"{keras_code.MODEL_FILE}:{keras_code.FACTORY}",
                "table": keras_code.TABLE_FILE, "head": spec.head, "units": spec.units,
                "n_classes": spec.n_classes, "hidden_units": list(spec.hidden_units),
                "activation": spec.activation,
                "dnn_columns": [_column_json(c) for c in spec.dnn_columns],
                "linear_columns": [_column_json(c) for c in spec.linear_columns],
                "conversion": self.conversion.to_json()}


def _column_json(column):
    found = {"name": column.name, "kind": column.kind}
    if column.categorical is not None:
        found["categorical"] = column.categorical.kind
    return found


def read_spec(checkpoint, *, graph=None, vocabulary_dirs=()):
    """Returns the `EstimatorSpec` of an opened checkpoint (model_dir or export).

    `graph`: its `source_graph`, when the caller holds it.
    """
    graph = graph if graph is not None else source_graph(checkpoint)
    directories = list(vocabulary_dirs)
    feature_names = {}
    meta_graph = getattr(checkpoint.artifact, "meta_graph", None)
    if meta_graph is not None:
        # An export carries its vocabulary files in assets/, and its signatures
        # name the raw features' placeholders.
        directories.append(files.join(checkpoint.prefix, ASSETS_DIRECTORY))
        for signature in meta_graph.signature_def.values():
            feature_names.update({info.name: key for key, info in signature.inputs.items()})
    return spec_lib.read_estimator(graph, checkpoint.variables,
                                   vocabulary_dirs=tuple(directories),
                                   feature_names=feature_names)


def source_graph(checkpoint):
    """The Estimator's graph: the checkpoint's own (its `.meta`, an export's), else the
    `graph.pbtxt` an Estimator writes in its model_dir."""
    if checkpoint.graph is not None:
        return checkpoint.graph
    graph_def = meta_graph.text_graph_def(checkpoint.prefix)
    if graph_def is None:
        raise EstimatorError(
            f"{checkpoint.prefix} has no .meta and its directory no "
            f"{meta_graph.TEXT_GRAPH_FILE}: the graph is what says which Estimator it is. "
            f"Expected an Estimator model_dir or export.")
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    return graph


def newest_export(path):
    """For an export base (`export/NAME` holding `<timestamp>/saved_model.pb`), the newest export.

    Anything else is returned unchanged.

    Example:

    >>> newest_export("model_dir")
    'model_dir'
    """
    if not isinstance(path, str) or not files.is_directory(path) or files.exists(
            files.join(path, "saved_model.pb")):
        return path
    stamps = [name for name in files.listdir(path)
              if name.isdigit() and files.exists(files.join(path, name, "saved_model.pb"))]
    return files.join(path, max(stamps, key=int)) if stamps else path


def model_module(code):
    """Imports `model.py`'s text as the module a user imports and returns it (its `build`
    builds the model).

    The text is written to a temporary `model.py` and imported from there, as
    `--model=module:callable` imports a user's module: the toolkit never
    evaluates text of its own either.
    """
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, keras_code.MODEL_FILE)
        with open(path, "w", encoding="utf-8") as file:
            file.write(code)
        spec = importlib.util.spec_from_file_location("model", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def open_source(source, options=None):
    """Opens what `port` reads: a model_dir or checkpoint prefix, or an export (the newest of
    an export base), an export with its `predict` signature unless `options` name one.

    Example:

        checkpoint = open_source("export/example")   # export/example/<newest>, `predict`
    """
    options = options or ConversionOptions()
    source = newest_export(source)
    if options.signature is not None:
        return pipeline.open_checkpoint(source, options)
    try:
        return pipeline.open_checkpoint(
            source, dataclasses.replace(options, signature=PREDICT_SIGNATURE))
    except CheckpointError as error:
        if error.option != "signature":
            raise
    # An export without one: its default signature, which verification may refuse.
    return pipeline.open_checkpoint(source, options)


def proof_settings(checkpoint, spec, settings=None, *, graph=None, vocabulary_dirs=()):
    """Returns the `VerifySettings` that prove a port of `checkpoint`.

    An export is run through its signature, which names the raw features
    (or the serialized `tf.train.Example`s) and the outputs. A model_dir's
    training graph names neither: its outputs are the head's
    (`training_graph.compared_outputs`), and each raw feature is fed where
    the training graph dequeued it (`training_graph.feature_inputs`);
    vocabulary files come from `vocabulary_dirs`.

    Args:
        checkpoint: the opened `LegacyCheckpoint`.
        spec: its `EstimatorSpec`.
        settings: a `VerifySettings` (rows, batch, seed, tolerance) to start
            from; the defaults when None. Tensors it names are kept.
        graph: its `source_graph`, when the caller holds it.
        vocabulary_dirs: as for `port`.

    Raises:
        EstimatorError: a model_dir whose graph cannot be fed (which tensor
            is which feature, or where the logits are, cannot be told).
    """
    settings = settings or VerifySettings()
    if checkpoint.artifact is not None:
        return settings
    graph = graph if graph is not None else source_graph(checkpoint)
    changes = {"asset_dirs": tuple(settings.asset_dirs) + tuple(vocabulary_dirs)}
    if settings.output_tensor is None:
        changes["output_pairs"] = outputs = training_graph.compared_outputs(graph, spec)
    else:
        outputs = settings.compared_outputs()
    if not settings.input_tensors:
        pairs = training_graph.feature_inputs(graph, spec, outputs)
        if all(key for key, _ in pairs):
            changes["input_pairs"] = pairs
        else:  # contrib.learn's one feature, named "": fed by the one tensor found.
            changes["input_tensors"] = tuple(name for _, name in pairs)
    return dataclasses.replace(settings, **changes)


def port(source, output, *, overwrite=False, vocabulary_dirs=(), verify=True, options=None,
         show_progress=False):
    """Writes a canned Estimator as Keras code, a mapping table and converted weights, proven.

    Before the output is put in place, the ported model (restored from it) and
    the Estimator's own graph run on the same raw rows (`--inputs` rows, or rows
    generated from the graph: every vocabulary word, out-of-vocabulary values,
    a number in every bucket), and their logits and probabilities (regressors:
    predictions) must agree within the tolerance: an export through its
    `predict` signature, a model_dir through its training graph, fed where it
    dequeued its features (see `proof_settings`). A port that fails writes
    nothing (`VerificationError`).

    Args:
        source: an Estimator model_dir (its newest checkpoint and `.meta`, or
            `graph.pbtxt`: its variables restored by name), a checkpoint
            prefix in one, one of its exports (a SavedModel directory, or the
            export base holding them by timestamp: the newest), or an opened
            `LegacyCheckpoint`.
        output: the output directory; it must not exist unless `overwrite`.
        overwrite: replace an existing output directory.
        vocabulary_dirs: directories holding vocabulary files the graph names
            by a path that does not exist here (an export's `assets/` is
            searched anyway).
        verify: prove the port (the default); False writes it unproven.
        options: a `ConversionOptions` (exports; `verify` holds the rows,
            batch, seed and tolerance of the verification); the defaults when None.
        show_progress: print the conversion's progress to standard error.

    Returns:
        A `PortReport`; `report.conversion.verified` holds the verification.

    Raises:
        EstimatorError: not a canned Estimator, or a column without a Keras
            equivalent (named), or a vocabulary file that is not here, or a
            model_dir whose graph verification cannot feed.
        VerificationError: the ported model's outputs differ from the
            Estimator's (the output named); nothing was written unless
            `options.verify.keep_failed`.
        CheckpointError, OutputError, PlanError: as `migrate.convert`.

    Example:

        report = port("model_dir", "ported")
        print(report.summary())
    """
    options = options or ConversionOptions()
    checkpoint = open_source(source, options)
    graph = source_graph(checkpoint)
    spec = read_spec(checkpoint, graph=graph, vocabulary_dirs=vocabulary_dirs)
    options = dataclasses.replace(options, verify=proof_settings(
        checkpoint, spec, options.verify, graph=graph,
        vocabulary_dirs=vocabulary_dirs) if verify else None)
    label = str(checkpoint.prefix).rstrip("/")
    code, rules = keras_code.write_model_code(spec, source=label)
    table_text = keras_code.write_table(spec, rules, source=label,
                                        variables=checkpoint.variables)
    table = MappingTable.from_text(table_text, origin=keras_code.TABLE_FILE)
    factory = model_module(code).build
    conversion = pipeline.convert(
        checkpoint, table, factory, output, options=options, overwrite=overwrite,
        show_progress=show_progress, fill_model=True,
        model_name=f"{keras_code.MODEL_FILE}:{keras_code.FACTORY}",
        extra_files={keras_code.MODEL_FILE: code.encode("utf-8"),
                     keras_code.TABLE_FILE: table_text.encode("utf-8")})
    return PortReport(spec.kind, spec, conversion, str(output))
