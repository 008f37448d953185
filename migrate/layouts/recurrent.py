"""Layout converters for TF1 recurrent cells: LSTM and GRU weights into Keras cell order.

TF1 cells keep one fused kernel for the input and the recurrent state, with
the input rows first; Keras cells keep `kernel` (input) and
`recurrent_kernel` (state) apart and order the gates differently:

    TF1 LSTMCell, BasicLSTMCell, LSTMBlockCell   kernel [D+U, 4U], gates i, j, f, o
    keras.layers.LSTM                            kernel [D, 4U] + [U, 4U], gates i, f, c, o
    TF1 GRUCell                                  gates/kernel [D+U, 2U] (r, u),
                                                 candidate/kernel [D+U, U]
    keras.layers.GRU(reset_after=False)          kernel [D, 3U] + [U, 3U], gates z, r, h

TF1's `j` is the candidate (Keras `c`) and TF1's update gate `u` is Keras'
`z`. The LSTM `forget_bias` is never stored in a checkpoint: TF1 adds it to
the forget gate at run time, so it is folded into the Keras bias here.

Registered converters (TF1 parts under the rule's scope -> Keras cell parts
`kernel`, `recurrent_kernel`, `bias`):

    lstm                   LSTMCell / BasicLSTMCell / LSTMBlockCell: `kernel`, `bias`
    lstm_legacy_names      the same cells saved before TF 1.2: `weights`, `biases`
    cudnn_compatible_lstm  CudnnCompatibleLSTMCell: `kernel`, `bias`; forget bias fixed at 0
    gru                    GRUCell: `gates/kernel`, `gates/bias`, `candidate/kernel`,
                           `candidate/bias`; target must be GRU(reset_after=False)
    gru_legacy_names       GRUCell saved before TF 1.2: `gates/weights`, `gates/biases`, ...

The pre-1.2 names get converters of their own rather than optional parts, so
a rule states which naming it expects and a missing part is still an error.

`lstm` and `lstm_legacy_names` take `forget_bias` and `cell_clip`. Left unset
(None), both are read from the checkpoint's `.meta` graph by
`lstm_graph_facts`; a forget bias found nowhere is an error, and a cell clip
found anywhere is refused, since keras.layers.LSTM does not clip. Peephole
(`w_f_diag`, `w_i_diag`, `w_o_diag`) and projection parts are refused by name.
"""

import collections
import dataclasses
import math
import numbers
from typing import Optional

import numpy as np

from migrate.layouts import LayoutConverter
from migrate.layouts import LayoutError
from migrate.layouts import register

TARGET_PARTS = ("kernel", "recurrent_kernel", "bias")

# Position of each Keras LSTM gate (i, f, c, o) among TF1's column blocks (i, j, f, o).
_LSTM_GATES_FROM_TF1 = (0, 2, 1, 3)
_TF1_FORGET_GATE = 2

_FORGET_BIAS_HELP = (
    "TF1 checkpoints do not store it: the cell adds it to the forget gate at run time. "
    "tf.nn.rnn_cell.LSTMCell, BasicLSTMCell and LSTMBlockCell default to 1.0; "
    "CudnnCompatibleLSTMCell uses 0 (layout 'cudnn_compatible_lstm'). Give "
    "`forget_bias = <number>` in the table rule, or convert with the checkpoint's .meta "
    "so it can be read from the graph.")

_PEEPHOLE_REASON = (
    "peephole connections (use_peepholes=True) feed the cell state into the {gates}; "
    "keras.layers.LSTM has no peepholes, so its outputs would differ")
_PROJECTION_REASON = (
    "the output projection (num_proj) maps h to num_proj units after every step and the "
    "kernel's recurrent rows have num_proj rows, not units; keras.layers.LSTM has no "
    "projection")
_LSTM_UNSUPPORTED_PARTS = {
    "w_i_diag": _PEEPHOLE_REASON.format(gates="input gate"),
    "w_f_diag": _PEEPHOLE_REASON.format(gates="forget gate"),
    "w_o_diag": _PEEPHOLE_REASON.format(gates="output gate"),
}


