"""What the legacy graph is fed: which placeholders, matched to the Keras inputs, and checked.

`build_feed` decides what each placeholder gets (a Keras input's array, a constant,
an array by name); `feed_arrays` makes the arrays and `legacy_feed` holds the result.
"""

import dataclasses

import numpy as np

from migrate.errors import ArgumentError
from migrate.errors import did_you_mean
from migrate.errors import reason
from migrate.source import graph_outputs
from migrate.verification import feature_values
from migrate.verification import feed_arrays
from migrate.verification import input_graph
from migrate.verification import legacy_feed

_PLACEHOLDER_OPS = frozenset({"Placeholder"})
# Ops that hand a training graph its batch: a `tf.data` iterator's next element, an
# input queue's dequeued batch (TF 1.x's `shuffle_batch`, contrib.learn's feeding queues).
# A TF1 session feeds any feedable tensor, so verification feeds their outputs as it
# feeds placeholders; the data behind them (a training set baked into the graph as a
# constant, the files a queue reads) is never run.
DEQUEUE_OPS = frozenset({"IteratorGetNext", "IteratorGetNextSync", "QueueDequeue",
                         "QueueDequeueV2", "QueueDequeueMany", "QueueDequeueManyV2",
                         "QueueDequeueUpTo", "QueueDequeueUpToV2"})
# Ops whose tensors are no computed value a verification would name.
_NOT_COMPUTED = frozenset({"VarHandleOp", "VariableV2", "Variable", "ReadVariableOp", "Const",
                           "AssignVariableOp", "Assign", "VarIsInitializedOp", "NoOp"})
_FEED_HOW = ("feed {which} with feeds={{{entries}}} (a constant at its shape, the batch "
             "dimension set to the batch size) or give its array in the inputs file")


def dependent_inputs(graph, output):
    """Returns the tensors a run of `output` must be fed, in graph order.

    Those are the `Placeholder`s it depends on and, in a training graph, the
    outputs of the iterator or queue ops that hand it its batch (`DEQUEUE_OPS`;
    only those it reads: the labels an iterator also yields are no input of
    the logits). `placeholder_with_default` ops are not among them: they run
    without a feed.

    Example:

        inputs = dependent_inputs(graph, graph.get_tensor_by_name("logits:0"))
        [tensor.name for tensor in inputs]  # ['IteratorGetNext:0', 'IteratorGetNext:3']
    """
    seen, stack, found = set(), [output.op], set()
    dequeued = set()
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        if op.type in _PLACEHOLDER_OPS:
            found.add(op.outputs[0].name)
            continue
        for tensor in op.inputs:
            if tensor.op.type in DEQUEUE_OPS:
                dequeued.add(tensor.name)
            else:
                stack.append(tensor.op)
        stack.extend(op.control_inputs)
    if output.op.type in DEQUEUE_OPS:
        dequeued.add(output.name)
    found |= dequeued
    return [tensor for op in graph.get_operations() for tensor in op.outputs
            if tensor.name in found]


def _with_covering_batch(graph, input_names, settings, assets):
    """`settings` with as many rows as show every vocabulary entry and bucket of raw features.

    Placeholders of unknown batch size that the graph looks up in a
    vocabulary or cuts into buckets (`feature_values`) get at least the rows
    that cover them; never fewer than the settings' batch size.
    """
    rows = settings.batch_size
    for name in input_names:
        if not _has_tensor(graph, name):
            continue  # The loop below names it in its error.
        tensor = graph.get_tensor_by_name(name)
        found = (feature_values.placeholder_facts(graph, tensor, assets=assets)
                 if tensor.shape.rank and tensor.shape[0] is None else None)
        if found is not None:
            rows = max(rows, found.covering_rows)
    return settings if rows == settings.batch_size else dataclasses.replace(settings,
                                                                            batch_size=rows)


