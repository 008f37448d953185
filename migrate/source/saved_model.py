"""A TF1 SavedModel (Estimator export, `SavedModelBuilder`, `simple_save`, TF-Hub v1 module).

Its weights are the `variables/variables` checkpoint beside `saved_model.pb`;
the roles come from the collections of one of its MetaGraphDefs (chosen by
tag set), and a SignatureDef names the inputs and outputs that verification
feeds and compares.
"""

import dataclasses

from migrate import files
from migrate.errors import CheckpointError
from migrate.errors import did_you_mean
from migrate.errors import reason
from migrate.source import locate
from migrate.source import meta_graph as meta_graph_lib

SERVE_TAGS = ("serve",)
# A TF-Hub v1 module's graph for inference has the empty tag set.
HUB_TAGS = ()
SERVING_SIGNATURE = "serving_default"
HUB_SIGNATURE = "default"
KIND_SAVED_MODEL = "TF1 SavedModel"
KIND_HUB_MODULE = "TF-Hub v1 module"


@dataclasses.dataclass(frozen=True)
class Signature:
    """A SignatureDef: its name, and its inputs and outputs as `{key: tensor name}`."""

    name: str
    inputs: dict
    outputs: dict


@dataclasses.dataclass(frozen=True)
class SavedModelSource:
    """A TF1 SavedModel directory opened for reading (only its graph file is read).

    Attributes:
        directory: the SavedModel directory.
        kind: `KIND_SAVED_MODEL` or `KIND_HUB_MODULE`.
        tags: the tag set of the MetaGraphDef used, sorted.
        meta_graph: that MetaGraphDef (a protocol buffer).
        signature: the `Signature` verification uses, or None when the
            MetaGraphDef has none of that name.
        signature_names: every signature of the MetaGraphDef.
        variables_prefix: the prefix of its weights' checkpoint.
        default_tags: the tag set asked for by default (`serve`, or the
            empty set for a hub module) when the SavedModel lacks it and its
            only tag set, `tags`, was used instead (`description` says so);
            None when the tag set used was asked for or is the default.

    Example:

        source = open_saved_model("export/1712345678")
        print(source.kind, source.tags, source.signature.outputs)
    """

    directory: str
    kind: str
    tags: tuple
    meta_graph: object
    signature: Signature | None
    signature_names: tuple
    variables_prefix: str
    default_tags: tuple | None = None

    @property
    def description(self):
        tags = f"tags {','.join(self.tags)}" if self.tags else "the empty tag set"
        if self.default_tags is not None:
            tags += (f", its only tag set, used since it has no "
                     f"{','.join(self.default_tags) or 'empty'} tag set")
        return f"{self.kind} {self.directory} ({tags})"

    @property
    def graph_def(self):
        """The chosen MetaGraphDef's GraphDef, which `import_graph` imports (as a frozen graph's)."""
        return self.meta_graph.graph_def

    def files(self):
        return locate.saved_model_files(self.directory)

    def import_graph(self):
        """Returns `(graph, saver)`: the MetaGraphDef imported into a new `tf.Graph`."""
        import tensorflow as tf

        graph = tf.Graph()
        try:
            with graph.as_default():
                saver = tf.compat.v1.train.import_meta_graph(self.meta_graph, clear_devices=True)
        except Exception as error:  # TensorFlow's many import errors, translated.
            raise CheckpointError(
                f"Cannot import the graph of {self.description}: {reason(error)}. Expected a "
                f"MetaGraphDef TensorFlow can import. Received: checkpoint={self.directory!r}"
            ) from None
        return graph, saver


