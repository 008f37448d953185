"""Pairing: which legacy tensor is each Keras layer's twin.

A Keras layer corresponds to the TF1 variables its weights were converted
from (the table's rules say which). Where those variables produce a tensor
of their own, that is its twin: an embedding's lookup (the Gather reading the
variable), a recurrent layer's output sequence (the TensorArray gathered
after the while loop whose body reads the variables, or its transpose); a
Bidirectional layer's twin is its two loops' sequences, merged as Keras
merges them; a cell unrolled statically (TF 0.x `tf.nn.rnn`: one cell call
per step, no loop) has the stack of its steps' outputs; a layer of several
tables (token and position embeddings, summed) the tensor where its lookups
meet. A recurrent layer whose output exists only inside a loop (a
MultiRNNCell's inner cells) has no twin: it is not compared.
Other layers take, among the legacy tensors under the variables' scope (or,
if none fits, its parent scopes; for variables of no scope, the ops just
after their reads) that depend on the fed inputs, on every one of the
layer's variables and on no later layer's, and hold as many values as the
layer's output, the closest in value.

`TwinFinder` walks the legacy graph for the candidates (before the run) and
picks each layer's twin among their values (after it); `layers` compares.
"""

import itertools

import numpy as np

from migrate.source.meta_graph import VARIABLE_OPS

_SKIPPED_OPS = frozenset({"Placeholder", "PlaceholderWithDefault", "Const", "Shape", "Size",
                          "Rank", "NoOp", "Assert"})
_FLOAT_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64"})
# Ops that only pass a variable's value on (outside any loop).
_READ_OPS = frozenset({"Identity", "ReadVariableOp"})
_LOOKUP_OPS = frozenset({"Gather", "GatherV2", "ResourceGather"})
# What embedding_lookup does after its Gathers (partitions stitched, ids' shape restored).
_LOOKUP_CHAIN_OPS = frozenset({"Identity", "DynamicStitch", "ParallelDynamicStitch", "Reshape"})
_WHILE_OPS = frozenset({"While", "StatelessWhile"})
_REVERSE_OPS = frozenset({"ReverseV2", "ReverseSequence"})
# How far after the reads of a scope-less layer's variables its output is looked for
# (MatMul, bias add, activation).
_NEAR_HOPS = 3


class TwinFinder:
    """Finds each layer's legacy twin: the candidates to fetch, then the closest of their values.

    Args:
        layer_variables: `[(layer name, [TF1 variable names])]` in the model's order.
        arrays: the arrays fed in the parity check, by tensor name.
    """

    def __init__(self, layer_variables, arrays):
        self._layer_variables = layer_variables
        self._arrays = arrays
        self._scopes = {layer_name: _scope_of(names) for layer_name, names in layer_variables}
        self._produced, self._steps, self._eligible, self._joined = {}, {}, {}, {}

    def candidates(self, graph):
        """Returns the legacy tensors to fetch from `graph` (`run_legacy`'s `extra_tensors`)."""
        layer_variables = self._layer_variables
        own, stepped, joins = _produced_tensors(graph, layer_variables)
        self._produced.update(own)
        self._steps.update(stepped)
        self._joined.update(joins)
        # Variables of no scope (`softmax_w`, `Variable_1`): the ops just after their reads.
        near = {op.name for _, names in layer_variables if not _scope_of(names)
                for op in _after(_readers(_variable_ops(graph, set(names))), _NEAR_HOPS)}
        found = _candidates(graph, self._arrays, self._scopes.values(), near)
        self._eligible.update(_eligible(graph, layer_variables, found + [
            tensor for tensors in self._joined.values() for tensor in tensors]))
        return found + [tensor for tensors in (*self._produced.values(), *self._steps.values())
                        for tensor in tensors]

    def closest(self, layer_name, output, legacy):
        """Returns `(twin name, max abs diff, max rel diff)` of the layer's output, as `_closest`.

        Args:
            layer_name: the Keras layer's name.
            output: the layer's output, a NumPy array.
            legacy: the fetched legacy values, by tensor name.
        """
        own = self._produced.get(layer_name)
        if layer_name in self._joined:
            own = [tensor for tensor in own if tensor.name in self._eligible[layer_name]]
        return _closest(
            output, self._scopes[layer_name], legacy,
            None if own is None else [tensor.name for tensor in own],
            steps=[tensor.name for tensor in self._steps.get(layer_name, ())],
            eligible=self._eligible.get(layer_name, set()))


