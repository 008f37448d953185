"""Reads each feature column of a canned Estimator from the ops of its scope.

Feature columns name their scopes after themselves (`color_embedding`,
`hours_bucketized`, `color_X_hours_bucketized`), and the ops inside a scope
say what the column did (a `Bucketize` and its boundaries, a hash table and
its keys, a `StringToHashBucketFast` and its bucket count, a
`SparseSegmentMean` combiner, an affine normalizer's constants). This module
reads one column at a time, of each kind: numeric, bucketized, vocabulary
(list or file), hash, identity, crossed, embedding and indicator; which
columns a tower has, and in what order, is read by `migrate.estimator.spec`.

Every column the reader does not recognise is refused in one line naming
it, before anything is written.
"""

import dataclasses
import os
import re

from migrate.errors import CheckpointError

# The DNN's input layer, as TF 2.x's `tf.estimator` (feature columns v2) names it.
DNN_INPUT_SCOPE = "dnn/input_from_feature_columns/input_layer"
COMBINERS = {"SparseSegmentSum": "sum", "SparseSegmentMean": "mean",
             "SparseSegmentSqrtN": "sqrtn"}
# The ops of an affine normalizer_fn (`(x - 3.0) / 2.0`) with a constant operand.
_AFFINE_OPS = ("Sub", "Add", "AddV2", "Mul", "RealDiv", "Div", "Neg")
# Ops any numeric column has: shape bookkeeping around its reshape.
SHAPE_OPS = ("Shape", "Const", "StridedSlice", "Pack", "Reshape", "Cast", "Identity")
# sparse_cross_hashed's default key, the one Keras' HashedCrossing uses.
DEFAULT_CROSS_HASH_KEY = 0xDECAFCAFFE


class EstimatorError(CheckpointError):
    """The graph is not a canned Estimator this reader knows, or has a column Keras cannot do."""


@dataclasses.dataclass(frozen=True)
class Categorical:
    """A categorical column's ids, as the feature column computed them.

    Attributes:
        name: the column's name (`color`, `hours_bucketized`, `color_X_hours`).
        kind: "vocabulary", "hash", "identity", "bucketized", "crossed", or "raw"
            (a raw string feature a cross hashes itself).
        key: the raw feature it reads (None for a crossed column).
        num_ids: how many ids it yields (vocabulary size + OOV buckets, ...).
        dtype: the raw feature's dtype: "string", "int64" or "float32".
        vocabulary: a vocabulary column's keys, in order.
        vocabulary_file: where a vocabulary file column's keys came from.
        num_oov_buckets: a vocabulary column's OOV buckets (after its keys).
        default_value: a vocabulary or identity column's id for an unknown
            value (-1: the value is dropped).
        boundaries: a bucketized column's boundaries.
        crossed: a crossed column's inputs, in the order the cross hashed them.
    """

    name: str
    kind: str
    key: str | None
    num_ids: int
    dtype: str
    vocabulary: tuple = ()
    vocabulary_file: str | None = None
    num_oov_buckets: int = 0
    default_value: int = -1
    boundaries: tuple = ()
    crossed: tuple = ()


@dataclasses.dataclass(frozen=True)
class Column:
    """One column of the DNN's input layer or of the linear model.

    Attributes:
        name: the column's name, which is also its scope and its Keras layer's name.
        kind: "numeric", "embedding", "indicator" (a categorical column used
            densely, bucketized ones included) or, in the linear model,
            "categorical" (its weights summed per id).
        key: a numeric column's raw feature.
        width: how many values the column adds to the input layer.
        scale, offset: a numeric column's affine normalizer (`x * scale + offset`).
        categorical: the ids behind an embedding, indicator or linear categorical column.
        combiner: "sum", "mean" or "sqrtn".
        variable: the checkpoint variable of its weights (embedding or linear), or None.
    """

    name: str
    kind: str
    key: str | None = None
    width: int = 1
    scale: float = 1.0
    offset: float = 0.0
    categorical: Categorical | None = None
    combiner: str = "sum"
    variable: str | None = None



def ops_in_scope(ops, scope):
    """The ops under `scope/`."""
    return [op for name, op in ops.items() if name.startswith(scope + "/")]



