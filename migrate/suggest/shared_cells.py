"""Cells run by several loops: one TF1 cell that fills several Keras recurrent layers.

`tf.nn.bidirectional_dynamic_rnn(cell, cell, ...)` given the same cell for
both directions creates its variables once, under `fw/`; the backward loop
reads them too. Keras' `Bidirectional` keeps a forward and a backward layer
with weights of their own, so the one cell fills both: its layout rule gets
`also = [{target = '<backward scope>'}]`. The graph shows it: the cell's
variables are read by two while loops.
"""

from migrate.suggest import align as align_lib
from migrate.suggest import items as items_lib

SHARED_BY_GRAPH = "shared cell: the graph runs it in {count} loops ({loops})"
_DIRECTIONS = ("forward", "backward")


def shared_cell_candidates(matches, unmatched_targets, structure):
    """Finds free recurrent targets a matched cell fills too, because the graph runs it twice.

    A cell whose variables `structure.loops` shows read by N loops fills its
    matched target and N - 1 free targets its layout fits: first the matched
    target's other direction (`forward_...` <-> `backward_...`), then, when
    that leaves no choice, the one free target it fits that no other such cell
    fits. Anything less certain is left to the draft's unfilled list.

    Args:
        matches: the `align.Match`es made.
        unmatched_targets: the free `TargetItem`s.
        structure: a `tf1_structure.GraphStructure`, or None (nothing found).

    Returns:
        A list of `align.Match`es onto free targets (a layout rule's `also`).
    """
    if structure is None:
        return []
    shared = []
    for match in matches:
        if match.source.layout not in items_lib.RNN_LAYOUTS:
            continue
        loops = set().union(*(structure.loops.get(variable.name, ())
                              for variable in match.source.variables))
        if len(loops) > 1:
            shared.append((match, sorted(loops)))
    found, free = [], list(unmatched_targets)
    for match, loops in shared:
        fitting = [target for target in free
                   if align_lib.compatible(match.source, target) is not None]
        twin = _other_direction(match.target.name)
        chosen = [target for target in fitting if target.name == twin]
        rivals = [other for other, _ in shared if other is not match]
        if not chosen:
            chosen = [target for target in fitting if not any(
                align_lib.compatible(other.source, target) is not None for other in rivals)]
        if len(chosen) != len(loops) - 1:
            continue
        for target in chosen:
            _, _, evidence = align_lib.compatible(match.source, target)
            found.append(align_lib.Match(match.source, target, (), [
                *evidence, SHARED_BY_GRAPH.format(count=len(loops), loops=", ".join(loops))]))
            free.remove(target)
    return found


def _other_direction(name):
    """`birnn/forward_lstm/lstm_cell` -> `birnn/backward_lstm/lstm_cell` (and back)."""
    for this, other in (_DIRECTIONS, _DIRECTIONS[::-1]):
        if this in name:
            return name.replace(this, other)
    return None
