"""Reads a legacy tensor straight into a model variable's memory, so no second copy is held.

A model already holds a copy of every weight. Reading a 411 MB tensor (VGG-16
`fc6`) into NumPy and assigning it would hold two. Here the variable's buffer
is released first, TensorFlow reads the tensor into a fresh buffer (checking
the checkpoint's CRC32C as usual), and the variable takes that buffer over:
one copy at any time.

Reading slices instead does not work on TF1 checkpoints: a Saver stores an
unpartitioned variable as one entry, and `RestoreV2` with a slice spec reads
the whole entry into a temporary for every slice (measured on VGG-16 fc6:
49 slices took 14 s and still peaked 411 MB above the model).

A partitioned variable is different: its one key holds the whole tensor as
one stored slice per partition. Read whole (`restore`), TensorFlow assembles
it in a fresh buffer a partition at a time (one partition's temporary on
top). Saved from `partition_strategy="mod"` lookups, its rows are not in id
order (`unpartition_mod`), so `restore_mod_partitions` reads one stored
partition at a time and assigns it to its rows (p, p + P, p + 2P, ...) of
the variable's own buffer: no second copy of the table at any time.

Example:

    if direct_read.eligible(assignment, source, variable):
        nonfinite = direct_read.restore(checkpoint.reader_path, key, variable)
"""

import math

import numpy as np

from migrate.errors import CheckpointError
from migrate.errors import first_line
from migrate.mapping import transforms as transforms_lib

# Below this the NumPy path costs as little; above it, the second copy of the
# weight starts to show in the process's peak memory.
MIN_BYTES = 1 << 20
# Rows of a tensor checked at a time when its NaN/Inf count must be exact.
_COUNT_CHUNK_ELEMENTS = 4 << 20
_NUMERIC_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64", "int8", "int16",
                             "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool",
                             "complex64", "complex128"})
# Where TensorFlow's graph execution errors end the failing op's message.
_NODE_MARK = "\n\t [[{{node "
_restore_functions = {}


def eligible(assignment, source, variable):
    """Returns True when `assignment` can be read straight into `variable`.

    Args:
        assignment: a `migrate.planning.plan.Assignment`.
        source: the `SourceVariable` of the key the assignment reads.
        variable: the target model variable.

    Returns:
        True for a plain rule (no layout) of one source and one target whose transforms only
        reshape, on a numeric tensor of at least `MIN_BYTES`, into a
        TensorFlow resource variable of the same dtype.

    Example:

        direct_read.eligible(assignment, checkpoint.variables[key], variable)
    """
    return (assignment.rule.layout is None and assignment.reshaped_sources() is not None
            and _same_numbers(source, variable) and source.nbytes >= MIN_BYTES
            and getattr(variable, "handle", None) is not None)


def stored_copies(assignment, checkpoint, variables_by_path):
    """Returns what to copy, as stored, for every target of `assignment`, or None.

    When every target is one source reshaped in C order
    (`Assignment.reshaped_sources`: a plain rule that only reshapes, or a
    layout such as `bert_attention` whose parts are reshapes), of the same
    dtype (not bfloat16, which NumPy cannot check for NaN), the stored bytes
    are the weights' bytes: they can be copied from the legacy data file
    into the output without passing through the model. Only tensors stored
    whole in a local V2 checkpoint (`LegacyCheckpoint.stored_tensor`) qualify.

    Returns:
        `[(variable, SourceVariable, migrate.source.bundle_index.StoredTensor)]`
        in target order, or None.

    Example:

        copies = direct_read.stored_copies(assignment, checkpoint, variables_by_path)
    """
    reshaped = assignment.reshaped_sources()
    if reshaped is None:
        return None
    copies = []
    for target, key in reshaped.items():
        source, variable = checkpoint.variables.get(key), variables_by_path[target]
        if source is None or source.dtype == "bfloat16" or not _same_numbers(source, variable):
            return None
        stored = checkpoint.stored_tensor(key)
        if stored is None or stored.size != source.nbytes:
            return None
        copies.append((variable, source, stored))
    return copies


def _same_numbers(source, variable):
    """A numeric source of the variable's dtype and number of elements."""
    return (source.dtype in _NUMERIC_DTYPES and _dtype_name(variable) == source.dtype
            and math.prod(source.shape) == math.prod(int(size) for size in variable.shape))