def dense_column(name, scope, scope_ops, width, ops, variables, vocabulary_dirs,
                 feature_names):
    """One column of the DNN's input layer, read from the ops of its scope."""
    refuse_unknown_column(name)
    types = {op.type for op in scope_ops}
    if name.endswith("_embedding"):
        variable = f"{DNN_INPUT_SCOPE}/{name}/embedding_weights"
        if variable not in variables:
            raise EstimatorError(f"Column {name!r}: its embedding variable {variable} is not "
                                 f"in the checkpoint.")
        if any("clip_by_norm" in op.name for op in scope_ops):
            raise EstimatorError(f"Embedding column {name!r} clips its vectors (max_norm), "
                                 f"which Keras' Embedding does not do. Expected "
                                 f"embedding_column without max_norm.")
        base = name[:-len("_embedding")]
        categorical = read_categorical(base, scope, scope_ops, ops, vocabulary_dirs,
                                       num_ids=int(variables[variable].shape[0]),
                                       feature_names=feature_names)
        return Column(name, "embedding", width=width, categorical=categorical,
                      combiner=read_combiner(name, scope_ops), variable=variable)
    if name.endswith("_indicator") or "Bucketize" in types and name.endswith("_bucketized"):
        base = name[:-len("_indicator")] if name.endswith("_indicator") else name
        categorical = read_categorical(base, scope, scope_ops, ops, vocabulary_dirs,
                                       num_ids=width, feature_names=feature_names)
        return Column(name, "indicator", width=width, categorical=categorical)
    return numeric_column(name, scope_ops, width)


def refuse_unknown_column(name):
    """Refuses, in one line, the feature columns port has no Keras equivalent for."""
    for marker, what in (("_shared_embedding", "a shared embedding column"),
                         ("_weighted_by_", "a weighted categorical column"),
                         ("sequence_", "a sequence column")):
        if marker in name:
            raise EstimatorError(
                f"Feature column {name!r} is {what}, which has no Keras preprocessing "
                f"equivalent port writes. Expected numeric, bucketized, vocabulary, hash, "
                f"identity, crossed, embedding or indicator columns.")


def numeric_column(name, scope_ops, width):
    """A numeric column; an affine normalizer_fn becomes `scale` and `offset`."""
    computing = [op for op in scope_ops if op.type not in SHAPE_OPS]
    scale, offset = 1.0, 0.0
    for op in _in_data_order(computing):
        if op.type not in _AFFINE_OPS:
            raise EstimatorError(
                f"Numeric column {name!r} has a normalizer_fn that is not affine ({op.type} "
                f"in {op.name}); Keras' Rescaling writes only x * scale + offset. Expected a "
                f"normalizer such as (x - mean) / std.")
        if op.type == "Neg":
            scale, offset = -scale, -offset
            continue
        constant = [_constant(tensor) for tensor in op.inputs]
        value = next((c for c in constant if c is not None), None)
        if value is None or len(op.inputs) != 2:
            raise EstimatorError(f"Numeric column {name!r}: its normalizer {op.name} "
                                 f"({op.type}) has no constant operand; only constants are "
                                 f"written as Rescaling.")
        constant_first = constant[0] is not None
        if op.type in ("Add", "AddV2"):
            offset += value
        elif op.type == "Sub":
            if constant_first:
                scale, offset = -scale, value - offset
            else:
                offset -= value
        elif op.type == "Mul":
            scale, offset = scale * value, offset * value
        else:  # RealDiv, Div
            if constant_first:
                raise EstimatorError(f"Numeric column {name!r}: its normalizer divides a "
                                     f"constant by the value ({op.name}), which is not affine.")
            scale, offset = scale / value, offset / value
    return Column(name, "numeric", key=name, width=width, scale=scale, offset=offset)


def _in_data_order(scope_ops):
    """Orders a scope's ops so that each comes after the ops of the scope it reads."""
    members = {op.name: op for op in scope_ops}
    ordered, seen = [], set()

    def visit(op):
        if op.name in seen:
            return
        seen.add(op.name)
        for tensor in op.inputs:
            if tensor.op.name in members:
                visit(tensor.op)
        ordered.append(op)
    for op in scope_ops:
        visit(op)
    return ordered


def _constant(tensor):
    """A scalar Const's value (through Identity and Cast), else None."""
    op = tensor.op
    while op.type in ("Identity", "Cast"):
        op = op.inputs[0].op
    if op.type != "Const":
        return None
    from tensorflow.python.framework import tensor_util  # Deferred: TensorFlow.

    value = tensor_util.MakeNdarray(op.get_attr("value"))
    return float(value) if value.size == 1 else None


def read_combiner(name, scope_ops):
    """An embedding or linear column's combiner: "sum", "mean" or "sqrtn"."""
    found = {COMBINERS[op.type] for op in scope_ops if op.type in COMBINERS}
    if len(found) != 1:
        raise EstimatorError(f"Column {name!r}: expected one embedding combiner (sum, mean, "
                             f"sqrtn) in its graph. Received: {sorted(found) or 'none'}")
    return found.pop()


