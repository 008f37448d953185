"""What each variable does in a graph, and where along the data's path it does it.

Both sides of a draft are graphs: the legacy forward graph, and the Keras
model's call traced into a `tf.function`. In either, a variable's value
passes through reads, reshapes and casts to the op that uses it: a
`MatMul`, `Conv2D` or `Einsum` operand is a kernel, a `Gather` (or a slice
added to a sequence) is a table of embeddings, the `BiasAdd` or `Add` after a
product is its bias, the `Mul` by the variance's `rsqrt` is a norm's scale and
the `Add` after it its offset, a fused batch norm names its four inputs. The
use's position is its dataflow level: how many uses of variables lie on the
longest path from the fed inputs to it (shape computations carry no data).
Two graphs of the same model give their uses in the same order of levels,
however their code named or created the variables.

A product cut by `tf.split` into parts (a fused query/key/value projection)
is recorded on its kernel and bias, with the parts' count. The projections
of an attention block are told apart by where their products go
(`attention_roles`).
"""

import dataclasses

import numpy as np

from migrate.suggest import attention_roles

# Ops a variable's value passes through unchanged in content before its use.
_PASS_OPS = frozenset({"Identity", "ReadVariableOp", "Cast", "Enter", "Switch"})
_RESHAPE_OPS = frozenset({"Reshape", "Squeeze", "ExpandDims"})
# A partitioned variable is read as its parts concatenated.
_CONCAT_OPS = frozenset({"ConcatV2", "Concat"})
_PRODUCT_OPS = frozenset({"MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum",
                          "Conv2D", "Conv3D", "Conv1D", "Conv2DBackpropInput",
                          "SparseTensorDenseMatMul"})
_DEPTHWISE_OPS = frozenset({"DepthwiseConv2dNative"})
_LOOKUP_OPS = frozenset({"Gather", "GatherV2", "ResourceGather", "GatherNd",
                         "SparseSegmentSum", "SparseSegmentMean", "SparseSegmentSqrtN"})
_SLICE_OPS = frozenset({"Slice", "StridedSlice"})
_ADD_OPS = frozenset({"Add", "AddV2", "Sub"})
_FUSED_NORM_OPS = frozenset({"FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"})
_FUSED_NORM_KINDS = {1: "gamma", 2: "beta", 3: "moving_mean", 4: "moving_variance"}
_LOOP_OPS = frozenset({"While", "StatelessWhile"})
_SPLIT_OPS = frozenset({"Split", "SplitV"})
# Ops that carry no data from their inputs (only their shapes).
_SHAPE_OPS = frozenset({"Shape", "ShapeN", "Size", "Rank", "Const", "Placeholder",
                        "PlaceholderWithDefault", "ZerosLike", "OnesLike"})
# Elementwise steps between a product and the split of its result.
_TO_SPLIT_OPS = frozenset({"BiasAdd", "Add", "AddV2", "Reshape", "Identity"})
_NORM_OPS = frozenset({"Rsqrt", "FusedBatchNorm", "FusedBatchNormV3"})
_ONE_HOT_OPS = frozenset({"OneHot"})
_INPUT_OPS = frozenset({"Placeholder", "PlaceholderWithDefault"})
_NOT_FORWARD = ("gradients", "save", "ExponentialMovingAverage")
_SEARCH_DEPTH = 4


@dataclasses.dataclass(frozen=True)
class Use:
    """How a variable's value is used in the forward graph.

    Attributes:
        kind: the kind of weight its use says (`kernel`, `bias`, `gamma`,
            `beta`, `embeddings`, ...), or None when the op says nothing.
        level: its dataflow position (uses of variables on the longest path
            from the inputs, its own included).
        op: the type of the op that uses it.
        reshaped: a reshape (or squeeze) lies between the variable and its use.
        split: how many parts `tf.split` cuts its product into (0: none).
        loop: it is used inside a while loop (a recurrent cell).
        on_path: the use reaches the compared outputs.
        role: the attention projection its product is (`attention_roles.ROLES`),
            or None.
        part_roles: for a product cut by `tf.split`, each part's role (None
            where the graph does not say it), else ().
    """

    kind: str | None
    level: int
    op: str
    reshaped: bool = False
    split: int = 0
    loop: bool = False
    on_path: bool = True
    role: str | None = None
    part_roles: tuple = ()


@dataclasses.dataclass
class _Node:
    name: str
    op: str
    inputs: list
    attrs: dict
    ports: list = dataclasses.field(default_factory=list)  # The output port each input reads.


