"""Layout converter from a BERT-style TF1 attention scope to a Keras `MultiHeadAttention`.

google-research/bert names one attention block's variables under
`.../layer_N/attention`:

    self/query/kernel [H, A]    self/query/bias [A]      (A = heads * size_per_head)
    self/key/kernel   [H, A]    self/key/bias   [A]
    self/value/kernel [H, A]    self/value/bias [A]
    output/dense/kernel [A, H]  output/dense/bias [H]

Keras 3 `MultiHeadAttention` keeps the heads as their own axis:

    query/kernel [H, heads, A / heads]      query/bias [heads, A / heads]
    key/..., value/...                      (same)
    attention_output/kernel [heads, A / heads, H]   attention_output/bias [H]

BERT's `transpose_for_scores` reshapes the `[.., A]` projection to
`[.., heads, A / heads]` in C order, so every conversion is a C-order reshape;
no transpose is involved. The number of heads is not stored in the
checkpoint: it is read from the Keras weights' shapes, or from a `heads`
parameter, and both must agree when both are given.

The rule's scope is the `attention` scope, so one rule covers a whole layer
(and, with a regex group, every layer). `attention/output/LayerNorm/{beta,
gamma}` live under the same scope but are not claimed: plain rules map them.

    [[rule]]
    match = 'bert/encoder/layer_(\\d+)/attention'
    layout = 'bert_attention'
    target = 'layer_\\1_attention'
"""

import numpy as np

from migrate.mapping.layouts import LayoutConverter
from migrate.mapping.layouts import LayoutError
from migrate.mapping.layouts import register

BERT_ATTENTION = "bert_attention"
_QUERY_KEY_VALUE = ("query", "key", "value")

# (TF1 part, Keras part, kind); the kind says where the heads axis goes.
_PART_PAIRS = (
    ("self/query/kernel", "query/kernel", "projection_kernel"),
    ("self/query/bias", "query/bias", "projection_bias"),
    ("self/key/kernel", "key/kernel", "projection_kernel"),
    ("self/key/bias", "key/bias", "projection_bias"),
    ("self/value/kernel", "value/kernel", "projection_kernel"),
    ("self/value/bias", "value/bias", "projection_bias"),
    ("output/dense/kernel", "attention_output/kernel", "output_kernel"),
    ("output/dense/bias", "attention_output/bias", "output_bias"),
)
_SOURCE_TO_TARGET = {source: target for source, target, _ in _PART_PAIRS}
_KIND = {source: kind for source, _, kind in _PART_PAIRS}

# Keras weights whose shape holds the number of heads, and the axis holding it.
_HEADS_AXIS = {
    "query/kernel": 1, "key/kernel": 1, "value/kernel": 1,
    "query/bias": 0, "key/bias": 0, "value/bias": 0,
    "attention_output/kernel": 0,
}


def resolve_heads(target_shapes, parameters):
    """Returns the number of attention heads the Keras layer expects.

    Args:
        target_shapes: Keras weight shapes by part (`query/kernel`, ...); may be
            empty or partial.
        parameters: rule parameters; `heads` may be `None`.

    Returns:
        The number of heads, a positive integer.

    Raises:
        LayoutError: the target shapes disagree with each other or with the
            `heads` parameter, or neither gives a number of heads.

    Example:

    >>> resolve_heads({"query/kernel": (768, 12, 64)}, {"heads": None})
    12
    >>> resolve_heads({}, {"heads": 12})
    12
    """
    heads = parameters.get("heads")
    heads_origin = "the `heads` parameter"
    if heads is not None and (isinstance(heads, bool) or not isinstance(heads, int)
                              or heads < 1):
        raise LayoutError(
            f"Expected `heads` to be a positive integer. Received: heads={heads!r}")
    for part, axis in _HEADS_AXIS.items():
        shape = target_shapes.get(part)
        if shape is None:
            continue
        if len(shape) <= axis:
            raise LayoutError(
                f"Expected the Keras weight {part!r} of a MultiHeadAttention layer to have a "
                f"heads axis at position {axis}. Received: {part}.shape={tuple(shape)}")
        found = int(shape[axis])
        if heads is None:
            heads, heads_origin = found, f"target {part} shape {tuple(shape)}"
        elif found != heads:
            raise LayoutError(
                f"Inconsistent number of attention heads. Expected {heads} heads (from "
                f"{heads_origin}). Received: heads={found} from target {part} shape "
                f"{tuple(shape)}")
    if heads is None:
        raise LayoutError(
            "Expected the number of attention heads from the Keras weights' shapes or a "
            "`heads` parameter. Received: heads=None and no target shapes")
    return heads