def read_categorical(name, scope, scope_ops, ops, vocabulary_dirs, *, num_ids,
                     feature_names):
    """The categorical column `name` read from the ops of the scope that uses it."""
    refuse_unknown_column(name)
    if "_X_" in name:
        return _crossed(name, scope_ops, ops, vocabulary_dirs, num_ids, feature_names)
    scope_ops = _defining_ops(name, scope, scope_ops, ops)
    types = [op.type for op in scope_ops]
    if "Bucketize" in types:
        bucketize = next(op for op in scope_ops if op.type == "Bucketize")
        boundaries = tuple(float(b) for b in bucketize.get_attr("boundaries"))
        if not name.endswith("_bucketized"):
            raise EstimatorError(f"Column {name!r} buckets its values but is not named as a "
                                 f"bucketized column (NAME_bucketized).")
        if num_ids is not None and num_ids != len(boundaries) + 1:
            raise EstimatorError(
                f"Bucketized column {name!r} has {num_ids} buckets for {len(boundaries)} "
                f"boundaries: a numeric source of more than one value, which port does not "
                f"write. Expected a numeric column of shape (1,).")
        return Categorical(name, "bucketized", name[:-len("_bucketized")],
                           len(boundaries) + 1, "float32", boundaries=boundaries)
    tables = [op for op in scope_ops if op.type in ("HashTableV2", "HashTable")]
    if tables:
        return _vocabulary(name, tables[0], scope_ops, ops, vocabulary_dirs, num_ids)
    hashes = [op for op in scope_ops if op.type == "StringToHashBucketFast"]
    if hashes:
        as_string = any(op.type == "AsString" for op in scope_ops)
        buckets = int(hashes[0].get_attr("num_buckets"))
        return Categorical(name, "hash", name, buckets, "int64" if as_string else "string")
    if any(op.type == "StringToHashBucketStrong" for op in scope_ops):
        raise EstimatorError(f"Column {name!r} hashes with a keyed hash (strong), which "
                             f"Keras' Hashing does not do the same way.")
    default = -1
    # categorical_column_with_identity(default_value=D) fills D where a value is out of range.
    for op in scope_ops:
        if op.type == "Fill":
            value = _constant(op.inputs[1])
            if value is not None:
                default = int(value)
    return Categorical(name, "identity", name, num_ids or 0, "int64", default_value=default)


_DEFINING = ("Bucketize", "HashTableV2", "HashTable", "StringToHashBucketFast")


def _defining_ops(name, scope, scope_ops, ops):
    """The ops that compute a categorical column's ids.

    A feature-column call computes each column's ids once and caches them:
    a column used twice (alone and in a cross) computes them in the scope of
    its first use, in name order, so its own scope may only read them.
    """
    if any(op.type in _DEFINING for op in scope_ops):
        return scope_ops
    parent = scope.rpartition("/")[0]
    for segment in sorted({op.name[len(parent) + 1:].split("/")[0] for op in ops.values()
                           if op.name.startswith(parent + "/")}):
        base = re.sub(r"(_1)?$", "", segment)
        base = re.sub(r"_(embedding|indicator)$", "", base)
        if name in base.split("_X_") and base != name:
            found = ops_in_scope(ops, f"{parent}/{segment}")
            if any(op.type in _DEFINING for op in found):
                return found
    return scope_ops


