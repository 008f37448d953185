"""What a parity check feeds and compares: validated, frozen settings that round-trip JSON."""

import dataclasses
import math
import numbers

from migrate.errors import ArgumentError

DEFAULT_TOLERANCE = 1e-5
DEFAULT_BATCH_SIZE = 2
# How the legacy graph's dropout runs (see migrate.verification.legacy_graph).
LEGACY_DROPOUT_OFF = "off"
LEGACY_DROPOUT_AS_SAVED = "as_saved"
LEGACY_DROPOUT_CHOICES = (LEGACY_DROPOUT_OFF, LEGACY_DROPOUT_AS_SAVED)


def _tensor_name(name):
    """Returns `name` with an output index (`inputs` -> `inputs:0`)."""
    return name if ":" in name else name + ":0"


def _check_names(field, names):
    if isinstance(names, str) or not all(isinstance(name, str) and name for name in names):
        raise ArgumentError(f"Expected {field} to be a list of tensor names such as "
                            f"['input_ids:0']. Received: {field}={names!r}")


def _check_feed_value(name, value):
    if isinstance(value, (bool, numbers.Real)) and not (
            isinstance(value, float) and not math.isfinite(value)):
        return
    raise ArgumentError(f"Expected the feed for {name} to be a finite number or True/False "
                        f"(arrays go in an inputs file). Received: feeds[{name!r}]={value!r}")


def _per_input(field, values, check):
    """Returns `values` as a tuple, one entry per input or one for all; None means none given."""
    if values is None:
        return ()
    if not isinstance(values, (list, tuple)):
        raise ArgumentError(f"Expected {field} to be a list with one entry per input (or one "
                            f"for all). Received: {field}={values!r}")
    for value in values:
        check(value)
    return tuple(tuple(value) if isinstance(value, list) else value for value in values)


def _check_shape(shape):
    if shape is not None and (not isinstance(shape, (list, tuple)) or not all(
            isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in shape)):
        raise ArgumentError(f"Expected an input shape of positive sizes without the batch "
                            f"dimension, such as (10, 1). Received: input_shape={shape!r}")


