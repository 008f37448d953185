"""The legacy graph that verification runs, in inference mode.

It comes from the `.meta`, a builder's graph, a SavedModel or a frozen GraphDef.

A TF1 graph saved for training often has dropout baked in: `DropoutWrapper
(keep_prob=0.75)` or `tf.nn.dropout(x, 0.5)` with a Python number puts a
constant keep probability (or rate) in the graph, inside an RNN's while loop
where no feed can reach it. Run as saved, such a graph drops units at
inference and never gives the same output twice. Verification compares with
the Keras model at inference, so by default (`legacy_dropout="off"`) a graph
that is not deterministic as saved is imported again, its GraphDef
rewritten: wherever dropout's keep probability is a constant it becomes 1
(its rate 0), and every rewritten dropout is named in the report. Dropout
whose probability comes from a placeholder is left for a feed
(`keep_prob:0=1.0`).

The op patterns rewritten, inside functions (while_v2 bodies) too:
- TF 1.x `tf.nn.dropout(x, keep_prob)`: `x / keep_prob * floor(keep_prob +
  uniform)`: the `keep_prob` constant added to the `random_uniform` becomes 1.
- TF 1.13+ and `tf.compat.v1` (rate): `uniform >= rate` selects `x * scale`:
  the `rate` constant becomes 0 and a constant `scale` (`1 / (1 - rate)`) 1.
"""

import contextlib
import dataclasses

import numpy as np

from migrate import files
from migrate.errors import ArgumentError
from migrate.errors import CheckpointError
from migrate.errors import reason
from migrate.source import graph_outputs
from migrate.source import locate
from migrate.source import meta_graph as meta_graph_lib
from migrate.source.meta_graph import checkpoint_key
from migrate.verification import feature_values
from migrate.verify_settings import LEGACY_DROPOUT_OFF
# Stateful random ops: each run draws new values.
RANDOM_OPS = frozenset({"RandomUniform", "RandomUniformInt", "RandomStandardNormal",
                        "TruncatedNormal", "RandomShuffle", "Multinomial", "RandomGamma",
                        "RandomPoisson", "RandomPoissonV2", "RandomCrop"})
_RANDOM_SCOPE = "/random_uniform"
_ADD_OPS = frozenset({"Add", "AddV2"})
_COMPARE_OPS = frozenset({"GreaterEqual", "Greater"})
# Function-valued attributes of control-flow and call ops (while_v2, cond_v2, calls).
_FUNCTION_ATTRS = ("body", "cond", "then_branch", "else_branch", "f")


@dataclasses.dataclass
class LegacyGraph:
    """The imported legacy graph and what restores it.

    Attributes:
        graph: the `tf.Graph`.
        saver: a `Saver` over its variables (the `.meta`'s own, or the one
            `import_meta_graph` makes over a builder graph's variables).
        restore_path: what the saver restores from (the checkpoint, or a
            SavedModel's `variables/`), or None when there is no saver (a
            frozen graph holds its weights as constants).
        origin: where the graph came from, for messages (the `.meta` path,
            `builder 'module:callable'`, a SavedModel or a frozen graph).
        dropout_off: the dropout scopes whose constant keep probability was
            set to 1 (`char/while/dropout`), in graph order.
        initializers: the ops run after the restore, before the graph is
            (`table_initializers`): its lookup tables' initializers.
        assets: `{asset tensor name: path}`: a SavedModel's asset files
            (vocabularies), fed to the initializers in place of the paths
            of the machine that exported it.
    """

    graph: object
    saver: object
    restore_path: str | None
    origin: str
    dropout_off: list
    initializers: list = dataclasses.field(default_factory=list)
    assets: dict = dataclasses.field(default_factory=dict)


