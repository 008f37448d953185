"""Which projection of an attention block a product is, read from the graph.

An attention block multiplies two projections of its inputs, the query and
the key, in a batched product whose result (scaled, masked) goes into a
softmax; the softmax's output multiplies the third projection, the value;
the output projection consumes that product. The key is the operand whose
own axis becomes the last axis of the scores, the one the softmax
normalises (`matmul(q, k, transpose_b=True)`; an einsum `BTNH,BSNH->BNTS`
says it by its letters, whichever operand comes first). The legacy graph
and the Keras model's traced call (`MultiHeadAttention`'s einsums,
keras-hub's cached attention) are read alike, so the projections pair up
whatever their scopes are called or the order their code created them in.
A fused projection cut by `tf.split` gets a role per part, from the split's
output each part leaves by.
"""

QUERY, KEY, VALUE, OUTPUT = "query", "key", "value", "output"
ROLES = (QUERY, KEY, VALUE, OUTPUT)

_PRODUCTS = frozenset({"MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum"})
# A hand-written softmax (GPT-2's `exp(x - max) / sum`) has an `Exp` where tf.nn has `Softmax`.
_SOFTMAX = frozenset({"Softmax", "Exp"})
# What lies between a projection and the product of attention: its bias, the heads'
# reshapes and transposes, the scale, a cast, a fused projection's split.
_TO_PRODUCT = frozenset({"Identity", "Reshape", "Transpose", "Mul", "RealDiv", "BiasAdd", "Add",
                         "AddV2", "Cast", "Squeeze", "ExpandDims", "Split", "SplitV"})
_MERGE_HEADS = frozenset({"Identity", "Reshape", "Transpose", "Cast"})
_SCORES_DEPTH = 8
_PROJECTION_DEPTH = 10