def _shape_text(shape):
    return "(" + ", ".join(str(size) for size in shape) + ("," if len(shape) == 1 else "") + ")"


def _check_targets(layout, expected, target_shapes):
    """Raises LayoutError when a Keras weight's shape differs from the converted one."""
    for part, shape in expected.items():
        if part in target_shapes and tuple(target_shapes[part]) != tuple(shape):
            raise LayoutError(
                f"Layout {layout!r}: the Keras weight {part!r} does not fit the TF1 cell. "
                f"Expected shape {_shape_text(shape)}. "
                f"Received: {part}.shape={_shape_text(tuple(target_shapes[part]))}")


def _fused_dimensions(layout, kernel_part, kernel_shape, bias_part, bias_shape, gates,
                      target_shapes):
    """Returns (input_dim, units) of a fused TF1 kernel [D+U, gates*U] and bias [gates*U].

    The input size comes from the Keras kernel when its shape is known: a
    projection cell's kernel has D+P rows, and D+P-U would pass for an input
    size if it were guessed from the TF1 shapes alone.
    """
    kernel_shape, bias_shape = tuple(kernel_shape), tuple(bias_shape)
    if len(bias_shape) != 1 or bias_shape[0] % gates or bias_shape[0] == 0:
        raise LayoutError(
            f"Layout {layout!r}: the TF1 {bias_part!r} must be a vector of {gates} * units "
            f"values. Received: {bias_part}.shape={_shape_text(bias_shape)}")
    units = bias_shape[0] // gates
    if len(kernel_shape) != 2 or kernel_shape[1] != gates * units:
        raise LayoutError(
            f"Layout {layout!r}: the TF1 {kernel_part!r} must be a matrix [input + units, "
            f"{gates} * units] with {gates * units} columns to match {bias_part!r}. "
            f"Received: {kernel_part}.shape={_shape_text(kernel_shape)}, "
            f"{bias_part}.shape={_shape_text(bias_shape)}")
    if "kernel" in target_shapes and len(tuple(target_shapes["kernel"])) == 2:
        input_dim = tuple(target_shapes["kernel"])[0]
        expected = f"Expected {input_dim + units} rows for input size {input_dim}"
    else:
        input_dim = kernel_shape[0] - units
        expected = f"Expected more than {units} rows"
    if input_dim <= 0 or kernel_shape[0] != input_dim + units:
        raise LayoutError(
            f"Layout {layout!r}: the TF1 {kernel_part!r} must have input + units rows "
            f"(input rows first, then {units} recurrent rows). {expected}. "
            f"Received: {kernel_part}.shape={_shape_text(kernel_shape)}")
    return input_dim, units


def _forget_bias(layout, parameters):
    value = parameters.get("forget_bias")
    if value is None:
        raise LayoutError(
            f"Layout {layout!r} needs the LSTM forget_bias. {_FORGET_BIAS_HELP} "
            f"Received: forget_bias=None")
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise LayoutError(
            f"Layout {layout!r}: forget_bias must be a finite number. "
            f"Received: forget_bias={value!r}")
    return float(value)


def _refuse_cell_clip(layout, parameters):
    value = parameters.get("cell_clip")
    if value is not None:
        raise LayoutError(
            f"Layout {layout!r}: the TF1 cell clips its state to [-{value}, {value}] every step "
            f"(cell_clip); keras.layers.LSTM does not clip, so its outputs would differ whenever "
            f"the state leaves that range. Expected a cell without cell_clip. "
            f"Received: cell_clip={value!r}")


def _split_columns(matrix, sections):
    return np.split(np.asarray(matrix), sections, axis=-1)


def _lstm_graph_parameters(graph, scope):
    return facts_parameters(lstm_graph_facts(graph, scope))


