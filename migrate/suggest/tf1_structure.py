"""What a `.meta` graph says beyond roles: creation order, partitions, parallel layers."""

import collections
import dataclasses
import re

from migrate import files
from migrate.errors import CheckpointError
from migrate.errors import first_line
from migrate.source import lookups
from migrate.source import vocabulary
from migrate.source.meta_graph import checkpoint_key
from migrate.source.meta_graph import PARTITION_NAME
from migrate.source.meta_graph import VARIABLE_OPS
from migrate.source.meta_graph import collection_keys
from migrate.suggest import dataflow

_READ_OPS = frozenset({"Identity", "ReadVariableOp"})
_CONSTANT_OP = "Const"
# Ops under these scopes read variables to train or save them, not to compute the model.
_NOT_FORWARD = re.compile(r"(^|/)(gradients(_\d+)?|save(_\d+)?|ExponentialMovingAverage)(/|$)")
_GLOBAL_VARIABLES = "variables"


@dataclasses.dataclass
class GraphStructure:
    """Facts read from a `.meta` graph.

    Attributes:
        creation_order: checkpoint keys in the order the graph created them.
        partitions: checkpoint key -> number of partitions it was saved from.
        mod_partitioned: keys looked up with `partition_strategy="mod"`.
        undetermined_partitioned: partitioned keys no lookup in the graph
            shows the strategy of (settled by value).
        transposed_reads: keys the forward graph reads transposed (a
            `tf.transpose`, or a `matmul` with `transpose_a`/`transpose_b` on
            its side): tied weights, such as an embedding reused as the
            output projection.
        ancestors: layer scope -> set of layer scopes whose variables feed it.
        loops: checkpoint key -> the while loops that read the variable (a
            v1 loop's frame, a while_v2 `While` op), for variables read in
            one: a cell given to `bidirectional_dynamic_rnn` for both
            directions has its variables read by two loops.
        vocabulary_oov: key -> K for variables whose rows are looked up by
            vocabulary id with K > 0 out-of-vocabulary buckets after the
            vocabulary (`vocabulary.oov_buckets`).
        uses: checkpoint key -> `dataflow.Use`: what the forward graph does
            with each variable, and where along the data's path.
        outputs: the compared outputs the uses were traced to (empty: none given).
        inputs: `(name, shape, dtype name)` of the placeholders a feed fills
            (not `placeholder_with_default`, not scalars such as `keep_prob`),
            that the outputs depend on (all, when they are not known), in
            graph order; unknown sizes are None.
    """

    creation_order: list
    partitions: dict
    mod_partitioned: set
    ancestors: dict
    undetermined_partitioned: set = dataclasses.field(default_factory=set)
    transposed_reads: set = dataclasses.field(default_factory=set)
    loops: dict = dataclasses.field(default_factory=dict)
    vocabulary_oov: dict = dataclasses.field(default_factory=dict)
    uses: dict = dataclasses.field(default_factory=dict)
    outputs: tuple = ()
    inputs: tuple = ()

    def parallel(self, first, second):
        """True when neither layer feeds the other (parallel branches of the graph)."""
        return (first not in self.ancestors.get(second, ()) and
                second not in self.ancestors.get(first, ()))


def read(meta_path, layer_of, outputs=()):
    """Reads creation order, partitions and layer ancestry from a `.meta` file.

    Args:
        meta_path: path of the MetaGraphDef file.
        layer_of: checkpoint key -> layer scope (None for variables to ignore).
        outputs: names of the compared output tensors (empty: not known).

    Returns:
        A `GraphStructure`.

    Raises:
        CheckpointError: the file cannot be parsed.
    """
    from tensorflow.core.protobuf import meta_graph_pb2


    meta_graph = meta_graph_pb2.MetaGraphDef()
    try:
        meta_graph.ParseFromString(files.read_bytes(meta_path))
    except Exception as error:  # google.protobuf.message.DecodeError and I/O errors.
        raise CheckpointError(
            f"Cannot read the graph in {meta_path}: {first_line(error)}") from None
    return _structure(collection_keys(meta_graph, _GLOBAL_VARIABLES), meta_graph.graph_def,
                      layer_of, outputs)


def from_graph(graph, layer_of, outputs=()):
    """Reads the same facts as `read` from a `tf.Graph` (a `legacy_graphs` builder's).

    Args:
        graph: the `tf.Graph` the checkpoint's variables were defined in.
        layer_of: checkpoint key -> layer scope (None for variables to ignore).
        outputs: names of the compared output tensors (empty: not known).

    Returns:
        A `GraphStructure`.
    """
    import tensorflow as tf


    order = [checkpoint_key(variable) for variable in
             graph.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES)]
    if not order:
        # A frozen graph: its weights are constants, in the order freezing kept.
        order = [op.name for op in graph.get_operations() if op.type == _CONSTANT_OP]
    return _structure(order, graph.as_graph_def(), layer_of, outputs)


def _structure(order, graph_def, layer_of, outputs=()):
    order = list(dict.fromkeys(order))
    nodes = {node.name: node for node in graph_def.node}
    key_of_node = {}
    for node in nodes.values():
        if node.op == _CONSTANT_OP and layer_of(node.name):
            # A frozen graph's weight (a variable's constant keeps its name).
            key_of_node[node.name] = node.name
        elif node.op in VARIABLE_OPS:
            match = PARTITION_NAME.match(node.name)
            key_of_node[node.name] = match.group(1) if match else node.name
    found = lookups.partitioned_variables(graph_def)
    return GraphStructure(
        order, {key: facts.partitions for key, facts in found.items()},
        {key for key, facts in found.items() if facts.strategy == lookups.MOD},
        _layer_ancestors(nodes, key_of_node, layer_of),
        {key for key, facts in found.items() if facts.strategy is None},
        _transposed_reads(nodes, key_of_node), _loops_reading(nodes, key_of_node),
        {key: buckets for key, buckets in vocabulary.oov_buckets(graph_def).items() if buckets},
        dataflow.trace(dataflow.nodes_of_graph_def(graph_def), key_of_node, outputs=outputs),
        tuple(outputs), _inputs_fed(nodes, outputs))


