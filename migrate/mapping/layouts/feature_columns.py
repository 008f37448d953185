"""Layout converters for feature columns: the rows of a vocabulary's embedding in Keras order.

A feature column's vocabulary gives its values ids `0 .. V-1` and its K
out-of-vocabulary buckets `V .. V+K-1`; Keras' `StringLookup` and
`IntegerLookup` (`num_oov_indices=K`, no mask token) give the buckets
`0 .. K-1` and the vocabulary `K .. K+V-1`. Both hash an out-of-vocabulary
value alike (FarmHash Fingerprint64 modulo K), so the rows are the same,
rolled by K: `vocabulary_oov_roll` moves the last K rows first. K is read
from the graph (the hash op feeding the lookup's ids) when the table leaves
it unset.

    [[rule]]
    match = 'dnn/input_from_feature_columns/input_layer/color_embedding'
    layout = 'vocabulary_oov_roll'
    target = 'color_embedding'
    oov_buckets = 2

`source_part` and `target_part` name the variable and the Keras weight
(defaults `embedding_weights` and `embeddings`); a linear model's
`weights` go into a Dense `kernel` the same way.
"""

import numpy as np

from migrate.mapping.layouts import LayoutConverter
from migrate.mapping.layouts import LayoutError
from migrate.mapping.layouts import register
from migrate.source import vocabulary

VOCABULARY_OOV_ROLL = "vocabulary_oov_roll"
SOURCE_PART = "embedding_weights"
TARGET_PART = "embeddings"


def roll_oov_first(rows, oov_buckets):
    """Returns the rows with the last `oov_buckets` moved first (feature column -> Keras order).

    Example:

    >>> roll_oov_first(np.arange(5), 2).tolist()
    [3, 4, 0, 1, 2]
    """
    return np.roll(np.asarray(rows), oov_buckets, axis=0)


def _parts(parameters):
    names = []
    for key in ("source_part", "target_part"):
        name = parameters.get(key)
        if not isinstance(name, str) or not name:
            raise LayoutError(f"Expected `{key}` to be a part name. Received: {key}={name!r}")
        names.append(name)
    return names


def _oov_buckets(parameters, rows):
    buckets = parameters.get("oov_buckets")
    if buckets is None:
        raise LayoutError(
            f"Layout {VOCABULARY_OOV_ROLL!r} needs the number of out-of-vocabulary buckets, and "
            f"no graph shows it. Expected oov_buckets in the rule (the feature column's "
            f"num_oov_buckets). Received: oov_buckets=None")
    if isinstance(buckets, bool) or not isinstance(buckets, int) or not 0 <= buckets <= rows:
        raise LayoutError(
            f"Expected oov_buckets to be an integer in [0, {rows}] (the rows of the "
            f"vocabulary's weights). Received: oov_buckets={buckets!r}")
    return buckets


def _output_shapes(source_shapes, target_shapes, parameters):
    source_part, target_part = _parts(parameters)
    shape = tuple(source_shapes[source_part])
    if not shape:
        raise LayoutError(f"Expected {source_part!r} to have one row per id. Received: shape=()")
    _oov_buckets(parameters, shape[0])
    expected = target_shapes.get(target_part)
    if expected is not None and tuple(expected) != shape:
        raise LayoutError(
            f"Layout {VOCABULARY_OOV_ROLL!r} keeps the shape of {source_part!r} {shape}; the "
            f"Keras weight {target_part!r} has {tuple(expected)}. Expected a lookup layer "
            f"without a mask token and as many out-of-vocabulary indices as the column has "
            f"buckets. Received: shape={tuple(expected)}")
    return {target_part: shape}


def _convert(sources, target_shapes, parameters):
    source_part, target_part = _parts(parameters)
    rows = np.asarray(sources[source_part])
    _output_shapes({source_part: rows.shape}, target_shapes, parameters)
    return {target_part: roll_oov_first(rows, _oov_buckets(parameters, rows.shape[0]))}


def _graph_parameters(graph, scope):
    found = vocabulary.oov_buckets(graph.as_graph_def())
    under = {key: buckets for key, buckets in found.items() if key.startswith(scope + "/")}
    if len(set(under.values())) != 1:
        raise LayoutError(
            f"The checkpoint's graph shows no vocabulary lookup feeding a variable under {scope} "
            f"(a table lookup whose ids gather its rows), so its out-of-vocabulary buckets "
            f"cannot be read. Expected the feature column's lookup in the graph, or "
            f"oov_buckets in the rule. Received: {len(under)} looked-up variable(s) under it")
    return {"oov_buckets": next(iter(under.values()))}


register(LayoutConverter(
    name=VOCABULARY_OOV_ROLL,
    source_parts=(),
    target_parts=(),
    source_parts_for=lambda parameters: (_parts(parameters)[0],),
    target_parts_for=lambda parameters: (_parts(parameters)[1],),
    output_shapes=_output_shapes,
    convert=_convert,
    parameters={"oov_buckets": None, "source_part": SOURCE_PART, "target_part": TARGET_PART},
    description=("A feature column vocabulary's rows (out-of-vocabulary buckets last) in "
                 "StringLookup / IntegerLookup order (buckets first): the last `oov_buckets` "
                 "rows moved first."),
    graph_parameters=_graph_parameters,
))