def build_feed(graph, output, settings, keras_input_names, *, arrays=None, assets=None):
    """Decides what the legacy graph is fed and makes the arrays.

    Args:
        graph: the imported legacy `tf.Graph`.
        output: the output tensor compared, or a list of them.
        settings: a `VerifySettings`.
        keras_input_names: `legacy_feed.keras_input_names(model)`: the Keras inputs' names
            and dtypes, in order (to count them, to order placeholders named
            like them, and to check found placeholders' dtypes).
        arrays: `{tensor name: array}` given directly, in place of the
            settings' inputs file.
        assets: a SavedModel's `{asset tensor name: path}`, where generated
            string inputs find vocabulary files (see `feed_arrays.graph_values`).

    Returns:
        A `LegacyFeed`.

    Raises:
        ArgumentError: a tensor does not exist, the inputs cannot be told
            apart, a placeholder the output needs is not fed, or a shape is unknown.
    """
    outputs = list(output) if isinstance(output, (list, tuple)) else [output]
    output_text = ", ".join(tensor.name for tensor in outputs)
    arrays_from_file = {(name if ":" in name else name + ":0"): np.asarray(array)
                        for name, array in (arrays or {}).items()}
    arrays_from_file = arrays_from_file or feed_arrays.load_inputs_file(settings.inputs_file)
    all_keras_inputs = list(keras_input_names)
    keras_only = _keras_only_arrays(graph, arrays_from_file, all_keras_inputs, settings)
    keras_input_names = [(name, dtype) for name, dtype in all_keras_inputs
                         if name not in keras_only and name not in dict(settings.keras_feeds)]
    needed = dependent_on_all(graph, outputs)
    feeds = dict(settings.feeds)
    keras_names = [name for name, _ in keras_input_names]
    if settings.input_pairs:
        legacy_feed.check_keras_names(settings.input_pairs, all_keras_inputs, "input_pairs")
        input_names = [legacy for _, legacy in settings.input_pairs]
        keras_names = [keras for keras, _ in settings.input_pairs]
    elif settings.input_tensors:
        input_names = _order_like_keras(list(settings.input_tensors), keras_names)
    else:
        candidates = [tensor for tensor in needed if tensor.name not in feeds]
        by_keras_name = _named_like_keras(candidates, keras_names)
        if len(candidates) > len(keras_input_names) and by_keras_name is not None:
            # Each Keras input has its placeholder by name; the others need
            # feeds, and the check for unfed placeholders below names them.
            candidates = by_keras_name
        if len(candidates) != len(keras_input_names):
            listed = "; ".join(feed_arrays.describe_placeholder(tensor)
                               for tensor in needed) or "none"
            raise ArgumentError(
                f"The output {output_text} depends on {len(candidates)} placeholder(s) not fed "
                f"by a constant, and the Keras model takes {len(keras_input_names)} input(s), so "
                f"they cannot be matched. Expected input_tensors naming the Keras inputs' "
                f"placeholders in order, and feeds for the rest. Received: placeholders {listed}",
                option="input_tensors")
        input_names = _order_like_keras([tensor.name for tensor in candidates], keras_names)
        _check_dtypes(graph, output_text, input_names, keras_input_names, needed)
        _check_per_input_counts(settings, input_names)
    settings = _with_covering_batch(graph, input_names, settings, assets)
    arrays, facts, drawn = {}, {}, {}
    tensors = [tensor_by_name(graph, name, "input_tensors") for name in input_names]
    for index, tensor in enumerate(tensors):
        check_feedable(graph, tensor, "input_tensors")
        facts[tensor.name] = _with_batch_axis(input_graph.input_facts(tensor), tensor,
                                              settings.axis_for(index))
    batch_size = _batch_size(tensors, facts, settings.batch_size)
    for index, tensor in enumerate(tensors):
        name = tensor.name
        if name in arrays_from_file:
            arrays[name] = arrays_from_file[name]
            continue
        shape = tensor.shape.as_list() if tensor.shape.rank is not None else None
        seed = settings.seed if index == 0 else [settings.seed, index]
        from_graph = feed_arrays.graph_values(graph, tensor, settings, index, seed, assets)
        if from_graph is not None:
            arrays[name] = from_graph
            continue
        input_max, ids, drawn[name] = feed_arrays.id_bound(tensor, facts[name], settings,
                                                           index, len(input_names))
        arrays[name] = feed_arrays.make_inputs(
            shape, tensor.dtype.as_numpy_dtype, batch_size=batch_size,
            input_shape=settings.shape_for(index), input_max=input_max, seed=seed, name=name,
            batch_axis=facts[name].batch_axis, ids=ids)
    shapes = [np.shape(arrays[name]) for name in input_names]
    # Constant feeds take the batch the inputs have (an inputs file's rows too).
    batch_size = next((shape[facts[name].batch_axis] for name, shape in zip(input_names, shapes)
                       if len(shape) > facts[name].batch_axis), batch_size)
    for name, value in feeds.items():
        tensor = tensor_by_name(graph, name, "feeds")
        check_feedable(graph, tensor, "feeds")
        arrays.setdefault(name, feed_arrays.constant_feed(tensor, value, batch_size, shapes))
    for name, array in arrays_from_file.items():
        if name not in arrays:
            check_feedable(graph, tensor_by_name(graph, name, "inputs_file"), "inputs_file")
            arrays[name] = array
    unfed = [tensor for tensor in needed if tensor.name not in arrays]
    if unfed:
        listed = "; ".join(feed_arrays.describe_placeholder(tensor) for tensor in unfed)
        which = "it" if len(unfed) == 1 else "each"
        entries = ", ".join(f"{tensor.name!r}: value" for tensor in unfed)
        raise ArgumentError(
            f"The output {output_text} needs placeholder{'s' if len(unfed) > 1 else ''} "
            f"{listed}, which {'is' if len(unfed) == 1 else 'are'} not fed; "
            f"{_FEED_HOW.format(which=which, entries=entries)}. Received: "
            f"input_tensors={input_names}, feeds={sorted(feeds)}", option="feeds")
    for name, array in arrays.items():
        feed_arrays.check_fits(graph.get_tensor_by_name(name), array,
                               "inputs_file" if name in arrays_from_file else "input_shape")
    feed = legacy_feed.LegacyFeed(input_names=input_names, arrays=arrays,
                      keras_names=keras_names[:len(input_names)],
                      batch_axes={name: facts[name].batch_axis for name in input_names
                                  if facts[name].batch_axis},
                      batch_axis_from={name: facts[name].batch_axis_from for name in input_names
                                       if facts[name].batch_axis},
                      drawn={name: text for name, text in drawn.items() if text})
    if keras_only or settings.keras_feeds or settings.input_pairs:
        feed.keras_arrays = legacy_feed.keras_arrays(feed, keras_only, settings, all_keras_inputs)
        feed.keras_order = [name for name, _ in all_keras_inputs]
    return feed


