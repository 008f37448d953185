"""Which variables a legacy graph looks up by vocabulary id, and its out-of-vocabulary buckets.

A feature column's vocabulary (`categorical_column_with_vocabulary_list` or
`_file` with `num_oov_buckets=K`) gives a value in the vocabulary its index,
`0 .. V-1`, and hashes any other value into one of K buckets after it, `V ..
V+K-1` (a `LookupTableFindV2`, a `StringToHashBucketFast` of K buckets, and
a select between them). Keras' `StringLookup` and `IntegerLookup` put the
out-of-vocabulary indices first, `0 .. K-1`, and the vocabulary after: the
rows of an embedding (or of a linear model's weights) looked up by these ids
must be rolled by K (the `vocabulary_oov_roll` layout). The graph shows it:
the ids a variable's gather reads come from a table lookup, and K is the
hash op's `num_buckets`.
"""

from migrate.source.meta_graph import PARTITION_NAME
from migrate.source.meta_graph import VARIABLE_OPS

_READ_OPS = frozenset({"Identity", "ReadVariableOp", "Snapshot"})
_GATHER_OPS = frozenset({"Gather", "GatherV2", "ResourceGather"})
_LOOKUP_OPS = frozenset({"LookupTableFind", "LookupTableFindV2"})
_HASH_OPS = frozenset({"StringToHashBucketFast", "StringToHashBucketStrong", "StringToHashBucket"})
_CROSS_OPS = frozenset({"SparseCross", "SparseCrossHashed", "SparseCrossV2"})
# How far upstream of a gather's ids the lookup is looked for: the column's
# own ops (select, unique, sparse plumbing), never another column's.
_MAX_UPSTREAM = 120


def oov_buckets(graph_def):
    """Returns `{checkpoint key: K}` for every variable gathered by ids from a vocabulary lookup.

    K is the number of out-of-vocabulary buckets the ids put after the
    vocabulary (0 when the lookup has none).

    Args:
        graph_def: a GraphDef (its top-level nodes are read).

    Example:

        oov_buckets(meta_graph.graph_def)
        # {'dnn/input_from_feature_columns/input_layer/color_embedding/embedding_weights': 2}
    """
    nodes = {node.name: node for node in graph_def.node}
    consumers = {}
    for node in graph_def.node:
        for text in node.input:
            if not text.startswith("^"):
                consumers.setdefault(_name(text), []).append(node)
    found = {}
    for node in graph_def.node:
        if node.op not in VARIABLE_OPS:
            continue
        match = PARTITION_NAME.match(node.name)
        key = match.group(1) if match else node.name
        for gather in _gathers(node, consumers):
            buckets = _buckets_behind(nodes, _name(gather.input[1]))
            if buckets is not None:
                found[key] = max(found.get(key, 0), buckets)
    return found


def _name(text):
    return text.lstrip("^").split(":")[0]


def _gathers(variable, consumers):
    """The gather ops reading `variable`, through its reads."""
    found, stack, seen = [], [variable], set()
    while stack:
        node = stack.pop()
        for consumer in consumers.get(node.name, ()):
            if consumer.name in seen:
                continue
            seen.add(consumer.name)
            if consumer.op in _GATHER_OPS and _name(consumer.input[0]) == node.name:
                found.append(consumer)
            elif consumer.op in _READ_OPS:
                stack.append(consumer)
    return found


def _buckets_behind(nodes, ids):
    """K when the ids come from a vocabulary lookup (0 without hash buckets), else None."""
    queue, seen, lookup, buckets = [ids], {ids}, False, 0
    while queue and len(seen) < _MAX_UPSTREAM:
        node = nodes.get(queue.pop(0))
        if node is None:
            continue
        if node.op in _LOOKUP_OPS:
            lookup = True
            continue  # Upstream of the lookup are the raw values and the table.
        if node.op in _CROSS_OPS:
            continue  # A crossed column hashes the crossing: its ids are no vocabulary's.
        if node.op in _HASH_OPS:
            buckets = max(buckets, node.attr["num_buckets"].i)
        for text in node.input:
            name = _name(text)
            if not text.startswith("^") and name not in seen:
                seen.add(name)
                queue.append(name)
    return buckets if lookup else None
