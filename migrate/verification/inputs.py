"""What the legacy graph is fed: its placeholders, a seeded batch, constants and arrays by name."""

import dataclasses

import numpy as np

from migrate import files
from migrate.errors import ArgumentError
from migrate.errors import did_you_mean
from migrate.errors import first_line
from migrate.errors import reason
from migrate.source import graph_outputs
from migrate.verification import input_graph
from migrate.verification import feature_values

_PLACEHOLDER_OPS = frozenset({"Placeholder"})
# Ops whose tensors are no computed value a verification would name.
_NOT_COMPUTED = frozenset({"VarHandleOp", "VariableV2", "Variable", "ReadVariableOp", "Const",
                           "AssignVariableOp", "Assign", "VarIsInitializedOp", "NoOp"})
_FEED_HOW = ("feed {which} with feeds={{{entries}}} (a constant at its shape, the batch "
             "dimension set to the batch size) or give its array in the inputs file")


@dataclasses.dataclass
class LegacyFeed:
    """What one run of the legacy graph is fed.

    Attributes:
        input_names: the placeholders also given to the Keras model, in the
            order of the Keras model's inputs.
        arrays: `{tensor name: array}` for every fed placeholder.
        batch_axes: `{placeholder: axis}` of the inputs whose batch is not on
            axis 0 (time-major); the Keras model takes their arrays with the
            batch moved to axis 0.
        batch_axis_from: `{placeholder: why}` for those axes (the loop that
            unstacks the input, or `batch_axes` when given).
        drawn: `{placeholder: how}` of generated ids (their bound and where it
            came from), for the report.
    """

    input_names: list
    arrays: dict
    keras_names: list = dataclasses.field(default_factory=list)
    keras_arrays: dict = dataclasses.field(default_factory=dict)
    keras_order: list = dataclasses.field(default_factory=list)
    batch_axes: dict = dataclasses.field(default_factory=dict)
    batch_axis_from: dict = dataclasses.field(default_factory=dict)
    drawn: dict = dataclasses.field(default_factory=dict)

    def keras_array(self, name):
        """The array of placeholder `name` as the Keras model takes it: batch on axis 0."""
        if name in self.batch_axes:
            return np.moveaxis(self.arrays[name], self.batch_axes[name], 0)
        return self.arrays[name]

    def rows(self, name):
        """The batch of the array fed to `name` (its size on the batch axis), or None."""
        shape = np.shape(self.arrays[name])
        axis = self.batch_axes.get(name, 0)
        return int(shape[axis]) if len(shape) > axis else None

    def keras_inputs(self, *, by_name=False):
        """Returns the Keras model's inputs: one array, a list in input order, or a dict.

        Args:
            by_name: return `{Keras input: array}` (for a model whose inputs
                are a dict); needs `keras_names`.
        """
        values = [self.keras_array(name) for name in self.input_names]
        if by_name or self.keras_order:
            named = {**dict(zip(self.keras_names, values)), **self.keras_arrays}
            if by_name:
                return named
            values = [named[name] for name in self.keras_order]
        return values[0] if len(values) == 1 else values

    def describe(self):
        """Returns `{name: {"shape", "dtype", "keras_input"}}` for the report.

        With Keras inputs named (pairs, constants or arrays by Keras name),
        `keras_name` says which Keras input a placeholder's array also goes
        to, and the arrays only the Keras model takes are listed under their
        Keras names, with `keras_only`.
        """
        keras_of = dict(zip(self.input_names, self.keras_names)) if self.keras_order else {}
        described = {}
        for name, array in self.arrays.items():
            described[name] = {"shape": list(array.shape), "dtype": str(array.dtype),
                               "keras_input": name in self.input_names}
            if name in keras_of:
                described[name]["keras_name"] = keras_of[name]
            if name in self.batch_axes:
                described[name]["batch_axis"] = self.batch_axes[name]
                described[name]["batch_axis_from"] = self.batch_axis_from.get(name, "")
            if name in self.drawn:
                described[name]["values"] = self.drawn[name]
        for name, array in self.keras_arrays.items():
            described[name] = {"shape": list(array.shape), "dtype": str(array.dtype),
                               "keras_input": True, "keras_name": name, "keras_only": True}
        return described


def describe_placeholder(tensor):
    """Returns `name dtype [shape]` with `?` for unknown sizes (`<unknown rank>` without a rank)."""
    if tensor.shape.rank is None:
        shape = "<unknown rank>"
    else:
        shape = "[" + ", ".join("?" if size is None else str(size)
                                for size in tensor.shape.as_list()) + "]"
    return f"{tensor.name} {tensor.dtype.name} {shape}"


def dependent_placeholders(graph, output):
    """Returns the `Placeholder` tensors that `output` depends on, in graph order.

    `placeholder_with_default` ops are not among them: they run without a feed.

    Example:

        placeholders = dependent_placeholders(graph, graph.get_tensor_by_name("logits:0"))
    """
    seen, stack, found = set(), [output.op], set()
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        if op.type in _PLACEHOLDER_OPS:
            found.add(op.name)
        stack.extend(tensor.op for tensor in op.inputs)
        stack.extend(op.control_inputs)
    return [op.outputs[0] for op in graph.get_operations() if op.name in found]


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


