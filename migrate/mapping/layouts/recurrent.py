"""Layout converters for TF1 recurrent cells: LSTM and GRU weights into Keras cell order.

TF1 cells keep one fused kernel for the input and the recurrent state, with
the input rows first; Keras cells keep `kernel` (input) and
`recurrent_kernel` (state) apart and order the gates differently:

    TF1 LSTMCell, BasicLSTMCell, LSTMBlockCell   kernel [D+U, 4U], gates i, j, f, o
    keras.layers.LSTM                            kernel [D, 4U] + [U, 4U], gates i, f, c, o
    TF1 GRUCell                                  gates/kernel [D+U, 2U] (r, u),
                                                 candidate/kernel [D+U, U]
    keras.layers.GRU(reset_after=False)          kernel [D, 3U] + [U, 3U], gates z, r, h
    TF1 BasicRNNCell (rnn_cell.RNNCell)          kernel [D+U, U], bias [U]
    keras.layers.SimpleRNN                       kernel [D, U] + recurrent_kernel [U, U]

TF1's `j` is the candidate (Keras `c`) and TF1's update gate `u` is Keras'
`z`. The LSTM `forget_bias` is never stored in a checkpoint: TF1 adds it to
the forget gate at run time, so it is folded into the Keras bias here.

Registered converters (TF1 parts under the rule's scope -> Keras cell parts
`kernel`, `recurrent_kernel`, `bias`):

    lstm                   LSTMCell / BasicLSTMCell / LSTMBlockCell: `kernel`, `bias`
    lstm_legacy_names      the same cells saved before TF 1.2: `weights`, `biases`
    lstm_linear_names      BasicLSTMCell saved before TF 1.0: `Linear/Matrix`, `Linear/Bias`
                           (the cell's scope is `.../BasicLSTMCell`, e.g.
                           `RNN/MultiRNNCell/Cell0/BasicLSTMCell`)
    cudnn_compatible_lstm  CudnnCompatibleLSTMCell: `kernel`, `bias`; forget bias fixed at 0
    gru                    GRUCell: `gates/kernel`, `gates/bias`, `candidate/kernel`,
                           `candidate/bias`; target must be GRU(reset_after=False)
    gru_legacy_names       GRUCell saved before TF 1.2: `gates/weights`, `gates/biases`, ...
    simple_rnn             BasicRNNCell: `kernel`, `bias`; target keras.layers.SimpleRNN
                           (tanh both sides: `h' = tanh([x, h] W + b)`)
    simple_rnn_legacy_names  BasicRNNCell saved by TF 1.0-1.1: `weights`, `biases`
    simple_rnn_linear_names  BasicRNNCell saved before TF 1.0: `Linear/Matrix`, `Linear/Bias`
                           (the cell's scope is `.../BasicRNNCell`)

The pre-1.2 names get converters of their own rather than optional parts, so
a rule states which naming it expects and a missing part is still an error.

`lstm`, `lstm_legacy_names` and `lstm_linear_names` take `forget_bias` and `cell_clip`. Left unset
(None), both are read from the checkpoint's `.meta` graph by
`migrate.mapping.layouts.tf1_graph`; a forget bias found nowhere is an error, and a cell clip
found anywhere is refused, since keras.layers.LSTM does not clip. Peephole
(`w_f_diag`, `w_i_diag`, `w_o_diag`) and projection parts are refused by name.

Example: a one-unit LSTMCell on a two-value input. TF1's columns (i, j, f, o)
become Keras' (i, f, c, o), the input rows `kernel` and the state row
`recurrent_kernel`, and the forget bias is folded into the Keras bias:

>>> import numpy as np
>>> tf1_kernel = np.array([[1., 2., 3., 4.], [5., 6., 7., 8.], [9., 10., 11., 12.]])
>>> weights = LSTM.convert({"kernel": tf1_kernel, "bias": np.zeros(4)}, {},
...                        {"forget_bias": 1.0, "cell_clip": None})
>>> weights["kernel"], weights["recurrent_kernel"]
(array([[1., 3., 2., 4.],
       [5., 7., 6., 8.]]), array([[ 9., 11., 10., 12.]]))
>>> weights["bias"]
array([0., 1., 0., 0.])
"""

import math
import numbers

import numpy as np

from migrate.mapping.layouts import LayoutConverter
from migrate.mapping.layouts import LayoutError
from migrate.mapping.layouts import register
from migrate.mapping.layouts import tf1_graph

TARGET_PARTS = ("kernel", "recurrent_kernel", "bias")

# Position of each Keras LSTM gate (i, f, c, o) among TF1's column blocks (i, j, f, o).
_LSTM_GATES_FROM_TF1 = (0, 2, 1, 3)

_FORGET_BIAS_HELP = (
    "TF1 checkpoints do not store it: the cell adds it to the forget gate at run time. "
    "tf.nn.rnn_cell.LSTMCell, BasicLSTMCell and LSTMBlockCell default to 1.0; "
    "CudnnCompatibleLSTMCell uses 0 (layout 'cudnn_compatible_lstm'). Give "
    "`forget_bias = <number>` in the table rule, or convert with the checkpoint's .meta "
    "so it can be read from the graph.")

