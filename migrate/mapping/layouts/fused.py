"""Layout converters for fused tensors: one source split into several targets, or the reverse.

`split` cuts one TF1 variable into consecutive pieces along an axis, one per
Keras weight (a fused query/key/value kernel `[H, 3H]` into three kernels).
`concat` joins several TF1 variables along an axis into one Keras weight.
With `reshape = true` each result is reshaped in C order to its Keras
weight's shape (a fused `[H, 3H]` kernel into `MultiHeadAttention`'s
`[H, heads, H / heads]` kernels); otherwise shapes must already agree.

    [[rule]]
    match = 'model/h(\\d+)/attn/c_attn'
    layout = 'split'
    target = 'block_\\1_attention'
    source_part = 'w'
    target_parts = ['query/kernel', 'key/kernel', 'value/kernel']
    axis = -1
    reshape = true

    [[rule]]
    match = 'encoder/attention'
    layout = 'concat'
    target = 'fused_projection'
    source_parts = ['query/kernel', 'key/kernel', 'value/kernel']
    target_part = 'kernel'
    axis = 1

The part names of these converters come from the rule's parameters, so they
register `source_parts_for`/`target_parts_for` and leave the fixed tuples
empty.
"""

import math

import numpy as np

from migrate.mapping.layouts import LayoutConverter
from migrate.mapping.layouts import LayoutError
from migrate.mapping.layouts import register

SPLIT = "split"
CONCAT = "concat"


def split_array(array, sizes, axis):
    """Cuts `array` into consecutive pieces of `sizes` along `axis`.

    Args:
        array: the fused array.
        sizes: length of each piece along `axis`; they must sum to its size.
        axis: the fused axis (negative counts from the end).

    Returns:
        A list of arrays, one per size.

    Raises:
        LayoutError: the axis is out of range or the sizes do not add up.

    Example:

    >>> import numpy as np
    >>> [piece.shape for piece in split_array(np.zeros((4, 12)), [4, 4, 4], axis=-1)]
    [(4, 4), (4, 4), (4, 4)]
    >>> split_array(np.zeros((4, 12)), [4, 4], axis=1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    migrate.mapping.layouts.LayoutError: Expected split sizes adding up ... Received: sizes=[4, 4]
    """
    array = np.asarray(array)
    axis = _normalize_axis(axis, array.ndim, "axis")
    if sum(sizes) != array.shape[axis]:
        raise LayoutError(
            f"Expected split sizes adding up to the fused axis {axis} of size "
            f"{array.shape[axis]}. Received: sizes={list(sizes)}")
    return np.split(array, np.cumsum(sizes)[:-1], axis=axis)


def concatenate_arrays(arrays, axis):
    """Joins `arrays` along `axis`; the inverse of `split_array`.

    Args:
        arrays: the arrays, in order; equal ranks and equal sizes off `axis`.
        axis: the axis to join along (negative counts from the end).

    Returns:
        The joined array.

    Raises:
        LayoutError: the arrays' ranks or their other axes differ.

    Example:

    >>> import numpy as np
    >>> concatenate_arrays([np.ones((2, 1)), np.zeros((2, 2))], axis=1)
    array([[1., 0., 0.],
           [1., 0., 0.]])
    """
    arrays = [np.asarray(array) for array in arrays]
    names = [f"array {index}" for index in range(len(arrays))]
    _concatenated_shape([array.shape for array in arrays], axis, names)
    return np.concatenate(arrays, axis=_normalize_axis(axis, arrays[0].ndim, "axis"))


def _normalize_axis(axis, rank, name):
    if isinstance(axis, bool) or not isinstance(axis, int) or not -rank <= axis < rank:
        raise LayoutError(
            f"Expected {name} to be an integer in [{-rank}, {rank}) for a rank-{rank} "
            f"tensor. Received: {name}={axis!r}")
    return axis % rank


def _part_names(parameters, key):
    names = parameters.get(key)
    if (not isinstance(names, (list, tuple)) or not names
            or not all(isinstance(name, str) and name for name in names)):
        raise LayoutError(
            f"Expected `{key}` to be a non-empty list of part names. Received: {key}={names!r}")
    if len(set(names)) != len(names):
        raise LayoutError(f"Expected `{key}` to name each part once. Received: {key}={names!r}")
    return tuple(names)


def _part_name(parameters, key):
    name = parameters.get(key)
    if not isinstance(name, str) or not name:
        raise LayoutError(f"Expected `{key}` to be a part name. Received: {key}={name!r}")
    return name


def _reshape_flag(parameters):
    reshape = parameters.get("reshape", False)
    if not isinstance(reshape, bool):
        raise LayoutError(f"Expected `reshape` to be true or false. Received: reshape={reshape!r}")
    return reshape


def _fit_target(part, shape, target_shapes, reshape):
    """Returns the shape `part` gets in Keras: `shape`, or its target's when reshaping."""
    target_shape = target_shapes.get(part)
    if target_shape is None:
        if reshape:
            raise LayoutError(
                f"Expected the Keras shape of {part!r} to reshape into (reshape = true). "
                f"Received: target_shapes without {part!r}")
        return tuple(shape)
    target_shape = tuple(target_shape)
    if reshape:
        if math.prod(target_shape) != math.prod(shape):
            raise LayoutError(
                f"Expected {part!r} to have as many elements as its Keras shape "
                f"{target_shape} ({math.prod(target_shape)}). Received: shape={tuple(shape)} "
                f"({math.prod(shape)} elements)")
        return target_shape
    if target_shape != tuple(shape):
        raise LayoutError(
            f"Expected {part!r} to have its Keras shape {target_shape} (set reshape = true "
            f"for a C-order reshape). Received: shape={tuple(shape)}")
    return target_shape