def _target_shape(part, shape, heads):
    kind = _KIND[part]
    if kind == "output_bias":
        if len(shape) != 1:
            raise LayoutError(f"Expected {part!r} to be 1-D. Received: shape={tuple(shape)}")
        return tuple(shape)
    if kind == "projection_bias":
        if len(shape) != 1:
            raise LayoutError(f"Expected {part!r} to be 1-D. Received: shape={tuple(shape)}")
        width = shape[0]
    else:
        if len(shape) != 2:
            raise LayoutError(f"Expected {part!r} to be 2-D. Received: shape={tuple(shape)}")
        width = shape[1] if kind == "projection_kernel" else shape[0]
    if width % heads:
        raise LayoutError(
            f"Expected the attention width of {part!r} to divide into {heads} heads. "
            f"Received: shape={tuple(shape)}, heads={heads}")
    size_per_head = width // heads
    if kind == "projection_kernel":
        return (shape[0], heads, size_per_head)
    if kind == "projection_bias":
        return (heads, size_per_head)
    return (heads, size_per_head, shape[1])


def _output_shapes(source_shapes, target_shapes, parameters):
    heads = resolve_heads(target_shapes, parameters)
    shapes = {_SOURCE_TO_TARGET[part]: _target_shape(part, tuple(source_shapes[part]), heads)
              for part in _SOURCE_TO_TARGET}
    hidden = shapes["attention_output/kernel"][2]
    if shapes["attention_output/bias"] != (hidden,):
        raise LayoutError(
            f"Expected output/dense/bias to have shape ({hidden},) to match "
            f"output/dense/kernel. Received: output/dense/bias.shape="
            f"{shapes['attention_output/bias']}")
    for projection in _QUERY_KEY_VALUE:
        kernel, bias = shapes[f"{projection}/kernel"], shapes[f"{projection}/bias"]
        if bias != kernel[1:]:
            raise LayoutError(
                f"Expected self/{projection}/bias to match its kernel's heads {kernel[1:]}. "
                f"Received: self/{projection}/bias heads shape={bias}")
    if shapes["query/kernel"][1:] != shapes["key/kernel"][1:]:
        raise LayoutError(
            f"Expected the query and key projections to have the same heads and size per "
            f"head. Received: query shape={shapes['query/kernel']}, "
            f"key shape={shapes['key/kernel']}")
    if shapes["value/kernel"][1:] != shapes["attention_output/kernel"][:2]:
        raise LayoutError(
            f"Expected output/dense/kernel to take the value heads "
            f"{shapes['value/kernel'][1:]}. "
            f"Received: output/dense/kernel heads shape={shapes['attention_output/kernel'][:2]}")
    return shapes


def _convert(sources, target_shapes, parameters):
    shapes = _output_shapes({part: np.shape(array) for part, array in sources.items()},
                            target_shapes, parameters)
    return {_SOURCE_TO_TARGET[part]: np.reshape(np.asarray(sources[part]),
                                                shapes[_SOURCE_TO_TARGET[part]])
            for part in _SOURCE_TO_TARGET}


register(LayoutConverter(
    name=BERT_ATTENTION,
    source_parts=tuple(source for source, _, _ in _PART_PAIRS),
    target_parts=tuple(target for _, target, _ in _PART_PAIRS),
    output_shapes=_output_shapes,
    convert=_convert,
    parameters={"heads": None},
    reshaped_parts={target: source for source, target in _SOURCE_TO_TARGET.items()},
    description=("BERT attention scope (self/{query,key,value}, output/dense) -> "
                 "keras.layers.MultiHeadAttention; heads from the Keras shapes or `heads`."),
))