def mod_partitions(assignment, source, variable, checkpoint):
    """Returns P when `assignment` reads a `mod`-partitioned tensor into `variable` per partition.

    That is: a plain rule whose only transform is `unpartition_mod(P)`, a V2
    checkpoint holding the tensor as exactly the P slices of rows that
    `tf.fixed_size_partitioner(P)` makes, and a resource variable of the same
    dtype (see `eligible`). Otherwise 0: the NumPy path converts it.

    Args:
        assignment: a `migrate.planning.plan.Assignment`.
        source: the `SourceVariable` of the key it reads.
        variable: the target model variable.
        checkpoint: the `LegacyCheckpoint` (a V1 checkpoint gives 0).
    """
    transforms = assignment.rule.transforms
    # Tied weights (one source, several targets) are read once through NumPy, as in `eligible`.
    if (assignment.rule.layout is not None or len(assignment.read_keys) != 1
            or len(assignment.targets) != 1 or len(transforms) != 1
            or transforms[0].name != "unpartition_mod"):
        return 0
    if (not source.shape or not _same_numbers(source, variable) or source.nbytes < MIN_BYTES
            or getattr(variable, "handle", None) is None):
        return 0
    if tuple(int(size) for size in variable.shape) != tuple(source.shape):
        return 0
    if checkpoint.checkpoint_format != "V2" or not checkpoint.has_bundle_reader:
        return 0
    (partitions,) = transforms[0].arguments
    rows = source.shape[0]
    sizes = transforms_lib.partition_sizes(rows, partitions)
    expected = [(int(start), int(size)) for start, size in zip(np.cumsum([0, *sizes[:-1]]), sizes)
                if size]
    return partitions if stored_row_slices(checkpoint, source.name) == expected else 0


def stored_row_slices(checkpoint, key):
    """Returns `[(first row, rows)]` of the slices a V2 checkpoint stores `key` in, in row order.

    Only for a tensor stored in slices of whole rows (a partitioned
    variable); None for one stored whole, or sliced along another axis, or
    an `.index` that was not read here.

    Example:

        stored_row_slices(checkpoint, "lm/embedding")  # [(0, 21), (21, 20), (41, 20)]
    """
    slices = checkpoint.stored_slices(key)
    if not slices:
        return None
    sizes = checkpoint.variables[key].shape
    found = []
    for piece in slices:
        first, *others = piece.extent
        # Every later axis whole: all of it, or no `length` at all.
        if any(other.HasField("length") and (other.start, other.length) != (0, size)
               for other, size in zip(others, sizes[1:])):
            return None
        found.append((first.start, first.length))
    return sorted(found)


def restore_mod_partitions(prefix, key, variable, partitions):
    """Reads a `mod`-partitioned tensor into `variable` one stored partition at a time.

    Partition p holds ids p, p + P, p + 2P, ... in order (`unpartition_mod`),
    so it is assigned to those rows of the variable's buffer in place
    (`ResourceStridedSliceAssign`); only one partition is held besides the
    model at any time.

    Args:
        prefix: the legacy checkpoint's reader path.
        key: the checkpoint key (the partitioned variable's whole name).
        variable: a resource variable of the tensor's shape and dtype.
        partitions: P, from `mod_partitions`.

    Returns:
        The number of NaN/Inf values in the tensor (0 for integer tensors).

    Raises:
        CheckpointError: a partition cannot be read; the variable is left
            holding the partitions read before it.
    """
    import tensorflow as tf

    dtype = _tensorflow_dtype(variable)
    shape = [int(size) for size in variable.shape]
    rows = shape[0]
    whole = " ".join(str(size) for size in shape)
    start = 0
    finite = True
    for part, size in enumerate(transforms_lib.partition_sizes(rows, partitions)):
        if not size:
            continue
        spec = ":".join([f"{start},{size}", *["-"] * (len(shape) - 1)])
        try:
            (value,) = tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=[key],
                                            shape_and_slices=[f"{whole} {spec}"], dtypes=[dtype])
        except Exception as error:  # tf.errors.OpError subclasses: DataLoss, NotFound, ...
            raise CheckpointError(
                f"Cannot read {key!r} from checkpoint {prefix}: {_cause(error).rstrip('.')}. "
                f"Expected intact tensor data. Received: name={key!r}") from None
        if dtype.is_floating:
            finite = finite and bool(tf.math.is_finite(tf.reduce_sum(value)))
        tf.raw_ops.ResourceStridedSliceAssign(
            ref=variable.handle, begin=[part] + [0] * (len(shape) - 1), end=shape,
            strides=[partitions] + [1] * (len(shape) - 1), value=value)
        del value
        start += size
    return 0 if finite else _count_nonfinite(variable)