def _with_batch_axis(facts, tensor, axis):
    """The graph's facts, with the batch axis given in the settings (None: the graph's).

    Raises:
        ArgumentError: the axis is not one of the placeholder's.
    """
    if axis is None:
        return facts
    if tensor.shape.rank is not None and axis >= max(tensor.shape.rank, 1):
        raise ArgumentError(f"Placeholder {feed_arrays.describe_placeholder(tensor)} has no "
                            f"axis {axis}. Expected its batch axis among its "
                            f"{tensor.shape.rank} axes. Received: batch_axes naming {axis}",
                            option="batch_axes")
    return dataclasses.replace(facts, batch_axis=axis, batch_axis_from="batch_axes")


def _batch_size(tensors, facts, batch_size):
    """The batch of generated arrays: a placeholder's fixed batch (1) where one has it."""
    for tensor in tensors:
        if tensor.shape.rank is not None and facts[tensor.name].batch_axis < tensor.shape.rank:
            fixed = tensor.shape.as_list()[facts[tensor.name].batch_axis]
            if fixed is not None:
                return fixed
    return batch_size


def dependent_on_all(graph, outputs):
    """The tensors any of `outputs` must be fed (`dependent_inputs`), in graph order."""
    found = {tensor.name for output in outputs for tensor in dependent_inputs(graph, output)}
    return [tensor for op in graph.get_operations() for tensor in op.outputs
            if tensor.name in found]


def _keras_only_arrays(graph, arrays_from_file, keras_inputs, settings):
    """Takes out of `arrays_from_file` the arrays keyed by a Keras input and no graph tensor.

    An array keyed by a Keras input that `input_pairs` pairs with a tensor is
    that tensor's array (rows by feature name, for `IteratorGetNext:3`), and
    stays; the others feed only the Keras model and are returned.
    """
    keras_names = {name for name, _ in keras_inputs}
    paired = dict(settings.input_pairs)
    found = {}
    for key in list(arrays_from_file):
        name = key[:-2] if key.endswith(":0") else key
        if name in keras_names and not _has_tensor(graph, key):
            if name in paired:
                arrays_from_file.setdefault(paired[name], arrays_from_file.pop(key))
            else:
                found[name] = arrays_from_file.pop(key)
    legacy_feed.check_keras_names(settings.keras_feeds, keras_inputs, "keras_feeds")
    return found


def _has_tensor(graph, name):
    try:
        graph.get_tensor_by_name(name)
    except (KeyError, ValueError):
        return False
    return True


def _check_per_input_counts(settings, input_names):
    """Refuses per-input settings whose count differs from the placeholders found in the graph.

    `VerifySettings` checks the counts against `input_tensors` when they are
    given; found placeholders are known only here, and an extra entry must
    not be ignored silently.
    """
    for name in ("input_shapes", "input_max", "batch_axes"):
        values = getattr(settings, name)
        if len(values) > 1 and len(values) != len(input_names):
            raise ArgumentError(
                f"Expected {name} to have one entry per input tensor ({len(input_names)}: "
                f"{', '.join(input_names)}) or one for all. Received: {name}={values!r}",
                option=name)


