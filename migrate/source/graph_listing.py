"""Lists what a legacy graph takes and gives: its placeholders and its candidate outputs.

Verification feeds placeholders and compares output tensors by name; a user
porting an old model rarely knows them (`decoder/TensorArrayStack/
TensorArrayGatherV3:0`). This reads them from the graph itself:

- placeholders (`Placeholder`, `PlaceholderWithDefault`; a `Saver`'s own
  filename placeholder aside), each with its dtype and shape, and whether the
  forward pass reads it (a learning rate fed only to the optimizer does not);
- candidate outputs: forward tensors that no forward op consumes (what the
  model computes last: logits, a loss, an accuracy), and the named ones a
  comparison usually wants: the last softmax, the last op of each scope
  whose name says `logits`, the last layer norm, and identities named at the
  top level (`tf.identity(x, name="pooled_output")`).

The forward pass is what the placeholders reach, leaving out the training
graph: the gradients (`gradients/...`), summaries, and what only feeds a
variable update or a saver (optimizer steps, moving averages, metrics).
The graph is read and walked by `graph_outputs.GraphNodes`, the walk behind
the error messages' candidate outputs too.

Example:

    listing = describe(checkpoint.graph)
    print(summary_lines(listing))
"""

import re

from migrate.source import graph_outputs

# Ops that write state or record: what only feeds them is training, not the forward pass.
_SINK_TYPES = frozenset({
    "Assign", "AssignAdd", "AssignSub", "AssignVariableOp", "AssignAddVariableOp",
    "AssignSubVariableOp", "ScatterAdd", "ScatterSub", "ScatterUpdate", "ScatterNdUpdate",
    "ResourceScatterAdd", "ResourceScatterUpdate", "SaveV2", "Save", "SaveSlices", "RestoreV2",
    "NoOp", "Assert"})
_SOURCE_TYPES = ("IteratorGetNext", "IteratorGetNextSync")
# Control flow's own ops, and ops that only give shapes: never an output to compare.
_PLUMBING_TYPES = ("Switch", "RefSwitch", "Merge", "RefMerge", "Enter", "RefEnter", "Exit",
                   "RefExit", "NextIteration", "RefNextIteration", "LoopCond", "ControlTrigger")
_SHAPE_TYPES = ("Shape", "ShapeN", "Size", "Rank", "BroadcastArgs", "BroadcastGradientArgs")
# Ops that read only their input's shape: what follows them (an RNN's zero state) does not
# depend on the values fed, so it is no forward output.
_SHAPE_READERS = (*_SHAPE_TYPES, "ZerosLike", "OnesLike")
# Functional control flow: its outputs pass through an Identity each, unused ones included
# (a loop's counter, an unused final state).
_FUNCTIONAL_CONTROL_FLOW = ("While", "StatelessWhile", "If", "StatelessIf", "Case",
                            "StatelessCase")
_TRAINING_SCOPE = re.compile(r"(^|/)(gradients(_\d+)?|save(_\d+)?)/")
_LOGITS = re.compile(r"(^|/)[^/]*logits[^/]*(/|$)", re.IGNORECASE)
_LAYER_NORM = re.compile(r"(^|/)(LayerNorm|layer_norm|layernorm|ln_f|ln_\d+)(_\d+)?(/|$)",
                         re.IGNORECASE)
# Outputs listed with no other reason than having no forward consumer.
MAX_TERMINAL_OUTPUTS = 20

NO_FORWARD_CONSUMER = "no forward consumer"
LAST_SOFTMAX = "last softmax"
LOGITS = "logits"
LAST_LAYER_NORM = "last layer norm"
NAMED = "named at the top level"


def describe(graph):
    """Returns the placeholders and candidate outputs of a legacy `tf.Graph`.

    Args:
        graph: the legacy graph (`LegacyCheckpoint.graph`).

    Returns:
        `{"placeholders": [{"name", "dtype", "shape", "forward"}], "outputs":
        [{"name", "dtype", "shape", "why"}], "more_outputs": N}`: tensor
        names with `:0`, shapes with None for unknown sizes (None for an
        unknown rank), `why` one or more of `NO_FORWARD_CONSUMER`,
        `LAST_SOFTMAX`, `LOGITS`, `LAST_LAYER_NORM`, `NAMED`, and `more_outputs` the
        terminal tensors past `MAX_TERMINAL_OUTPUTS` left out of the list.
    """
    walk = graph_outputs.GraphNodes(graph)
    operations = graph.get_operations()
    placeholders = walk.placeholders()
    forward = _forward(walk, placeholders, _update_only(walk))
    listed = [{**_tensor(graph.get_operation_by_name(name).outputs[0]), "forward": name in forward}
              for name in placeholders]
    computed = [op for op in operations if op.name in forward and op.name not in placeholders
                and op.type not in _PLUMBING_TYPES and op.outputs]
    reasons = {}
    # Unlike `candidate_outputs` (which lists every unread output tensor, the deepest first,
    # for a message), a person reads this list: an op with any forward consumer is no end of
    # the forward pass, and control flow's plumbing and non-values are left out.
    unread = walk.unread(forward)
    terminal = [op for op in computed if unread.issuperset(walk.nodes[op.name][2])
                and op.name not in walk.controlling and _is_value(op.outputs[0])
                and not _passes_control_flow_output(op, walk)]
    for op in terminal[:MAX_TERMINAL_OUTPUTS]:
        reasons.setdefault(op, []).append(NO_FORWARD_CONSUMER)
    softmaxes = [op for op in computed if op.type == "Softmax"]
    if softmaxes:
        reasons.setdefault(softmaxes[-1], []).append(LAST_SOFTMAX)
    for op in _last_of_scopes(computed, _LOGITS):
        reasons.setdefault(op, []).append(LOGITS)
    for op in computed:  # `tf.identity(x, name="pooled_output")`: named to be fetched.
        if op.type == "Identity" and "/" not in op.name and _is_value(op.outputs[0]):
            reasons.setdefault(op, []).append(NAMED)
    norms = _last_of_scopes(computed, _LAYER_NORM)
    if norms:
        reasons.setdefault(norms[-1], []).append(LAST_LAYER_NORM)
    order = {name: index for index, name in enumerate(walk.nodes)}
    outputs = [{**_tensor(op.outputs[0]), "why": why}
               for op, why in sorted(reasons.items(), key=lambda item: order[item[0].name])]
    return {"placeholders": listed, "outputs": outputs,
            "more_outputs": max(0, len(terminal) - MAX_TERMINAL_OUTPUTS)}