def _forward(name):
    first = name.split("/")[0]
    return not any(first == scope or first.startswith(scope + "_") for scope in _NOT_FORWARD)


def nodes_of_graph_def(graph_def):
    """`{name: node}` of a GraphDef's forward nodes (data inputs only, with their ports)."""
    nodes = {}
    for node in graph_def.node:
        if not _forward(node.name):
            continue
        attrs = {}
        if "num_split" in node.attr:
            attrs["num_split"] = node.attr["num_split"].i
        if "equation" in node.attr:
            attrs["equation"] = node.attr["equation"].s.decode("utf-8", "replace")
        if node.op == "Const":
            values = _small_integers(node.attr["value"].tensor)
            if values:
                attrs["int_val"] = values
        inputs = [text.split(":") for text in node.input if not text.startswith("^")]
        nodes[node.name] = _Node(node.name, node.op, [pieces[0] for pieces in inputs], attrs,
                                 [int(pieces[1]) if len(pieces) > 1 else 0 for pieces in inputs])
    return nodes


# DataType enum values of int32 and int64, and their NumPy types.
_INTEGER_TYPES = {3: "<i4", 9: "<i8"}


def _small_integers(tensor):
    """A small integer constant's values (a transpose's permutation), or []."""
    if tensor.int_val:
        return list(tensor.int_val)
    if tensor.int64_val:
        return list(tensor.int64_val)
    if tensor.dtype in _INTEGER_TYPES and 0 < len(tensor.tensor_content) <= 64:
        return [int(value) for value in np.frombuffer(tensor.tensor_content,
                                                      _INTEGER_TYPES[tensor.dtype])]
    return []


def trace(nodes, variables, *, inputs=(), outputs=()):
    """Finds each variable's use, its kind and its dataflow level.

    Args:
        nodes: `{name: node}` from `nodes_of_graph_def`.
        variables: `{node name: key}`: the variable (or captured handle)
            nodes, and the key each stands for (a partitioned variable's parts
            share their key).
        inputs: the fed placeholders' node names (all when empty).
        outputs: the compared outputs' node names (every use is on the path
            when empty).

    Returns:
        `{key: Use}` for every key used in the forward graph (its first use
        along the data's path).
    """
    consumers = {}
    for node in nodes.values():
        for source in node.inputs:
            consumers.setdefault(source, []).append(node.name)
    uses = {}  # key -> [(use node, input index, reshaped, loop)]
    for name, key in variables.items():
        for use in _uses_of(name, nodes, consumers):
            uses.setdefault(key, []).append(use)
    fed = ([name.split(":")[0] for name in inputs] if inputs else
           [name for name, node in nodes.items()
            if node.op in _INPUT_OPS and name not in variables])
    data = _data_dependent(nodes, consumers, fed)
    anchor = {use[0]: _anchor(use[0], data, consumers)
              for found in uses.values() for use in found}
    levels = _levels(nodes, set(anchor.values()), data)
    live = _ancestors(nodes, [name.split(":")[0] for name in outputs]) if outputs else None
    products = {use[0] for found in uses.values() for use in found
                if nodes[use[0]].op in _PRODUCT_OPS}
    roles = attention_roles.roles(nodes, data, products)
    found = {}
    for key, key_uses in uses.items():
        # Uses that reach the data (not an initializer's assignment or check).
        key_uses = [use for use in key_uses if anchor[use[0]] in data] or key_uses
        on_path = [use for use in key_uses if live is None or use[0] in live]
        chosen = min(on_path or key_uses, key=lambda use: levels.get(anchor[use[0]], 0))
        node_name, index, reshaped, loop = chosen
        node = nodes[node_name]
        kind = _kind(node, index, nodes)
        split = _split_after(node, nodes, consumers)
        role = roles.get(node_name) if kind == "kernel" else (
            roles.get(_product_behind(node, nodes)) if kind == "bias" else None)
        found[key] = Use(kind=kind, level=levels.get(anchor[node_name], 0),
                         op=node.op, reshaped=reshaped, split=split,
                         loop=loop or node.op in _LOOP_OPS, on_path=bool(on_path),
                         role=role if isinstance(role, str) else None,
                         part_roles=tuple(role.get(part) for part in range(split))
                         if isinstance(role, dict) and split else ())
    return found