def _inputs_fed(nodes, outputs):
    """`(name, shape, dtype name)` of the data placeholders `outputs` depend on (see
    `GraphStructure.inputs`)."""
    from tensorflow.python.framework import dtypes

    needed = None
    if outputs:
        needed, stack = set(), [name.split(":")[0] for name in outputs]
        while stack:
            name = stack.pop()
            if name in needed or name not in nodes:
                continue
            needed.add(name)
            stack.extend(_inputs(nodes[name]))
    found = []
    for name, node in nodes.items():
        if node.op != "Placeholder" or _NOT_FORWARD.search(name) or (
                needed is not None and name not in needed):
            continue
        shape = node.attr["shape"].shape
        if shape.unknown_rank or not shape.dim:
            continue
        try:
            dtype = dtypes.as_dtype(node.attr["dtype"].type).name
        except TypeError:
            continue
        found.append((name, tuple(None if dim.size < 0 else int(dim.size) for dim in shape.dim),
                      dtype))
    return tuple(found)


_WHILE_OPS = frozenset({"While", "StatelessWhile"})
_ENTER_OPS = frozenset({"Enter", "RefEnter"})


def _loops_reading(nodes, key_of_node):
    """Checkpoint key -> the while loops its variable is read in (only keys read in one)."""
    consumers = collections.defaultdict(list)
    for node in nodes.values():
        for source in _inputs(node):
            consumers[source].append(node)
    found = collections.defaultdict(set)
    for name, key in key_of_node.items():
        stack, seen = [name], set()
        while stack:
            for consumer in consumers[stack.pop()]:
                if consumer.name in seen or _NOT_FORWARD.search(consumer.name):
                    continue
                seen.add(consumer.name)
                if consumer.op in _ENTER_OPS:  # A v1 loop: `rnn/while/while_context`.
                    found[key].add(consumer.attr["frame_name"].s.decode().rsplit("/", 1)[0])
                elif consumer.op in _WHILE_OPS:  # while_v2 takes the variable as an input.
                    found[key].add(consumer.name)
                elif consumer.op in _READ_OPS:
                    stack.append(consumer.name)
    return {key: frozenset(loops) for key, loops in found.items()}


_MATMUL_OPS = frozenset({"MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"})
_TRANSPOSE_FLAGS = {"MatMul": ("transpose_a", "transpose_b")}
_ADJOINT_FLAGS = ("adj_x", "adj_y")
_CONCAT_OPS = frozenset({"ConcatV2", "Concat"})


def _transposed_reads(nodes, key_of_node):
    """Keys of variables the forward graph reads transposed (tied weights)."""

    def variable_behind(text, depth=0):
        name = text.split(":")[0]
        for _ in range(8):
            node = nodes.get(name)
            if node is None:
                return None
            if node.name in key_of_node:
                return key_of_node[node.name]
            if node.op in _CONCAT_OPS and depth == 0:
                # A partitioned variable is read as its parts' reads concatenated.
                values = _inputs(node)[:-1] if node.op == "ConcatV2" else _inputs(node)[1:]
                keys = {variable_behind(value, depth + 1) for value in values}
                return keys.pop() if len(keys) == 1 and len(values) > 1 else None
            if node.op not in _READ_OPS or not _inputs(node):
                return None
            name = _inputs(node)[0]
        return None

    found = set()
    for node in nodes.values():
        if _NOT_FORWARD.search(node.name):
            continue
        inputs = [text for text in node.input if not text.startswith("^")]
        if node.op == "Transpose" and inputs:
            found.add(variable_behind(inputs[0]))
        elif node.op in _MATMUL_OPS:
            flags = _TRANSPOSE_FLAGS.get(node.op, _ADJOINT_FLAGS)
            for flag, text in zip(flags, inputs[:2]):
                if flag in node.attr and node.attr[flag].b:
                    found.add(variable_behind(text))
    found.discard(None)
    return found


def _inputs(node):
    return [text.split(":")[0] for text in node.input if not text.startswith("^")]


def _layer_ancestors(nodes, key_of_node, layer_of):
    layers = sorted({layer for layer in map(layer_of, set(key_of_node.values())) if layer})
    bit = {layer: 1 << index for index, layer in enumerate(layers)}
    node_bit = {}
    for name, key in key_of_node.items():
        layer = layer_of(key)
        if layer:
            node_bit[name] = bit[layer]
    consumers = collections.defaultdict(list)
    for node in nodes.values():
        for source in _inputs(node):
            consumers[source].append(node.name)
    memo = {}

    def inputs_of(name):
        node = nodes.get(name)
        return None if node is None else _inputs(node)

    def combine(name, values):
        value = node_bit.get(name, 0)
        for other in values:
            value |= other
        return value

    def bits_of(start):
        return dataflow.fold_inputs([start], inputs_of, combine, missing=0, memo=memo)[start]

    found = {layer: 0 for layer in layers}
    for name, key in key_of_node.items():
        layer = layer_of(key)
        if not layer:
            continue
        for reader in consumers[name]:
            if nodes[reader].op not in _READ_OPS or _NOT_FORWARD.search(reader):
                continue
            for consumer in consumers[reader]:
                if not _NOT_FORWARD.search(consumer):
                    found[layer] |= bits_of(consumer)
    return {layer: {other for other in layers if value & bit[other] and other != layer}
            for layer, value in found.items()}
