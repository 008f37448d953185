"""What the legacy graph does with a placeholder: where its batch axis is, which ids it takes.

A generated batch must fit what the graph does with it, and the graph says so:
- ids: a placeholder that indexes an embedding table (a `Gather` of its rows,
  after a `Cast` to an integer for a float placeholder, as `tf.keras`'
  Embedding does in graph mode) takes integers in `[0, rows)`;
- the batch axis: an RNN unstacks its input along time (`TensorArrayScatterV3`
  in a TF 1.x loop, `TensorListFromTensor` in a while_v2 loop, `Unpack` for
  `static_rnn`), so a placeholder that reaches the unstack with no transpose
  on the way is time-major, its batch on axis 1; one transposed first
  (`dynamic_rnn`'s `[1, 0, 2]`) is batch-major.
Only ops that keep the values (or the leading axes) are followed; anything
else ends the search, and the defaults hold (not ids; batch on axis 0).
"""

import dataclasses

from migrate.source.meta_graph import VARIABLE_OPS

# Ops whose output holds the input's values, axes unchanged.
_SAME_AXES_OPS = frozenset({"Identity", "Cast", "Enter", "Switch", "Merge", "StopGradient",
                            "CheckNumerics"})
# Ops whose output holds the input's values, reshaped (ids stay ids; axes are lost).
_SAME_VALUES_OPS = frozenset({"Reshape", "ExpandDims", "Squeeze", "StridedSlice", "Slice",
                              "Transpose", "Unpack", "Pack", "ConcatV2", "Tile"})
_GATHER_OPS = frozenset({"Gather", "GatherV2", "ResourceGather"})
_INDICES_INPUT = 1
# Ops that unstack a tensor along its first axis, time, for a loop over it (by the
# input position of the tensor unstacked).
_UNSTACK_INPUTS = {"TensorArrayScatterV3": 2, "TensorListFromTensor": 0}


@dataclasses.dataclass(frozen=True)
class InputFacts:
    """What the graph says about one placeholder.

    Attributes:
        batch_axis: the axis its batch is on (1 for a time-major `[T, B, ...]`
            input an RNN unstacks as it is).
        batch_axis_from: why, in words, or "" for the default (axis 0).
        id_rows: the row count of the smallest table it indexes (ids must be
            in `[0, id_rows)`), or None when it indexes no table.
        id_table: the op name of that table (its variable or constant).
        cast_to_int: a float placeholder the graph casts to integers first.
    """

    batch_axis: int = 0
    batch_axis_from: str = ""
    id_rows: int | None = None
    id_table: str = ""
    cast_to_int: bool = False


def input_facts(tensor):
    """Returns the `InputFacts` of a placeholder tensor of an imported graph.

    Example:

        facts = input_facts(graph.get_tensor_by_name("ids:0"))
        facts.id_rows, facts.batch_axis  # (100, 1) for time-major ids into a 100-row table
    """
    rows, table, cast = _id_rows(tensor)
    axis, why = _batch_axis(tensor)
    return InputFacts(batch_axis=axis, batch_axis_from=why, id_rows=rows, id_table=table,
                      cast_to_int=cast)


def _id_rows(placeholder):
    """`(rows, table, cast)`: the smallest table the placeholder's values index, or None."""
    found, seen = [], set()
    stack = [(placeholder, False)]
    while stack:
        tensor, cast = stack.pop()
        if (tensor.name, cast) in seen:
            continue
        seen.add((tensor.name, cast))
        for op in tensor.consumers():
            positions = [index for index, item in enumerate(op.inputs) if item is tensor]
            if op.type in _GATHER_OPS and _INDICES_INPUT in positions:
                if not (tensor.dtype.is_integer or cast):
                    continue
                rows = _rows_of(op.inputs[0]) if _gathers_rows(op) else None
                if rows:
                    found.append((rows, _table_name(op.inputs[0]), cast))
                continue
            if op.type == "Cast":
                if op.outputs[0].dtype.is_integer:
                    stack.append((op.outputs[0], cast or not tensor.dtype.is_integer))
                continue
            if op.type in _SAME_AXES_OPS or op.type in _SAME_VALUES_OPS:
                stack.extend((output, cast) for output in op.outputs)
    if not found:
        return None, "", False
    return min(found)


def _gathers_rows(op):
    """Whether a gather takes rows (axis 0) of its table."""
    if op.type != "GatherV2":
        return True
    from tensorflow.python.framework import tensor_util

    axis = tensor_util.constant_value(op.inputs[2])
    return axis is not None and int(axis) == 0


def _rows_of(params):
    """The row count of a gathered table: its static shape, or its variable's declared one."""
    if params.shape.rank and params.shape[0] is not None:
        return int(params.shape[0])
    op = _through_identity(params.op)
    if op.type in VARIABLE_OPS and "shape" in op.node_def.attr:
        dims = op.node_def.attr["shape"].shape.dim
        if dims and dims[0].size > 0:
            return int(dims[0].size)
    return None


def _table_name(params):
    op = _through_identity(params.op)
    return op.name.removesuffix("/read")


def _through_identity(op):
    while op.type in ("Identity", "Enter") and op.inputs:
        op = op.inputs[0].op
    return op


def _batch_axis(placeholder):
    """`(axis, why)`: the placeholder's batch axis as the loop that unstacks it shows."""
    from tensorflow.python.framework import tensor_util

    # Each entry: a tensor and, for each of its leading axes, the placeholder axis it holds.
    stack, seen = [(placeholder, tuple(range(placeholder.shape.rank or 0)))], set()
    while stack:
        tensor, axes = stack.pop(0)
        if tensor.name in seen or not axes:
            continue
        seen.add(tensor.name)
        for op in tensor.consumers():
            positions = [index for index, item in enumerate(op.inputs) if item is tensor]
            if _UNSTACK_INPUTS.get(op.type) in positions or op.type == "Unpack":
                time = op.get_attr("axis") if op.type == "Unpack" else 0
                batch = 1 if time == 0 else 0
                if batch < len(axes) and time < len(axes):
                    return axes[batch], (
                        f"{op.type} {op.name} unstacks its axis {axes[time]} as time")
                continue
            if op.type in _SAME_AXES_OPS:
                stack.extend((output, axes) for output in op.outputs)
            elif op.type in _GATHER_OPS and positions == [_INDICES_INPUT] and _gathers_rows(op):
                stack.append((op.outputs[0], axes))  # The ids' axes lead the rows gathered.
            elif op.type == "Transpose" and positions == [0]:
                perm = tensor_util.constant_value(op.inputs[1])
                if perm is not None and len(perm) == len(axes):
                    stack.append((op.outputs[0], tuple(axes[int(index)] for index in perm)))
    return 0, ""
