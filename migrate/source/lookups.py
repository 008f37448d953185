"""How a legacy graph looks up its partitioned variables: `partition_strategy` 'mod' or 'div'.

A TF1 Saver stores a variable created from P partitions (`name/part_0..P-1`)
under one key, its rows in partition order. `tf.nn.embedding_lookup` then
finds id `i` in one of two ways:

    partition_strategy='mod'  (tf.compat.v1's default)  row i // P of partition i % P
    partition_strategy='div'  (TF2's only strategy)     rows kept in order

so a 'mod' table must be reordered (`unpartition_mod(P)`) and a 'div' table
must not. The graph says which: a 'mod' lookup hands `DynamicPartition` the
ids' partition numbers from a `FloorMod` (`ids % P`); a 'div' lookup computes
them with `FloorDiv` and `Maximum`.
"""

import dataclasses

from migrate import files
from migrate.errors import CheckpointError
from migrate.errors import first_line
from migrate.source.meta_graph import PARTITION_NAME
from migrate.source.meta_graph import VARIABLE_OPS

MOD = "mod"
DIV = "div"
_PASS_THROUGH_OPS = frozenset({"Identity", "ReadVariableOp", "Cast", "Snapshot", "Enter"})
_GATHER_OPS = frozenset({"Gather", "GatherV2", "ResourceGather"})
_MOD_OP = "FloorMod"
# Every partition's variable op is named `<name>/part_<n>`.
_PART_MARK = b"/part_"
_MAX_WALK = 16


@dataclasses.dataclass(frozen=True)
class PartitionedVariable:
    """A variable saved from partitions, and how the graph looks it up.

    Attributes:
        key: the checkpoint key (the variable's name without `/part_N`).
        partitions: how many partitions it was saved from.
        strategy: `MOD` or `DIV` when a lookup in the graph shows it; None
            when no `tf.nn.embedding_lookup` of it is in the graph.
    """

    key: str
    partitions: int
    strategy: str | None = None

    def transform(self):
        """The transform a table needs for it: `unpartition_mod(P)` for 'mod', else None.

        >>> PartitionedVariable("emb", 3, MOD).transform()
        'unpartition_mod(3)'
        >>> PartitionedVariable("emb", 3, DIV).transform() is None
        True
        """
        return f"unpartition_mod({self.partitions})" if self.strategy == MOD else None


def partitioned_variables(graph_def):
    """Returns `{checkpoint key: PartitionedVariable}` for a GraphDef's partitioned variables.

    Args:
        graph_def: a `GraphDef` (a MetaGraphDef's `graph_def`, or `graph.as_graph_def()`).

    Returns:
        One entry per variable saved from two or more partitions.

    Example:

        found = partitioned_variables(graph.as_graph_def())
        found["lm/embedding"].strategy  # "mod"
    """
    nodes = {node.name: node for node in graph_def.node}
    counts = {}
    for node in nodes.values():
        match = PARTITION_NAME.match(node.name) if node.op in VARIABLE_OPS else None
        if match:
            counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    strategies = {key: set() for key in counts}
    for node in nodes.values():
        if node.op not in _GATHER_OPS:
            continue
        key = _partitioned_key(nodes, _inputs(node)[0]) if _inputs(node) else None
        if key not in strategies:
            continue
        # The lookup's DynamicPartition sits in the gather's name scope.
        scope = node.name.rpartition("/")[0] + "/"
        for other in nodes.values():
            if other.op == "DynamicPartition" and other.name.startswith(scope):
                producer = _through(nodes, _inputs(other)[1])
                strategies[key].add(MOD if producer is not None and producer.op == _MOD_OP
                                    else DIV)
    return {key: PartitionedVariable(key, count,
                                     strategies[key].pop() if len(strategies[key]) == 1 else None)
            for key, count in counts.items() if count > 1}


def _inputs(node):
    return [text.split(":")[0] for text in node.input if not text.startswith("^")]


def _through(nodes, name):
    """The first node behind `name` that is not a read, cast or identity."""
    for _ in range(_MAX_WALK):
        node = nodes.get(name)
        if node is None or node.op not in _PASS_THROUGH_OPS or not _inputs(node):
            return node
        name = _inputs(node)[0]
    return None


def _partitioned_key(nodes, name):
    node = _through(nodes, name)
    if node is None or node.op not in VARIABLE_OPS:
        return None
    match = PARTITION_NAME.match(node.name)
    return match.group(1) if match else None


def of_checkpoint(checkpoint):
    """`partitioned_variables` of a `LegacyCheckpoint`'s graph; empty without a graph.

    The `.meta` file is parsed, not imported (milliseconds, no TensorFlow
    graph built); a builder's graph is read as it is.
    """
    if not checkpoint.has_graph:
        return {}
    if checkpoint.artifact is not None:
        # Its GraphDef as parsed: importing a frozen graph and exporting it
        # again would copy its weights twice.
        return partitioned_variables(checkpoint.artifact.graph_def)
    if checkpoint.meta_path is None:
        return partitioned_variables(checkpoint.graph.as_graph_def())
    from tensorflow.core.protobuf import meta_graph_pb2

    try:
        data = files.read_bytes(checkpoint.meta_path)
    except Exception as error:  # OSError, or TensorFlow's for a URL.
        raise CheckpointError(f"Cannot read the graph in {checkpoint.meta_path}: "
                              f"{first_line(error)}") from None
    if _PART_MARK not in data:
        return {}  # No partitioned variable; parsing a large graph would cost a second.
    meta_graph = meta_graph_pb2.MetaGraphDef()
    try:
        meta_graph.ParseFromString(data)
    except Exception as error:  # google.protobuf.message.DecodeError and I/O errors.
        raise CheckpointError(f"Cannot read the graph in {checkpoint.meta_path}: "
                              f"{first_line(error)}") from None
    return partitioned_variables(meta_graph.graph_def)