def _make_lstm_converter(name, *, kernel_part, bias_part, fixed_forget_bias, description,
                         unsupported_parts):
    """Builds an LSTM converter for one pair of TF1 part names."""

    def forget_bias(parameters):
        if fixed_forget_bias is not None:
            return fixed_forget_bias
        return _forget_bias(name, parameters)

    def output_shapes(source_shapes, target_shapes, parameters):
        forget_bias(parameters)
        _refuse_cell_clip(name, parameters)
        input_dim, units = _fused_dimensions(
            name, kernel_part, source_shapes[kernel_part], bias_part, source_shapes[bias_part],
            4, target_shapes)
        expected = {
            "kernel": (input_dim, 4 * units),
            "recurrent_kernel": (units, 4 * units),
            "bias": (4 * units,),
        }
        _check_targets(name, expected, target_shapes)
        return expected

    def convert(sources, target_shapes, parameters):
        kernel, bias = np.asarray(sources[kernel_part]), np.asarray(sources[bias_part])
        input_dim, _ = _fused_dimensions(name, kernel_part, kernel.shape, bias_part, bias.shape,
                                         4, target_shapes)
        kernel_blocks = _split_columns(kernel, 4)
        bias_blocks = _split_columns(bias, 4)
        # Folding the run-time constant into the stored bias is exact up to one
        # float rounding: TF1 computes (x W + b) + forget_bias, Keras x W + (b + forget_bias).
        bias_blocks[_TF1_FORGET_GATE] = (
            bias_blocks[_TF1_FORGET_GATE] + np.asarray(forget_bias(parameters), dtype=bias.dtype))
        fused = np.concatenate([kernel_blocks[index] for index in _LSTM_GATES_FROM_TF1], axis=1)
        return {
            "kernel": np.ascontiguousarray(fused[:input_dim]),
            "recurrent_kernel": np.ascontiguousarray(fused[input_dim:]),
            "bias": np.concatenate([bias_blocks[index] for index in _LSTM_GATES_FROM_TF1]),
        }

    if fixed_forget_bias is not None:
        return LayoutConverter(
            name=name, source_parts=(kernel_part, bias_part), target_parts=TARGET_PARTS,
            output_shapes=output_shapes, convert=convert, unsupported_parts=unsupported_parts,
            description=description)
    return LayoutConverter(
        name=name,
        source_parts=(kernel_part, bias_part),
        target_parts=TARGET_PARTS,
        output_shapes=output_shapes,
        convert=convert,
        unsupported_parts=unsupported_parts,
        # None: read from the graph when there is one. A cell_clip that ends up
        # set (from the graph or the table) is refused with the reason.
        parameters={"forget_bias": None, "cell_clip": None},
        description=description,
        graph_parameters=_lstm_graph_parameters,
    )


def _make_gru_converter(name, *, kernel_name, bias_name, description):
    """Builds a GRU converter for one pair of TF1 variable names (`kernel`/`bias`)."""
    gate_kernel, gate_bias = f"gates/{kernel_name}", f"gates/{bias_name}"
    candidate_kernel, candidate_bias = f"candidate/{kernel_name}", f"candidate/{bias_name}"

    def dimensions(source_shapes, target_shapes):
        if "bias" in target_shapes and len(tuple(target_shapes["bias"])) == 2:
            raise LayoutError(
                f"Layout {name!r}: the Keras GRU uses reset_after=True (bias shape "
                f"{_shape_text(tuple(target_shapes['bias']))}), which applies the reset gate "
                f"after the recurrent matrix product. TF1 GRUCell applies it before, so only "
                f"keras.layers.GRU(..., reset_after=False) computes the same outputs. "
                f"Expected a bias of shape (3 * units,). "
                f"Received: bias.shape={_shape_text(tuple(target_shapes['bias']))}")
        input_dim, units = _fused_dimensions(name, gate_kernel, source_shapes[gate_kernel],
                                             gate_bias, source_shapes[gate_bias], 2,
                                             target_shapes)
        expected_candidate = {candidate_kernel: (input_dim + units, units),
                              candidate_bias: (units,)}
        for part, shape in expected_candidate.items():
            if tuple(source_shapes[part]) != shape:
                raise LayoutError(
                    f"Layout {name!r}: the TF1 {part!r} does not fit {gate_kernel!r} of shape "
                    f"{_shape_text(tuple(source_shapes[gate_kernel]))}. Expected shape "
                    f"{_shape_text(shape)}. "
                    f"Received: {part}.shape={_shape_text(tuple(source_shapes[part]))}")
        return input_dim, units

    def output_shapes(source_shapes, target_shapes, parameters):
        del parameters  # GRUCell has no run-time constants.
        input_dim, units = dimensions(source_shapes, target_shapes)
        expected = {
            "kernel": (input_dim, 3 * units),
            "recurrent_kernel": (units, 3 * units),
            "bias": (3 * units,),
        }
        _check_targets(name, expected, target_shapes)
        return expected

    def convert(sources, target_shapes, parameters):
        del parameters
        shapes = {part: np.shape(value) for part, value in sources.items()}
        input_dim, _ = dimensions(shapes, target_shapes)
        reset_kernel, update_kernel = _split_columns(sources[gate_kernel], 2)
        reset_bias, update_bias = _split_columns(sources[gate_bias], 2)
        fused = np.concatenate([update_kernel, reset_kernel, np.asarray(sources[candidate_kernel])],
                               axis=1)
        return {
            "kernel": np.ascontiguousarray(fused[:input_dim]),
            "recurrent_kernel": np.ascontiguousarray(fused[input_dim:]),
            "bias": np.concatenate([update_bias, reset_bias, np.asarray(sources[candidate_bias])]),
        }

    return LayoutConverter(
        name=name,
        source_parts=(gate_kernel, gate_bias, candidate_kernel, candidate_bias),
        target_parts=TARGET_PARTS,
        output_shapes=output_shapes,
        convert=convert,
        description=description,
    )


