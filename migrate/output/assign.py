"""Reads, converts and assigns the planned tensors into the model's variables, one at a time,
or hands those whose stored bytes need no change to the output to copy."""

import numpy as np

from migrate.errors import CheckpointError
from migrate.errors import ModelError
from migrate.output import direct_read


def execute(plan, checkpoint, variables_by_path, *, allow_nonfinite=False, progress=None,
            on_assigned=None, copy_stored=None):
    """Reads, converts and assigns (or has copied) every planned tensor, one assignment at a time.

    Only the planned keys are read (slots, EMA shadows left out and dropped
    variables never are). A plain rule whose transforms only reshape is read
    by TensorFlow straight into the variable's memory when it holds at least
    `migrate.output.direct_read.MIN_BYTES`, and so is a `mod`-partitioned one
    (`unpartition_mod`), a partition at a time; other tensors go through
    NumPy and are released before the next is read.

    Args:
        plan: a `ConversionPlan` without problems.
        checkpoint: the `LegacyCheckpoint` the plan was made from.
        variables_by_path: the model's variables by target path.
        allow_nonfinite: carry NaN/Inf values instead of refusing them.
        progress: an optional `migrate.progress.Progress`.
        on_assigned: called with the list of variables an assignment filled,
            right after it (a `migrate.output.checkpoint.CheckpointStream`'s
            `write`, so that each weight is written while the next is read).
        copy_stored: when given (a `CheckpointStream`'s `copy`), an
            assignment whose stored bytes are its weights' bytes
            (`direct_read.stored_copies`: reshapes only, tensors stored whole
            in a local V2 checkpoint) is not assigned: `copy_stored(variable,
            stored, inspect=)` copies each from the data file into the
            output, and the variables keep their values. For a model that is
            only the template of the output's structure.

    Returns:
        `(written_bytes, nonfinite)` where `nonfinite` lists `(name, count)` of
        tensors holding NaN or Inf (passed only with `allow_nonfinite`).

    Raises:
        CheckpointError: a tensor cannot be read, or holds NaN/Inf while
            `allow_nonfinite` is False.
        ModelError: a conversion produced a shape the variable does not have.

    Example:

        written, nonfinite = assign.execute(plan, checkpoint, variables_by_path)
    """
    written = 0
    nonfinite = []
    direct = checkpoint.has_bundle_reader
    for assignment in largest_first(plan.assignments, checkpoint):
        source = checkpoint.variables.get(assignment.read_keys[0])
        variable = variables_by_path[assignment.targets[0]]
        copies = (copy_stored is not None
                  and direct_read.stored_copies(assignment, checkpoint, variables_by_path))
        partitions = (not copies and direct and source is not None
                      and direct_read.mod_partitions(assignment, source, variable, checkpoint))
        if copies:
            nbytes = 0
            for copied_variable, copied, stored in copies:
                count = NonfiniteCount()
                copy_stored(copied_variable, stored, inspect=count)
                check_finite(copied.name, copied.shape, count.total, nonfinite, allow_nonfinite)
                nbytes += copied.nbytes
        elif partitions:
            bad = direct_read.restore_mod_partitions(checkpoint.reader_path, source.name,
                                                     variable, partitions)
            check_finite(source.name, source.shape, bad, nonfinite, allow_nonfinite)
            nbytes = source.nbytes
        elif direct and source is not None and direct_read.eligible(assignment, source, variable):
            bad = direct_read.restore(checkpoint.reader_path, source.name, variable)
            check_finite(source.name, source.shape, bad, nonfinite, allow_nonfinite)
            nbytes = source.nbytes
        else:
            nbytes = _convert_and_assign(assignment, checkpoint, variables_by_path,
                                         nonfinite, allow_nonfinite)
        written += nbytes
        if on_assigned is not None and not copies:
            on_assigned([variables_by_path[target] for target in assignment.targets])
        if progress is not None:
            progress.advance(1, nbytes, assignment.targets[0])
    if progress is not None:
        progress.close()
    return written, nonfinite