def load(checkpoint, *, legacy_dropout=LEGACY_DROPOUT_OFF, asset_dirs=()):
    """Imports the legacy graph of an opened checkpoint, ready to be restored and run.

    A TF1 SavedModel's graph is its chosen MetaGraphDef, restored from its
    `variables/`; a frozen GraphDef holds its weights, with nothing to
    restore. For a checkpoint, the graph its builder made when it was opened
    (`LegacyCheckpoint.builder`), when there is one, is imported as a copy
    (the builder is not run again, and the checkpoint's own graph stays as
    built), with a `Saver` over its variables (which restores V1 and V2
    checkpoints alike); otherwise the `.meta` beside the checkpoint is
    imported.

    Args:
        checkpoint: the opened `LegacyCheckpoint`.
        legacy_dropout: `"off"` sets dropout's constant keep probabilities to 1;
            `"as_saved"` runs the graph as saved.
        asset_dirs: for a checkpoint's graph, directories searched (by file
            name) for the vocabulary files its table initializers name by a
            path absent here; those found become `assets`.

    Returns:
        A `LegacyGraph`.

    Raises:
        CheckpointError: no `.meta` and no builder, or the graph cannot be imported.

    Example:

        legacy = load(migrate.LegacyCheckpoint.open("train/model.ckpt-3"))
        print(legacy.origin, legacy.dropout_off)
    """
    import tensorflow as tf

    artifact = checkpoint.artifact
    if artifact is not None:
        # The artifact's own GraphDef, rewritten for the import only: a frozen
        # graph's holds the weights, which a copy would hold twice.
        with _dropout_rewritten(artifact.graph_def, legacy_dropout) as dropout_off:
            graph, saver = artifact.import_graph()
        meta_graph = getattr(artifact, "meta_graph", None)
        return LegacyGraph(graph=graph, saver=saver,
                           restore_path=getattr(artifact, "variables_prefix", None),
                           origin=artifact.description, dropout_off=dropout_off,
                           initializers=table_initializers(graph, meta_graph),
                           assets=_asset_paths(meta_graph, getattr(artifact, "directory", None)))
    if checkpoint.builder is not None:
        origin = f"builder {checkpoint.builder!r}"
        with checkpoint.graph.as_default():
            meta_graph_def = tf.compat.v1.train.export_meta_graph(clear_devices=True)
    elif checkpoint.saved_graph_path is not None:
        origin = checkpoint.saved_graph_path
        meta_graph_def = _read_meta(origin)
    else:
        graph_def = meta_graph_lib.text_graph_def(checkpoint.prefix)
        if graph_def is None:
            raise CheckpointError(
                f"Verification runs the legacy graph, so it needs the checkpoint's graph. "
                f"Expected {checkpoint.prefix}{locate.META_SUFFIX} (or the "
                f"{meta_graph_lib.TEXT_GRAPH_FILE} an Estimator writes beside it), or a builder "
                f"(module:callable) that builds the graph as the model's code did. Received: "
                f"checkpoint={checkpoint.prefix!r}, builder=None", option="builder")
        return _text_graph(checkpoint, graph_def, legacy_dropout, asset_dirs)
    dropout_off = []
    if legacy_dropout == LEGACY_DROPOUT_OFF:
        dropout_off = neutralize_dropout(meta_graph_def.graph_def)
    graph = tf.Graph()
    with graph.as_default():
        try:
            saver = tf.compat.v1.train.import_meta_graph(meta_graph_def, clear_devices=True)
        except Exception as error:  # TensorFlow's many import errors, translated.
            raise CheckpointError(f"Cannot import {origin}: {reason(error)}") from None
    if saver is None:
        raise CheckpointError(f"The graph of {origin} has no variables to restore.")
    if checkpoint.builder is not None:
        # The builder's graph has no Saver of its own; the one made over all of
        # its variables would look for those the checkpoint never held (made
        # after the training script's Saver: `learning_rate`, Adam's slots).
        with graph.as_default():
            variables = tf.compat.v1.global_variables()
            saved = [variable for variable in variables
                     if checkpoint_key(variable) in checkpoint.variables]
            if len(saved) < len(variables):
                saver = tf.compat.v1.train.Saver(var_list=saved)
    return LegacyGraph(graph=graph, saver=saver, restore_path=checkpoint.reader_path,
                       origin=origin, dropout_off=dropout_off,
                       initializers=table_initializers(graph, meta_graph_def),
                       assets=_moved_files(graph, asset_dirs))