def _split_sizes(shape, parameters, count):
    axis = _normalize_axis(parameters.get("axis", -1), len(shape), "axis")
    sizes = parameters.get("sizes")
    if sizes is None:
        if shape[axis] % count:
            raise LayoutError(
                f"Expected the fused axis {axis} to divide into {count} equal parts. "
                f"Received: shape={tuple(shape)}")
        return axis, [shape[axis] // count] * count
    if (not isinstance(sizes, (list, tuple)) or len(sizes) != count
            or not all(isinstance(size, int) and size > 0 for size in sizes)):
        raise LayoutError(
            f"Expected `sizes` to list {count} positive integers, one per target part. "
            f"Received: sizes={sizes!r}")
    if sum(sizes) != shape[axis]:
        raise LayoutError(
            f"Expected `sizes` adding up to the fused axis {axis} of size {shape[axis]}. "
            f"Received: sizes={list(sizes)}")
    return axis, list(sizes)


def _split_parts(parameters):
    return (_part_name(parameters, "source_part"),), _part_names(parameters, "target_parts")


def _split_output_shapes(source_shapes, target_shapes, parameters):
    (source_part,), target_parts = _split_parts(parameters)
    shape = tuple(source_shapes[source_part])
    axis, sizes = _split_sizes(shape, parameters, len(target_parts))
    shapes = {}
    for part, size in zip(target_parts, sizes):
        piece = shape[:axis] + (size,) + shape[axis + 1:]
        shapes[part] = _fit_target(part, piece, target_shapes, _reshape_flag(parameters))
    return shapes


def _split_convert(sources, target_shapes, parameters):
    (source_part,), target_parts = _split_parts(parameters)
    array = np.asarray(sources[source_part])
    shapes = _split_output_shapes({source_part: array.shape}, target_shapes, parameters)
    axis, sizes = _split_sizes(array.shape, parameters, len(target_parts))
    pieces = split_array(array, sizes, axis)
    return {part: np.reshape(piece, shapes[part]) for part, piece in zip(target_parts, pieces)}


def _concatenated_shape(shapes, axis, names):
    rank = len(shapes[0])
    axis = _normalize_axis(axis, rank, "axis")
    for name, shape in zip(names, shapes):
        if len(shape) != rank or shape[:axis] + shape[axis + 1:] != (
                shapes[0][:axis] + shapes[0][axis + 1:]):
            raise LayoutError(
                f"Expected every part to match {names[0]!r} {tuple(shapes[0])} except on axis "
                f"{axis}. Received: {name!r} shape={tuple(shape)}")
    return shapes[0][:axis] + (sum(shape[axis] for shape in shapes),) + shapes[0][axis + 1:]


def _concat_parts(parameters):
    return _part_names(parameters, "source_parts"), (_part_name(parameters, "target_part"),)


def _concat_output_shapes(source_shapes, target_shapes, parameters):
    source_parts, (target_part,) = _concat_parts(parameters)
    shape = _concatenated_shape([tuple(source_shapes[part]) for part in source_parts],
                                parameters.get("axis", -1), source_parts)
    return {target_part: _fit_target(target_part, shape, target_shapes,
                                     _reshape_flag(parameters))}


def _concat_convert(sources, target_shapes, parameters):
    source_parts, (target_part,) = _concat_parts(parameters)
    arrays = [np.asarray(sources[part]) for part in source_parts]
    shapes = _concat_output_shapes({part: array.shape for part, array in zip(source_parts, arrays)},
                                   target_shapes, parameters)
    joined = concatenate_arrays(arrays, parameters.get("axis", -1))
    return {target_part: np.reshape(joined, shapes[target_part])}


register(LayoutConverter(
    name=SPLIT,
    source_parts=(),
    target_parts=(),
    source_parts_for=lambda parameters: _split_parts(parameters)[0],
    target_parts_for=lambda parameters: _split_parts(parameters)[1],
    output_shapes=_split_output_shapes,
    convert=_split_convert,
    parameters={"source_part": None, "target_parts": None, "axis": -1, "sizes": None,
                "reshape": False},
    description=("One fused TF1 variable (`source_part`) cut along `axis` into `target_parts`, "
                 "equal or `sizes` long; `reshape` fits each to its Keras shape."),
))

register(LayoutConverter(
    name=CONCAT,
    source_parts=(),
    target_parts=(),
    source_parts_for=lambda parameters: _concat_parts(parameters)[0],
    target_parts_for=lambda parameters: _concat_parts(parameters)[1],
    output_shapes=_concat_output_shapes,
    convert=_concat_convert,
    parameters={"source_parts": None, "target_part": None, "axis": -1, "reshape": False},
    description=("Several TF1 variables (`source_parts`) joined along `axis` into one Keras "
                 "weight (`target_part`); `reshape` fits it to its Keras shape."),
))
