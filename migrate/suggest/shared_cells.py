"""Cells run by both loops of a bidirectional RNN: one TF1 cell, two Keras directions.

`tf.nn.bidirectional_dynamic_rnn(cell, cell, ...)` given the same cell for
both directions creates its variables once, under `fw/`; the backward loop
reads them too. Keras' `Bidirectional` keeps a forward and a backward layer
with weights of their own, so the one cell fills both: its layout rule gets
`also = [{target = '<backward scope>'}]`. The graph shows it: the cell's
variables are read by the `fw` and the `bw` while loops.
"""

from migrate.suggest import align as align_lib
from migrate.suggest import items as items_lib

SHARED_BY_GRAPH = "shared cell: the graph runs it in {count} loops ({loops})"
_DIRECTIONS = ("forward", "backward")


def shared_cell_candidates(matches, unmatched_targets, structure):
    """Finds the backward (or forward) direction a matched cell fills too: the graph runs it twice.

    A `fw` cell whose variables `structure.loops` shows read by a `bw` loop
    too fills its matched target's other direction (`forward_...` <->
    `backward_...`) as well, taken back from a cell that order put there
    when that cell fits exactly one free target instead (which it then
    gets). Anything less certain (a decoder cell shared by a training and an
    inference loop) is left to the draft's unfilled list.

    Args:
        matches: the `align.Match`es made; a match moved off the other
            direction is replaced in place.
        unmatched_targets: the free `TargetItem`s.
        structure: a `tf1_structure.GraphStructure`, or None (nothing found).

    Returns:
        `(found, taken)`: the new `align.Match`es (a layout rule's `also`),
        and the free targets they and the moved matches now fill.
    """
    if structure is None:
        return [], []
    shared = []
    for match in matches:
        if match.source.layout not in items_lib.RNN_LAYOUTS:
            continue
        loops = set().union(*(structure.loops.get(variable.name, ())
                              for variable in match.source.variables))
        if (len(loops) == 2 and "fw" in match.source.name.split("/")
                and any("bw" in loop.split("/") for loop in loops)):
            shared.append((match, sorted(loops)))
    found, free, taken = [], list(unmatched_targets), []
    for match, loops in shared:
        evidence = SHARED_BY_GRAPH.format(count=len(loops), loops=", ".join(loops))
        chosen = _other_direction_taken_back(match, matches, free, taken, shared)
        for target in chosen:
            _, _, fits = align_lib.compatible(match.source, target)
            found.append(align_lib.Match(match.source, target, (), [*fits, evidence]))
            if target in free:
                free.remove(target)
                taken.append(target)
    return found, taken


def _other_direction_taken_back(match, matches, free, taken, shared):
    """`[the matched target's other direction]` when the cell can have it, else `[]`."""
    twin_name = _other_direction(match.target.name)
    if twin_name is None or match.target.kind != "rnn_cell":
        return []
    twin = next((target for target in free if target.name == twin_name), None)
    if twin is not None:
        return [twin] if align_lib.compatible(match.source, twin) is not None else []
    holder = next((index for index, other in enumerate(matches)
                   if other.target.name == twin_name), None)
    if holder is None or any(matches[holder] is other for other, _ in shared):
        return []
    held = matches[holder]
    if align_lib.compatible(match.source, held.target) is None:
        return []
    elsewhere = [target for target in free
                 if align_lib.compatible(held.source, target) is not None]
    if len(elsewhere) != 1:
        return []
    (target,) = elsewhere
    _, transforms, fits = align_lib.compatible(held.source, target)
    matches[holder] = align_lib.Match(held.source, target, transforms, [
        *fits, f"the only free target it fits once the shared cell {match.source.name} takes "
               f"{twin_name}"], held.certain, held.ambiguous_with)
    free.remove(target)
    taken.append(target)
    return [held.target]


def _other_direction(name):
    """`birnn/forward_lstm/lstm_cell` -> `birnn/backward_lstm/lstm_cell` (and back)."""
    for this, other in (_DIRECTIONS, _DIRECTIONS[::-1]):
        if this in name:
            return name.replace(this, other)
    return None
