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
from migrate.estimator import keras_code
from migrate.estimator import spec as spec_lib
from migrate.estimator.columns import EstimatorError
from migrate.mapping.table import MappingTable
from migrate.options import ConversionOptions

# The text graph an Estimator writes beside its checkpoints, read when there is no .meta.
GRAPH_TEXT_FILE = "graph.pbtxt"
ASSETS_DIRECTORY = "assets"


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


def read_spec(checkpoint, *, vocabulary_dirs=()):
    """Returns the `EstimatorSpec` of an opened checkpoint (model_dir or export)."""
    graph = checkpoint.graph
    if graph is None:
        graph = _text_graph(checkpoint.prefix)
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


def _text_graph(prefix):
    """The graph.pbtxt an Estimator writes in its model_dir, when the checkpoint has no .meta."""
    path = files.join(os.path.dirname(prefix) or ".", GRAPH_TEXT_FILE)
    if not files.exists(path):
        raise EstimatorError(
            f"{prefix} has no .meta and its directory no {GRAPH_TEXT_FILE}: the graph is what "
            f"says which Estimator it is. Expected an Estimator model_dir or export.")
    import tensorflow as tf
    from google.protobuf import text_format

    graph_def = tf.compat.v1.GraphDef()
    text_format.Parse(files.read_bytes(path).decode("utf-8"), graph_def)
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


def port(source, output, *, overwrite=False, vocabulary_dirs=(), options=None,
         show_progress=False):
    """Writes a canned Estimator as Keras code, a mapping table and converted weights.

    Args:
        source: an Estimator model_dir (its newest checkpoint and `.meta`, or
            `graph.pbtxt`), a checkpoint prefix in one, one of its exports (a
            SavedModel directory, or the export base holding them by
            timestamp: the newest), or an opened `LegacyCheckpoint`.
        output: the output directory; it must not exist unless `overwrite`.
        overwrite: replace an existing output directory.
        vocabulary_dirs: directories holding vocabulary files the graph names
            by a path that does not exist here (an export's `assets/` is
            searched anyway).
        options: a `ConversionOptions` (exports, verification); the defaults when None.
        show_progress: print the conversion's progress to standard error.

    Returns:
        A `PortReport`.

    Raises:
        EstimatorError: not a canned Estimator, or a column without a Keras
            equivalent (named), or a vocabulary file that is not here.
        CheckpointError, OutputError, PlanError: as `migrate.convert`.

    Example:

        report = port("model_dir", "ported")
        print(report.summary())
    """
    options = options or ConversionOptions()
    checkpoint = pipeline.open_checkpoint(newest_export(source), options)
    spec = read_spec(checkpoint, vocabulary_dirs=vocabulary_dirs)
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

