"""Tensor transforms a mapping table can name, parsed by a small strict grammar.

A transform is written `name(arg, ...)`, for example `reshape(-1, 4096)`,
`slice(-1, 1, 1001)` or `cast(float32)`. Arguments are integers, decimal numbers, or dtype names;
nothing is ever evaluated as code. Each transform is a pure function on a
NumPy array together with a shape rule, so a plan can check shapes before any
tensor is read.

Example:

>>> import numpy as np
>>> steps = parse_all(["reshape(-1, 4)", "transpose(1, 0)"])
>>> output_spec(steps, (2, 2, 4), "float32")
((4, 4), 'float32')
>>> apply_all(steps, np.zeros((2, 2, 4), "float32")).shape
(4, 4)
>>> output_spec(parse_all(["slice(-1, 1, 1001)"]), (2048, 1001), "float32")
((2048, 1000), 'float32')
>>> apply_all(parse_all(["vocabulary_oov_roll(2)"]), np.arange(5)).tolist()
[3, 4, 0, 1, 2]
>>> apply_all(inverse(parse_all(["vocabulary_oov_roll(2)"]), (5,), "int64"),
...           np.array([3, 4, 0, 1, 2])).tolist()
[0, 1, 2, 3, 4]
"""

import dataclasses
import math
import re
from typing import Callable

import numpy as np

from migrate.errors import MigrateError
from migrate.errors import did_you_mean

_CALL = re.compile(r"\s*([a-z_][a-z0-9_]*)\s*\((.*)\)\s*", re.DOTALL)
_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

DTYPES = ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
          "uint8", "bool")


class TransformError(MigrateError):
    """A transform is malformed, unknown, or does not fit the tensor's shape."""


@dataclasses.dataclass(frozen=True)
class Transform:
    """One parsed transform: its name and arguments, e.g. `reshape(-1, 4096)`."""

    name: str
    arguments: tuple

    def __str__(self):
        return f"{self.name}({', '.join(str(argument) for argument in self.arguments)})"


@dataclasses.dataclass(frozen=True)
class _Definition:
    check_arguments: Callable[[tuple], None]
    output_spec: Callable[[tuple, str, tuple], tuple]
    apply: Callable[[np.ndarray, tuple], np.ndarray]
    signature: str


def _integers(name, minimum_count=0):
    def check(arguments):
        if len(arguments) < minimum_count or not all(isinstance(a, int) for a in arguments):
            raise TransformError(
                f"{name} takes {'at least ' + str(minimum_count) + ' ' if minimum_count else ''}"
                f"integer arguments. Received: transform='{name}{_format(arguments)}'")
    return check


def _format(arguments):
    return "(" + ", ".join(str(argument) for argument in arguments) + ")"