def _text_graph(checkpoint, graph_def, legacy_dropout, asset_dirs):
    """The `graph.pbtxt` beside a checkpoint without `.meta`, its variables restored by name.

    A bare GraphDef has no Saver and no variable collections: a Saver is made
    over its variable ops that the checkpoint holds, each under its own name
    (a variable saved whole as its one partition, `.../part_0`, under the
    whole variable's).
    """
    import tensorflow as tf

    origin = meta_graph_lib.text_graph_path(checkpoint.prefix)
    dropout_off = []
    if legacy_dropout == LEGACY_DROPOUT_OFF:
        dropout_off = neutralize_dropout(graph_def)
    graph = tf.Graph()
    with graph.as_default():
        try:
            tf.compat.v1.import_graph_def(graph_def, name="")
        except Exception as error:  # TensorFlow's many import errors, translated.
            raise CheckpointError(f"Cannot import {origin}: {reason(error)}") from None
        saved = {}
        for node in graph_def.node:
            if node.op not in meta_graph_lib.VARIABLE_OPS:
                continue
            key = node.name
            whole = meta_graph_lib.PARTITION_NAME.match(key)
            if key not in checkpoint.variables and whole and whole.group(1) in checkpoint.variables:
                stored = checkpoint.variables[whole.group(1)]
                if list(stored.shape) != _node_shape(node):
                    raise CheckpointError(
                        f"{origin} holds {node.name} {_node_shape(node)}, a partition of "
                        f"{whole.group(1)} {list(stored.shape)}; a graph without its .meta "
                        f"restores only whole variables. Expected the .meta beside "
                        f"{checkpoint.prefix}.")
                key = whole.group(1)
            if key in checkpoint.variables:
                variable = graph.get_tensor_by_name(node.name + ":0")
                if node.op == "VarHandleOp":
                    # A Saver takes a resource variable as a read of its handle.
                    variable = tf.raw_ops.ReadVariableOp(resource=variable,
                                                         dtype=node.attr["dtype"].type)
                saved[key] = variable
        if not saved:
            raise CheckpointError(f"The graph of {origin} has no variables to restore.")
        saver = tf.compat.v1.train.Saver(var_list=saved)
    return LegacyGraph(graph=graph, saver=saver, restore_path=checkpoint.reader_path,
                       origin=origin, dropout_off=dropout_off,
                       initializers=table_initializers(graph),
                       assets=_moved_files(graph, asset_dirs))




def _node_shape(node):
    return [dim.size for dim in node.attr["shape"].shape.dim]


# Where a TF1 graph keeps what initializes its lookup tables, in the order
# TensorFlow's SavedModel loader looks: the main op (which includes the table
# initializers), the legacy init op, then the tables' own collection.
_MAIN_OP_KEYS = ("saved_model_main_op", "legacy_init_op")
_INIT_OP_SIGNATURE = "__saved_model_init_op"
_TABLE_INITIALIZERS = "table_initializer"


def table_initializers(graph, meta_graph=None):
    """Returns the ops that initialize the graph's lookup tables, run after the restore.

    A SavedModel's main op (its `__saved_model_init_op` signature, or the
    `saved_model_main_op` / `legacy_init_op` collection), else the
    `table_initializer` collection (`tf.compat.v1.tables_initializer`), else,
    in a graph without collections (a frozen GraphDef), every table
    initializer op. Without them the graph fails with "Table not initialized".

    Args:
        graph: the imported `tf.Graph`.
        meta_graph: the MetaGraphDef it was imported from, or None.

    Returns:
        A list of ops (empty for a graph without lookup tables).
    """
    if meta_graph is not None and _INIT_OP_SIGNATURE in meta_graph.signature_def:
        outputs = meta_graph.signature_def[_INIT_OP_SIGNATURE].outputs
        if outputs:
            name = next(iter(outputs.values())).name
            return [graph.as_graph_element(name.split(":")[0])]
    for key in (*_MAIN_OP_KEYS, _TABLE_INITIALIZERS):
        found = [op for op in graph.get_collection(key) if hasattr(op, "type")]
        if found:
            return found
    return [op for op in graph.get_operations()
            if op.type in feature_values.TABLE_INITIALIZER_OPS]


_ASSETS_COLLECTION = "saved_model_assets"


def _asset_paths(meta_graph, directory):
    """`{tensor name: path in the SavedModel's assets/}` of a MetaGraphDef's asset files.

    Listed in its `asset_file_def`, or (as TF 1.x and tf.estimator wrote
    them) in the `saved_model_assets` collection.
    """
    from tensorflow.core.protobuf import meta_graph_pb2

    if meta_graph is None or directory is None:
        return {}
    assets = list(meta_graph.asset_file_def)
    if _ASSETS_COLLECTION in meta_graph.collection_def:
        for packed in meta_graph.collection_def[_ASSETS_COLLECTION].any_list.value:
            asset = meta_graph_pb2.AssetFileDef()
            if packed.Unpack(asset):
                assets.append(asset)
    return {asset.tensor_info.name: files.join(directory, "assets", asset.filename)
            for asset in assets}