def build_feed(graph, output, settings, keras_input_names, *, arrays=None, assets=None):
    """Decides what the legacy graph is fed and makes the arrays.

    Args:
        graph: the imported legacy `tf.Graph`.
        output: the output tensor compared, or a list of them.
        settings: a `VerifySettings`.
        keras_input_names: `keras_input_names(model)`: the Keras inputs' names
            and dtypes, in order (to count them, to order placeholders named
            like them, and to check found placeholders' dtypes).
        arrays: `{tensor name: array}` given directly, in place of the
            settings' inputs file.
        assets: a SavedModel's `{asset tensor name: path}`, where generated
            string inputs find vocabulary files (see `graph_values`).

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
    arrays_from_file = arrays_from_file or load_inputs_file(settings.inputs_file)
    all_keras_inputs = list(keras_input_names)
    keras_only = _keras_only_arrays(graph, arrays_from_file, all_keras_inputs, settings)
    keras_input_names = [(name, dtype) for name, dtype in all_keras_inputs
                         if name not in keras_only and name not in dict(settings.keras_feeds)]
    needed = _dependent_on_all(graph, outputs)
    feeds = dict(settings.feeds)
    keras_names = [name for name, _ in keras_input_names]
    if settings.input_pairs:
        _check_keras_names(settings.input_pairs, all_keras_inputs, "input_pairs")
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
            listed = "; ".join(describe_placeholder(tensor) for tensor in needed) or "none"
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
        from_graph = graph_values(graph, tensor, settings, index, seed, assets)
        if from_graph is not None:
            arrays[name] = from_graph
            continue
        input_max, ids, drawn[name] = _id_bound(tensor, facts[name], settings, index,
                                                len(input_names))
        arrays[name] = make_inputs(shape, tensor.dtype.as_numpy_dtype, batch_size=batch_size,
                                   input_shape=settings.shape_for(index), input_max=input_max,
                                   seed=seed, name=name, batch_axis=facts[name].batch_axis,
                                   ids=ids)
    shapes = [np.shape(arrays[name]) for name in input_names]
    # Constant feeds take the batch the inputs have (an inputs file's rows too).
    batch_size = next((shape[facts[name].batch_axis] for name, shape in zip(input_names, shapes)
                       if len(shape) > facts[name].batch_axis), batch_size)
    for name, value in feeds.items():
        tensor = tensor_by_name(graph, name, "feeds")
        check_feedable(graph, tensor, "feeds")
        arrays.setdefault(name, constant_feed(tensor, value, batch_size, shapes))
    for name, array in arrays_from_file.items():
        if name not in arrays:
            check_feedable(graph, tensor_by_name(graph, name, "inputs_file"), "inputs_file")
            arrays[name] = array
    unfed = [tensor for tensor in needed if tensor.name not in arrays]
    if unfed:
        listed = "; ".join(describe_placeholder(tensor) for tensor in unfed)
        which = "it" if len(unfed) == 1 else "each"
        entries = ", ".join(f"{tensor.name!r}: value" for tensor in unfed)
        raise ArgumentError(
            f"The output {output_text} needs placeholder{'s' if len(unfed) > 1 else ''} "
            f"{listed}, which {'is' if len(unfed) == 1 else 'are'} not fed; "
            f"{_FEED_HOW.format(which=which, entries=entries)}. Received: "
            f"input_tensors={input_names}, feeds={sorted(feeds)}", option="feeds")
    for name, array in arrays.items():
        _check_fits(graph.get_tensor_by_name(name), array,
                    "inputs_file" if name in arrays_from_file else "input_shape")
    feed = LegacyFeed(input_names=input_names, arrays=arrays,
                      keras_names=keras_names[:len(input_names)],
                      batch_axes={name: facts[name].batch_axis for name in input_names
                                  if facts[name].batch_axis},
                      batch_axis_from={name: facts[name].batch_axis_from for name in input_names
                                       if facts[name].batch_axis},
                      drawn={name: text for name, text in drawn.items() if text})
    if keras_only or settings.keras_feeds or settings.input_pairs:
        feed.keras_arrays = _keras_arrays(feed, keras_only, settings, all_keras_inputs)
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
        raise ArgumentError(f"Placeholder {describe_placeholder(tensor)} has no axis {axis}. "
                            f"Expected its batch axis among its {tensor.shape.rank} axes. "
                            f"Received: batch_axes naming {axis}", option="batch_axes")
    return dataclasses.replace(facts, batch_axis=axis, batch_axis_from="batch_axes")


def _batch_size(tensors, facts, batch_size):
    """The batch of generated arrays: a placeholder's fixed batch (1) where one has it."""
    for tensor in tensors:
        if tensor.shape.rank is not None and facts[tensor.name].batch_axis < tensor.shape.rank:
            fixed = tensor.shape.as_list()[facts[tensor.name].batch_axis]
            if fixed is not None:
                return fixed
    return batch_size


