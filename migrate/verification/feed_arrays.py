"""The arrays the legacy graph is fed: seeded batches, ids, constant feeds and inputs files.

`inputs.build_feed` decides which placeholder gets what; this module makes
each array and checks that it fits its placeholder.
"""

import numpy as np

from migrate import files
from migrate.errors import ArgumentError
from migrate.errors import first_line
from migrate.verification import feature_values


def describe_placeholder(tensor):
    """Returns `name dtype [shape]` with `?` for unknown sizes (`<unknown rank>` without a rank)."""
    if tensor.shape.rank is None:
        shape = "<unknown rank>"
    else:
        shape = "[" + ", ".join("?" if size is None else str(size)
                                for size in tensor.shape.as_list()) + "]"
    return f"{tensor.name} {tensor.dtype.name} {shape}"


def load_inputs_file(path):
    """Returns `{tensor name: array}` from an `.npz` file (keys `name` or `name:0`).

    Raises:
        ArgumentError: the file cannot be read as an `.npz`.
    """
    if path is None:
        return {}
    try:
        with files.open_binary(path, "rb") as handle, np.load(handle) as archive:
            return {(key if ":" in key else key + ":0"): archive[key] for key in archive.files}
    except (OSError, ValueError) as error:
        raise ArgumentError(f"Cannot read the inputs file: {first_line(error)}. Expected an .npz "
                            f"of arrays keyed by tensor name. Received: inputs_file={path!r}",
                            option="inputs_file") from None