def _moved_files(graph, directories):
    """`{file name tensor: path}` of the table files the graph names by a path absent here.

    A training graph names its vocabulary files by the paths of the machine
    that trained it; each is looked for by file name in `directories`.
    """
    from tensorflow.python.framework import tensor_util

    found = {}
    for op in graph.get_operations():
        if op.type not in feature_values.FILE_INITIALIZERS or not directories:
            continue
        filename = op.inputs[1]
        if filename.op.type != "Const":
            continue
        # Read from the Const itself: `tensor_util.constant_value` would mark the
        # tensor unfeedable, and the path found here is fed to it.
        path = tensor_util.MakeNdarray(filename.op.get_attr("value")).reshape(-1)[0]
        path = path.decode("utf-8") if isinstance(path, bytes) else str(path)
        if files.exists(path):
            continue
        for directory in directories:
            candidate = files.join(directory, path.replace("\\", "/").rsplit("/", 1)[-1])
            if files.exists(candidate):
                found[filename.name] = candidate
                break
    return found


def _read_meta(meta_path):
    from tensorflow.core.protobuf import meta_graph_pb2

    meta_graph_def = meta_graph_pb2.MetaGraphDef()
    try:
        meta_graph_def.ParseFromString(files.read_bytes(meta_path))
    except Exception as error:  # google.protobuf.message.DecodeError and I/O errors.
        raise CheckpointError(f"Cannot import {meta_path}: {reason(error)}. Expected a "
                              f"readable MetaGraphDef.") from None
    return meta_graph_def


@contextlib.contextmanager
def _dropout_rewritten(graph_def, legacy_dropout):
    """Yields `neutralize_dropout`'s scopes (with `LEGACY_DROPOUT_OFF`), then undoes the rewrite."""
    if legacy_dropout != LEGACY_DROPOUT_OFF:
        yield []
        return
    originals = []
    try:
        yield neutralize_dropout(graph_def, originals=originals)
    finally:
        for node, original in originals:
            node.CopyFrom(original)


def neutralize_dropout(graph_def, *, originals=None):
    """Sets dropout's constant keep probability to 1 in a GraphDef and its functions, in place.

    Args:
        graph_def: the GraphDef, changed in place.
        originals: a list to which `(node, copy of the node before the
            change)` is appended for every constant changed, to undo it.

    Returns:
        The dropout scopes rewritten, in graph order; in a function (a
        while_v2 body) named under the op that calls it (`char/while/dropout`).

    Example:

        scopes = neutralize_dropout(meta_graph_def.graph_def)
    """
    originals = [] if originals is None else originals
    callers = _function_callers(graph_def)
    found = _neutralize_nodes(graph_def.node, "", originals)
    for function in graph_def.library.function:
        where = callers.get(function.signature.name, function.signature.name)
        found += _neutralize_nodes(function.node_def, where + "/", originals)
    return found


def _function_callers(graph_def):
    """Maps each library function to the name of an op that calls it (for messages).

    A function called from another function is named under its caller's caller.
    """
    callers = {}

    def visit(nodes, prefix):
        for node in nodes:
            for attr in _FUNCTION_ATTRS:
                if attr in node.attr and node.attr[attr].func.name:
                    callers.setdefault(node.attr[attr].func.name, prefix + node.name)

    visit(graph_def.node, "")
    for _ in range(3):  # Nested loops: a body calling a body.
        for function in graph_def.library.function:
            if function.signature.name in callers:
                visit(function.node_def, callers[function.signature.name] + "/")
    return callers


def _input_node(text):
    """The node name of a NodeDef input (`^ctrl`, `name:0`, or a function's `name:out:0`)."""
    return text.lstrip("^").split(":")[0]


def _scalar_const(node):
    """Returns a float Const node's scalar value, or None."""
    import tensorflow as tf

    if node is None or node.op != "Const":
        return None
    value = tf.make_ndarray(node.attr["value"].tensor)
    if value.size != 1 or not np.issubdtype(value.dtype, np.floating):
        return None
    return float(value.reshape(()))


def _set_const(node, value):
    import tensorflow as tf

    old = tf.make_ndarray(node.attr["value"].tensor)
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.full(old.shape, value, old.dtype)))


