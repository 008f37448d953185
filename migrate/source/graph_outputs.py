"""A legacy graph's placeholders and candidate outputs, read from its structure alone.

A candidate output is a tensor of the forward pass that nothing else in the
forward pass reads: `logits`, `probabilities`, the predictions' `ArgMax`. The
forward pass is what the placeholders' values feed (not their shapes), less
the training machinery (gradients, optimizer updates, saving, summaries,
initialisation). In a
training graph (one with gradients), a label placeholder (one with a batch
that meets the model only after its last weight, as `labels` meets `logits`
in the loss) and what it feeds (the loss, the metrics) are training too, and
the forward tensors they read (the logits) are candidates.

Works on a `tf.Graph`, a `GraphDef` or a `MetaGraphDef` (top-level nodes; a
function's body stays inside its call), so a listing needs no import of the
graph.

`GraphNodes` is the one walk of a graph: its ops and data edges read once,
its placeholders, the training machinery and what a set of sources reaches.
`candidate_outputs` and `graph_listing.describe` (`inspect --graph`) both
build on it.
"""

import re

# Op types of the training machinery and of bookkeeping, never an output.
_MACHINERY_TYPES = frozenset({
    "NoOp", "Assert", "Print", "PrintV2", "SaveV2", "RestoreV2", "Save", "SaveSlices",
    "Restore", "RestoreSlice", "MergeV2Checkpoints", "ShardedFilename", "StringJoin",
    "ScalarSummary", "HistogramSummary", "ImageSummary", "AudioSummary", "AudioSummaryV2",
    "TensorSummary", "TensorSummaryV2", "MergeSummary", "VarIsInitializedOp",
    "IsVariableInitialized"})
_MACHINERY_PREFIXES = ("Apply", "ResourceApply", "SparseApply", "ResourceSparseApply",
                       "Assign", "Scatter", "ResourceScatter")
# The scopes TF 1.x puts gradients, saving and summaries under.
_MACHINERY_SCOPE = re.compile(r"(^|/)(gradients(_\d+)?|save(_\d+)?|summaries)/")
_GRADIENTS_SCOPE = re.compile(r"(^|/)gradients(_\d+)?/")
_SHAPE_TYPES = frozenset({"Shape", "ShapeN", "Size", "Rank"})
# What `_kind_of` tells apart: handles and counters are never listed, integers after values.
_HANDLE, _COUNTER, _INTEGER, _VALUE = "handle", "counter", "integer", "value"
# GraphDef attributes naming a node's output type, and TensorFlow's `DataType` numbers
# (types.proto): integers and booleans; strings, resources and variants.
_DTYPE_ATTRS = ("output_type", "out_type", "DstT", "dtype", "T")
_INTEGER_TYPES = frozenset({3, 4, 5, 6, 9, 10, 17, 22, 23})
_HANDLE_TYPES = frozenset({7, 20, 21})
_PLACEHOLDER_TYPES = frozenset({"Placeholder", "PlaceholderWithDefault", "PlaceholderV2"})
_VARIABLE_TYPES = frozenset({"VariableV2", "Variable", "VarHandleOp"})
_VARIABLE_READS = frozenset({"ReadVariableOp", "ResourceGather", "ResourceGatherNd"})
# Ops through which an input reaches a loop or a function body (it meets weights there).
_CONTROL_FLOW_TYPES = frozenset({"Enter", "While", "StatelessWhile", "If", "StatelessIf",
                                 "PartitionedCall", "StatefulPartitionedCall"})