def _scope_of(names):
    """The deepest scope holding every one of `names` (without the variable's own name)."""
    parts = [name.split("/")[:-1] for name in names]
    common = []
    for pieces in zip(*parts):
        if len(set(pieces)) != 1:
            break
        common.append(pieces[0])
    return "/".join(common)


def _candidates(graph, fed_names, scopes, near=frozenset()):
    """Float tensors of the top-level graph under `scopes` (or their parents), or made by the
    ops `near`, that depend on the fed placeholders."""
    fed_ops = {name.split(":")[0] for name in fed_names}
    live, stack = set(), [graph.get_operation_by_name(name) for name in fed_ops]
    while stack:
        op = stack.pop()
        if op.name in live:
            continue
        live.add(op.name)
        stack.extend(consumer for tensor in op.outputs for consumer in tensor.consumers())
    prefixes = set()
    for scope in scopes:
        pieces = scope.split("/")
        prefixes.update("/".join(pieces[:end]) + "/" for end in range(1, len(pieces) + 1) if scope)
    found = []
    for op in graph.get_operations():
        if op.name not in live or op.type in _SKIPPED_OPS:
            continue
        # Tensors inside a v1 while loop or cond cannot be fetched from outside it.
        if getattr(op, "_control_flow_context", None) is not None:
            continue
        if op.name not in near and not any(op.name.startswith(prefix) for prefix in prefixes):
            continue
        found.extend(tensor for tensor in op.outputs if tensor.dtype.name in _FLOAT_DTYPES)
    return found


def _after(ops, hops):
    """`ops` and the ops up to `hops` consumers after them."""
    found, frontier = {op.name: op for op in ops}, list(ops)
    for _ in range(hops):
        frontier = [consumer for op in frontier for tensor in op.outputs
                    for consumer in tensor.consumers() if consumer.name not in found]
        found.update((op.name, op) for op in frontier)
    return list(found.values())


def _fitted(value, output):
    """Returns `value` in `output`'s shape, or None when it cannot stand for it.

    A tensor of as many values is reshaped in C order (BERT's 2-D
    activations); a smaller one is broadcast (a slice of position embeddings
    that the Keras layer broadcasts over the batch).
    """
    if value.size == 0 or value.size > output.size:
        return None
    if value.size == output.size:
        if not _regrouped(value.shape, output.shape):
            return None
        return value.reshape(output.shape)
    try:
        return np.broadcast_to(value, output.shape)
    except ValueError:
        return None


def _regrouped(shape, other):
    """True when `shape` is `other` with adjacent axes merged or split (a C-order reshape that
    keeps every value in its place: `[B * T, H]` and `[B, T, H]`, not `[T, B, H]`)."""

    def trailing_sizes(sizes):
        found, size = set(), 1
        for axis in reversed(tuple(sizes)):
            size *= axis
            found.add(size)
        return found

    ours, theirs = trailing_sizes(shape), trailing_sizes(other)
    return ours <= theirs or theirs <= ours