def _neutralize_nodes(nodes, where, originals):
    """Rewrites the dropout patterns among one graph's (or function's) nodes; returns their scopes."""
    by_name = {node.name: node for node in nodes}
    scopes = []
    for node in nodes:
        if node.op == "RandomUniform" and _RANDOM_SCOPE + "/" in node.name:
            scope = node.name[:node.name.rindex(_RANDOM_SCOPE + "/")]
            if scope.rsplit("/", 1)[-1].startswith("dropout") and scope not in scopes:
                scopes.append(scope)
    rewritten = []
    for scope in scopes:
        random_prefix = scope + _RANDOM_SCOPE

        def is_random(name):
            return name == random_prefix or name.startswith(random_prefix + "/")

        members = [node for node in nodes if node.name.startswith(scope + "/")]
        changes = []
        for node in members:
            inputs = [_input_node(text) for text in node.input if not text.startswith("^")]
            # One input drawn from the uniform, the other the probability.
            if len(inputs) != 2 or is_random(inputs[0]) == is_random(inputs[1]):
                continue
            probability = by_name.get(inputs[1] if is_random(inputs[0]) else inputs[0])
            value = _scalar_const(probability)
            if value is None:  # Fed (a placeholder) or computed: left for a feed.
                continue
            if node.op in _ADD_OPS:  # TF 1.x: floor(keep_prob + uniform).
                changes.append((probability, 1.0))
            elif node.op in _COMPARE_OPS and is_random(inputs[0]):  # uniform >= rate.
                changes.append((probability, 0.0))
                changes += _scale_consts(members, by_name, is_random, 1.0 / (1.0 - value)
                                         if value < 1 else None)
        changes = [(node, value) for node, value in changes if _scalar_const(node) != value]
        for node, value in changes:
            original = type(node)()
            original.CopyFrom(node)
            originals.append((node, original))
            _set_const(node, value)
        if changes:
            rewritten.append(where + scope)
    return rewritten


def _scale_consts(members, by_name, is_random, scale):
    """The constant `scale` multiplying `x` in the rate pattern (`x * scale`), to be set to 1."""
    if scale is None:
        return []
    found = []
    for node in members:
        if node.op != "Mul":
            continue
        inputs = [_input_node(text) for text in node.input if not text.startswith("^")]
        if any(is_random(name) for name in inputs):
            continue
        for name in inputs:
            value = _scalar_const(by_name.get(name))
            if value is not None and np.isclose(value, scale, rtol=1e-5):
                found.append((by_name[name], 1.0))
    return found


def random_ops(graph, output):
    """Returns the stateful random ops `output` depends on, named where they are.

    Ops inside a while_v2 body (a function) are named under the loop op
    (`char/while/dropout/random_uniform/RandomUniform`); v1 loops keep their
    ops in the graph itself.
    """
    graph_def = graph.as_graph_def()
    functions = {function.signature.name: function for function in graph_def.library.function}
    seen, stack, found = set(), [output.op], []
    called = []
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        if op.type in RANDOM_OPS:
            found.append(op.name)
        for attr in _FUNCTION_ATTRS:
            try:
                function_name = op.get_attr(attr).name
            except (ValueError, AttributeError):
                continue
            called.append((function_name, op.name))
        stack.extend(tensor.op for tensor in op.inputs)
        stack.extend(op.control_inputs)
    visited = set()
    while called:
        function_name, where = called.pop()
        if function_name in visited or function_name not in functions:
            continue
        visited.add(function_name)
        for node in functions[function_name].node_def:
            if node.op in RANDOM_OPS:
                found.append(f"{where}/{node.name}")
            for attr in _FUNCTION_ATTRS:
                if attr in node.attr and node.attr[attr].func.name:
                    called.append((node.attr[attr].func.name, f"{where}/{node.name}"))
    return sorted(found)