def _vocabulary(name, table, scope_ops, ops, vocabulary_dirs, num_ids):
    key_dtype = table.get_attr("key_dtype").name
    if key_dtype not in ("string", "int64", "int32"):
        raise EstimatorError(f"Vocabulary column {name!r} has {key_dtype} keys. Expected "
                             f"string or integer keys.")
    keys, source = None, None
    for op in ops.values():
        if not op.inputs or op.inputs[0].op is not table:
            continue
        if op.type in ("LookupTableImportV2", "InitializeTableV2", "InitializeTable"):
            values = _array(op.inputs[1])
            keys = tuple(value.decode() if isinstance(value, bytes) else int(value)
                         for value in values.tolist())
        elif op.type in ("InitializeTableFromTextFileV2", "InitializeTableFromTextFile"):
            if op.get_attr("key_index") != -2 or op.get_attr("value_index") != -1:
                raise EstimatorError(f"Vocabulary file column {name!r} reads columns of its "
                                     f"file; port reads one key per line.")
            source = _text_constant(op.inputs[1])
            keys = _read_vocabulary(name, source, vocabulary_dirs, key_dtype)
            vocab_size = op.get_attr("vocab_size")
            if vocab_size not in (-1, None) and vocab_size < len(keys):
                keys = keys[:vocab_size]
    if keys is None:
        raise EstimatorError(f"Vocabulary column {name!r}: its table's initializer is not in "
                             f"the graph.")
    oov = [op for op in scope_ops if op.type == "StringToHashBucketFast"
           and "hash_table_Lookup" in op.name]
    num_oov = int(oov[0].get_attr("num_buckets")) if oov else 0
    find = next(op for op in scope_ops if op.type in ("LookupTableFindV2", "LookupTableFind"))
    default = _constant(find.inputs[2])
    default = -1 if default is None else int(default)
    if num_ids is not None and num_ids != len(keys) + num_oov:
        raise EstimatorError(f"Vocabulary column {name!r}: {len(keys)} keys and {num_oov} OOV "
                             f"buckets, but its weights have {num_ids} rows.")
    return Categorical(name, "vocabulary", name, len(keys) + num_oov,
                       "string" if key_dtype == "string" else "int64", vocabulary=keys,
                       vocabulary_file=source, num_oov_buckets=num_oov, default_value=default)


def _array(tensor):
    """A constant's value, through the Identity and Cast ops between it and its use."""
    from tensorflow.python.framework import tensor_util  # Deferred: TensorFlow.

    op = tensor.op
    while op.type in ("Identity", "Cast"):
        op = op.inputs[0].op
    if op.type != "Const":
        raise EstimatorError(f"Expected a constant behind {tensor.op.name}. Received: "
                             f"{op.type} {op.name}")
    return tensor_util.MakeNdarray(op.get_attr("value"))


def _text_constant(tensor):
    from tensorflow.python.framework import tensor_util  # Deferred: TensorFlow.

    value = tensor_util.MakeNdarray(tensor.op.get_attr("value"))
    value = value.item() if value.size == 1 else value
    return value.decode() if isinstance(value, bytes) else str(value)


def _read_vocabulary(name, path, vocabulary_dirs, key_dtype):
    candidates = [path] + [os.path.join(directory, os.path.basename(path))
                           for directory in vocabulary_dirs]
    found = next((candidate for candidate in candidates if os.path.isfile(candidate)), None)
    if found is None:
        raise EstimatorError(
            f"Vocabulary file {path} of column {name!r} does not exist here (it is the path "
            f"of the machine that trained the model). Expected it supplied: put "
            f"{os.path.basename(path)} in a directory given as --vocabulary_dir, or port an "
            f"export of the model, which carries it in assets/.")
    with open(found, encoding="utf-8") as file:
        lines = [line.rstrip("\n") for line in file]
    if lines and lines[-1] == "":
        lines.pop()
    return tuple(lines if key_dtype == "string" else [int(line) for line in lines])


def _crossed(name, scope_ops, ops, vocabulary_dirs, num_ids, feature_names):
    cross = next((op for op in scope_ops if op.type in ("SparseCross", "SparseCrossHashed")),
                 None)
    if cross is None:
        raise EstimatorError(f"Crossed column {name!r}: its SparseCross is not in the graph.")
    hash_key = cross.get_attr("hash_key") if cross.type == "SparseCross" else None
    if hash_key is not None and hash_key != DEFAULT_CROSS_HASH_KEY:
        raise EstimatorError(f"Crossed column {name!r} hashes with key {hash_key}; Keras' "
                             f"HashedCrossing uses the default key {DEFAULT_CROSS_HASH_KEY}.")
    sparse_count = len(cross.get_attr("sparse_types"))
    dense_count = len(cross.get_attr("dense_types"))
    count = sparse_count + dense_count
    # The op hashes its sparse inputs first, then its dense ones (raw features
    # given densely), whatever order the column listed them in.
    values = (list(cross.inputs)[sparse_count:2 * sparse_count]
              + list(cross.inputs)[3 * sparse_count:3 * sparse_count + dense_count])
    leaves = name.split("_X_")
    if len(leaves) != count:
        raise EstimatorError(f"Crossed column {name!r} names {len(leaves)} inputs but crosses "
                             f"{count}.")
    scope = "/".join(cross.name.split("/")[:-1])
    parent = scope.rpartition("/")[0]
    ordered = [None] * count
    # Categorical inputs first (their ops name them), raw features after (by key).
    for index, tensor in enumerate(values):
        if not _is_raw(tensor, parent):
            ordered[index] = _leaf_of(tensor, leaves, ordered)
    for index, tensor in enumerate(values):
        if ordered[index] is None:
            ordered[index] = _raw_leaf(tensor, leaves, ordered, parent, feature_names)
    inputs = []
    for leaf, tensor in zip(ordered, values):
        if _is_raw(tensor, parent):
            dtype = "string" if tensor.dtype.name == "string" else "int64"
            inputs.append(Categorical(leaf, "raw", leaf, 0, dtype))
            continue
        leaf_scope = f"{parent}/{leaf}"
        leaf_ops = ops_in_scope(ops, leaf_scope) or scope_ops
        inputs.append(read_categorical(leaf, leaf_scope, leaf_ops, ops, vocabulary_dirs,
                                       num_ids=None, feature_names=feature_names))
    return Categorical(name, "crossed", None, num_ids, "int64", crossed=tuple(inputs))