def _closest(output, scope, legacy, own=None, *, steps=(), eligible=None):
    """Returns `(tensor name, max abs diff, max rel diff)` of the closest fitting tensor.

    With `own` (the names of the tensors the layer's variables produce), only
    those are candidates; with `steps` (a statically unrolled RNN's step
    outputs, in creation order), their stack along the time axis; a
    recurrent layer that returns only its
    last step is compared with the sequence's last step. Otherwise, among
    the `eligible` names (tensors that depend on every one of the layer's
    variables and on no later layer's), the deepest scope with a fitting
    tensor wins, so a layer is not matched with a neighbour's output when its
    own is there. Tensors fit as `_fitted` says.
    `(None, None, None)`: nothing fits, the layer is not compared.
    """
    if own is not None or steps:
        values = {}
        for name in own or ():
            if name in legacy:
                values[name] = np.asarray(legacy[name])
        if steps and all(name in legacy for name in steps):
            values[f"stack({steps[0]}, ..., {steps[-1]})"] = np.stack(
                [np.asarray(legacy[name]) for name in steps], axis=1)
        for name, value in list(values.items()):
            if value.ndim == 3 and output.ndim == 2:  # Batch- or time-major.
                values[name + "[:, -1]"] = value[:, -1]
                values[name + "[-1]"] = value[-1]
        return (_best(output, values.items()) or _best(output, _merged(values, output))
                or (None, None, None))
    if not scope:  # Variables of no scope: the tensors just after their reads.
        return _best(output, ((name, value) for name, value in legacy.items()
                              if eligible is not None and name in eligible)) or (None, None, None)
    pieces = scope.split("/")
    for end in range(len(pieces), 0, -1):
        prefix = "/".join(pieces[:end]) + "/"
        best = _best(output, ((name, value) for name, value in legacy.items()
                              if name.startswith(prefix)
                              and (eligible is None or name in eligible)))
        if best is not None:
            return best
    return None, None, None


def _merged(values, output):
    """Yields `(name, value)`: pairs of a layer's own tensors merged as `Bidirectional` merges.

    A bidirectional RNN's two directions are two loops whose sequences the
    Keras layer merges along the last axis (`merge_mode`: concat, the
    default, then sum, ave or mul), the forward one first.
    """
    for (first, a), (second, b) in itertools.permutations(values.items(), 2):
        if a.shape[:-1] != b.shape[:-1] or a.ndim != output.ndim:
            continue
        if a.shape[-1] + b.shape[-1] == output.shape[-1]:
            yield f"concat({first}, {second})", np.concatenate([a, b], axis=-1)
        if a.shape == b.shape == output.shape and first < second:
            yield f"sum({first}, {second})", a + b
            yield f"ave({first}, {second})", (a + b) / 2
            yield f"mul({first}, {second})", a * b


def _best(output, items):
    """The closest in value among `(name, value)` items that fit `output`, or None."""
    scale = float(np.max(np.abs(output))) if output.size else 0.0
    best = None
    for name, value in items:
        value = _fitted(np.asarray(value), output)
        if value is None:
            continue
        value = value.astype(np.float64)
        max_abs = float(np.max(np.abs(value - output)))
        if best is None or max_abs < best[1]:
            legacy_scale = float(np.max(np.abs(value))) or scale
            best = (name, max_abs, max_abs / legacy_scale if legacy_scale > 0 else max_abs)
    return best