def _check_dtypes(graph, output_text, input_names, keras_inputs, needed):
    """Refuses placeholders found in the graph whose dtypes differ from the Keras inputs'."""
    found = [graph.get_tensor_by_name(name).dtype.name for name in input_names]
    expected = [dtype for _, dtype in keras_inputs]
    if all(dtype is None or dtype == placeholder for dtype, placeholder in zip(expected, found)):
        return
    listed = "; ".join(feed_arrays.describe_placeholder(tensor) for tensor in needed)
    raise ArgumentError(
        f"The placeholders that {output_text} depends on do not match the Keras model's inputs "
        f"in dtype (Keras: {', '.join(map(str, expected))}). Expected input_tensors naming the "
        f"Keras inputs' placeholders in order, and feeds for the rest. Received: placeholders "
        f"{listed}", option="input_tensors")


def tensor_by_name(graph, name, argument):
    """Returns the graph's tensor `name`.

    Raises:
        ArgumentError: there is no such tensor (the message says which argument named it).
    """
    try:
        return graph.get_tensor_by_name(name)
    except (KeyError, ValueError) as error:
        outputs = argument == "output_tensor"
        names = (graph_outputs.candidate_outputs if outputs else graph_outputs.placeholders)(
            graph)
        # A typo of a listed name first; else of any tensor that is not a variable's.
        close = did_you_mean(name, names) or did_you_mean(name, [
            tensor.name for op in graph.get_operations() if op.type not in _NOT_COMPUTED
            for tensor in op.outputs])
        expected = ((graph_outputs.describe_candidates(names) if outputs else
                     f"one of its placeholders: {graph_outputs.listed(names)}")
                    if names else "a tensor name such as 'logits:0'")
        # TensorFlow's KeyError only repeats the name; a ValueError says what is malformed.
        why = "" if isinstance(error, KeyError) else f": {reason(error)}"
        raise ArgumentError(f"The legacy graph has no tensor {name}{why}."
                            f"{close} Expected {expected}. Received: "
                            f"{argument} naming {name!r}", option=argument) from None


def _short_name(tensor_name):
    """Returns the op's own name, as a Keras input is named: `s/input_ids:0` -> `input_ids`."""
    return tensor_name.split(":")[0].rsplit("/", 1)[-1]


def _named_like_keras(placeholders, keras_names):
    """Returns the placeholders named like the Keras inputs, in their order, or None.

    A placeholder `scope/input_ids:0` is named like the Keras input
    `input_ids`; None unless every Keras input has exactly one.
    """
    named = {}
    for tensor in placeholders:
        named.setdefault(_short_name(tensor.name), []).append(tensor)
    if any(len(named.get(name, ())) != 1 for name in keras_names):
        return None
    return [named[name][0] for name in keras_names]


def _order_like_keras(input_names, keras_names):
    """Orders placeholders like the Keras inputs when their names match one to one."""
    by_op_name = {_short_name(name): name for name in input_names}
    if len(by_op_name) == len(input_names) and set(by_op_name) == set(keras_names):
        return [by_op_name[name] for name in keras_names]
    return list(input_names)


def check_feedable(graph, tensor, argument):
    """Refuses a tensor TensorFlow cannot feed, with one line that says why.

    Raises:
        ArgumentError: the tensor is inside a v1 while loop or cond, or the
            graph marks it unfeedable.
    """
    context = getattr(tensor.op, "_control_flow_context", None)
    if context is not None:
        # A v1 loop's context is named `char/while/while_context`.
        loop = str(getattr(context, "name", None) or "a while loop").rstrip("/")
        loop = loop.rsplit("/", 1)[0] if loop.endswith("_context") else loop
        raise ArgumentError(
            f"The tensor {tensor.name} cannot be fed: it is inside the graph's control flow "
            f"({loop}), where a feed from outside cannot reach. Expected a "
            f"placeholder outside any loop; a dropout keep probability baked in as a constant "
            f"is set to 1 by legacy_dropout='off'. Received: {argument} naming {tensor.name!r}",
            option=argument)
    if not graph.is_feedable(tensor):
        raise ArgumentError(
            f"The tensor {tensor.name} cannot be fed (TensorFlow marks it unfeedable). Expected "
            f"a placeholder. Received: {argument} naming {tensor.name!r}", option=argument)