class GraphNodes:
    """A graph's top-level ops and data edges, read once, and the walks over them.

    Args:
        graph: a `tf.Graph`, a `GraphDef` or a `MetaGraphDef`.

    Attributes:
        graph: what was read.
        nodes: `{op name: (type, data input tensors, output tensors, dtype)}`,
            in graph order (see `_nodes`).
        consumers: `{op name: names of the ops reading one of its outputs}`.
        controlling: names of the ops other ops wait for (control inputs).
        machinery: names of the training machinery's and bookkeeping's ops
            (gradients, optimizer updates, saving, summaries, initialisation).

    Example:

        walk = GraphNodes(graph)
        walk.reach(walk.placeholders(), excluded=walk.machinery)  # the forward pass
    """

    def __init__(self, graph):
        self.graph = graph
        self.nodes = _nodes(graph)
        self.consumers = {}
        for name, (_, inputs, _, _) in self.nodes.items():
            for tensor in inputs:
                self.consumers.setdefault(_op_of(tensor), set()).add(name)
        if hasattr(graph, "get_operations"):
            self.controlling = {control.name for op in graph.get_operations()
                                for control in op.control_inputs}
        else:
            self.controlling = {name[1:].split(":")[0] for node in _graph_def(graph).node
                                for name in node.input if name.startswith("^")}
        self.machinery = {name for name, (kind, *_) in self.nodes.items()
                          if _is_machinery(name, kind)}

    def placeholders(self):
        """Returns the names of the placeholder ops outside the machinery, in graph order."""
        return [name for name, (kind, _, outputs, _) in self.nodes.items()
                if kind in _PLACEHOLDER_TYPES and outputs and name not in self.machinery]

    def producers(self, name):
        """Returns the names of the ops whose outputs op `name` reads, each once."""
        return list(dict.fromkeys(_op_of(tensor) for tensor in self.nodes[name][1]))

    def unread(self, forward):
        """Returns the output tensors of the ops in `forward` that no op in `forward` reads."""
        read = {tensor for name in forward for tensor in self.nodes[name][1]
                if _op_of(tensor) in forward}
        return {tensor for name in forward for tensor in self.nodes[name][2]
                if tensor not in read}

    def reach(self, starts, excluded, stops=()):
        """Returns the ops reachable from `starts` by data edges, `starts` included, none of
        `excluded`; an op of a type in `stops` is reached but not passed."""
        seen = set()
        stack = [name for name in starts if name not in excluded]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            if self.nodes[name][0] not in stops:
                stack.extend(consumer for consumer in self.consumers.get(name, ())
                             if consumer not in seen and consumer not in excluded)
        return seen


def placeholders(graph):
    """Returns the graph's placeholders' tensor names, in the graph's order.

    Example:

        placeholders(graph)  # ['input_ids:0', 'keep_prob:0']
    """
    walk = GraphNodes(graph)
    return [walk.nodes[name][2][0] for name in walk.placeholders()]


def candidate_outputs(graph):
    """Returns the tensors of the forward pass that nothing else in it reads, in the graph's order.

    Args:
        graph: a `tf.Graph`, a `GraphDef` (a frozen graph's) or a
            `MetaGraphDef` (a `.meta`'s).

    Returns:
        Tensor names such as `['logits/BiasAdd:0', 'ArgMax:0']`; empty when
        the graph has no placeholder.

    Example:

        candidate_outputs(graph)  # ['logits/BiasAdd:0'] for a classifier's training graph
    """
    walk = GraphNodes(graph)
    nodes, machinery = walk.nodes, walk.machinery
    sources = walk.placeholders()
    # What reads only a placeholder's shape (a zero state sized by the batch) is no output.
    shapes = {name for name, (kind, *_) in nodes.items() if kind in _SHAPE_TYPES}
    forward = walk.reach(sources, machinery | shapes)
    compared = set()
    if any(_GRADIENTS_SCOPE.search(name) for name in machinery):
        # A training graph: what a label placeholder feeds is the loss and its
        # metrics, and what they read of the forward pass is its output.
        batched = _batched_placeholders(graph)
        labels = [name for name in sources if name in batched
                  and _is_label(name, walk)]
        loss_side = walk.reach(labels, machinery | shapes)
        forward -= loss_side
        compared = {tensor for name in loss_side for tensor in nodes[name][1]
                    if _op_of(tensor) in forward}
    unread = walk.unread(forward)
    found = [(name, tensor) for name, (kind, _, outputs, _) in nodes.items()
             if name in forward and kind not in _PLACEHOLDER_TYPES
             for tensor in outputs if tensor in unread or tensor in compared]
    kinds = {tensor: _kind_of(graph, nodes, tensor) for _, tensor in found}
    depth = _depths(nodes, forward)
    # Values first (not ids or predictions' classes), the deepest first: the
    # model's outputs lie deep; a loop's pass-through values, shallow.
    found = sorted((item for item in found if kinds[item[1]] not in (_HANDLE, _COUNTER)),
                   key=lambda item: (kinds[item[1]] == _INTEGER, -depth[item[0]]))
    return [tensor for _, tensor in found]

def listed(names, limit=8):
    """Returns tensor names joined for a message, the first `limit` of them.

    Example:

    >>> listed(["logits:0", "ArgMax:0"]), listed(["a:0", "b:0", "c:0"], limit=2)
    ('logits:0, ArgMax:0', 'a:0, b:0, ...')
    """
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def describe_candidates(names):
    """Returns `candidate_outputs`' names as a message says them, or "" when there are none.

    Example:

    >>> describe_candidates(["logits/BiasAdd:0"])
    'one of its candidate outputs (tensors nothing in its forward pass reads): logits/BiasAdd:0'
    """
    if not names:
        return ""
    return f"one of its candidate outputs (tensors nothing in its forward pass reads): " \
           f"{listed(names)}"