LSTM = register(_make_lstm_converter(
    "lstm", kernel_part="kernel", bias_part="bias", fixed_forget_bias=None,
    unsupported_parts={**_LSTM_UNSUPPORTED_PARTS, "projection/kernel": _PROJECTION_REASON},
    description="TF1 LSTMCell/BasicLSTMCell/LSTMBlockCell (kernel, bias; gates i,j,f,o) "
                "-> keras.layers.LSTM cell (gates i,f,c,o), forget_bias folded into the bias"))

LSTM_LEGACY_NAMES = register(_make_lstm_converter(
    "lstm_legacy_names", kernel_part="weights", bias_part="biases", fixed_forget_bias=None,
    unsupported_parts={**_LSTM_UNSUPPORTED_PARTS, "projection/weights": _PROJECTION_REASON},
    description="LSTM cells saved before TF 1.2 (weights, biases) -> keras.layers.LSTM cell, "
                "forget_bias folded into the bias"))

CUDNN_COMPATIBLE_LSTM = register(_make_lstm_converter(
    "cudnn_compatible_lstm", kernel_part="kernel", bias_part="bias", fixed_forget_bias=0.0,
    unsupported_parts={},
    description="TF1 CudnnCompatibleLSTMCell (kernel, bias; forget bias 0) "
                "-> keras.layers.LSTM cell"))

GRU = register(_make_gru_converter(
    "gru", kernel_name="kernel", bias_name="bias",
    description="TF1 GRUCell (gates r,u + candidate) -> keras.layers.GRU(reset_after=False) "
                "cell (gates z,r,h)"))

GRU_LEGACY_NAMES = register(_make_gru_converter(
    "gru_legacy_names", kernel_name="weights", bias_name="biases",
    description="GRUCell saved before TF 1.2 (gates/weights, candidate/biases, ...) "
                "-> keras.layers.GRU(reset_after=False) cell"))


# ---------------------------------------------------------------------------
# Reading an LSTM cell's run-time constants from a TF1 graph.

_VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp"})
# Ops a variable's value passes through unchanged on its way into the cell:
# reads, v1 while-loop frames (Enter) and identities added by while_v2 captures.
_PASS_THROUGH_OPS = frozenset({"Identity", "RefIdentity", "ReadVariableOp", "Enter", "RefEnter",
                               "Switch", "RefSwitch", "Snapshot"})
