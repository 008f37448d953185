"""Reads what a TF1 graph knows about an RNN cell beyond its checkpointed variables.

A checkpoint holds a cell's kernel and bias but not its run-time constants:
`forget_bias` is added to the forget gate by an op, cell clipping is a
`clip_by_value`, a projection is a second MatMul. This module walks the
imported `GraphDef` (through variable reads, while-loop frames and function
calls) from the ops that consume a cell's kernel to find them, so the LSTM
layout converters can take them from the graph that actually ran.
"""

import collections
import dataclasses
import re
from typing import Optional

import numpy as np

from migrate.mapping.layouts import LayoutError
from migrate.source.meta_graph import VARIABLE_OPS

# TF1 LSTM cells order their gate column blocks i, j, f, o.
TF1_FORGET_GATE = 2
PEEPHOLE_REASON = (
    "peephole connections (use_peepholes=True) feed the cell state into the {gates}; "
    "keras.layers.LSTM has no peepholes, so its outputs would differ")
PROJECTION_REASON = (
    "the output projection (num_proj) maps h to num_proj units after every step and the "
    "kernel's recurrent rows have num_proj rows, not units; keras.layers.LSTM has no "
    "projection")
# Ops a variable's value passes through unchanged on its way into the cell:
# reads, v1 while-loop frames (Enter) and identities added by while_v2 captures.
_PASS_THROUGH_OPS = frozenset({"Identity", "RefIdentity", "ReadVariableOp", "Enter", "RefEnter",
                               "Switch", "RefSwitch", "Snapshot"})
_ADD_OPS = frozenset({"Add", "AddV2"})
# A partitioned variable (`name/part_0..N`) is read as one tensor by
# concatenating its parts' reads along axis 0.
_CONCAT_OPS = frozenset({"ConcatV2", "Concat"})
_PART = re.compile(r"/part_\d+$")
_SPLIT_OPS = frozenset({"Split", "SplitV"})
# Fused LSTM ops and the input position of their weight matrix `w`.
_FUSED_LSTM_WEIGHT_INPUT = {"LSTMBlockCell": 3, "BlockLSTM": 4, "BlockLSTMV2": 4}
# Ops whose called function's arguments start after their first input.
_CALLS_WITH_CONDITION = frozenset({"If", "StatelessIf", "Case", "StatelessCase"})
# `Linear/Matrix`: BasicLSTMCell before TF 1.0 (its `_linear` helper's scope).
_KERNEL_NAMES = ("kernel", "weights", "Linear/Matrix")
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
            problems.append(f"{self.scope}: " + PEEPHOLE_REASON.format(
                gates="input, forget and output gates"))
        if self.projection:
            problems.append(f"{self.scope}: " + PROJECTION_REASON)
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


def graph_index(graph):
    """Returns the index `lstm_graph_facts` walks, to share between calls on one graph."""
    return _GraphIndex(graph.as_graph_def() if hasattr(graph, "as_graph_def") else graph)


def lstm_cells(graph):
    """Returns the `LstmGraphFacts` of every LSTM-like cell in a graph, whatever reads it.

    A cell is a scope holding a kernel (`kernel` or `weights`, partitioned or
    not) and either a projection or peephole weights, or `lstm` in its name.

    Example:

        for facts in lstm_cells(checkpoint.graph):
            print(facts.scope, facts.problems())
    """
    index = graph_index(graph)
    found = []
    for scope in lstm_cell_scopes(index.variable_names()):
        facts = lstm_graph_facts(graph, scope, index=index)
        if any(part in facts.parts for part in _KERNEL_NAMES):
            found.append(facts)
    return found


def lstm_cell_scopes(variable_names):
    """Returns the sorted scopes that may be LSTM cells, judged from variable names alone.

    A scope holding a projection or peephole weights, or a kernel under a
    scope named like an LSTM. A Saver stores each variable under its graph
    name, so a checkpoint's keys give the same answer as the graph's
    variables, without importing the graph.

    >>> lstm_cell_scopes(["rnn/lstm_cell/kernel", "rnn/lstm_cell/bias", "conv1/weights"])
    ['rnn/lstm_cell']
    """
    scopes = set()
    for name in variable_names:
        for part in (*_PROJECTION_PARTS, *_PEEPHOLE_PARTS, *_KERNEL_NAMES):
            scope = name[:-len(part) - 1]
            # Walking every conv kernel's readers would be slow and say nothing.
            if name.endswith("/" + part) and (part not in _KERNEL_NAMES or "lstm" in scope.lower()):
                scopes.add(scope)
    return sorted(scopes)


def lstm_graph_facts(graph, scope, *, index=None):
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
        index: a `graph_index(graph)` to reuse, or None.

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
    index = index or graph_index(graph)
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

    def variable_names(self):
        """Names of the variables of the top-level graph (partitions as one name)."""
        return sorted({_PART.sub("", node.name) for node in self._nodes[None].values()
                       if node.op in VARIABLE_OPS})

    def variable_parts(self, scope):
        """Names (relative to `scope`) of the variable ops under `scope`."""
        prefix = scope + "/"
        parts = set()
        for node in self._nodes[None].values():
            if node.op in VARIABLE_OPS and node.name.startswith(prefix):
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
            if node.op in VARIABLE_OPS:
                return _PART.sub("", node.name)
            if node.op in _CONCAT_OPS:
                return self._partitioned_variable_behind(location, node, depth)
            if node.op not in _PASS_THROUGH_OPS or not self._data_inputs(node):
                return None
            text = self._data_inputs(node)[0]
        return None

    def _partitioned_variable_behind(self, location, concat, depth):
        """The variable whose parts `concat` joins, or None when it joins anything else."""
        inputs = self._data_inputs(concat)
        # ConcatV2 takes the axis last, Concat first.
        values = inputs[:-1] if concat.op == "ConcatV2" else inputs[1:]
        found = {self._variable_behind(location, text, depth + 1) for text in values}
        if len(found) == 1 and None not in found and len(values) > 1:
            return found.pop()
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
        for consumer in self._consumers_of(location, split, output=TF1_FORGET_GATE):
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