def signature_settings(checkpoint, settings, keras_inputs, keras_outputs, keras_output_groups=None):
    """Returns `settings` with a SavedModel signature's tensors where they name none.

    The signature's inputs are fed to the Keras inputs named like their keys
    (in the Keras model's order), or, one input each, as they are; the output
    compared is the one whose key names a Keras output, or the only one.

    Args:
        checkpoint: the opened `LegacyCheckpoint`.
        settings: a `VerifySettings`.
        keras_inputs: `legacy_feed.keras_input_names(model)`.
        keras_outputs: the names of the Keras model's outputs.
        keras_output_groups: for a model of several outputs (a dict, such as
            `logits` and `probabilities`), `[(names, key)]` of each
            (`parity.keras_output_names`): every output the signature has
            under one of its names is compared with it.

    Returns:
        A `VerifySettings` naming its output tensor.

    Raises:
        ArgumentError: no output tensor is named and no signature names one
            (or the signature's outputs cannot be told apart).

    Example:

        settings = signature_settings(checkpoint, VerifySettings(), [("images", "float32")],
                                      ["logits"])
        settings.output_tensor  # 'logits/BiasAdd:0', from serving_default
    """
    artifact = checkpoint.artifact
    signature = getattr(artifact, "signature", None)
    if signature is None:
        if settings.output_tensor is None:
            which = ""
            if hasattr(artifact, "signature_names"):
                present = ", ".join(artifact.signature_names)
                which = (f" (the signatures of the {artifact.description}, {present}, include "
                         f"no default)" if present else
                         f" (the {artifact.description} has no signature)")
            graph = artifact.graph_def if artifact is not None else checkpoint.graph
            candidates = (graph_outputs.describe_candidates(graph_outputs.candidate_outputs(
                graph)) if graph is not None else "")
            raise ArgumentError(f"Verification compares one output of the legacy graph{which}. "
                                f"Expected output_tensor naming "
                                f"{candidates or 'a tensor such as logits:0'}. Received: "
                                f"output_tensor=None", option="output_tensor")
        return settings
    changes = {}
    pairs = _signature_output_pairs(signature, keras_output_groups or [])
    if settings.output_tensor is None and pairs:
        changes["output_pairs"] = pairs
    elif settings.output_tensor is None:
        changes["output_tensor"] = _signature_output(
            signature, keras_outputs, _signatures_naming(artifact, signature, keras_outputs))
    if not settings.input_tensors:
        changes["input_tensors"] = _signature_inputs(signature, [name for name, _ in keras_inputs])
    return dataclasses.replace(settings, **changes) if changes else settings


def _signature_output_pairs(signature, keras_output_groups):
    """`((Keras output, tensor), ...)` of a multi-output model's outputs the signature names.

    A model of one output returned in a dict (`{"predictions": ...}`) is
    compared by its key too: the model returns the dict, not the array.
    """
    if len(keras_output_groups) < 2 and not any(isinstance(key, str)
                                                for _, key in keras_output_groups):
        return ()
    pairs = []
    for names, key in keras_output_groups:
        named = [name for name in sorted(names) if name in signature.outputs]
        if named:
            pairs.append((str(key), signature.outputs[named[0]]))
    return tuple(pairs)


def _signatures_naming(artifact, signature, keras_outputs):
    """The artifact's other signatures with an output named like a Keras output (`predict`)."""
    definitions = getattr(getattr(artifact, "meta_graph", None), "signature_def", {})
    return [name for name, definition in sorted(definitions.items())
            if name != signature.name and set(definition.outputs) & set(keras_outputs)]


def _signature_output(signature, keras_outputs, others=()):
    outputs = signature.outputs
    for name in keras_outputs:
        if name in outputs:
            return outputs[name]
    if len(outputs) == 1:
        return next(iter(outputs.values()))
    # An Estimator's default signature classifies (classes, scores); its
    # `predict` signature has the logits and probabilities a Keras twin returns.
    also = (f", or signature naming {' or '.join(map(repr, others))}, whose outputs are named "
            f"like them" if others else "")
    raise ArgumentError(
        f"The signature {signature.name!r} has {len(outputs)} outputs and none is named like "
        f"the Keras model's outputs ({', '.join(keras_outputs) or 'unnamed'}). Expected "
        f"output_tensor naming one of {', '.join(f'{key}={name}' for key, name in outputs.items())}"
        f"{also}. Received: output_tensor=None", option="output_tensor")


def _signature_inputs(signature, keras_names):
    inputs = signature.inputs
    if set(keras_names) <= set(inputs) and len(keras_names) == len(inputs):
        return tuple(inputs[name] for name in keras_names)
    if len(inputs) == len(keras_names) == 1:
        return tuple(inputs.values())
    # Inputs the Keras model lacks (keep_prob) must be fed; the placeholders
    # found in the graph decide, as for a checkpoint's `.meta`.
    return ()