_ADD_OPS = frozenset({"Add", "AddV2"})
_SPLIT_OPS = frozenset({"Split", "SplitV"})
# Fused LSTM ops and the input position of their weight matrix `w`.
_FUSED_LSTM_WEIGHT_INPUT = {"LSTMBlockCell": 3, "BlockLSTM": 4, "BlockLSTMV2": 4}
# Ops whose called function's arguments start after their first input.
_CALLS_WITH_CONDITION = frozenset({"If", "StatelessIf", "Case", "StatelessCase"})
_KERNEL_NAMES = ("kernel", "weights")
_PEEPHOLE_PARTS = ("w_f_diag", "w_i_diag", "w_o_diag")
_PROJECTION_PARTS = ("projection/kernel", "projection/weights")
_MAX_WALK = 64


@dataclasses.dataclass(frozen=True)
class LstmGraphFacts:
    """What a TF1 graph shows about one LSTM cell beyond its checkpointed variables.

    Attributes:
        scope: the cell's variable scope, e.g. `lm/rnn/multi_rnn_cell/cell_0/lstm_cell`.
        parts: names of the variables under `scope` (without the scope), sorted.
        cell_op: type of the op that multiplies the cell's kernel: "MatMul" for
            LSTMCell and BasicLSTMCell, "LSTMBlockCell", "BlockLSTM" or
            "BlockLSTMV2" for the fused kernels; None when no op reads it.
        forget_bias: the constant the cell adds to its forget gate, or None when
            the graph does not show one.
        cell_clip: the bound the cell state is clipped to, or None.
        peepholes: the cell has peephole weights.
        projection: the cell has an output projection (num_proj).
    """

    scope: str
    parts: tuple[str, ...] = ()
    cell_op: Optional[str] = None
    forget_bias: Optional[float] = None
    cell_clip: Optional[float] = None
    peepholes: bool = False
    projection: bool = False

    def problems(self):
        """Returns why keras.layers.LSTM cannot reproduce this cell; empty when it can."""
        problems = []
        if self.peepholes:
            problems.append(f"{self.scope}: " + _PEEPHOLE_REASON.format(
                gates="input, forget and output gates"))
        if self.projection:
            problems.append(f"{self.scope}: " + _PROJECTION_REASON)
        if self.cell_clip is not None:
            problems.append(
                f"{self.scope}: the cell state is clipped to [-{self.cell_clip:g}, "
                f"{self.cell_clip:g}] every step (cell_clip); keras.layers.LSTM does not clip, "
                f"so its outputs differ whenever the state leaves that range")
        if self.cell_op == "BlockLSTMV2":
            problems.append(
                f"{self.scope}: BlockLSTMV2 keeps its gates in Keras order (i, f, c, o) and has "
                f"no forget bias; the 'lstm' layout would reorder them wrongly")
        return tuple(problems)