def largest_first(assignments, checkpoint):
    """Orders assignments by the bytes they read, largest first.

    A weight is written and hashed (`on_assigned`) while the next is read;
    hashing cannot start on a tensor before it is read, so the largest one
    (VGG-16's fc6 is three quarters of the model) is read first, and its
    hashing overlaps the reading of all the others instead of following it.
    Equal sizes go in the order of the keys they read, so the order follows
    from the checkpoint's `.index` alone: a batch copies a checkpoint's
    tensors in this order before its plan exists (`copy_plan.stage`).
    """
    def order(assignment):
        read_bytes = sum(checkpoint.variables[key].nbytes for key in assignment.read_keys
                         if key in checkpoint.variables)
        return -read_bytes, assignment.read_keys
    return sorted(assignments, key=order)


def _convert_and_assign(assignment, checkpoint, variables_by_path, nonfinite, allow_nonfinite):
    """The NumPy path: read the sources, convert them, assign; returns the bytes assigned."""
    outputs = convert_arrays(assignment, [checkpoint.read(key) for key in assignment.read_keys],
                             nonfinite, allow_nonfinite)
    nbytes = 0
    for target, value in outputs.items():
        variable = variables_by_path[target]
        check_converted_shape(target, value, [int(size) for size in variable.shape])
        variable.assign(value)
        nbytes += value.nbytes
    return nbytes


def convert_arrays(assignment, arrays, nonfinite, allow_nonfinite):
    """Checks the source arrays for NaN/Inf (`check_finite`), then converts them (`Assignment.convert`).

    Returns:
        `{target path: array}`; the source arrays are released.
    """
    for name, array in zip(assignment.read_keys, arrays):
        if np.issubdtype(array.dtype, np.floating) and array.size and not (
                np.isfinite(array.min()) and np.isfinite(array.max())):
            # min and max propagate NaN and reach any Inf without a full-size
            # mask; only a tensor that has one pays for the exact count.
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            check_finite(name, array.shape, bad, nonfinite, allow_nonfinite)
    outputs = assignment.convert(arrays)
    arrays.clear()
    return outputs


def check_converted_shape(target, value, expected):
    """Refuses a converted array whose shape is not the weight's (`expected`).

    Raises:
        ModelError: the shapes differ.
    """
    if tuple(value.shape) != tuple(expected):
        raise ModelError(
            f"The conversion produced a tensor the model weight {target!r} cannot hold. "
            f"Expected shape {list(expected)}. Received: shape={list(value.shape)}")


class NonfiniteCount:
    """Counts the NaN/Inf values of the chunks it is called with.

    A chunk's sum is finite exactly when it holds no NaN or Inf, barring an
    overflow, which only sends that chunk to the exact count.

    >>> count = NonfiniteCount()
    >>> count(np.array([1.0, np.nan, np.inf], np.float32)); count(np.arange(3))
    >>> count.total
    2
    """

    def __init__(self):
        self.total = 0

    def __call__(self, chunk):
        if not np.issubdtype(chunk.dtype, np.floating) and not np.issubdtype(
                chunk.dtype, np.complexfloating):
            return
        with np.errstate(all="ignore"):
            finite = np.isfinite(chunk.sum(dtype=np.result_type(chunk.dtype, np.float32)))
        if not finite:
            self.total += int(chunk.size - np.count_nonzero(np.isfinite(chunk)))


def check_finite(name, shape, bad, nonfinite, allow_nonfinite):
    """Records a tensor's `bad` NaN/Inf count in `nonfinite`; refuses it unless `allow_nonfinite`.

    Raises:
        CheckpointError: `bad` > 0 and not `allow_nonfinite`.
    """
    if not bad:
        return
    nonfinite.append((name, bad))
    if not allow_nonfinite:
        raise CheckpointError(
            f"{name} {list(shape)} holds {bad} NaN/Inf value(s); refusing to convert. Expected "
            f"finite values, or allow_nonfinite=True to carry them anyway. "
            f"Received: {name}.shape={list(shape)}", option="allow_nonfinite")