# One reason for the three peephole vectors, so a plan says it once per cell.
_PEEPHOLES = tf1_graph.PEEPHOLE_REASON.format(gates="input, forget and output gates")
_LSTM_UNSUPPORTED_PARTS = {"w_i_diag": _PEEPHOLES, "w_f_diag": _PEEPHOLES, "w_o_diag": _PEEPHOLES}


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
    facts = tf1_graph.lstm_graph_facts(graph, scope)
    if facts.forget_bias is None:
        # A default here would be a guess about the graph that actually ran.
        raise LayoutError(
            f"The checkpoint's graph shows no op that reads {scope}'s kernel, so its forget_bias "
            f"(and cell clipping) cannot be read, and a table value cannot be checked against "
            f"it. Expected the LSTM cell's ops in the .meta graph. Received: "
            f"cell_op={facts.cell_op}, parts={list(facts.parts)}")
    return tf1_graph.facts_parameters(facts)


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
        forget = tf1_graph.TF1_FORGET_GATE
        bias_blocks[forget] = (
            bias_blocks[forget] + np.asarray(forget_bias(parameters), dtype=bias.dtype))
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
    unsupported_parts={**_LSTM_UNSUPPORTED_PARTS, "projection/kernel": tf1_graph.PROJECTION_REASON},
    description="TF1 LSTMCell/BasicLSTMCell/LSTMBlockCell (kernel, bias; gates i,j,f,o) "
                "-> keras.layers.LSTM cell (gates i,f,c,o), forget_bias folded into the bias"))

LSTM_LEGACY_NAMES = register(_make_lstm_converter(
    "lstm_legacy_names", kernel_part="weights", bias_part="biases", fixed_forget_bias=None,
    unsupported_parts={**_LSTM_UNSUPPORTED_PARTS,
                       "projection/weights": tf1_graph.PROJECTION_REASON},
    description="LSTM cells saved before TF 1.2 (weights, biases) -> keras.layers.LSTM cell, "
                "forget_bias folded into the bias"))

LSTM_LINEAR_NAMES = register(_make_lstm_converter(
    "lstm_linear_names", kernel_part="Linear/Matrix", bias_part="Linear/Bias",
    fixed_forget_bias=None, unsupported_parts={},
    description="BasicLSTMCell saved before TF 1.0 (BasicLSTMCell/Linear/Matrix, Linear/Bias; "
                "gates i,j,f,o) -> keras.layers.LSTM cell, forget_bias folded into the bias"))

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


def _make_simple_rnn_converter(name, *, kernel_part, bias_part, description):
    """Builds a BasicRNNCell converter for one pair of TF1 part names."""

    def output_shapes(source_shapes, target_shapes, parameters):
        del parameters  # BasicRNNCell has no run-time constants.
        input_dim, units = _fused_dimensions(name, kernel_part, source_shapes[kernel_part],
                                             bias_part, source_shapes[bias_part], 1,
                                             target_shapes)
        expected = {"kernel": (input_dim, units), "recurrent_kernel": (units, units),
                    "bias": (units,)}
        _check_targets(name, expected, target_shapes)
        return expected

    def convert(sources, target_shapes, parameters):
        del parameters
        kernel, bias = np.asarray(sources[kernel_part]), np.asarray(sources[bias_part])
        input_dim, _ = _fused_dimensions(name, kernel_part, kernel.shape, bias_part, bias.shape,
                                         1, target_shapes)
        return {"kernel": np.ascontiguousarray(kernel[:input_dim]),
                "recurrent_kernel": np.ascontiguousarray(kernel[input_dim:]),
                "bias": bias}

    return LayoutConverter(name=name, source_parts=(kernel_part, bias_part),
                           target_parts=TARGET_PARTS, output_shapes=output_shapes,
                           convert=convert, description=description)


SIMPLE_RNN = register(_make_simple_rnn_converter(
    "simple_rnn", kernel_part="kernel", bias_part="bias",
    description="TF1 BasicRNNCell (kernel [D+U, U], bias) -> keras.layers.SimpleRNN cell "
                "(kernel [D, U], recurrent_kernel [U, U], bias)"))

SIMPLE_RNN_LEGACY_NAMES = register(_make_simple_rnn_converter(
    "simple_rnn_legacy_names", kernel_part="weights", bias_part="biases",
    description="BasicRNNCell saved by TF 1.0-1.1 (weights, biases) -> keras.layers.SimpleRNN "
                "cell"))

SIMPLE_RNN_LINEAR_NAMES = register(_make_simple_rnn_converter(
    "simple_rnn_linear_names", kernel_part="Linear/Matrix", bias_part="Linear/Bias",
    description="BasicRNNCell saved before TF 1.0 (BasicRNNCell/Linear/Matrix, Linear/Bias) "
                "-> keras.layers.SimpleRNN cell"))
