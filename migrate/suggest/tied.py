"""Tied weights: a free target that a used source fills as well, transposed."""

from migrate.suggest.align import Match
from migrate.suggest.report import shape_text


TIED_BY_GRAPH = "tied weights: the graph reads this variable transposed"
TIED_BY_VALUE = "tied weights: the only used source of the transposed shape"


def tied_candidates(matches, unmatched_targets, structure):
    """Finds free targets a used source fills as well, transposed (tied weights).

    A TF1 model that reuses a matrix transposed (an autoencoder's decoder,
    an embedding as the output projection `matmul(h, embedding,
    transpose_b=True)`) has one variable where the Keras model has two
    weights. A free 2-D target with the transposed shape of a used source is
    a candidate: certain when the graph reads that source transposed, else
    for a value comparison to confirm. A square matrix's transposed shape is
    its own, so there the shapes say nothing about the orientation: the
    graph's transposed read, or the value comparison, decides.

    Args:
        matches: the `Match`es made.
        unmatched_targets: the free `TargetItem`s.
        structure: a `tf1_structure.GraphStructure`, or None.

    Returns:
        `(confirmed, unconfirmed)`: lists of tied `Match`es (transform
        `transpose(1, 0)`), confirmed by the graph or not.
    """
    used = {}
    for match in matches:
        if match.source.layout is None and match.source.shape is not None:
            used.setdefault(match.source.name, match.source)
    confirmed, unconfirmed = [], []
    for target in unmatched_targets:
        if target.shape is None or len(target.shape) != 2:
            continue
        flipped = tuple(reversed(target.shape))
        fitting = [source for source in used.values()
                   if tuple(source.shape) == flipped and source.dtype == target.dtype]
        read_transposed = [source for source in fitting if structure is not None
                           and source.name in structure.transposed_reads]
        if len(read_transposed) == 1:
            (source,) = read_transposed
            confirmed.append(Match(source, target, _transposed(source), [
                f"shape {shape_text(source.shape)} transposed -> {shape_text(target.shape)}",
                TIED_BY_GRAPH]))
        elif len(fitting) == 1 and not read_transposed:
            (source,) = fitting
            unconfirmed.append(Match(source, target, _transposed(source), [
                f"shape {shape_text(source.shape)} transposed -> {shape_text(target.shape)}",
                TIED_BY_VALUE]))
    return confirmed, unconfirmed


def _transposed(source):
    """The transforms that make a 2-D source's transposed twin.

    Only the transpose: the source's own transforms put a partitioned
    embedding's rows in id order for its lookup, while a `matmul` or
    `transpose` reads the parts concatenated, in the order they were saved.
    """
    del source  # The same for every source; kept for the call sites' symmetry.
    return ("transpose(1, 0)",)