# Ops between a raw feature and a cross: a dense feature made sparse (values
# gathered where they are not missing), reshaped or cast.
_PASS_THROUGH = ("Identity", "Cast", "GatherNd", "Reshape")


def _raw_source(tensor, parent):
    """The raw feature tensor (made outside the feature-column call) a cross input is, or None."""
    while tensor.op.name.startswith(parent + "/"):
        if tensor.op.type not in _PASS_THROUGH or not tensor.op.inputs:
            return None
        tensor = tensor.op.inputs[0]
    return tensor


def _is_raw(tensor, parent):
    return _raw_source(tensor, parent) is not None


def _raw_leaf(tensor, leaves, taken, parent, feature_names):
    """Which raw feature a cross's input is: by its parsed key, its signature key, or its users."""
    left = [leaf for leaf in leaves if leaf not in taken]
    source = _raw_source(tensor, parent)
    source = tensor if source is None else source
    key = feature_names.get(source.name) or _parsed_key(source)
    if key in left:
        return key
    for consumer in source.consumers():
        for leaf in left:
            if consumer.name.startswith(f"{parent}/{leaf}/") or \
                    consumer.name.startswith(f"{parent}/{leaf}_1/"):
                return leaf
    if len(left) == 1:
        return left[0]
    raise EstimatorError(f"Cannot tell which raw feature of the cross {tensor.op.name} is "
                         f"which. Received: features {left}")


def _parsed_key(tensor):
    """The feature key of a ParseExample output, else None."""
    op = tensor.op
    if op.type not in ("ParseExample", "ParseExampleV2"):
        return None
    index = tensor.value_index
    sparse = op.get_attr("num_sparse") if op.type == "ParseExampleV2" else op.get_attr("Nsparse")
    if op.type == "ParseExampleV2":
        sparse_keys = _strings(op.inputs[2])
        dense_keys = _strings(op.inputs[3])
    else:
        sparse_keys = [_text_constant(t) for t in op.inputs[2:2 + sparse]]
        dense_keys = [_text_constant(t) for t in op.inputs[2 + sparse:2 + sparse
                                                           + op.get_attr("Ndense")]]
    if sparse <= index < 2 * sparse:
        return sparse_keys[index - sparse]
    if 3 * sparse <= index < 3 * sparse + len(dense_keys):
        return dense_keys[index - 3 * sparse]
    return None


def _strings(tensor):
    from tensorflow.python.framework import tensor_util  # Deferred: TensorFlow.

    values = tensor_util.MakeNdarray(tensor.op.get_attr("value"))
    return [value.decode() if isinstance(value, bytes) else str(value)
            for value in values.reshape(-1).tolist()]


def _leaf_of(tensor, leaves, taken):
    """Which of a crossed column's inputs a value tensor of its SparseCross holds."""
    names = _ancestor_types(tensor)
    if "Bucketize" in names:
        found = [leaf for leaf in leaves if leaf.endswith("_bucketized") and leaf not in taken]
        if found:
            return found[0]
    for leaf in leaves:
        if leaf not in taken and f"/{leaf}/" in tensor.op.name + "/":
            return leaf
    left = [leaf for leaf in leaves if leaf not in taken]
    if len(left) == 1:
        return left[0]
    raise EstimatorError(f"Cannot tell which input of the cross {tensor.op.name} feeds. "
                         f"Received: inputs {leaves}")


def _ancestor_types(tensor, depth=12):
    found, frontier = set(), [tensor.op]
    for _ in range(depth):
        following = []
        for op in frontier:
            found.add(op.type)
            following.extend(t.op for t in op.inputs)
        frontier = following
    return found
