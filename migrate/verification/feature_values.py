"""Raw feature values a legacy graph can take, read from what the graph does with them.

A feature-column graph (an Estimator's) takes raw features: strings it looks
up in a vocabulary table or hashes into buckets, numbers it cuts at bucket
boundaries. A seeded normal draw fits none of these: a string placeholder
cannot take floats, and random strings would all fall out of the vocabulary.
So the values are read from the graph: downstream of the feature, a lookup
table's keys (its initializer's constant, or its vocabulary file), whether
out-of-vocabulary values hash into buckets, and `Bucketize` boundaries. The
values then cover every vocabulary entry, out-of-vocabulary values (where
the graph has buckets for them) and every bucket, in turn.
"""

import dataclasses

import numpy as np

from migrate import files

_LOOKUP_OPS = frozenset({"LookupTableFind", "LookupTableFindV2"})
_HASH_OPS = frozenset({"StringToHashBucketFast", "StringToHashBucketStrong", "StringToHashBucket"})
_KEYS_INITIALIZERS = frozenset({"InitializeTable", "InitializeTableV2", "LookupTableImport",
                                "LookupTableImportV2"})
FILE_INITIALIZERS = frozenset({"InitializeTableFromTextFile", "InitializeTableFromTextFileV2"})
_GATHER_OPS = frozenset({"Gather", "GatherV2", "ResourceGather"})
TABLE_INITIALIZER_OPS = _KEYS_INITIALIZERS | FILE_INITIALIZERS
_WHOLE_LINE = -2
_LINE_NUMBER = -1
# How far downstream of a feature its column's ops are looked for, and how
# many rows at most are spent on covering a vocabulary.
_MAX_OPS_WALKED = 400
MAX_COVERING_ROWS = 256
_OOV_VALUES = ("<out-of-vocabulary 0>", "<out-of-vocabulary 1>")


@dataclasses.dataclass
class FeatureFacts:
    """What the graph does with one raw feature.

    Attributes:
        vocabulary: the keys of the lookup tables it is looked up in, in
            table order (empty when none).
        hashed: it is hashed into buckets (a hash-bucket column, or a
            vocabulary's out-of-vocabulary buckets).
        boundaries: the sorted `Bucketize` boundaries it is cut at.
        id_bound: for integer ids the graph checks to be below a constant
            (an identity column's `num_buckets`), that constant.
        made_sparse: the graph gathers the values it keeps out of the dense
            feature (`GatherNd`), as a categorical feature column makes its
            input sparse (`to_sparse_input`) before taking its ids.
    """

    vocabulary: list = dataclasses.field(default_factory=list)
    hashed: bool = False
    boundaries: list = dataclasses.field(default_factory=list)
    id_bound: int | None = None
    made_sparse: bool = False

    @property
    def covering_rows(self):
        """Rows that show every vocabulary entry, out-of-vocabulary values, bucket and id once."""
        vocabulary = len(self.vocabulary) + (len(_OOV_VALUES) if self.hashed else 0)
        return min(MAX_COVERING_ROWS, max(vocabulary, len(self.boundaries) + 1 if
                                          self.boundaries else 0, self.id_bound or 0))


def facts(graph, tensor, *, assets=None):
    """Reads what the graph does downstream of `tensor` (a raw feature).

    Args:
        graph: the `tf.Graph`.
        tensor: the feature's tensor (a placeholder, or a parsed feature's
            dense or sparse values).
        assets: `{tensor name: path}` of a SavedModel's asset files, which
            stand for the vocabulary files named in the graph.

    Returns:
        A `FeatureFacts`.
    """
    found = FeatureFacts()
    is_ids = tensor.dtype.is_integer
    seen, queue = {tensor.op.name}, [tensor]
    while queue and len(seen) < _MAX_OPS_WALKED:
        current = queue.pop(0)
        for op in current.consumers():
            if op.name in seen:
                continue
            seen.add(op.name)
            if op.type in _LOOKUP_OPS:
                for key in _table_keys(graph, op.inputs[0], assets or {}):
                    if key not in found.vocabulary:
                        found.vocabulary.append(key)
            elif op.type in _HASH_OPS:
                found.hashed = True
            elif op.type == "Bucketize":
                found.boundaries = sorted(set(found.boundaries) | set(op.get_attr("boundaries")))
            elif op.type == "GatherNd" and op.inputs[0] is tensor:
                found.made_sparse = True
            elif is_ids:
                bound = _id_bound(op, current)
                if bound:
                    found.id_bound = min(found.id_bound or bound, bound)
            queue.extend(op.outputs)
    return found


def _id_bound(op, current):
    """The ids' bound an op shows: a `Less` check, a one-hot depth, the rows gathered from."""
    if op.type == "Less" and op.inputs[0] is current:
        return _scalar(op.inputs[1])
    if op.type == "OneHot" and op.inputs[0] is current:
        return _scalar(op.inputs[1])
    if op.type in _GATHER_OPS and len(op.inputs) > 1 and op.inputs[1] is current:
        params = op.inputs[0]
        if params.op.type == "VarHandleOp":
            shape = params.op.get_attr("shape")
            return shape.dim[0].size if shape.dim and shape.dim[0].size > 0 else None
        if params.shape.rank:
            return params.shape[0]
    return None


def _scalar(tensor):
    """A constant scalar integer's value, else None."""
    from tensorflow.python.framework import tensor_util

    value = tensor_util.constant_value(tensor)
    if value is None or np.size(value) != 1 or not np.issubdtype(np.asarray(value).dtype,
                                                                  np.integer):
        return None
    return int(np.asarray(value).reshape(()))