def restore(prefix, key, variable):
    """Reads checkpoint tensor `key` into `variable`, reshaped to the variable's shape.

    Args:
        prefix: the legacy checkpoint's reader path (`LegacyCheckpoint.reader_path`;
            `RestoreV2` reads V1 checkpoints too).
        key: the checkpoint key to read.
        variable: a TensorFlow resource variable (a Keras 3 variable on the
            TensorFlow backend, or a tf_keras variable) with as many elements.

    Returns:
        The number of NaN/Inf values in the tensor (0 for integer tensors).

    Raises:
        CheckpointError: the tensor cannot be read (for example its bytes fail
            the checkpoint's checksum). The variable is then left holding zeros.

    Example:

        nonfinite = direct_read.restore("train/model.ckpt-3", "vgg_16/fc6/weights", variable)
    """
    import tensorflow as tf

    dtype = _tensorflow_dtype(variable)
    shape = [int(size) for size in variable.shape]
    try:
        finite = _restore_function(dtype)(variable.handle, prefix, key,
                                          tf.constant(shape, tf.int64))
    except Exception as error:  # tf.errors.OpError subclasses: DataLoss, NotFound, ...
        # The buffer was released before the read; zeros keep the variable usable.
        tf.raw_ops.AssignVariableOp(resource=variable.handle, value=tf.zeros(shape, dtype),
                                    validate_shape=False)
        raise CheckpointError(
            f"Cannot read {key!r} from checkpoint {prefix}: {_cause(error).rstrip('.')}. "
            f"Expected intact tensor data. Received: name={key!r}") from None
    if bool(finite):
        return 0
    return _count_nonfinite(variable)


def _restore_function(dtype):
    """Returns the compiled release-read-assign step for `dtype`, traced once per dtype."""
    import tensorflow as tf

    function = _restore_functions.get(dtype)
    if function is not None:
        return function
    signature = (tf.TensorSpec([], tf.resource), tf.TensorSpec([], tf.string),
                 tf.TensorSpec([], tf.string), tf.TensorSpec([None], tf.int64))

    @tf.function(input_signature=signature, autograph=False)
    def release_read_assign(handle, prefix, key, shape):
        # An empty value frees the variable's buffer before the read allocates
        # the new one; validate_shape=False lets it hold a shape of its own.
        release = tf.raw_ops.AssignVariableOp(
            resource=handle, value=tf.zeros([0], dtype), validate_shape=False)
        with tf.control_dependencies([release]):
            (value,) = tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=tf.reshape(key, [1]),
                                            shape_and_slices=[""], dtypes=[dtype])
        value = tf.reshape(value, shape)
        # The sum is finite exactly when no element is NaN or Inf (barring an
        # overflow, which only sends the tensor to the exact count). It runs
        # before the assignment so that the assignment is the buffer's last
        # user and takes it over instead of copying it.
        finite = (tf.math.is_finite(tf.reduce_sum(value)) if dtype.is_floating
                  else tf.constant(True))
        with tf.control_dependencies([finite]):
            tf.raw_ops.AssignVariableOp(resource=handle, value=value, validate_shape=False)
        return finite

    _restore_functions[dtype] = release_read_assign
    return release_read_assign


def _cause(error):
    """Returns the failing op's own message out of a graph execution error.

    TensorFlow wraps it as "Graph execution error:", a Python stack, then the
    cause (e.g. "... Checksum does not match ...") and "\t [[{{node RestoreV2}}]]".
    """
    message = getattr(error, "message", None) or str(error)
    if _NODE_MARK not in message:
        return first_line(error)
    cause = message.split(_NODE_MARK, 1)[0].rsplit("\n\n", 1)[-1].strip()
    return cause or first_line(error)


def variable_value(variable):
    """Returns a resource variable's value as a read-only NumPy view of its buffer (no copy).

    The view keeps the buffer alive; it must not be kept past the variable's
    next assignment, which would otherwise have to copy.
    """
    import tensorflow as tf

    return np.asarray(tf.raw_ops.ReadVariableOp(resource=variable.handle,
                                                dtype=_tensorflow_dtype(variable)))


def numpy_dtype(variable):
    """Returns a model variable's dtype as a NumPy dtype."""
    return np.dtype(_dtype_name(variable))


def _dtype_name(variable):
    """A Keras 3 variable's dtype is a name; a tf_keras one's a `tf.DType`."""
    return str(getattr(variable.dtype, "name", variable.dtype))


def _tensorflow_dtype(variable):
    import tensorflow as tf

    return tf.as_dtype(_dtype_name(variable))


def _count_nonfinite(variable):
    """Counts NaN/Inf values of a variable a chunk at a time, so no full-size mask exists."""
    flat = variable_value(variable).reshape(-1)
    count = 0
    for start in range(0, flat.size, _COUNT_CHUNK_ELEMENTS):
        chunk = flat[start:start + _COUNT_CHUNK_ELEMENTS]
        count += int(chunk.size - np.count_nonzero(np.isfinite(chunk)))
    return count