def _last_of_scopes(operations, pattern):
    """For each scope whose name `pattern` matches (`.../Logits`), its last op (graph order)."""
    last = {}
    for op in operations:
        found = pattern.search(op.name)
        if found is not None:
            last[op.name[:found.end()].rstrip("/")] = op
    return list(last.values())


def _passes_control_flow_output(op, walk):
    """An Identity of a functional loop's or cond's output (how TF 2 control flow names them)."""
    return op.type == "Identity" and any(walk.nodes[producer][0] in _FUNCTIONAL_CONTROL_FLOW
                                         for producer in walk.producers(op.name))


def _is_value(tensor):
    """A number a comparison can use (not a shape, flag, handle or control-flow variant)."""
    dtype = tensor.dtype
    return ((dtype.is_floating or dtype.is_integer) and tensor.op.type not in _SHAPE_READERS)


def summary_lines(listing):
    """Returns `describe`'s listing as lines a person reads.

    Example:

    >>> print("\\n".join(summary_lines({"placeholders": [
    ...     {"name": "inputs:0", "dtype": "float32", "shape": [None, 4], "forward": True}],
    ...     "outputs": [{"name": "logits:0", "dtype": "float32", "shape": [None, 3],
    ...                  "why": ["no forward consumer", "logits"]}], "more_outputs": 0})))
    graph placeholders (feed them with --input_tensor / --feed):
      inputs:0  float32  [?, 4]
    candidate outputs (for --output_tensor):
      logits:0  float32  [?, 3]  no forward consumer, logits
    """
    lines = ["graph placeholders (feed them with --input_tensor / --feed):"]
    rows = [(entry["name"], entry["dtype"], _shape(entry["shape"]),
             "" if entry["forward"] else "not read by the forward pass")
            for entry in listing["placeholders"]]
    lines += _columns(rows) or ["  (none)"]
    lines.append("candidate outputs (for --output_tensor):")
    rows = [(entry["name"], entry["dtype"], _shape(entry["shape"]), ", ".join(entry["why"]))
            for entry in listing["outputs"]]
    lines += _columns(rows) or ["  (none)"]
    if listing["more_outputs"]:
        lines.append(f"  ... and {listing['more_outputs']} more tensor(s) with no forward "
                     f"consumer (all in the JSON report)")
    return lines


def _columns(rows):
    if not rows:
        return []
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    return [f"  {row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}"
            f"{'  ' + row[3] if row[3] else ''}".rstrip() for row in rows]


def _shape(shape):
    if shape is None:
        return "unknown"
    return "[" + ", ".join("?" if size is None else str(size) for size in shape) + "]"


def _tensor(tensor):
    shape = tensor.shape
    return {"name": tensor.name, "dtype": getattr(tensor.dtype, "name", str(tensor.dtype)),
            "shape": None if shape.rank is None else shape.as_list()}


def _update_only(walk):
    """Names of the ops whose outputs only feed variable updates and savers.

    A summary records a value the model reports (its loss, an accuracy), so
    what it reads is kept, though the summary itself is no output. (Hence
    not `walk.machinery`, which holds the summaries: what only feeds one is
    listed here as a reported value.)
    """
    sinks = {name for name, (kind, *_) in walk.nodes.items()
             if kind in _SINK_TYPES or kind.startswith((
                 "Apply", "ResourceApply", "ResourceSparseApply", "SparseApply"))}
    update_only, pending = set(sinks), list(sinks)
    while pending:
        for producer in walk.producers(pending.pop()):
            # The gradients stay out: what feeds them (the loss) is the forward pass's end.
            if producer in update_only or _TRAINING_SCOPE.search(producer + "/"):
                continue
            if all(consumer in update_only for consumer in walk.consumers.get(producer, ())):
                update_only.add(producer)
                pending.append(producer)
    return update_only


def _forward(walk, placeholders, update_only):
    """Names of the ops the placeholders (or an input iterator) reach outside the training graph.

    Wider than `candidate_outputs`' forward pass: an iterator starts it too, and an op that
    reads only a shape is in it (so its input has a forward consumer), though not passed.
    """
    excluded = update_only | {name for name, (kind, *_) in walk.nodes.items()
                              if kind.endswith(("Summary", "SummaryV2"))
                              or _TRAINING_SCOPE.search(name + "/")}
    starts = placeholders + [name for name, (kind, *_) in walk.nodes.items()
                             if kind in _SOURCE_TYPES]
    return walk.reach(starts, excluded, stops=_SHAPE_READERS)