def roles(nodes, data, projections):
    """Finds the attention role of each projection product.

    Args:
        nodes: `{name: node}` (`dataflow.nodes_of_graph_def`: inputs and
            their output ports).
        data: the names of the nodes whose value depends on the fed inputs.
        projections: the names of the product nodes that multiply a
            variable (kernels' uses).

    Returns:
        `{projection node: role or {split part: role}}`.
    """
    consumers = {}
    for node in nodes.values():
        for source in node.inputs:
            consumers.setdefault(source, []).append(node.name)
    found = {}
    for name, node in nodes.items():
        if node.op not in _PRODUCTS or name in projections or name not in data:
            continue
        operands = [source for source in node.inputs[:2] if source in data]
        if len(operands) != 2:
            continue
        softmaxes = _forward(name, nodes, consumers, _SCORES_DEPTH,
                             lambda other: other.op in _SOFTMAX)
        if not softmaxes:
            continue
        axes = {_softmax_axis(name, softmax, nodes, data) for softmax in softmaxes} - {None}
        key_index = _key_operand(node, axes.pop()) if len(axes) == 1 else None
        if key_index is None:
            continue
        operand = list(zip(node.inputs, node.ports))
        _mark(found, nodes, data, projections, operand[1 - key_index], QUERY)
        _mark(found, nodes, data, projections, operand[key_index], KEY)
        for context in _forward_all(softmaxes, nodes, consumers, _SCORES_DEPTH // 2):
            if context in projections or nodes[context].op not in _PRODUCTS:
                continue
            weights = _reached(softmaxes, nodes, consumers, context)
            values = [index for index, source in enumerate(nodes[context].inputs[:2])
                      if source in data and source not in weights]
            if len(values) != 1:
                continue
            _mark(found, nodes, data, projections,
                  (nodes[context].inputs[values[0]], nodes[context].ports[values[0]]), VALUE)
            for output in _forward(context, nodes, consumers, 4,
                                   lambda other: other.name in projections,
                                   through=_MERGE_HEADS):
                found.setdefault(output, OUTPUT)
    return found


def _key_operand(node, axis):
    """The index of the key operand: the one that gives the scores' axis `axis` (negative),
    the one the softmax normalises."""
    if node.op != "Einsum":
        # [..., M, K] x [..., K, N] (transposed or not): M is the first operand's, N the second's.
        return {-1: 1, -2: 0}.get(axis)
    operands, _, result = node.attrs.get("equation", "").replace(" ", "").partition("->")
    operands = operands.split(",")
    if len(operands) != 2 or "." in result or -axis > len(result):
        return None
    holders = [index for index, letters in enumerate(operands) if result[axis] in letters]
    return holders[0] if len(holders) == 1 else None


def _softmax_axis(product, softmax, nodes, data):
    """Which axis of `product`'s result becomes the axis `softmax` normalises (its last), as a
    negative index; None when no short path leads there.

    TensorFlow may write an einsum as transposes around a batched matmul
    (keras-hub's attention): each transpose on the way moves the axis.
    """
    stack, seen = [(softmax, -1, 0)], set()
    while stack:
        name, axis, depth = stack.pop()
        if name == product:
            return axis
        if (name, axis) in seen or depth >= _SCORES_DEPTH or name not in nodes:
            continue
        seen.add((name, axis))
        node = nodes[name]
        if node.op in _PRODUCTS and name != softmax:
            continue
        if node.op == "Transpose":
            permutation = nodes[node.inputs[1]].attrs.get("int_val") \
                if len(node.inputs) > 1 and node.inputs[1] in nodes else None
            if not permutation or -axis > len(permutation):
                continue
            stack.append((node.inputs[0], permutation[axis] - len(permutation), depth + 1))
            continue
        stack.extend((source, axis, depth + 1) for source in node.inputs if source in data)
    return None


def _mark(found, nodes, data, projections, start, role):
    """Walks back from an operand of attention to the projection product it comes from.

    A split on the way says, by the output it leaves by, which part of the
    projection's product it is. An elementwise step is passed only where
    one input carries the data (a bias, a scale, a mask): a layer norm or a
    residual sum is no part of a projection. Nothing is marked when the
    walk finds no projection, or several.
    """
    name, port = start
    reached, stack, seen = [], [(name, port, None, 0)], set()
    while stack:
        name, port, part, depth = stack.pop()
        if (name, part) in seen or name not in nodes or name not in data:
            continue
        seen.add((name, part))
        node = nodes[name]
        if name in projections:
            reached.append((name, part))
            continue
        if node.op in _PRODUCTS or node.op not in _TO_PRODUCT or depth >= _PROJECTION_DEPTH:
            continue
        inputs = [(source, source_port) for source, source_port in zip(node.inputs, node.ports)
                  if source in data]
        if len(inputs) != 1:
            continue
        if node.op in ("Split", "SplitV"):
            part = port
        stack.extend((source, source_port, part, depth + 1) for source, source_port in inputs)
    if len(reached) != 1:
        return
    projection, part = reached[0]
    if part is None:
        if not isinstance(found.get(projection), dict):
            found.setdefault(projection, role)
    else:
        parts = found.setdefault(projection, {})
        if isinstance(parts, dict):
            parts.setdefault(part, role)


def _forward(start, nodes, consumers, depth, wanted, through=None):
    """Nodes `wanted` says yes to, within `depth` steps after `start` (not through products,
    and only through ops of `through` when given)."""
    found, frontier, seen = [], [start], {start}
    for _ in range(depth):
        following = []
        for current in frontier:
            for consumer in consumers.get(current, ()):
                if consumer in seen:
                    continue
                seen.add(consumer)
                node = nodes[consumer]
                if wanted(node):
                    found.append(consumer)
                elif node.op not in _PRODUCTS and (through is None or node.op in through):
                    following.append(consumer)
        frontier = following
    return found


def _forward_all(starts, nodes, consumers, depth):
    """Products within `depth` steps after any of `starts`."""
    found = []
    for start in starts:
        for name in _forward(start, nodes, consumers, depth,
                             lambda node: node.op in _PRODUCTS):
            if name not in found:
                found.append(name)
    return found


def _reached(starts, nodes, consumers, stop):
    """The nodes within a few steps after `starts` on the way to `stop` (not past it)."""
    found, frontier = set(starts), list(starts)
    for _ in range(_SCORES_DEPTH // 2):
        following = []
        for current in frontier:
            for consumer in consumers.get(current, ()):
                if consumer not in found and consumer != stop:
                    if nodes[consumer].op not in _PRODUCTS:
                        found.add(consumer)
                        following.append(consumer)
        frontier = following
    return found