def _id_bound(tensor, facts, settings, index, count):
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


def _dependent_on_all(graph, outputs):
    """The placeholders any of `outputs` depends on, in graph order."""
    found = {tensor.name for output in outputs
             for tensor in dependent_placeholders(graph, output)}
    return [op.outputs[0] for op in graph.get_operations()
            if op.outputs and op.outputs[0].name in found]


def _keras_only_arrays(graph, arrays_from_file, keras_inputs, settings):
    """Takes out of `arrays_from_file` the arrays keyed by a Keras input and no graph tensor."""
    keras_names = {name for name, _ in keras_inputs}
    found = {}
    for key in list(arrays_from_file):
        name = key[:-2] if key.endswith(":0") else key
        if name in keras_names and not _has_tensor(graph, key):
            found[name] = arrays_from_file.pop(key)
    _check_keras_names(settings.keras_feeds, keras_inputs, "keras_feeds")
    return found


def _has_tensor(graph, name):
    try:
        graph.get_tensor_by_name(name)
    except (KeyError, ValueError):
        return False
    return True


def _check_keras_names(pairs, keras_inputs, option):
    """Refuses Keras input names the model does not have, listing those it has."""
    known = [name for name, _ in keras_inputs]
    unknown = [keras for keras, _ in pairs if keras not in known]
    if unknown:
        raise ArgumentError(f"The Keras model has no input {', '.join(map(repr, unknown))}. "
                            f"Expected one of its inputs: {', '.join(known)}. Received: "
                            f"{option}={dict(pairs)!r}", option=option)


def _keras_arrays(feed, keras_only, settings, keras_inputs):
    """Returns the arrays of the Keras inputs no placeholder feeds: given, or constants.

    A constant takes the shape of the arrays the paired inputs take.

    Raises:
        ArgumentError: a Keras input is fed by nothing, or a constant has no
            paired input to take its shape from.
    """
    arrays = dict(keras_only)
    shaped = [feed.keras_array(name) for name in feed.input_names] + list(keras_only.values())
    dtypes = dict(keras_inputs)
    for name, value in settings.keras_feeds:
        if not shaped:
            raise ArgumentError(f"A constant Keras input takes the shape of the paired inputs' "
                                f"arrays, and no input is paired. Expected input_pairs or an "
                                f"array for another Keras input in the inputs file. Received: "
                                f"keras_feeds={dict(settings.keras_feeds)!r}",
                                option="keras_feeds")
        arrays[name] = np.full(shaped[0].shape, value, dtypes.get(name) or "float32")
    fed = set(feed.keras_names) | set(arrays)
    unfed = [name for name, _ in keras_inputs if name not in fed]
    if unfed:
        raise ArgumentError(
            f"The Keras model's input{'s' if len(unfed) > 1 else ''} {', '.join(unfed)} "
            f"{'are' if len(unfed) > 1 else 'is'} fed by nothing. Expected each of its inputs "
            f"({', '.join(name for name, _ in keras_inputs)}) paired with a placeholder, given "
            f"a constant in keras_feeds, or its array in the inputs file. Received: "
            f"input_pairs={dict(settings.input_pairs)!r}, "
            f"keras_feeds={dict(settings.keras_feeds)!r}", option="keras_feeds")
    return arrays


def _check_fits(tensor, array, option):
    """Refuses an array whose shape the tensor cannot take, before TensorFlow says it raw.

    Example:

        _check_fits(graph.get_tensor_by_name("x:0"), np.zeros([603]), "inputs_file")
    """
    if tensor.shape.is_compatible_with(array.shape):
        return
    raise ArgumentError(
        f"The array fed to {tensor.name} does not fit its shape. Expected shape "
        f"{_text(tensor.shape.as_list() if tensor.shape.rank is not None else None)} "
        f"({tensor.dtype.name}). Received: shape={list(array.shape)} from {option}",
        option=option)


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
    listed = "; ".join(describe_placeholder(tensor) for tensor in needed)
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


def takes_dict(model):
    """Whether a Keras model's inputs are a dict (keras-hub's backbones)."""
    try:
        return isinstance(model.input, dict)
    except (AttributeError, ValueError):  # Not built, or not functional.
        return False


def keras_input_names(model):
    """Returns `[(name, dtype name or None)]` of a Keras model's inputs (one unnamed input
    when the model does not say); a dict's keys name the inputs of a dict model."""
    if takes_dict(model):
        return [(key, str(getattr(tensor.dtype, "name", tensor.dtype)))
                for key, tensor in model.input.items()]
    inputs = getattr(model, "inputs", None)
    if not inputs:
        return [("input", None)]
    return [(str(getattr(tensor, "name", "input")).split(":")[0],
             str(getattr(tensor.dtype, "name", tensor.dtype)) if hasattr(tensor, "dtype") else None)
            for tensor in inputs]


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


def _text(shape):
    if shape is None:
        return "<unknown rank>"
    return "[" + ", ".join("?" if size is None else str(size) for size in shape) + "]"


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