def make_inputs(placeholder_shape, dtype, *, batch_size, input_shape=None, input_max=None, seed=0,
               name="input", batch_axis=0, ids=False):
    """Returns a seeded random batch that fits a placeholder.

    Unknown dimensions come from `input_shape` (without the batch dimension)
    and `batch_size`; a shape is never guessed, and the placeholder's fixed
    sizes (a batch of 1) always hold. Integer inputs and ids are drawn from
    `[0, input_max)`, booleans at random, floats from a standard normal.

    Args:
        placeholder_shape: the placeholder's shape as a list (None for an
            unknown size), or None for an unknown rank.
        dtype: a NumPy dtype.
        batch_size: the size of the batch dimension when it is unknown.
        input_shape: the shape without the batch dimension, or None.
        input_max: the bound of integer values (and of ids).
        seed: NumPy seed.
        name: the placeholder's name, for error messages.
        batch_axis: where the batch dimension is (1 for a time-major input).
        ids: a float input that holds ids (integers in `[0, input_max)`, as
            floats).

    Raises:
        ArgumentError: a dimension is unknown and no input shape is given,
            the input shape contradicts a fixed size, or an integer input has
            no `input_max`.

    Example:

    >>> make_inputs([None, 3], "float32", batch_size=2).shape
    (2, 3)
    >>> make_inputs(None, "float32", batch_size=2, name="x:0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    migrate.errors.ArgumentError: Placeholder x:0 has an unknown rank; ... input_shape=None
    """
    if input_shape is not None:
        shape = list(input_shape)
        shape.insert(min(batch_axis, len(shape)), None)
        if placeholder_shape is not None and len(placeholder_shape) != len(shape):
            raise ArgumentError(
                f"Placeholder {name} has shape {_text(placeholder_shape)}. Expected an input "
                f"shape of {len(placeholder_shape) - 1} dimension(s) without the batch dimension. "
                f"Received: input_shape={tuple(input_shape)!r}", option="input_shape")
        if placeholder_shape is not None:
            if any(fixed is not None and given is not None and fixed != given
                   for fixed, given in zip(placeholder_shape, shape)):
                raise ArgumentError(
                    f"Placeholder {name} has shape {_text(placeholder_shape)}, whose fixed sizes "
                    f"hold. Expected an input shape that fits them (without the batch dimension, "
                    f"axis {batch_axis}). Received: input_shape={tuple(input_shape)!r}",
                    option="input_shape")
            shape = [given if fixed is None else fixed
                     for fixed, given in zip(placeholder_shape, shape)]
    elif placeholder_shape is None:
        raise ArgumentError(f"Placeholder {name} has an unknown rank; its shape cannot be guessed. "
                            f"Expected an input shape without the batch dimension. "
                            f"Received: input_shape=None", option="input_shape")
    else:
        shape = list(placeholder_shape)
    shape = [batch_size if index == batch_axis and size is None else size
             for index, size in enumerate(shape)]
    if any(size is None for size in shape):
        raise ArgumentError(f"Placeholder {name} has shape {_text(placeholder_shape)}, with sizes "
                            f"unknown beyond the batch; they cannot be guessed. Expected an input "
                            f"shape without the batch dimension. Received: input_shape=None",
                            option="input_shape")
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(bool)
    if np.issubdtype(dtype, np.integer) or ids:
        if not input_max:
            raise ArgumentError(f"Placeholder {name} takes {dtype} values"
                                f"{' used as ids' if ids else ''}. Expected input_max "
                                f"(e.g. the vocabulary size). Received: input_max=None",
                                option="input_max")
        return rng.integers(0, input_max, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def graph_values(graph, tensor, settings, index, seed, assets=None):
    """Values for a raw-feature placeholder read from the graph (`feature_values`), or None.

    A string placeholder gets the vocabulary its lookup table holds, or
    strings for hash buckets; a number the graph cuts at `Bucketize`
    boundaries gets one value inside every bucket in turn. Other
    placeholders: None (`make_inputs` draws them).
    """
    if tensor.shape.rank is None:
        return None
    shape = [settings.batch_size if position == 0 and size is None else size
             for position, size in enumerate(tensor.shape.as_list())]
    input_shape = settings.shape_for(index)
    if input_shape is not None:
        shape = [shape[0], *input_shape]
    if any(size is None for size in shape):
        return None
    return feature_values.placeholder_values(graph, tensor, shape, seed=seed, assets=assets)


def constant_feed(tensor, value, batch_size, shapes=()):
    """Returns `value` filled at the placeholder's shape, the batch dimension set to `batch_size`.

    A placeholder of unknown rank is fed a scalar (as `keep_prob` usually is).
    Sizes unknown beyond the batch are those of the first of `shapes` (the
    inputs' arrays) that fits: an `input_mask` takes the shape its ids were
    given.

    Raises:
        ArgumentError: the placeholder has unknown sizes beyond the batch and
            no input's shape fits it.
    """
    dtype = tensor.dtype.as_numpy_dtype
    if tensor.shape.rank is None:
        return np.asarray(value, dtype)
    shape = [batch_size if index == 0 and size is None else size
             for index, size in enumerate(tensor.shape.as_list())]
    if any(size is None for size in shape):
        fitting = [list(other) for other in shapes if tensor.shape.is_compatible_with(other)]
        if not fitting:
            raise ArgumentError(
                f"Placeholder {describe_placeholder(tensor)} has sizes unknown beyond the batch, "
                f"and no input's array has a shape it takes ({_shape_list(shapes)}), so a "
                f"constant feed has no shape. Expected an input of its shape (input_shape) or "
                f"its array in the inputs file. Received: feeds[{tensor.name!r}]={value!r}",
                option="input_shape")
        shape = fitting[0]
    return np.full(shape, value, dtype)


def _shape_list(shapes):
    return "; ".join(str(list(shape)) for shape in shapes) or "no input"


def id_bound(tensor, facts, settings, index, count):
    """Returns `(input_max, ids, drawn)` for a generated input: the bound of its values,
    whether a float input holds ids, and how its values are drawn (for the report), or "".

    Integer inputs and float inputs the graph casts to integers are ids: bounded
    by `input_max`, else by the row count of the table they index. A float
    input given its own `input_max` (one per input, or the one input) is drawn
    as ids too: an entry is never ignored. The one bound for all inputs
    stops at a smaller table's rows (type ids beside word ids).

    Raises:
        ArgumentError: an input's own `input_max` goes past the table its ids index.
    """
    given = settings.max_for(index)
    own = len(settings.input_max) > 1 or count == 1
    is_integer = tensor.dtype.is_integer
    ids = facts.cast_to_int or (given is not None and own and tensor.dtype.is_floating)
    if not (is_integer or ids):
        return None, False, ""
    if given is not None and facts.id_rows is not None and given > facts.id_rows and not own:
        # The one bound for all inputs (a vocabulary's) goes past this input's table.
        return facts.id_rows, ids and not is_integer, (
            f"ids in [0, {facts.id_rows}) (the {facts.id_rows} rows of {facts.id_table}; "
            f"input_max {given} is for all inputs)")
    if given is not None and facts.id_rows is not None and given > facts.id_rows:
        raise ArgumentError(
            f"Placeholder {tensor.name} indexes {facts.id_table}, a table of {facts.id_rows} "
            f"rows, so its ids must be in [0, {facts.id_rows}). Expected input_max of at most "
            f"{facts.id_rows}. Received: input_max={given}", option="input_max")
    bound = given if given is not None else facts.id_rows
    if bound is None:
        return None, ids, ""
    where = ("input_max" if given is not None else
             f"the {facts.id_rows} rows of {facts.id_table}")
    cast = ", cast to integers by the graph" if facts.cast_to_int else ""
    return bound, ids and not is_integer, f"ids in [0, {bound}) ({where}{cast})"


def check_fits(tensor, array, option):
    """Refuses an array whose shape the tensor cannot take, before TensorFlow says it raw.

    Example:

        check_fits(graph.get_tensor_by_name("x:0"), np.zeros([603]), "inputs_file")
    """
    if tensor.shape.is_compatible_with(array.shape):
        return
    raise ArgumentError(
        f"The array fed to {tensor.name} does not fit its shape. Expected shape "
        f"{_text(tensor.shape.as_list() if tensor.shape.rank is not None else None)} "
        f"({tensor.dtype.name}). Received: shape={list(array.shape)} from {option}",
        option=option)


def _text(shape):
    if shape is None:
        return "<unknown rank>"
    return "[" + ", ".join("?" if size is None else str(size) for size in shape) + "]"