def _table_keys(graph, handle, assets):
    """The keys a lookup table is initialized with, as Python values (bytes decoded)."""
    from tensorflow.python.framework import tensor_util

    table = handle.op
    while table.type == "Identity" and table.inputs:
        table = table.inputs[0].op
    keys = []
    for output in table.outputs:
        for op in output.consumers():
            if op.type in _KEYS_INITIALIZERS:
                value = tensor_util.constant_value(op.inputs[1])
                if value is not None:
                    keys += [_decoded(key) for key in np.asarray(value).reshape(-1)]
            elif op.type in FILE_INITIALIZERS:
                keys += _file_keys(op, assets)
    return keys


def _file_keys(op, assets):
    """The keys of a vocabulary file table: its lines, or one column of them."""
    from tensorflow.python.framework import tensor_util

    filename = op.inputs[1]
    path = assets.get(filename.name)
    if path is None:
        value = tensor_util.constant_value(filename)
        path = _decoded(value.item()) if value is not None else None
    if path is None or not files.exists(path):
        return []  # Running the table's initializer says which file is missing.
    key_index = op.get_attr("key_index")
    delimiter = _decoded(op.get_attr("delimiter"))
    lines = files.read_bytes(path).decode("utf-8").splitlines()
    size = op.get_attr("vocab_size")
    lines = lines[:size] if size and size > 0 else lines
    if key_index == _WHOLE_LINE:
        return lines
    if key_index == _LINE_NUMBER:
        return list(range(len(lines)))
    return [line.split(delimiter)[key_index] for line in lines]


def _decoded(value):
    return value.decode("utf-8") if isinstance(value, bytes) else (
        value.item() if isinstance(value, np.generic) else value)


def values(found, dtype, count, *, seed=0, input_max=None):
    """Returns `count` values of `dtype` for a feature the graph uses as `found` says.

    Strings: the vocabulary in turn, with out-of-vocabulary values where the
    graph hashes them, or distinct strings for hash buckets. Numbers: one
    inside every bucket the boundaries make (never on a boundary, where a
    rounding would decide), else a seeded normal draw (integers: the
    vocabulary, every id below the bound the graph checks, or `[0, input_max)`).

    Example:

    >>> values(FeatureFacts(vocabulary=["a", "b"], hashed=True), "string", 5).tolist()
    ['a', 'b', '<out-of-vocabulary 0>', '<out-of-vocabulary 1>', 'a']
    >>> values(FeatureFacts(boundaries=[0.0, 10.0]), "float32", 3).tolist()
    [-2.5, 5.0, 12.5]
    """
    dtype = np.dtype(object) if str(dtype) in ("string", "object") else np.dtype(dtype)
    rng = np.random.default_rng(seed)
    if dtype == object:
        cycle = [str(key) for key in found.vocabulary]
        if found.hashed or not cycle:
            cycle += list(_OOV_VALUES) if cycle else [f"value {index}" for index in range(count)]
        return np.array([cycle[index % len(cycle)] for index in range(count)], object)
    if found.vocabulary and np.issubdtype(dtype, np.integer):
        cycle = list(found.vocabulary)
        if found.hashed:  # Out of the vocabulary: above its largest key.
            cycle += [max(cycle) + 1 + index for index in range(len(_OOV_VALUES))]
        return np.array([cycle[index % len(cycle)] for index in range(count)], dtype)
    if found.boundaries:
        bounds = found.boundaries
        gap = max((bounds[-1] - bounds[0]) / max(len(bounds) - 1, 1), 1.0)
        inside = ([bounds[0] - gap / 4] + [(low + high) / 2 for low, high in zip(bounds, bounds[1:])]
                  + [bounds[-1] + gap / 4])
        return np.array([inside[index % len(inside)] for index in range(count)], dtype)
    if found.id_bound and np.issubdtype(dtype, np.integer):
        return np.arange(count, dtype=dtype) % found.id_bound
    if found.hashed and np.issubdtype(dtype, np.integer):
        return np.arange(count, dtype=dtype)  # Distinct values, hashed into the buckets.
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, input_max or 2, size=count).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=count).astype(bool)
    return rng.standard_normal(count).astype(dtype)


def placeholder_values(graph, tensor, shape, *, seed=0, assets=None):
    """Returns values for a raw-feature placeholder at `shape`, or None when the graph says nothing.

    Used for string placeholders (which a normal draw cannot fill) and
    numbers the graph cuts into buckets.
    """
    found = placeholder_facts(graph, tensor, assets=assets)
    if found is None:
        return None
    count = int(np.prod(shape)) if shape else 1
    is_string = tensor.dtype.name == "string"
    drawn = values(found, "string" if is_string else tensor.dtype.as_numpy_dtype, count, seed=seed)
    return drawn.reshape(shape)


def placeholder_facts(graph, tensor, *, assets=None):
    """The `FeatureFacts` of a placeholder whose values come from the graph, else None.

    A string placeholder, a number looked up in a vocabulary, hashed or cut
    into buckets, or a categorical feature column's integer ids (made sparse,
    then bounded: an identity column's); other integers (token ids gathered
    from an embedding) are drawn as before (with `input_max`).
    """
    found = facts(graph, tensor, assets=assets)
    if tensor.dtype.name == "string" or found.vocabulary or found.boundaries or found.hashed:
        return found
    if found.id_bound and tensor.dtype.is_integer and found.made_sparse:
        return found
    return None