def _product_behind(node, nodes):
    """The product a bias is added to (through reads and reshapes), or None."""
    return _behind(nodes, node.inputs, _PRODUCT_OPS,
                   through=_PASS_OPS | _RESHAPE_OPS, first_input_only=True)


def _data_dependent(nodes, consumers, fed):
    """Nodes whose value depends on the fed inputs' values (not only on their shapes)."""
    return _reach([name for name in fed if name in nodes], lambda name: [
        consumer for consumer in consumers.get(name, ()) if nodes[consumer].op not in _SHAPE_OPS])


def _reach(starts, neighbours):
    """`starts` and every node `neighbours` leads to from them."""
    found, stack = set(), list(starts)
    while stack:
        name = stack.pop()
        if name in found:
            continue
        found.add(name)
        stack.extend(other for other in neighbours(name) if other not in found)
    return found


def _anchor(name, data, consumers):
    """Where a use meets the data: the use itself, or the first data op its result reaches.

    A batch norm's statistics and scale are combined among themselves
    (`rsqrt(variance + epsilon) * gamma`) before they touch the data.
    """
    frontier, seen = [name], set()
    for _ in range(2 * _SEARCH_DEPTH):
        for current in frontier:
            if current in data:
                return current
        following = []
        for current in frontier:
            for consumer in consumers.get(current, ()):
                if consumer not in seen:
                    seen.add(consumer)
                    following.append(consumer)
        frontier = following
    return name


def _uses_of(name, nodes, consumers):
    """`(use node, input index, reshaped, in a loop)` of the variable node `name`."""
    found, stack, seen = [], [(name, False, False)], set()
    while stack:
        current, reshaped, loop = stack.pop()
        for consumer in consumers.get(current, ()):
            if consumer in seen:
                continue
            seen.add(consumer)
            node = nodes[consumer]
            if node.op in _PASS_OPS or node.op in _CONCAT_OPS:
                stack.append((consumer, reshaped, loop or node.op == "Enter"))
            elif node.op in _RESHAPE_OPS and node.inputs and node.inputs[0] == current:
                stack.append((consumer, True, loop))
            else:
                index = node.inputs.index(current) if current in node.inputs else 0
                found.append((consumer, index, reshaped, loop))
    return found


def _levels(nodes, use_nodes, data):
    """Dataflow level of every node: the uses of variables on its longest data path."""

    def inputs_of(name):
        return nodes[name].inputs if name in data else None  # Off the data: level 0.

    def level(name, input_levels):
        return max(input_levels, default=0) + (1 if name in use_nodes else 0)

    return fold_inputs(nodes, inputs_of, level, missing=0)


def fold_inputs(names, inputs_of, combine, *, missing, memo=None):
    """Computes `combine(name, [its inputs' values])` for `names`, inputs first.

    Iterative (graphs are deep); a while loop's back edge, still in progress
    when its source is reached again, contributes nothing.

    Args:
        names: the nodes to compute.
        inputs_of: node name -> its input names, or None for a node that
            takes `missing` as its value (unknown, or not to follow).
        combine: `(name, input values) -> value`.
        missing: the value of nodes `inputs_of` gives None for.
        memo: a dict of values already computed (filled in place).

    Returns:
        The dict of every value computed.
    """
    memo = {} if memo is None else memo
    in_progress = set()
    for start in names:
        stack = [start]
        while stack:
            name = stack[-1]
            if name in memo:
                stack.pop()
                continue
            inputs = inputs_of(name)
            if inputs is None:
                memo[name] = missing
                stack.pop()
                continue
            pending = [source for source in inputs
                       if source not in memo and source not in in_progress]
            if pending and name not in in_progress:
                in_progress.add(name)
                stack.extend(pending)
                continue
            memo[name] = combine(name, [memo[source] for source in inputs if source in memo])
            in_progress.discard(name)
            stack.pop()
    return memo


def _ancestors(nodes, names):
    return _reach([name for name in names if name in nodes],
                  lambda name: [source for source in nodes[name].inputs if source in nodes])