def _produced_tensors(graph, layer_variables):
    """Maps layers to the legacy tensors their own variables produce.

    Args:
        graph: the legacy graph.
        layer_variables: `[(layer name, [TF1 variable names])]` in the model's order.

    Returns:
        `(produced, steps, joined)`: `produced` maps the layers whose
        variables feed an embedding lookup or a while loop to those tensors
        (an empty list: the layer's output exists only inside the loop);
        `joined` holds the layers that look up several tables, whose
        candidates must depend on all of them (see `_eligible`); `steps` maps the
        layers unrolled statically (TF 0.x's `tf.nn.rnn`, `static_rnn`: one
        cell call per step, outside any loop) to their step outputs in
        creation order. Layers in neither are matched by scope.
    """
    produced, loops, steps, joined = {}, {}, {}, {}
    order = {op.name: position for position, op in enumerate(graph.get_operations())}
    for layer_name, names in layer_variables:
        variable_ops = _variable_ops(graph, set(names))
        readers = _readers(variable_ops)
        lookups = [op for op in readers if op.type in _LOOKUP_OPS]
        if lookups:
            produced[layer_name] = _lookup_outputs(lookups)
            looked_up = {op.name.rsplit("/part_", 1)[0] for op in variable_ops
                         if any(reader.type in _LOOKUP_OPS for reader in _readers([op]))}
            if len(looked_up) > 1:
                # One layer of several tables (token and position embeddings, summed): its
                # output is where their lookups meet, a few ops on.
                joined[layer_name] = [tensor for op in _after(
                    [tensor.op for tensor in produced[layer_name]], _NEAR_HOPS)
                    for tensor in op.outputs if tensor.dtype.name in _FLOAT_DTYPES]
                produced[layer_name] = joined[layer_name]
            continue
        layer_loops = dict.fromkeys(filter(None, map(_loop_name, readers)))
        for loop in layer_loops:
            loops.setdefault(loop, []).append(layer_name)
        if not layer_loops:
            unrolled = _static_steps(graph, variable_ops, order)
            if unrolled:
                steps[layer_name] = unrolled
    for loop, layer_names in loops.items():
        # One loop runs a whole MultiRNNCell stack: its sequence is its last cell's.
        produced.setdefault(layer_names[-1], []).extend(_loop_outputs(graph, loop))
        for layer_name in layer_names[:-1]:
            produced.setdefault(layer_name, [])
    return produced, steps, joined


def _static_steps(graph, variable_ops, order):
    """A statically unrolled cell's output at each step, in creation order, or None.

    Every TF1 cell multiplies `concat([inputs, state])` by its kernel, once
    per step; the state that step t + 1 concatenates is step t's output. The
    last step's output is the op of the same name in the last step's name
    scope (`RNN/MultiRNNCell_4/Cell0/BasicLSTMCell/mul_2` beside
    `RNN/MultiRNNCell_3/...`). None when the variables are not read so (one
    MatMul: a layer run once), or when the steps do not agree.
    """
    for variable in variable_ops:
        matmuls = sorted((op for op in _readers([variable]) if op.type == "MatMul"
                          and getattr(op, "_control_flow_context", None) is None),
                         key=lambda op: order.get(op.name, 0))
        if len(matmuls) < 2:
            continue
        concats = [_through_identities(op.inputs[0]) for op in matmuls]
        if any(op.type not in ("ConcatV2", "Concat") or len(op.inputs) < 3 for op in concats):
            return None
        # ConcatV2 takes its axis last, Concat first: the state is the last value either way.
        states = [op.inputs[-2] if op.type == "ConcatV2" else op.inputs[-1] for op in concats]
        outputs = states[1:]
        relative = {_relative_name(matmul.name, output.name)
                    for matmul, output in zip(matmuls, outputs)}
        if len(relative) != 1:
            return None
        up, tail = relative.pop()
        pieces = matmuls[-1].name.split("/")
        last = "/".join(pieces[:len(pieces) - up] + list(tail))
        try:
            last_op = graph.get_operation_by_name(last.split(":")[0])
        except KeyError:
            return None
        index = int(last.rpartition(":")[2] or 0)
        if index >= len(last_op.outputs) or (
                str(last_op.outputs[index].shape) != str(outputs[-1].shape)):
            return None
        return outputs + [last_op.outputs[index]]
    return None


def _relative_name(anchor, name):
    """`(levels up from anchor, path below the common scope)` of tensor `name` from op `anchor`."""
    ours, theirs = anchor.split("/"), name.split("/")
    common = 0
    while common < min(len(ours), len(theirs)) - 1 and ours[common] == theirs[common]:
        common += 1
    return len(ours) - common, tuple(theirs[common:])


