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


def _check_max(value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ArgumentError(f"Expected input_max to be a positive integer (integer inputs are "
                            f"drawn from [0, input_max)). Received: input_max={value!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class VerifySettings:
    """How to run the legacy graph and the Keras model on the same batch, and how close is close.

    Attributes:
        output_tensor: the legacy graph's output compared, e.g. `logits:0`.
        input_tensors: the placeholders fed to the Keras model's inputs, in
            the order of those inputs (by name where the Keras inputs are
            named like the placeholders); empty: found in the graph.
        input_shapes: per input, its shape without the batch dimension (or
            None to use the placeholder's); one entry applies to all inputs.
        input_max: per input, integer values are drawn from `[0, input_max)`;
            one entry applies to all inputs.
        feeds: `{placeholder: number or bool}` for placeholders the Keras model
            does not take (`istate:0`, `keep_prob:0`), each filled with that
            constant at the placeholder's shape, the batch dimension set to
            `batch_size`.
        inputs_file: an `.npz` file of real arrays keyed by tensor name, for
            inputs and feeds alike; they win over generated values.
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
    """

    output_tensor: str
    input_tensors: tuple = ()
    input_shapes: tuple = ()
    input_max: tuple = ()
    feeds: tuple = ()
    inputs_file: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    seed: int = 0
    tolerance: float = DEFAULT_TOLERANCE
    layers: bool = False
    keep_failed: bool = False
    legacy_dropout: str = LEGACY_DROPOUT_OFF

    def __post_init__(self):
        if not isinstance(self.output_tensor, str) or not self.output_tensor:
            raise ArgumentError(f"Expected output_tensor to be a tensor name such as 'logits:0'. "
                                f"Received: output_tensor={self.output_tensor!r}")
        object.__setattr__(self, "output_tensor", _tensor_name(self.output_tensor))
        _check_names("input_tensors", self.input_tensors)
        object.__setattr__(self, "input_tensors",
                           tuple(_tensor_name(name) for name in self.input_tensors))
        object.__setattr__(self, "input_shapes",
                           _per_input("input_shapes", self.input_shapes, _check_shape))
        object.__setattr__(self, "input_max", _per_input("input_max", self.input_max, _check_max))
        feeds = dict(self.feeds)
        for name, value in feeds.items():
            _check_names("feeds", [name])
            _check_feed_value(name, value)
        object.__setattr__(self, "feeds", tuple(sorted(
            (_tensor_name(name), value) for name, value in feeds.items())))
        for name in ("input_shapes", "input_max"):
            count = len(getattr(self, name))
            if count > 1 and self.input_tensors and count != len(self.input_tensors):
                raise ArgumentError(
                    f"Expected {name} to have one entry per input tensor "
                    f"({len(self.input_tensors)}) or one for all. "
                    f"Received: {name}={getattr(self, name)!r}")
        if self.inputs_file is not None and (not isinstance(self.inputs_file, str)
                                             or not self.inputs_file):
            raise ArgumentError(f"Expected inputs_file to be the path of an .npz file. "
                                f"Received: inputs_file={self.inputs_file!r}")
        for name in ("batch_size", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (
                    1 if name == "batch_size" else 0):
                kind = "positive" if name == "batch_size" else "non-negative"
                raise ArgumentError(f"Expected {name} to be a {kind} integer. "
                                    f"Received: {name}={value!r}")
        if (isinstance(self.tolerance, bool) or not isinstance(self.tolerance, numbers.Real)
                or not 0 <= self.tolerance < math.inf):
            raise ArgumentError(f"Expected tolerance to be a non-negative number. "
                                f"Received: tolerance={self.tolerance!r}")
        if self.legacy_dropout not in LEGACY_DROPOUT_CHOICES:
            raise ArgumentError(f"Expected legacy_dropout to be one of "
                                f"{', '.join(LEGACY_DROPOUT_CHOICES)}. "
                                f"Received: legacy_dropout={self.legacy_dropout!r}",
                                option="legacy_dropout")
        for name in ("layers", "keep_failed"):
            if not isinstance(getattr(self, name), bool):
                raise ArgumentError(f"Expected {name} to be True or False. "
                                    f"Received: {name}={getattr(self, name)!r}")

    def shape_for(self, index):
        """Returns the input shape (without batch) given for input `index`, or None."""
        return _pick(self.input_shapes, index)

    def max_for(self, index):
        """Returns the `input_max` given for input `index`, or None."""
        return _pick(self.input_max, index)

    def to_json(self):
        document = dataclasses.asdict(self)
        document["input_tensors"] = list(self.input_tensors)
        document["input_shapes"] = [None if shape is None else list(shape)
                                    for shape in self.input_shapes]
        document["input_max"] = list(self.input_max)
        document["feeds"] = dict(self.feeds)
        return document

    @classmethod
    def from_json(cls, document):
        return cls(**document)


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
    try:
        return tuple(int(value) for value in text.split(";"))
    except ValueError:
        raise ArgumentError(f"Expected input_max such as '50' or '50;2' (one integer per "
                            f"input). Received: input_max={text!r}") from None


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
