"""Layout converters: turn a TF1 layer's variables into a Keras layer's weights.

A table rule with `layout = "<name>"` matches a TF1 *scope* (for example
`rnn/multi_rnn_cell/cell_0/lstm_cell`) instead of one variable; the converter
knows which variables live under that scope and which Keras weights they
become. Converters are pure functions on NumPy arrays, registered by name.

    [[rule]]
    match = 'lm/rnn/multi_rnn_cell/cell_(\\d)/lstm_cell'
    layout = 'lstm'
    target = 'lstm_\\1/lstm_cell'
    forget_bias = 1.0
"""

import dataclasses
from typing import Any, Callable, Mapping

import numpy as np

from migrate.errors import ArgumentError
from migrate.errors import MigrateError
from migrate.errors import did_you_mean

Shape = tuple[int, ...]


class LayoutError(MigrateError):
    """A layout converter cannot convert the variables it was given, at plan or convert time."""


@dataclasses.dataclass(frozen=True)
class LayoutConverter:
    """A named conversion from a TF1 scope's variables to a Keras scope's weights.

    Attributes:
        name: the value of `layout = ...` in a table rule.
        source_parts: variable names under the TF1 scope that must all exist.
        target_parts: weight names under the Keras scope that are produced.
        unsupported_parts: TF1 variable names under the scope that have no Keras
            equivalent, each with the reason; their presence is an error.
        parameters: table keys the converter accepts, with default values
            (`None` means "required unless it can be read from the graph").
        output_shapes: `(source_shapes, target_shapes, parameters) -> shapes`
            for each target part, computed from shapes alone (no tensor data);
            raises `LayoutError` when the source shapes do not fit.
            `target_shapes` holds the Keras weights' shapes, so a converter can
            read, for example, the number of attention heads from them.
        convert: `(sources, target_shapes, parameters) -> arrays` for each
            target part; `sources` maps each source part to its array.
        description: one line on what the converter does, for errors and listings.
        source_parts_for: optional `parameters -> source parts`, for converters
            whose parts come from the table (e.g. which tensors to concatenate);
            when set it replaces `source_parts`.
        target_parts_for: the same for `target_parts`.
        graph_parameters: optional `(graph, scope) -> parameters` that reads
            parameters from the legacy `tf.Graph` (imported from the `.meta`),
            such as the forget_bias constant an LSTM cell adds at run time.
            Parameters the table leaves unset are taken from it; a table value
            that contradicts the graph is an error.
        reshaped_parts: `{target part: source part}` when every target part
            is one source part reshaped in C order, so that its stored bytes
            are the target's and a conversion may copy them as they are;
            empty for converters that move elements.
    """

    name: str
    source_parts: tuple[str, ...]
    target_parts: tuple[str, ...]
    output_shapes: Callable[[Mapping[str, Shape], Mapping[str, Shape], Mapping[str, Any]],
                            Mapping[str, Shape]]
    convert: Callable[[Mapping[str, np.ndarray], Mapping[str, Shape], Mapping[str, Any]],
                      Mapping[str, np.ndarray]]
    unsupported_parts: Mapping[str, str] = dataclasses.field(default_factory=dict)
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    description: str = ""
    source_parts_for: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = None
    target_parts_for: Callable[[Mapping[str, Any]], tuple[str, ...]] | None = None
    graph_parameters: Callable[[Any, str], Mapping[str, Any]] | None = None
    reshaped_parts: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def sources(self, parameters):
        """Returns the source parts this converter reads, given the rule's parameters."""
        if self.source_parts_for is not None:
            return tuple(self.source_parts_for(parameters))
        return self.source_parts

    def targets(self, parameters):
        """Returns the target parts this converter fills, given the rule's parameters."""
        if self.target_parts_for is not None:
            return tuple(self.target_parts_for(parameters))
        return self.target_parts


_CONVERTERS: dict[str, LayoutConverter] = {}


def register(converter):
    """Adds `converter` to the registry; names are unique.

    Args:
        converter: a `LayoutConverter`.

    Returns:
        `converter`, so that `register` can wrap a definition.

    Raises:
        ArgumentError: a converter of that name is registered already.
    """
    if converter.name in _CONVERTERS:
        raise ArgumentError(
            f"Layout converter names must be unique; this one is registered already. "
            f"Received: name={converter.name!r}")
    _CONVERTERS[converter.name] = converter
    return converter


def get(name):
    """Returns the converter registered as `name`.

    Args:
        name: the value of `layout = ...` in a table rule.

    Returns:
        The `LayoutConverter`.

    Raises:
        LayoutError: no converter has that name; the message names the
            closest and lists the known ones.

    Example:

    >>> get("lstm").target_parts
    ('kernel', 'recurrent_kernel', 'bias')
    >>> get("lstm_cell")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    migrate.mapping.layouts.LayoutError: Unknown layout converter. Did you mean 'lstm'? ...
    """
    _load_builtin_converters()
    if name not in _CONVERTERS:
        raise LayoutError(
            f"Unknown layout converter.{did_you_mean(name, _CONVERTERS)} Expected one of "
            f"{', '.join(sorted(_CONVERTERS))}. Received: layout={name!r}")
    return _CONVERTERS[name]


def names():
    """Returns the names of all registered converters, sorted.

    Example:

    >>> names()  # doctest: +NORMALIZE_WHITESPACE
    ['bert_attention', 'concat', 'cudnn_compatible_lstm', 'gru', 'gru_legacy_names',
     'lstm', 'lstm_legacy_names', 'lstm_linear_names', 'simple_rnn',
     'simple_rnn_legacy_names', 'simple_rnn_linear_names', 'split', 'vocabulary_oov_roll']
    """
    _load_builtin_converters()
    return sorted(_CONVERTERS)


def _load_builtin_converters():
    # Imported lazily so that `migrate.mapping.layouts` stays importable on its own;
    # each module registers its converters when imported.
    import importlib
    for module in ("recurrent", "attention", "fused", "feature_columns"):
        try:
            importlib.import_module(f"migrate.mapping.layouts.{module}")
        except ModuleNotFoundError as error:
            if error.name != f"migrate.mapping.layouts.{module}":
                raise