def _kind(node, index, nodes):
    op = node.op
    others = [source for position, source in enumerate(node.inputs) if position != index]
    if op in _PRODUCT_OPS:
        # A lookup written as a one-hot product: the one-hot is the operand itself (a
        # product of features that merely include one-hot columns, as an Estimator's input
        # layer concatenates indicator columns, is a kernel's).
        if _behind(nodes, others, _ONE_HOT_OPS, through=_PASS_OPS | _RESHAPE_OPS) is not None:
            return "embeddings"
        return "kernel"
    if op in _DEPTHWISE_OPS:
        return "depthwise_kernel"
    if op in _LOOKUP_OPS or op in _SLICE_OPS and index == 0:
        return "embeddings"
    if op in _FUSED_NORM_OPS:
        return _FUSED_NORM_KINDS.get(index)
    if op == "BiasAdd":
        return "bias"
    if op in _ADD_OPS:
        if _behind(nodes, others, _NORM_OPS) is not None:
            return "beta"
        if _behind(nodes, others, _PRODUCT_OPS | _DEPTHWISE_OPS) is not None:
            return "bias"
        return None
    if op == "Mul" and _behind(nodes, others, _NORM_OPS) is not None:
        return "gamma"
    return None


def _behind(nodes, names, ops, depth=_SEARCH_DEPTH, through=None, first_input_only=False):
    """The node of `ops` that produces one of `names` within `depth` steps back, or None.

    Only through ops of `through`, when given; only through each op's first
    input (its data, not a reshape's shape) with `first_input_only`.
    """
    frontier = list(names)
    for _ in range(depth):
        following = []
        for current in frontier:
            node = nodes.get(current)
            if node is None:
                continue
            if node.op in ops:
                return current
            if through is None or node.op in through:
                following.extend(node.inputs[:1] if first_input_only else node.inputs)
        frontier = following
    return None


def _split_after(node, nodes, consumers):
    """How many parts a `tf.split` cuts this use's product into (0: none)."""
    frontier = [node.name]
    for _ in range(_SEARCH_DEPTH):
        following = []
        for current in frontier:
            for consumer in consumers.get(current, ()):
                other = nodes[consumer]
                if other.op in _SPLIT_OPS:
                    return other.attrs.get("num_split", 0)
                if other.op in _TO_SPLIT_OPS:
                    following.append(consumer)
        frontier = following
    return 0


def _input_structures(model):
    """Input structures to trace `model` with, best first: its own symbolic inputs, or
    (a subclassed model built by calling it) the shape it was built with, as floats, then ints."""
    try:
        return [model.input]
    except (AttributeError, ValueError):
        pass
    built = getattr(model, "_build_shapes_dict", None) or {}
    if len(built) != 1:
        return []
    (shape,) = built.values()
    if not isinstance(shape, (tuple, list)) or not all(
            size is None or isinstance(size, int) for size in shape):
        return []
    return [_Symbolic(tuple(shape), dtype) for dtype in ("float32", "int32")]


@dataclasses.dataclass(frozen=True)
class _Symbolic:
    """A stand-in for a Keras input: its shape and dtype name."""

    shape: tuple
    dtype: str


def trace_model(model, paths):
    """Traces a Keras model's call and returns `{weight path: Use}`, or {} when it cannot.

    The model is called on symbolic inputs of its own input structure (a
    dict for keras-hub's backbones; a subclassed model built by calling it,
    on the shape it was built with) inside a `tf.function`; the captured
    variable handles are its weights. Needs the TensorFlow backend.

    Args:
        model: the Keras model (Keras 3, or Keras 2 through tf-keras).
        paths: `{weight path: variable}` of the model's weights.
    """
    import tensorflow as tf

    structures = _input_structures(model)
    handles = {}
    for path, variable in paths.items():
        # A Keras 3 variable holds a tf.Variable; a Keras 2 weight is one.
        handle = getattr(getattr(variable, "value", variable), "handle", None)
        if handle is None:
            handle = getattr(variable, "handle", None)
        if handle is not None:
            handles[id(handle)] = path

    def call(inputs):
        return model(inputs, training=False)

    function = None
    for structure in structures:
        try:
            specs = tf.nest.map_structure(
                lambda tensor: tf.TensorSpec([None, *list(tensor.shape)[1:]],
                                             tf.as_dtype(str(getattr(tensor.dtype, "name",
                                                                     tensor.dtype)))),
                structure)
            function = tf.function(call).get_concrete_function(specs)
            break
        except Exception:  # Any model code may refuse to trace; the draft falls back to order.
            continue
    if function is None:
        return {}
    graph = function.graph
    variables = {internal.op.name: handles[id(external)]
                 for external, internal in graph.captures if id(external) in handles}
    outputs = [tensor.op.name for tensor in graph.outputs]
    return trace(nodes_of_graph_def(graph.as_graph_def()), variables, outputs=outputs)