def lstm_graph_facts(graph, scope):
    """Reads an LSTM cell's forget bias, clipping, peepholes and projection from a graph.

    Works on graphs from TF 1.x (`while` loops built from Enter/Exit ops) and
    from TF 2.x's `tf.compat.v1` (while_v2: the cell's ops live in the loop
    body's function), for LSTMCell, BasicLSTMCell and the fused LSTMBlockCell /
    BlockLSTM ops. The cell is found by following its kernel variable into the
    ops that read it, so bidirectional and stacked cells whose loop bodies use
    the same op names are told apart.

    Args:
        graph: a `tf.Graph` (for example from `tf.compat.v1.train.import_meta_graph`)
            or a `GraphDef`.
        scope: the cell's variable scope, e.g. `rnn/multi_rnn_cell/cell_0/lstm_cell`.

    Returns:
        An `LstmGraphFacts`; `forget_bias` is None when no op reads the kernel
        (for example a graph holding only the variables).

    Raises:
        LayoutError: the ops reading the kernel add different forget biases.

    Example:

        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.train.import_meta_graph(prefix + ".meta", clear_devices=True)
        facts = lstm_graph_facts(graph, "lm/rnn/multi_rnn_cell/cell_0/lstm_cell")
        facts.forget_bias  # 1.0
    """
    scope = scope.rstrip("/")
    index = _GraphIndex(graph.as_graph_def() if hasattr(graph, "as_graph_def") else graph)
    parts = index.variable_parts(scope)
    kernel = next((f"{scope}/{name}" for name in _KERNEL_NAMES if name in parts), None)
    cell_ops, forget_biases, clips = set(), set(), set()
    if kernel is not None:
        for location, node in index.readers_of_variable(kernel):
            cell_ops.add(node.op)
            if node.op in _FUSED_LSTM_WEIGHT_INPUT:
                if "forget_bias" in node.attr:
                    forget_biases.add(float(node.attr["forget_bias"].f))
                else:
                    forget_biases.add(0.0)
                # The fused kernels clip only when cell_clip > 0; LSTMBlockCell passed -1 for None.
                if "cell_clip" in node.attr and node.attr["cell_clip"].f > 0:
                    clips.add(float(node.attr["cell_clip"].f))
                continue
            forget_bias = index.forget_bias_after(location, node)
            if forget_bias is not None:
                forget_biases.add(forget_bias)
            clips.update(index.cell_clips_near(location, node))
    if len(forget_biases) > 1:
        raise LayoutError(
            f"The ops reading {kernel!r} add different forget biases, so one Keras bias "
            f"cannot hold them. Expected one value. Received: forget_bias={sorted(forget_biases)}")
    return LstmGraphFacts(
        scope=scope,
        parts=tuple(sorted(parts)),
        cell_op=sorted(cell_ops)[0] if cell_ops else None,
        forget_bias=forget_biases.pop() if forget_biases else None,
        cell_clip=max(clips) if clips else None,
        peepholes=any(part in parts for part in _PEEPHOLE_PARTS),
        projection=any(part in parts for part in _PROJECTION_PARTS),
    )


def _constant_value(node):
    """Returns a Const node's value as a NumPy array."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return tf.make_ndarray(node.attr["value"].tensor)


def _scalar_constant(node):
    """Returns a scalar (or one-element) Const node's value as a float, else None."""
    if node is None or node.op != "Const":
        return None
    value = _constant_value(node)
    if value.size != 1 or not np.issubdtype(value.dtype, np.floating):
        return None
    # The shortest decimal that rounds to the stored value: a float32 1.1
    # reads back as 1.1, not 1.100000023841858, so it compares equal to the
    # number a table gives, and folds into a float32 bias identically.
    return float(np.format_float_positional(value.flat[0], unique=True, trim="-"))