def _depths(nodes, forward):
    """Each forward op's longest chain of forward ops from a placeholder, in graph order.

    Graph order puts an op after its inputs except around a TF 1.x loop's back
    edge (`NextIteration`), which is not followed.
    """
    depth = {}
    for name, (_, inputs, _, _) in nodes.items():
        if name in forward:
            depth[name] = 1 + max((depth.get(_op_of(tensor), 0) for tensor in inputs), default=0)
    return depth


def _kind_of(graph, nodes, tensor):
    """`_HANDLE`, `_COUNTER` (an integer scalar), `_INTEGER`, `_VALUE`, or None when unknown.

    A `tf.Graph` knows each tensor's dtype and rank; a GraphDef node's dtype
    attribute says its first output's type only, and no rank.
    """
    if hasattr(graph, "get_tensor_by_name"):
        found = graph.get_tensor_by_name(tensor)
        if found.dtype.name in ("resource", "variant", "string"):
            return _HANDLE
        if found.dtype.is_integer or found.dtype.is_bool:
            return _COUNTER if found.shape.rank == 0 else _INTEGER
        return _VALUE
    node = nodes[_op_of(tensor)]
    dtype = node[3] if tensor.endswith(":0") else None
    if dtype in _HANDLE_TYPES:
        return _HANDLE
    return _INTEGER if dtype in _INTEGER_TYPES else None


def _is_machinery(name, kind):
    return (kind in _MACHINERY_TYPES or kind.startswith(_MACHINERY_PREFIXES)
            or bool(_MACHINERY_SCOPE.search(name + "/")))


def _is_label(placeholder, walk):
    """Whether nothing a placeholder feeds reads a weight or enters a loop or function.

    An input meets the weights (`MatMul(x, kernel)`); a label meets the model's
    output after the last weight (`SparseSoftmaxCrossEntropyWithLogits(logits, labels)`).
    """
    for name in walk.reach([placeholder], walk.machinery):
        kind, inputs, *_ = walk.nodes[name]
        if kind in _CONTROL_FLOW_TYPES or kind in _VARIABLE_READS:
            return False
        if any(_reads_variable(tensor, walk.nodes) for tensor in inputs):
            return False
    return True


def _batched_placeholders(graph):
    """The placeholders of rank 1 or more: a label has a batch; a keep probability has not."""
    if hasattr(graph, "get_operations"):
        return {op.name for op in graph.get_operations() if op.type in _PLACEHOLDER_TYPES
                and op.outputs and (op.outputs[0].shape.rank or 0) >= 1}
    return {node.name for node in _graph_def(graph).node if node.op in _PLACEHOLDER_TYPES
            and "shape" in node.attr and not node.attr["shape"].shape.unknown_rank
            and len(node.attr["shape"].shape.dim) >= 1}


def _reads_variable(tensor, nodes):
    """Whether `tensor` is a variable, or a read of one (`kernel/read`, `ReadVariableOp`)."""
    kind, inputs, *_ = nodes.get(_op_of(tensor), ("", (), (), None))
    if kind in _VARIABLE_TYPES or kind in _VARIABLE_READS:
        return True
    return kind == "Identity" and any(
        nodes.get(_op_of(source), ("",))[0] in _VARIABLE_TYPES for source in inputs)


def _op_of(tensor):
    return tensor.rsplit(":", 1)[0]


def _nodes(graph):
    """Returns `{op name: (type, data input tensors, output tensors, dtype)}`, in graph order.

    A GraphDef does not say how many outputs a node has: its outputs are
    output 0 and those other nodes read. `dtype` is a GraphDef node's
    `DataType` number for its first output where an attribute says it, else None.
    """
    if hasattr(graph, "get_operations"):
        return {op.name: (op.type, [tensor.name for tensor in op.inputs],
                          [tensor.name for tensor in op.outputs], None)
                for op in graph.get_operations()}
    nodes = {}
    used = {}
    for node in _graph_def(graph).node:
        inputs = [name if ":" in name else name + ":0"
                  for name in node.input if not name.startswith("^")]
        dtype = next((node.attr[key].type for key in _DTYPE_ATTRS if key in node.attr), None)
        nodes[node.name] = (node.op, inputs, [f"{node.name}:0"], dtype)
        for tensor in inputs:
            used.setdefault(_op_of(tensor), set()).add(tensor)
    for name, (kind, inputs, outputs, dtype) in nodes.items():
        extra = sorted(used.get(name, set()) - set(outputs),
                       key=lambda tensor: int(tensor.rsplit(":", 1)[1]))
        nodes[name] = (kind, inputs, outputs + extra, dtype)
    return nodes


def _graph_def(graph):
    return getattr(graph, "graph_def", graph)  # A MetaGraphDef holds its GraphDef.
