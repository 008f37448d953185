"""The legacy graph that verification runs: from the `.meta` or a builder, in inference mode.

A TF1 graph saved for training often has dropout baked in: `DropoutWrapper
(keep_prob=0.75)` or `tf.nn.dropout(x, 0.5)` with a Python number puts a
constant keep probability (or rate) in the graph, inside an RNN's while loop
where no feed can reach it. Run as saved, such a graph drops units at
inference and never gives the same output twice. Verification compares with
the Keras model at inference, so by default (`legacy_dropout="off"`) a graph
that is not deterministic as saved is imported again from its MetaGraphDef
rewritten: wherever dropout's keep probability is a constant it becomes 1
(its rate 0), and every rewritten dropout is named in the report. Dropout whose probability comes from a placeholder is left for
a feed (`keep_prob:0=1.0`).

The op patterns rewritten, inside functions (while_v2 bodies) too:
- TF 1.x `tf.nn.dropout(x, keep_prob)`: `x / keep_prob * floor(keep_prob +
  uniform)`: the `keep_prob` constant added to the `random_uniform` becomes 1.
- TF 1.13+ and `tf.compat.v1` (rate): `uniform >= rate` selects `x * scale`:
  the `rate` constant becomes 0 and a constant `scale` (`1 / (1 - rate)`) 1.
"""

import dataclasses

import numpy as np

from migrate import files
from migrate.errors import CheckpointError
from migrate.errors import reason
from migrate.source import locate
from migrate.source import meta_graph
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
        saver: a `Saver` over its variables (the `.meta`'s own, or one over
            the builder graph's global variables).
        origin: where the graph came from, for messages (the `.meta` path or
            `builder 'module:callable'`).
        dropout_off: the dropout scopes whose constant keep probability was
            set to 1 (`char/while/dropout`), in graph order.
    """

    graph: object
    saver: object
    origin: str
    dropout_off: list


def load(checkpoint, *, legacy_dropout=LEGACY_DROPOUT_OFF):
    """Imports the legacy graph of an opened checkpoint, ready to be restored and run.

    The builder whose graph gave the checkpoint's roles, when there is one
    (`LegacyCheckpoint.builder`), builds the graph again, with a `Saver` over
    its global variables (which restores V1 and V2 checkpoints alike);
    otherwise the `.meta` beside the checkpoint is imported.

    Args:
        checkpoint: the opened `LegacyCheckpoint`.
        legacy_dropout: `"off"` sets dropout's constant keep probabilities to 1;
            `"as_saved"` runs the graph as saved.

    Returns:
        A `LegacyGraph`.

    Raises:
        CheckpointError: no `.meta` and no builder, or the graph cannot be imported.

    Example:

        legacy = load(migrate.LegacyCheckpoint.open("train/model.ckpt-3"))
        print(legacy.origin, legacy.dropout_off)
    """
    import tensorflow as tf

    if checkpoint.builder is not None:
        origin = f"builder {checkpoint.builder!r}"
        meta_graph_def = _builder_meta_graph(checkpoint.builder)
    elif checkpoint.saved_graph_path is not None:
        origin = checkpoint.saved_graph_path
        meta_graph_def = _read_meta(origin)
    else:
        raise CheckpointError(
            f"Verification runs the legacy graph, so it needs the checkpoint's graph. Expected "
            f"{checkpoint.prefix}{locate.META_SUFFIX}, or a builder (module:callable) that builds "
            f"the graph as the model's code did. Received: checkpoint={checkpoint.prefix!r}, "
            f"builder=None", option="builder")
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
    return LegacyGraph(graph=graph, saver=saver, origin=origin, dropout_off=dropout_off)


def _read_meta(meta_path):
    from tensorflow.core.protobuf import meta_graph_pb2

    meta_graph_def = meta_graph_pb2.MetaGraphDef()
    try:
        meta_graph_def.ParseFromString(files.read_bytes(meta_path))
    except Exception as error:  # google.protobuf.message.DecodeError and I/O errors.
        raise CheckpointError(f"Cannot import {meta_path}: {reason(error)}. Expected a "
                              f"readable MetaGraphDef.") from None
    return meta_graph_def


def _builder_meta_graph(builder):
    """Returns the MetaGraphDef of a builder's graph with a Saver over its global variables."""
    import tensorflow as tf

    graph = meta_graph.builder_graph(builder)
    with graph.as_default():
        saver = tf.compat.v1.train.Saver(
            tf.compat.v1.global_variables(), allow_empty=False)
        return tf.compat.v1.train.export_meta_graph(
            graph=graph, saver_def=saver.as_saver_def(), clear_devices=True)


def neutralize_dropout(graph_def):
    """Sets dropout's constant keep probability to 1 in a GraphDef and its functions, in place.

    Returns:
        The dropout scopes rewritten, in graph order; in a function (a
        while_v2 body) named under the op that calls it (`char/while/dropout`).

    Example:

        scopes = neutralize_dropout(meta_graph_def.graph_def)
    """
    callers = _function_callers(graph_def)
    found = _neutralize_nodes(graph_def.node, "")
    for function in graph_def.library.function:
        where = callers.get(function.signature.name, function.signature.name)
        found += _neutralize_nodes(function.node_def, where + "/")
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


def _neutralize_nodes(nodes, where):
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