def _eligible(graph, layer_variables, candidates):
    """Maps each layer to the candidates that are its own: they depend on every one of its
    variables (that any candidate depends on) and on none of a later layer's (a layer's output
    cannot)."""
    bits, masks = {}, {}
    for _, names in layer_variables:
        for name in names:
            bits.setdefault(name, 1 << len(bits))
    for op in graph.get_operations():
        mask = 0
        if op.type in VARIABLE_OPS or op.type == "Const":  # A frozen graph's weights.
            mask = bits.get(op.name) or bits.get(op.name.rsplit("/part_", 1)[0], 0)
        for tensor in op.inputs:
            mask |= masks.get(tensor.op.name, 0)
        masks[op.name] = mask
    # A variable no candidate depends on (read only by a training branch) asks for nothing.
    reached = 0
    for tensor in candidates:
        reached |= masks.get(tensor.op.name, 0)
    needs = [sum(bits[name] for name in set(names)) & reached for _, names in layer_variables]
    eligible = {}
    for position, (layer_name, _) in enumerate(layer_variables):
        need = needs[position]
        later = 0
        for other in needs[position + 1:]:
            later |= other
        later &= ~need
        eligible[layer_name] = {tensor.name for tensor in candidates
                                if masks.get(tensor.op.name, 0) & need == need
                                and not masks.get(tensor.op.name, 0) & later}
    return eligible


def _variable_ops(graph, names):
    """The variable ops holding the checkpoint keys `names` (a partitioned one's parts too)."""
    return [op for op in graph.get_operations() if op.type in VARIABLE_OPS and (
        op.name in names or op.name.rsplit("/part_", 1)[0] in names)]


def _readers(variable_ops):
    """The ops that use the variables' values, looking through `read` identities."""
    readers, stack, seen = [], list(variable_ops), set()
    while stack:
        op = stack.pop()
        for consumer in (consumer for tensor in op.outputs for consumer in tensor.consumers()):
            if consumer.name in seen:
                continue
            seen.add(consumer.name)
            if (consumer.type in _READ_OPS
                    and getattr(consumer, "_control_flow_context", None) is None):
                stack.append(consumer)
            else:
                readers.append(consumer)
    return readers


def _loop_name(op):
    """The while loop an op brings a variable into (`rnn/while`), or None."""
    if op.type == "Enter":  # A v1 loop: the frame is `rnn/while/while_context`.
        return op.get_attr("frame_name").decode().rsplit("/", 1)[0]
    if op.type in _WHILE_OPS:  # while_v2 captures the variable as an input.
        return op.name
    return None


def _loop_outputs(graph, loop):
    """The sequence a while loop stacked (TensorArray gather / TensorList stack), and its transpose."""
    stacked = []
    for op in graph.get_operations():
        if op.type == "TensorArrayGatherV3" and op.inputs[2].op.type == "Exit" and (
                op.inputs[2].op.name.startswith(loop + "/")):
            stacked.append(op.outputs[0])
        elif op.type == "TensorListStack" and _through_identities(op.inputs[0]).name == loop:
            stacked.append(op.outputs[0])
    found = []
    for tensor in stacked:
        found.append(tensor)
        found += [consumer.outputs[0] for consumer in tensor.consumers()
                  if consumer.type == "Transpose"]
    # A backward direction ran over the reversed inputs; its sequence is
    # reversed back in time after the loop (bidirectional_dynamic_rnn).
    found += [consumer.outputs[0] for tensor in list(found) for consumer in tensor.consumers()
              if consumer.type in _REVERSE_OPS]
    return found


def _through_identities(tensor):
    """The op behind a tensor, looking through Identity ops (while_v2's outputs pass one)."""
    op = tensor.op
    while op.type == "Identity" and op.inputs:
        op = op.inputs[0].op
    return op


def _lookup_outputs(lookups):
    """The Gathers' outputs and what embedding_lookup makes of them (stitched, reshaped)."""
    found, stack, seen = [], [op for op in lookups], set()
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        found.append(op.outputs[0])
        stack += [consumer for consumer in op.outputs[0].consumers()
                  if consumer.type in _LOOKUP_CHAIN_OPS]
    return found