class _GraphIndex:
    """Nodes of a GraphDef and of its function library, with producer/consumer links.

    A location is None for the top-level graph, else a function's name. Inputs
    are written `node`, `node:2` or `^node` at top level and `node:out:2` or
    `argument` inside functions; both reduce to (node or argument, index).
    """

    def __init__(self, graph_def):
        self._nodes = {None: {node.name: node for node in graph_def.node}}
        self._arguments = {}
        for function in graph_def.library.function:
            self._nodes[function.signature.name] = {node.name: node for node in function.node_def}
            self._arguments[function.signature.name] = [
                argument.name for argument in function.signature.input_arg]
        self._callers = collections.defaultdict(list)
        self._consumers = {location: collections.defaultdict(list) for location in self._nodes}
        for location, nodes in self._nodes.items():
            for node in nodes.values():
                for value in node.attr.values():
                    if value.func.name:
                        self._callers[value.func.name].append((location, node))
                for position, text in enumerate(self._data_inputs(node)):
                    producer, output = self._parse(text)
                    self._consumers[location][producer].append((node, position, output))

    @staticmethod
    def _data_inputs(node):
        return [text for text in node.input if not text.startswith("^")]

    @staticmethod
    def _parse(text):
        pieces = text.split(":")
        output = int(pieces[-1]) if len(pieces) > 1 and pieces[-1].isdigit() else 0
        return pieces[0], output

    def variable_parts(self, scope):
        """Names (relative to `scope`) of the variable ops under `scope`."""
        prefix = scope + "/"
        parts = set()
        for node in self._nodes[None].values():
            if node.op in _VARIABLE_OPS and node.name.startswith(prefix):
                part = node.name[len(prefix):]
                # Partitioned variables are stored as `<name>/part_<n>`.
                head, _, tail = part.rpartition("/")
                parts.add(head if head and tail.startswith("part_") else part)
        return parts

    def _variable_behind(self, location, text, depth=0):
        """Follows `text` backwards through reads and loop plumbing to a variable op."""
        for _ in range(_MAX_WALK):
            name, _ = self._parse(text)
            if location is not None and name in self._arguments.get(location, ()):
                return self._argument_source(location, name, depth)
            node = self._nodes[location].get(name)
            if node is None:
                return None
            if node.op in _VARIABLE_OPS:
                return node.name
            if node.op not in _PASS_THROUGH_OPS or not self._data_inputs(node):
                return None
            text = self._data_inputs(node)[0]
        return None

    def _argument_source(self, function, argument, depth):
        if depth > _MAX_WALK:
            return None
        position = self._arguments[function].index(argument)
        for location, caller in self._callers.get(function, ()):
            inputs = self._data_inputs(caller)
            position_in_caller = position + (1 if caller.op in _CALLS_WITH_CONDITION else 0)
            if position_in_caller < len(inputs):
                found = self._variable_behind(location, inputs[position_in_caller], depth + 1)
                if found is not None:
                    return found
        return None

    def readers_of_variable(self, variable):
        """Yields (location, node) for each MatMul or fused LSTM op whose weights are `variable`."""
        for location, nodes in self._nodes.items():
            for node in nodes.values():
                if node.op == "MatMul":
                    weight_inputs = self._data_inputs(node)[1:2]
                elif node.op in _FUSED_LSTM_WEIGHT_INPUT:
                    weight_inputs = self._data_inputs(node)[
                        _FUSED_LSTM_WEIGHT_INPUT[node.op]:_FUSED_LSTM_WEIGHT_INPUT[node.op] + 1]
                else:
                    continue
                if any(self._variable_behind(location, text) == variable for text in weight_inputs):
                    yield location, node

    def _consumers_of(self, location, node, output=None):
        return [consumer for consumer, _, index in self._consumers[location].get(node.name, ())
                if output is None or index == output]

    def forget_bias_after(self, location, matmul):
        """Returns the constant added to the forget-gate block split off `matmul`'s result."""
        # matmul -> bias add -> split into i, j, f, o -> f + forget_bias
        frontier, split = [matmul], None
        for _ in range(3):
            frontier = [consumer for node in frontier for consumer in self._consumers_of(location,
                                                                                         node)]
            split = next((node for node in frontier if node.op in _SPLIT_OPS), None)
            if split is not None:
                break
        if split is None:
            return None
        nodes = self._nodes[location]
        for consumer in self._consumers_of(location, split, output=_TF1_FORGET_GATE):
            if consumer.op not in _ADD_OPS:
                continue
            for text in self._data_inputs(consumer):
                value = _scalar_constant(nodes.get(self._parse(text)[0]))
                if value is not None:
                    return value
        return None

    def cell_clips_near(self, location, matmul):
        """Returns the bounds of `clip_by_value` ops on the cell state in `matmul`'s scope."""
        cell_scope = matmul.name.rpartition("/")[0] + "/"
        nodes = self._nodes[location]
        clips = set()
        for node in nodes.values():
            if node.op != "Minimum" or not node.name.startswith(cell_scope):
                continue
            if "/projection/" in node.name or "clip_by_value" not in node.name:
                continue
            inputs = [nodes.get(self._parse(text)[0]) for text in self._data_inputs(node)]
            # A projection clip bounds the projection's MatMul output, not the state.
            if any(producer is not None and producer.op == "MatMul" for producer in inputs):
                continue
            for producer in inputs:
                value = _scalar_constant(producer)
                if value is not None:
                    clips.add(abs(value))
        return clips


def facts_parameters(facts):
    """Returns the `lstm` converter parameters that `facts` determines.

    Args:
        facts: an `LstmGraphFacts` from `lstm_graph_facts`.

    Returns:
        A dict with `forget_bias` when the graph shows it and `cell_clip` when
        the cell clips its state; parameters the graph does not show are left out.
    """
    found = {"forget_bias": facts.forget_bias, "cell_clip": facts.cell_clip}
    return {key: value for key, value in found.items() if value is not None}