def _check_axis(value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ArgumentError(f"Expected batch_axes to hold non-negative axes (1 for a time-major "
                            f"[T, B] input), or None to read it from the graph. Received: "
                            f"batch_axis={value!r}", option="batch_axes")


def _check_max(value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ArgumentError(f"Expected input_max to be a positive integer (integer inputs are "
                            f"drawn from [0, input_max)). Received: input_max={value!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class VerifySettings:
    """How to run the legacy graph and the Keras model on the same batch, and how close is close.

    Attributes:
        output_tensor: the legacy graph's output compared, e.g. `logits:0`
            (with `output_pairs`, the first pair's unless given); None: the
            output of a SavedModel's signature (a checkpoint's `.meta` or a
            frozen graph has none, and verification then asks for it).
        input_tensors: the placeholders fed to the Keras model's inputs, in
            the order of those inputs (by name where the Keras inputs are
            named like the placeholders); empty: found in the graph (or
            those of `input_pairs`).
        input_pairs: `((Keras input, placeholder), ...)`: which placeholder's
            array each named Keras input takes (a dict input's key, or an
            input layer's name), e.g. `(("token_ids", "input_ids:0"),)`.
        output_pairs: `((Keras output, legacy tensor), ...)`: the outputs
            compared, all at once (each must pass); a Keras output is a
            dict output's key, an output layer's name or an index (`"0"`).
        keras_feeds: `{Keras input: number}` for Keras inputs no placeholder
            feeds (`padding_mask`), each filled with that constant at the
            shape of the arrays the paired inputs take.
        input_shapes: per input, its shape without the batch dimension (or
            None to use the placeholder's); one entry applies to all inputs.
        batch_axes: per input, the axis of its batch dimension (1 for a
            time-major `[T, B]` placeholder), or None to read it from the
            graph (an RNN that unstacks the input as it is: axis 1; else 0);
            one entry applies to all inputs. The Keras model takes the same
            arrays with the batch moved to axis 0.
        input_max: per input, integer values (and ids a float input holds)
            are drawn from `[0, input_max)`; one entry applies to all inputs
            (up to the rows of the table each input indexes). Without it, ids
            are drawn below the row count of the table the graph indexes.
        feeds: `{placeholder: number or bool}` for placeholders the Keras model
            does not take (`istate:0`, `keep_prob:0`), each filled with that
            constant at the placeholder's shape, the batch dimension set to
            `batch_size`.
        inputs_file: an `.npz` file of real arrays keyed by tensor name, for
            inputs and feeds alike; they win over generated values. A key
            naming a Keras input and no tensor of the graph is that Keras
            input's array (and its paired tensor's, with `input_pairs`).
        asset_dirs: directories holding the files (vocabularies) the
            graph's table initializers name by a path absent here, the
            training machine's; found by file name.
        batch_size: rows of the generated batch.
        seed: NumPy seed of the generated batch.
        tolerance: the largest accepted max relative difference.
        layers: also compare layer by layer (always done when parity fails).
        keep_failed: `convert` keeps an output whose verification failed.
        legacy_dropout: "off" (the default) runs the legacy graph in inference
            mode: when two runs as saved differ, wherever dropout's keep
            probability is a constant (a `DropoutWrapper(output_keep_prob=
            0.75)` inside an RNN loop, where no feed reaches) it is set to 1,
            and the report names each dropout rewritten; "as_saved" runs the
            graph as saved. Either way a graph that gives two different
            outputs on the same input is refused, its random ops named.

    Example:

    >>> settings = VerifySettings(output_tensor="logits", input_tensors=["ids", "types:0"])
    >>> settings.output_tensor, settings.input_tensors
    ('logits:0', ('ids:0', 'types:0'))
    >>> VerifySettings.from_json(settings.to_json()) == settings
    True

    Named pairs, several outputs and a Keras-only input:

    >>> settings = VerifySettings(
    ...     input_pairs=[("token_ids", "input_ids"), ("segment_ids", "segment_ids")],
    ...     output_pairs=[("sequence_output", "sequence_output"), ("pooled_output", "pooled")],
    ...     keras_feeds={"padding_mask": 1})
    >>> settings.input_tensors, settings.output_tensor, settings.keras_feeds
    (('input_ids:0', 'segment_ids:0'), 'sequence_output:0', (('padding_mask', 1),))
    >>> VerifySettings.from_json(settings.to_json()) == settings
    True
    """

    output_tensor: str | None = None
    input_tensors: tuple = ()
    input_pairs: tuple = ()
    output_pairs: tuple = ()
    keras_feeds: tuple = ()
    input_shapes: tuple = ()
    input_max: tuple = ()
    batch_axes: tuple = ()
    feeds: tuple = ()
    inputs_file: str | None = None
    asset_dirs: tuple = ()
    batch_size: int = DEFAULT_BATCH_SIZE
    seed: int = 0
    tolerance: float = DEFAULT_TOLERANCE
    layers: bool = False
    keep_failed: bool = False
    legacy_dropout: str = LEGACY_DROPOUT_OFF

    def __post_init__(self):
        # Each group of fields is checked and normalized on its own; `frozen`
        # leaves object.__setattr__ as the one way to store the normalized values.
        for normalized in (_outputs(self), _inputs(self), _run(self)):
            for name, value in normalized.items():
                object.__setattr__(self, name, value)

    def shape_for(self, index):
        """Returns the input shape (without batch) given for input `index`, or None."""
        return _pick(self.input_shapes, index)

    def max_for(self, index):
        """Returns the `input_max` given for input `index`, or None."""
        return _pick(self.input_max, index)

    def axis_for(self, index):
        """Returns the batch axis given for input `index`, or None (read from the graph)."""
        return _pick(self.batch_axes, index)

    def to_json(self):
        document = dataclasses.asdict(self)
        document["input_tensors"] = list(self.input_tensors)
        document["input_shapes"] = [None if shape is None else list(shape)
                                    for shape in self.input_shapes]
        document["input_max"] = list(self.input_max)
        document["batch_axes"] = list(self.batch_axes)
        document["feeds"] = dict(self.feeds)
        document["input_pairs"] = [list(pair) for pair in self.input_pairs]
        document["output_pairs"] = [list(pair) for pair in self.output_pairs]
        document["keras_feeds"] = dict(self.keras_feeds)
        # Left out when empty: the manifests of outputs verified before it existed stay current.
        document["asset_dirs"] = list(self.asset_dirs)
        if not self.asset_dirs:
            del document["asset_dirs"]
        return document

    def compared_outputs(self):
        """Returns `((Keras output or None, legacy tensor), ...)`: None is the model's one output.

        Example:

        >>> VerifySettings(output_tensor="logits").compared_outputs()
        ((None, 'logits:0'),)
        """
        return self.output_pairs or ((None, self.output_tensor),)

    @classmethod
    def from_json(cls, document):
        return cls(**document)


def _outputs(settings):
    """Checks what is compared; returns the normalized `output_tensor` and `output_pairs`."""
    output_pairs = _pairs("output_pairs", settings.output_pairs)
    output_tensor = settings.output_tensor
    if output_tensor is None and output_pairs:
        output_tensor = output_pairs[0][1]
    if output_tensor is not None:
        if not isinstance(output_tensor, str) or not output_tensor:
            raise ArgumentError(f"Expected output_tensor to be a tensor name such as "
                                f"'logits:0', or None (a SavedModel's signature). "
                                f"Received: output_tensor={output_tensor!r}")
        output_tensor = _tensor_name(output_tensor)
    if output_pairs and output_tensor not in dict(
            (legacy, keras) for keras, legacy in output_pairs):
        raise ArgumentError(f"Expected output_tensor to be one of output_pairs' legacy "
                            f"tensors. Received: output_tensor={output_tensor!r}, "
                            f"output_pairs={output_pairs!r}")
    return {"output_tensor": output_tensor, "output_pairs": output_pairs}


def _inputs(settings):
    """Checks what is fed (tensors, pairs, constants, shapes, ranges, a file); returns them
    normalized."""
    input_pairs = _pairs("input_pairs", settings.input_pairs)
    _check_names("input_tensors", settings.input_tensors)
    input_tensors = tuple(_tensor_name(name) for name in settings.input_tensors)
    if input_pairs:
        paired = tuple(legacy for _, legacy in input_pairs)
        if input_tensors and input_tensors != paired:
            raise ArgumentError(f"Expected input_tensors to be input_pairs' placeholders "
                                f"(or left out). Received: input_tensors="
                                f"{input_tensors!r}, input_pairs={input_pairs!r}")
        input_tensors = paired
    keras_feeds = dict(settings.keras_feeds)
    for name, value in keras_feeds.items():
        if not isinstance(name, str) or not name:
            raise ArgumentError(f"Expected keras_feeds keyed by Keras input names such as "
                                f"'padding_mask'. Received: keras_feeds={settings.keras_feeds!r}")
        _check_feed_value(name, value)
    paired_inputs = {keras for keras, _ in input_pairs}
    if paired_inputs & set(keras_feeds):
        raise ArgumentError(f"Expected each Keras input fed once, by a pair or a constant. "
                            f"Received: {sorted(paired_inputs & set(keras_feeds))} in both "
                            f"input_pairs and keras_feeds")
    normalized = {
        "input_pairs": input_pairs, "input_tensors": input_tensors,
        "keras_feeds": tuple(sorted(keras_feeds.items())),
        "input_shapes": _per_input("input_shapes", settings.input_shapes, _check_shape),
        "input_max": _per_input("input_max", settings.input_max, _check_max),
        "batch_axes": _per_input("batch_axes", settings.batch_axes, _check_axis)}
    feeds = dict(settings.feeds)
    for name, value in feeds.items():
        _check_names("feeds", [name])
        _check_feed_value(name, value)
    normalized["feeds"] = tuple(sorted(
        (_tensor_name(name), value) for name, value in feeds.items()))
    for name in ("input_shapes", "input_max", "batch_axes"):
        count = len(normalized[name])
        if count > 1 and input_tensors and count != len(input_tensors):
            raise ArgumentError(
                f"Expected {name} to have one entry per input tensor "
                f"({len(input_tensors)}) or one for all. "
                f"Received: {name}={normalized[name]!r}")
    if settings.inputs_file is not None and (not isinstance(settings.inputs_file, str)
                                             or not settings.inputs_file):
        raise ArgumentError(f"Expected inputs_file to be the path of an .npz file. "
                            f"Received: inputs_file={settings.inputs_file!r}")
    if isinstance(settings.asset_dirs, str) or not all(
            isinstance(directory, str) and directory for directory in settings.asset_dirs):
        raise ArgumentError(f"Expected asset_dirs to be a list of directories. "
                            f"Received: asset_dirs={settings.asset_dirs!r}", option="asset_dirs")
    normalized["asset_dirs"] = tuple(settings.asset_dirs)
    return normalized


def _run(settings):
    """Checks how the batch is made and judged (size, seed, tolerance, dropout, flags); these
    need no normalizing, so it returns nothing to store."""
    for name in ("batch_size", "seed"):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < (
                1 if name == "batch_size" else 0):
            kind = "positive" if name == "batch_size" else "non-negative"
            raise ArgumentError(f"Expected {name} to be a {kind} integer. "
                                f"Received: {name}={value!r}")
    if (isinstance(settings.tolerance, bool) or not isinstance(settings.tolerance, numbers.Real)
            or not 0 <= settings.tolerance < math.inf):
        raise ArgumentError(f"Expected tolerance to be a non-negative number. "
                            f"Received: tolerance={settings.tolerance!r}")
    if settings.legacy_dropout not in LEGACY_DROPOUT_CHOICES:
        raise ArgumentError(f"Expected legacy_dropout to be one of "
                            f"{', '.join(LEGACY_DROPOUT_CHOICES)}. "
                            f"Received: legacy_dropout={settings.legacy_dropout!r}",
                            option="legacy_dropout")
    for name in ("layers", "keep_failed"):
        if not isinstance(getattr(settings, name), bool):
            raise ArgumentError(f"Expected {name} to be True or False. "
                                f"Received: {name}={getattr(settings, name)!r}")
    return {}


def _pairs(field, pairs):
    """Returns `pairs` (a dict or `(Keras name, legacy tensor)` pairs) as a tuple of pairs."""
    items = list(pairs.items()) if isinstance(pairs, dict) else pairs
    if isinstance(items, str) or not all(
            isinstance(pair, (list, tuple)) and len(pair) == 2
            and all(isinstance(part, str) and part for part in pair) for pair in items):
        raise ArgumentError(f"Expected {field} to be (Keras name, legacy tensor) pairs such as "
                            f"[('token_ids', 'input_ids:0')]. Received: {field}={pairs!r}")
    keras_names = [keras for keras, _ in items]
    if len(set(keras_names)) != len(keras_names):
        raise ArgumentError(f"Expected each Keras name once in {field}. "
                            f"Received: {field}={pairs!r}")
    return tuple((keras, _tensor_name(legacy)) for keras, legacy in items)


def parse_pairs(text, field):
    """Parses `KERAS=TENSOR,...` into pairs, or returns None when `text` holds no `=`.

    Example:

    >>> parse_pairs("token_ids=input_ids:0,segment_ids=segment_ids", "input_tensor")
    (('token_ids', 'input_ids:0'), ('segment_ids', 'segment_ids'))
    >>> parse_pairs("input_ids:0,segment_ids:0", "input_tensor") is None
    True
    """
    items = [item.strip() for item in str(text).split(",") if item.strip()]
    if not any("=" in item for item in items):
        return None
    pairs = []
    for item in items:
        keras, separator, legacy = (part.strip() for part in item.partition("="))
        if not (separator and keras and legacy):
            raise ArgumentError(f"Expected every entry written KERAS_NAME=TENSOR when one is "
                                f"(e.g. 'token_ids=input_ids:0,segment_ids=segment_ids:0'). "
                                f"Received: {field}={text!r}")
        pairs.append((keras, legacy))
    return tuple(pairs)


def _pick(values, index):
    if not values:
        return None
    return values[0] if len(values) == 1 else values[index]


def parse_input_shapes(text):
    """Parses per-input shapes written `10,1;10,1` (one shape for all when there is no `;`).

    Example:

    >>> parse_input_shapes("10,1;8")
    ((10, 1), (8,))
    """
    try:
        return tuple(tuple(int(size) for size in shape.split(",") if size.strip())
                     for shape in text.split(";"))
    except ValueError:
        raise ArgumentError(f"Expected input shapes such as '10,1;10,1' (sizes separated by "
                            f"commas, inputs by semicolons). Received: input_shapes={text!r}"
                            ) from None


def parse_input_max(text):
    """Parses per-input bounds written `50;2` (one bound for all when there is no `;`).

    Example:

    >>> parse_input_max("50;2")
    (50, 2)
    """
    return _parse_integers(text, "input_max", "'50' or '50;2' (one integer per input)")


def parse_batch_axes(text):
    """Parses per-input batch axes written `1` or `0;1` (one axis for all when there is no `;`).

    Example:

    >>> parse_batch_axes("0;1")
    (0, 1)
    """
    return _parse_integers(text, "batch_axis", "'1' or '0;1' (one axis per input)",
                           option="batch_axes")


def _parse_integers(text, field, example, option=None):
    try:
        return tuple(int(value) for value in text.split(";"))
    except ValueError:
        raise ArgumentError(f"Expected {field} such as {example}. Received: {field}={text!r}",
                            option=option) from None


def parse_feed(text):
    """Parses `NAME=VALUE` into `(name, value)`: `true`/`false`, an integer or a float.

    Example:

    >>> parse_feed("istate:0=0"), parse_feed("keep_prob=1.0"), parse_feed("is_training:0=false")
    (('istate:0', 0), ('keep_prob', 1.0), ('is_training:0', False))
    """
    name, separator, value = text.partition("=")
    value = value.strip()
    if separator and name:
        if value.lower() in ("true", "false"):
            return name, value.lower() == "true"
        for kind in (int, float):
            try:
                return name, kind(value)
            except ValueError:
                continue
    raise ArgumentError(f"Expected a feed written NAME=VALUE with a number, true or false, such "
                        f"as 'keep_prob:0=1.0'. Received: feed={text!r}")