def _reshape_spec(shape, dtype, arguments):
    if sum(1 for size in arguments if size == -1) > 1 or any(size < -1 for size in arguments):
        raise TransformError(
            f"reshape takes sizes >= 0 and at most one -1. "
            f"Received: transform='reshape{_format(arguments)}'")
    total = math.prod(shape)
    known = math.prod(size for size in arguments if size != -1)
    if -1 in arguments:
        if known == 0 or total % known:
            raise TransformError(
                f"reshape{_format(arguments)} cannot hold a tensor of shape {tuple(shape)}. "
                f"Expected sizes whose product divides its {total} elements. "
                f"Received: shape={tuple(shape)}")
        new_shape = tuple(total // known if size == -1 else size for size in arguments)
    else:
        new_shape = tuple(arguments)
    if math.prod(new_shape) != total:
        raise TransformError(
            f"reshape{_format(arguments)} needs {math.prod(new_shape)} elements. Expected a "
            f"tensor of {math.prod(new_shape)} elements. Received: shape={tuple(shape)} "
            f"({total} elements)")
    return new_shape, dtype


def _transpose_spec(shape, dtype, arguments):
    if sorted(arguments) != list(range(len(shape))):
        raise TransformError(
            f"transpose takes a permutation of the tensor's {len(shape)} axes. "
            f"Received: transform='transpose{_format(arguments)}', shape={tuple(shape)}")
    return tuple(shape[axis] for axis in arguments), dtype


def _squeeze_axes(shape, arguments):
    rank = len(shape)
    if not arguments:
        return tuple(axis for axis, size in enumerate(shape) if size == 1)
    axes = []
    for axis in arguments:
        if not -rank <= axis < rank or shape[axis] != 1:
            raise TransformError(
                f"squeeze can only remove axes of size 1. "
                f"Received: transform='squeeze{_format(arguments)}', shape={tuple(shape)}")
        axes.append(axis % rank)
    return tuple(sorted(set(axes)))


def _squeeze_spec(shape, dtype, arguments):
    axes = _squeeze_axes(shape, arguments)
    return tuple(size for axis, size in enumerate(shape) if axis not in axes), dtype


def _expand_dims_spec(shape, dtype, arguments):
    (axis,) = arguments
    rank = len(shape) + 1
    if not -rank <= axis < rank:
        raise TransformError(
            f"expand_dims axis must be in [{-rank}, {rank}). "
            f"Received: transform='expand_dims({axis})', shape={tuple(shape)}")
    new_shape = list(shape)
    new_shape.insert(axis % rank, 1)
    return tuple(new_shape), dtype


def _check_cast(arguments):
    if len(arguments) != 1 or arguments[0] not in DTYPES:
        raise TransformError(
            f"cast takes one dtype name, one of {', '.join(DTYPES)}. "
            f"Received: transform='cast{_format(arguments)}'")


def _check_expand_dims(arguments):
    if len(arguments) != 1 or not isinstance(arguments[0], int):
        raise TransformError(
            f"expand_dims takes one integer axis. "
            f"Received: transform='expand_dims{_format(arguments)}'")


def _check_slice(arguments):
    if len(arguments) != 3 or not all(isinstance(argument, int) for argument in arguments):
        raise TransformError(
            f"slice takes three integers: axis, start, stop (NumPy semantics). "
            f"Received: slice{_format(arguments)}")


def _slice_index(shape, arguments):
    """Returns the index tuple of `slice(axis, start, stop)`, checked against `shape`."""
    axis, start, stop = arguments
    rank = len(shape)
    if not -rank <= axis < rank:
        raise TransformError(
            f"slice axis must be in [{-rank}, {rank}). Received: slice{_format(arguments)} "
            f"for shape {tuple(shape)}")
    axis %= rank
    if len(range(shape[axis])[start:stop]) == 0:
        raise TransformError(
            f"slice{_format(arguments)} selects no element of axis {axis} (size "
            f"{shape[axis]}). Received: shape {tuple(shape)}")
    return (slice(None),) * axis + (slice(start, stop),)


def _slice_spec(shape, dtype, arguments):
    index = _slice_index(shape, arguments)
    axis = len(index) - 1
    new_shape = list(shape)
    new_shape[axis] = len(range(shape[axis])[index[axis]])
    return tuple(new_shape), dtype


def _check_vocabulary_oov_roll(arguments):
    if len(arguments) != 1 or not isinstance(arguments[0], int) or arguments[0] < 1:
        raise TransformError(f"vocabulary_oov_roll takes the number of OOV buckets, an integer "
                             f">= 1. Received: transform='vocabulary_oov_roll{_format(arguments)}'")


def _vocabulary_oov_roll_spec(shape, dtype, arguments):
    if not shape or shape[0] <= arguments[0]:
        raise TransformError(
            f"vocabulary_oov_roll({arguments[0]}) needs more rows than OOV buckets. "
            f"Received: shape={list(shape)}")
    return tuple(shape), dtype


def _check_unpartition(arguments):
    if len(arguments) != 1 or not isinstance(arguments[0], int) or arguments[0] < 1:
        raise TransformError(
            f"unpartition_mod takes the number of partitions, a positive integer. "
            f"Received: transform='unpartition_mod{_format(arguments)}'")


def _unpartition_spec(shape, dtype, arguments):
    if not shape or shape[0] < arguments[0]:
        raise TransformError(
            f"unpartition_mod{_format(arguments)} needs at least {arguments[0]} rows. "
            f"Received: shape={tuple(shape)}")
    return tuple(shape), dtype


def partition_sizes(rows, partitions):
    """Returns the rows of each part of `tf.fixed_size_partitioner(partitions)`, largest first.

    >>> partition_sizes(61, 3)
    [21, 20, 20]
    """
    return [rows // partitions + (1 if part < rows % partitions else 0)
            for part in range(partitions)]


def mod_partition_rows(rows, partitions):
    """Returns, for each id, its row in the saved tensor of a `mod`-partitioned variable.

    A variable split by `fixed_size_partitioner(P)` is saved as its parts
    stacked in order; part `p` has `rows // P + (p < rows % P)` rows. With
    `embedding_lookup(..., partition_strategy="mod")` (the TF1 default), id `i`
    lives in part `i % P` at row `i // P`.
    """
    sizes = partition_sizes(rows, partitions)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    ids = np.arange(rows)
    return offsets[ids % partitions] + ids // partitions


def numpy_dtype(name):
    """Returns the NumPy dtype for a dtype name, including `bfloat16`."""
    if name == "bfloat16":
        import ml_dtypes  # Shipped with TensorFlow; only needed for bfloat16.
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


_DEFINITIONS = {
    "reshape": _Definition(
        _integers("reshape", 1), _reshape_spec,
        lambda array, arguments: np.reshape(array, arguments), "reshape(size, ...)"),
    "transpose": _Definition(
        _integers("transpose", 1), _transpose_spec,
        lambda array, arguments: np.ascontiguousarray(np.transpose(array, arguments)),
        "transpose(axis, ...)"),
    "squeeze": _Definition(
        _integers("squeeze"), _squeeze_spec,
        lambda array, arguments: np.squeeze(array, _squeeze_axes(array.shape, arguments)),
        "squeeze(axis, ...)"),
    "expand_dims": _Definition(
        _check_expand_dims, _expand_dims_spec,
        lambda array, arguments: np.expand_dims(array, arguments[0]), "expand_dims(axis)"),
    "unpartition_mod": _Definition(
        _check_unpartition, _unpartition_spec,
        lambda array, arguments: array[mod_partition_rows(array.shape[0], arguments[0])],
        "unpartition_mod(partitions)"),
    # slice(-1, 1, 1001) drops class 0 ("background") of tf-slim's 1001-class
    # classifiers from the logits kernel and bias.
    "slice": _Definition(
        _check_slice, _slice_spec,
        lambda array, arguments: np.ascontiguousarray(
            array[_slice_index(array.shape, arguments)]),
        "slice(axis, start, stop)"),
    # A feature column numbers a vocabulary's keys first and its OOV buckets after
    # them; Keras' StringLookup and IntegerLookup put the OOV indices first. The
    # last `n` rows (the buckets) move to the front, in order.
    "vocabulary_oov_roll": _Definition(
        _check_vocabulary_oov_roll, _vocabulary_oov_roll_spec,
        lambda array, arguments: np.ascontiguousarray(np.roll(array, arguments[0], axis=0)),
        "vocabulary_oov_roll(num_oov_buckets)"),
    "cast": _Definition(
        _check_cast, lambda shape, dtype, arguments: (tuple(shape), arguments[0]),
        lambda array, arguments: array.astype(numpy_dtype(arguments[0])), "cast(dtype)"),
}

NAMES = tuple(sorted(_DEFINITIONS))
# Reshape, squeeze and expand_dims keep the elements in C order, so steps made
# of them are one reshape: the stored bytes are the result's bytes.
ORDER_KEEPING = frozenset({"reshape", "squeeze", "expand_dims"})


def _parse_argument(text):
    text = text.strip()
    if _INTEGER.fullmatch(text):
        return int(text)
    if _NUMBER.fullmatch(text):
        return float(text)
    if _IDENTIFIER.fullmatch(text):
        return text
    raise TransformError(f"Argument {text!r} is not an integer, a number or a name.")


def parse(text):
    """Parses one transform such as `reshape(-1, 4096)`.

    Args:
        text: the transform as a table writes it.

    Returns:
        A `Transform`.

    Raises:
        TransformError: the text is not `name(arguments)`, the name is unknown,
            or the arguments do not fit the transform.

    Example:

    >>> parse("reshape(-1, 4096)")
    Transform(name='reshape', arguments=(-1, 4096))
    >>> parse("transpos(1, 0)")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    migrate.mapping.transforms.TransformError: Unknown transform 'transpos'. Did you mean ...
    """
    if not isinstance(text, str):
        raise TransformError(f"Expected a transform string such as 'transpose(1, 0)'. "
                             f"Received: transform={text!r}")
    call = _CALL.fullmatch(text)
    if call is None:
        raise TransformError(f"Expected name(arguments), e.g. 'transpose(1, 0)'. "
                             f"Received: transform={text!r}")
    name, argument_text = call.groups()
    if name not in _DEFINITIONS:
        raise TransformError(
            f"Unknown transform {name!r}.{did_you_mean(name, _DEFINITIONS)} Expected one of: "
            f"{', '.join(d.signature for d in _DEFINITIONS.values())}. "
            f"Received: transform={text!r}")
    arguments = ()
    if argument_text.strip():
        try:
            arguments = tuple(_parse_argument(part) for part in argument_text.split(","))
        except TransformError as error:
            raise TransformError(f"{error} Expected e.g. 'reshape(-1, 4096)'. "
                                 f"Received: transform={text!r}") from None
    _DEFINITIONS[name].check_arguments(arguments)
    return Transform(name, arguments)


def parse_all(texts):
    """Parses a list of transform strings, in order."""
    return tuple(parse(text) for text in texts)


def output_spec(transforms, shape, dtype):
    """Returns `(shape, dtype)` after `transforms`, from metadata alone.

    Raises:
        TransformError: a transform does not fit the shape it receives.
    """
    shape = tuple(shape)
    for transform in transforms:
        shape, dtype = _DEFINITIONS[transform.name].output_spec(shape, dtype, transform.arguments)
    return tuple(shape), str(dtype)


def apply_all(transforms, array):
    """Applies `transforms` left to right and returns the new array."""
    for transform in transforms:
        array = _DEFINITIONS[transform.name].apply(array, transform.arguments)
    return array


def inverse(transforms, shape, dtype):
    """Returns transforms that undo `transforms` on a tensor of `shape` and `dtype`.

    Casts are undone by casting back, which is exact only where the first cast
    lost nothing (for example float32 -> float64 -> float32).
    """
    steps = []
    for transform in transforms:
        if transform.name == "transpose":
            permutation = [0] * len(transform.arguments)
            for position, axis in enumerate(transform.arguments):
                permutation[axis] = position
            steps.append(Transform("transpose", tuple(permutation)))
        elif transform.name == "cast":
            steps.append(Transform("cast", (dtype,)))
        elif transform.name == "vocabulary_oov_roll":
            # Rolling the other way is rolling the vocabulary's rows to the front.
            steps.append(Transform("vocabulary_oov_roll", (shape[0] - transform.arguments[0],)))
        elif transform.name in ("unpartition_mod", "slice"):
            raise TransformError(
                f"{transform.name} has no inverse transform. Expected transforms that can be "
                f"undone (reshape, transpose, squeeze, expand_dims, cast). "
                f"Received: transform={str(transform)!r}")
        else:
            steps.append(Transform("reshape", tuple(shape)))
        shape, dtype = output_spec((transform,), shape, dtype)
    return tuple(reversed(steps))