def open_saved_model(directory, *, tags=None, signature=None):
    """Reads a SavedModel's graph file and chooses its MetaGraphDef and signature.

    Args:
        directory: the SavedModel directory.
        tags: the tag set of the MetaGraphDef to use; None: `serve` (the empty
            set for a TF-Hub v1 module), or the only tag set there is.
        signature: the SignatureDef verification uses; None: `serving_default`
            (`default` for a TF-Hub module), or the only one there is.

    Returns:
        A `SavedModelSource`.

    Raises:
        CheckpointError: the graph file cannot be parsed, the SavedModel is a
            TF2 one (an object graph without collections), or it has no
            `variables/` checkpoint.
            No MetaGraphDef has the tag set, or no signature has the name
            (the message lists those present; `option` is `tags` or `signature`).
    """
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    is_hub = files.exists(files.join(directory, locate.HUB_MODULE_FILE))
    kind = KIND_HUB_MODULE if is_hub else KIND_SAVED_MODEL
    proto = saved_model_pb2.SavedModel()
    binary_path, text_path = (files.join(directory, name) for name in locate.SAVED_MODEL_FILES)
    path = binary_path if files.exists(binary_path) else text_path
    try:
        if path == binary_path:
            proto.ParseFromString(files.read_bytes(path))
        else:
            text_format.Parse(files.read_bytes(path).decode("utf-8"), proto)
    except Exception as error:  # DecodeError, ParseError, UnicodeDecodeError, I/O errors.
        raise CheckpointError(
            f"Cannot read {path}: {reason(error)}. Expected a SavedModel protocol buffer. "
            f"Received: checkpoint={directory!r}") from None
    if not proto.meta_graphs:
        raise CheckpointError(f"{path} holds no MetaGraphDef. Expected a SavedModel written by "
                              f"TensorFlow. Received: checkpoint={directory!r}")
    wanted = tuple(sorted(tags)) if tags is not None else (HUB_TAGS if is_hub else SERVE_TAGS)
    present = [tuple(sorted(meta_graph.meta_info_def.tags)) for meta_graph in proto.meta_graphs]
    default_tags = None
    if tags is None and wanted not in present and len(present) == 1:
        # Nothing to choose between: the one graph there is (an export for `train`).
        default_tags, wanted = wanted, present[0]
    if wanted not in present:
        listed = "; ".join(",".join(tag_set) or "(empty)" for tag_set in present)
        raise CheckpointError(
            f"The {kind} {directory} has no MetaGraphDef with tags "
            f"{','.join(wanted) or '(empty)'}. Expected one of the tag sets present: {listed}. "
            f"Received: tags={list(wanted)!r}", option="tags")
    meta_graph = proto.meta_graphs[present.index(wanted)]
    if (not meta_graph_lib.has_variable_collections(meta_graph)
            and meta_graph.HasField("object_graph_def") and meta_graph.object_graph_def.nodes):
        raise CheckpointError(
            f"{directory} is a TF2 SavedModel (tf.saved_model.save or Keras model.save: an "
            f"object graph, no variable collections); it needs no conversion: TF2 loads it "
            f"directly with tf.saved_model.load(path), Keras 3 with "
            f"keras.layers.TFSMLayer(path). Expected a TF1 SavedModel (SavedModelBuilder, "
            f"simple_save, Estimator export_savedmodel). Received: checkpoint={directory!r}")
    variables_prefix = files.join(directory, locate.SAVED_MODEL_VARIABLES)
    if not files.exists(variables_prefix + locate.INDEX_SUFFIX):
        raise CheckpointError(
            f"The {kind} {directory} has no variables/ checkpoint, so it holds no weights to "
            f"convert (a graph with its weights as constants is a frozen GraphDef). Expected "
            f"{variables_prefix}.index and its data files. Received: checkpoint={directory!r}")
    names = tuple(sorted(meta_graph.signature_def))
    chosen = _signature(meta_graph, names, signature, is_hub, directory)
    return SavedModelSource(directory=directory, kind=kind, tags=wanted, meta_graph=meta_graph,
                            signature=chosen, signature_names=names,
                            variables_prefix=variables_prefix, default_tags=default_tags)


def _signature(meta_graph, names, signature, is_hub, directory):
    if signature is None:
        default = HUB_SIGNATURE if is_hub else SERVING_SIGNATURE
        # `__saved_model_init_op` holds the main op, not a model's inputs and outputs.
        callable_names = [name for name in names if not name.startswith("__")]
        if default in names:
            signature = default
        elif len(callable_names) == 1:
            (signature,) = callable_names
        else:
            return None
    if signature not in names:
        raise CheckpointError(
            f"The SavedModel {directory} has no signature {signature!r}."
            f"{did_you_mean(signature, names)} "
            f"Expected one of: {', '.join(names) or 'none'}. Received: signature={signature!r}",
            option="signature")
    definition = meta_graph.signature_def[signature]
    return Signature(name=signature,
                     inputs={key: info.name for key, info in sorted(definition.inputs.items())},
                     outputs={key: info.name for key, info in sorted(definition.outputs.items())})
