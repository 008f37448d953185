"""Aligns source items with target items by kind, shape and order, and finds ambiguous matches."""

import dataclasses
import math

from migrate.mapping import class_axis
from migrate.mapping import layouts
from migrate.suggest import items as items_lib

# Scores: a weight matched counts most; a matching name or a match with no
# reshape breaks ties between alignments of equal length.
_MATCH_SCORE = 10.0
_SAME_NAME_BONUS = 1.0
_NO_TRANSFORM_BONUS = 0.5
_DIRECTION_WORDS = (("/fw/", "forward"), ("/bw/", "backward"))


@dataclasses.dataclass
class Match:
    """One source item matched to one target item.

    Attributes:
        source: the `SourceItem`.
        target: the `TargetItem`.
        transforms: transform texts for a plain rule (source -> target).
        evidence: the evidence, in words.
        certain: False when another candidate fits equally (see `ambiguous_with`).
        ambiguous_with: the other target layers that fit this source equally.
        decided_by: the evidence that chose the pair among its candidates:
            one of `DECIDED_BY`.
    """

    source: object
    target: object
    transforms: tuple
    evidence: list
    certain: bool = True
    ambiguous_with: tuple = ()
    decided_by: str = "order"


# What can decide a pair, strongest first.
DATAFLOW, SHAPE, NAME, ORDER = "dataflow", "shape", "name", "order"
DECIDED_BY = (DATAFLOW, SHAPE, NAME, ORDER)


def compatible(source, target):
    """Returns `(score, transforms, evidence)` when `source` can fill `target`, else None.

    Plain weights must agree in kind (when the TF1 name says one) and in
    shape, directly, after squeezing leading 1-sized axes (1x1 convolution ->
    Dense), or after a C-order reshape that keeps the output axis (a
    convolution over the whole map -> Dense after Flatten); a classifier's
    1001 classes fill 1000 once the background class is sliced off
    (`migrate.mapping.class_axis`). Cells and attention blocks must give the
    target's shapes through their layout.

    Args:
        source: a `SourceItem`.
        target: a `TargetItem`.

    Returns:
        `(score, transform texts, evidence words)`, or None when it cannot.
    """
    if source.dtype != target.dtype:
        return None
    if source.layout is not None:
        return _compatible_layout(source, target)
    if target.shape is None:
        return None
    if source.kind is not None and source.kind != target.kind:
        return None
    if source.role and target.role and source.role != target.role:
        return None  # Both graphs show the projection, in different roles.
    cut = class_axis.background_cut(source.kind, source.shape, target.shape)
    if cut is not None:  # 1001 classes into 1000: the shapes fit once class 0 is sliced off.
        found = compatible(dataclasses.replace(source, shape=cut), target)
        return None if found is None else class_axis.with_slice(found, source.shape)
    if source.kind is None and target.kind not in items_lib.WEIGHT_KINDS.values():
        kind_note = f"name says nothing; target {target.kind}"
    else:
        kind_note = f"{source.name.rpartition('/')[2]} -> {target.kind}"
    shape = tuple(source.shape)
    transforms = list(source.transforms)
    if source.note:
        kind_note += f"; {source.note}"
    if source.role and source.role == target.role:
        kind_note += f"; the {source.role} projection in both graphs"
    score = _MATCH_SCORE + _name_bonus(source, target)
    if _name_bonus(source, target):
        kind_note += "; name agrees"
    target_shape = tuple(target.shape)
    if source.split:
        index, count = source.split
        if math.prod(shape) != math.prod(target_shape):
            return None
        return score, tuple(transforms), [
            f"part {index + 1} of {count} of its product, which tf.split cuts in the graph "
            f"({_text(shape)} -> {_text(target_shape)})", kind_note]
    if shape == target_shape:
        return score + _NO_TRANSFORM_BONUS, tuple(transforms), [f"shape {_text(shape)}", kind_note]
    if source.kind not in (None, "kernel") and not (source.role and source.role == target.role):
        return None
    extra = len(shape) - len(target_shape)
    if extra > 0 and shape[extra:] == target_shape and all(size == 1 for size in shape[:extra]):
        axes = ", ".join(str(axis) for axis in range(extra))
        transforms.append(f"squeeze({axes})")
        return score, tuple(transforms), [
            f"shape {_text(shape)} -> {_text(target_shape)} by squeezing 1-sized axes", kind_note]
    if (source.kind is not None and (source.reshaped or target.reshaped or (
            source.role and source.role == target.role))
            and math.prod(shape) == math.prod(target_shape)):
        transforms.append(f"reshape({', '.join(str(size) for size in target_shape)})")
        why = ("the graph reshapes it before its use" if source.reshaped or target.reshaped
               else "the heads' axes, as the graph reshapes the projection's product")
        return score, tuple(transforms), [
            f"shape {_text(shape)} -> {_text(target_shape)}: {why} (C order)", kind_note]
    if (len(target_shape) == 2 and math.prod(shape) == math.prod(target_shape)
            and shape[-1] == target_shape[-1]):
        transforms.append(f"reshape(-1, {target_shape[-1]})")
        return score, tuple(transforms), [
            f"shape {_text(shape)} -> {_text(target_shape)}: same element count and output "
            f"axis (a convolution over the whole map is a Dense layer after Flatten)", kind_note]
    return None


def _compatible_layout(source, target):
    if source.layout == items_lib.VOCABULARY_OOV_ROLL:
        return _compatible_roll(source, target)
    family = "rnn_cell" if source.layout in items_lib.RNN_LAYOUTS else "attention"
    if target.kind != family:
        return None
    converter = layouts.get(source.layout)
    parameters = dict(converter.parameters)
    if "forget_bias" in parameters:
        parameters["forget_bias"] = 1.0  # Shapes do not depend on it; the graph gives it.
    try:
        shapes = converter.output_shapes(dict(source.parts), dict(target.parts), parameters)
    except (layouts.LayoutError, KeyError, TypeError, ValueError):
        return None
    if any(tuple(shapes[part]) != tuple(target.parts[part]) for part in target.parts):
        return None
    score = _MATCH_SCORE * len(target.parts) + _name_bonus(source, target)
    if len(source.parts) <= 2:
        shapes_text = ", ".join(f"{part} {_text(shape)}" for part, shape in source.parts.items())
    else:
        part, shape = next(iter(source.parts.items()))
        shapes_text = f"{len(source.parts)} parts, e.g. {part} {_text(shape)},"
    evidence = [f"{source.layout} layout: {shapes_text} fit the target's shapes"]
    if _name_bonus(source, target):
        evidence.append("name agrees")
    return score, (), evidence


def _compatible_roll(source, target):
    """A vocabulary's rows (OOV buckets last) fill a lookup's embedding or kernel of their shape."""
    (part, shape), = source.parts.items()
    if target.shape is None or tuple(target.shape) != tuple(shape) or \
            target.kind not in ("embeddings", "kernel"):
        return None
    buckets = source.parameters["oov_buckets"]
    evidence = [f"shape {_text(shape)}, {part} -> {target.kind}",
                f"{source.layout} layout: the graph looks its rows up by vocabulary id with "
                f"{buckets} out-of-vocabulary bucket(s) after the vocabulary; StringLookup "
                f"puts them first"]
    if _name_bonus(source, target):
        evidence.append("name agrees")
    return _MATCH_SCORE + _NO_TRANSFORM_BONUS + _name_bonus(source, target), (), evidence


def _name_bonus(source, target):
    bonus = 0.0
    source_layer = source.layer.split("/")[-1].lower()
    target_layer = target.layer.split("/")[-1].lower()
    if source_layer and source_layer == target_layer:
        bonus += _SAME_NAME_BONUS
    for source_word, target_word in _DIRECTION_WORDS:
        if source_word in f"/{source.name}/" and target_word in target.name:
            bonus += _SAME_NAME_BONUS
    return bonus


def _text(shape):
    return "[" + ", ".join(str(size) for size in shape) + "]"


def align(sources, targets):
    """Matches source items to target items, keeping both in order, maximising the score.

    A longest-common-subsequence alignment: both sides are in dataflow order
    (`items.dataflow_ordered`) where both graphs show it, else in creation
    order, and a model whose data passes its layers as the graph's does
    aligns item for item. Each pair says what decided it (`DECIDED_BY`). A
    leftover source that fits exactly one free target goes there whatever
    its order (`match_unique_fits`). What is then left over on both sides is
    aligned once more among itself, in groups with no more free targets than
    sources (`_balanced`): a model that builds some layers in another order
    than the graph (keras-hub's BertBackbone creates its segment embedding
    after the positions, and each block's second LayerNorm before its dense
    layers) still has them matched, by kind, shape and the order of the
    leftovers; the evidence says so. Items left over then stay unmatched.

    Args:
        sources: `SourceItem`s in dataflow (or creation) order.
        targets: `TargetItem`s in the same order.

    Returns:
        `(matches, unmatched_sources, unmatched_targets)`.
    """
    cache = {}

    def fit(source, target):
        key = (source.kind, source.shape, source.layout, tuple(source.parts.items()),
               source.transforms, source.dtype, source.layer.split("/")[-1], source.name,
               source.split, source.reshaped, source.role,
               target.kind, target.shape, tuple(target.parts.items()), target.dtype,
               target.layer.split("/")[-1], target.name, target.reshaped, target.role)
        if key not in cache:
            cache[key] = compatible(source, target)
        return cache[key]

    matches, unmatched_sources, unmatched_targets = _align_in_order(sources, targets, fit)
    forced = _forced(sources, targets, fit, matches)
    for match in matches:
        match.decided_by = _decided_in_order(match, sources, targets, fit, id(match) in forced)
    unmatched_sources, unmatched_targets = match_unique_fits(
        matches, unmatched_sources, unmatched_targets)
    balanced_sources, balanced_targets = _balanced(unmatched_sources, unmatched_targets, fit)
    if balanced_sources and balanced_targets:
        crossed, _, _ = _align_in_order(balanced_sources, balanced_targets, fit)
        paired = {id(item) for match in crossed for item in (match.source, match.target)}
        unmatched_sources = [item for item in unmatched_sources if id(item) not in paired]
        unmatched_targets = [item for item in unmatched_targets if id(item) not in paired]
        for match in crossed:
            match.evidence.append("out of order (aligned among the items order left)")
            match.certain, match.decided_by = False, ORDER
        matches += crossed
    position = {id(item): index for index, item in enumerate(sources)}
    matches = sorted(matches, key=lambda match: position[id(match.source)])
    return matches, unmatched_sources, unmatched_targets


def _decided_in_order(match, sources, targets, fit, forced):
    """What decided a pair the in-order alignment made: dataflow, name or order.

    Dataflow decides when both sides' graphs place the pair (the legacy
    graph says the source's kind by its use, the model's call its level),
    every alignment that pairs as many items makes it (`_forced`: no source
    the model lacks, or target the source lacks, could take its place), and
    no other item at either's level fits the other (what the level order
    cannot tell apart, creation order sorted): then kind, dataflow position
    and shape agree with no rival.
    """
    source, target = match.source, match.target
    rival_targets = [other for other in targets if other is not target
                     and other.flow == target.flow and fit(source, other) is not None]
    rival_sources = [other for other in sources if other is not source
                     and other.flow == source.flow and fit(other, target) is not None]
    graph_kind = source.graph_kind or source.layout is not None
    if (source.flow is not None and target.flow is not None and graph_kind and forced
            and not rival_targets and not rival_sources):
        return DATAFLOW
    if (rival_targets or rival_sources) and _name_bonus(source, target) and not any(
            _name_bonus(source, other) for other in rival_targets):
        return NAME
    return ORDER


def _forced(sources, targets, fit, matches):
    """`id`s of the matches every in-order alignment with the most fitting pairs makes.

    Counting pairs only (names weigh nothing), a match is forced when no
    alignment of as many pairs leaves its source or target unpaired or pairs
    either with another item.
    """
    rows, columns = len(sources), len(targets)
    fits = [[fit(source, target) is not None for target in targets] for source in sources]
    # ahead[i][j]: most pairs of sources[:i] with targets[:j];
    # behind[i][j]: of sources[i:] with targets[j:].
    ahead = [[0] * (columns + 1) for _ in range(rows + 1)]
    for i in range(1, rows + 1):
        row, above, fit_row = ahead[i], ahead[i - 1], fits[i - 1]
        for j in range(1, columns + 1):
            row[j] = max(above[j], row[j - 1], above[j - 1] + 1 if fit_row[j - 1] else 0)
    behind = [[0] * (columns + 1) for _ in range(rows + 1)]
    for i in range(rows - 1, -1, -1):
        row, below, fit_row = behind[i], behind[i + 1], fits[i]
        for j in range(columns - 1, -1, -1):
            row[j] = max(below[j], row[j + 1], below[j + 1] + 1 if fit_row[j] else 0)
    total = ahead[rows][columns]
    index_of = {id(item): index for index, item in enumerate(sources)}
    column_of = {id(item): index for index, item in enumerate(targets)}
    found = set()
    for match in matches:
        i, j = index_of[id(match.source)], column_of[id(match.target)]
        if ahead[i][j] + 1 + behind[i + 1][j + 1] != total:
            continue  # Not in any alignment of the most pairs.
        if any(ahead[i][k] + behind[i + 1][k] == total for k in range(columns + 1)):
            continue  # The source may go unpaired.
        if any(ahead[k][j] + behind[k][j + 1] == total for k in range(rows + 1)):
            continue  # The target may go unpaired.
        if any(k != j and fits[i][k] and ahead[i][k] + 1 + behind[i + 1][k + 1] == total
               for k in range(columns)):
            continue
        if any(k != i and fits[k][j] and ahead[k][j] + 1 + behind[k + 1][j + 1] == total
               for k in range(rows)):
            continue
        found.add(id(match))
    return found


def _balanced(sources, targets, fit):
    """The leftovers that order may pair: groups with no more targets than sources.

    Sources and targets that fit each other form groups. Where a group has
    more free targets than sources (one head left, two same-shape Dense
    layers), which target a source fills would be a guess, so the group stays
    unmatched for the checks after alignment to name. More sources than
    targets is the common case of a checkpoint with heads the model lacks
    (BERT's `cls/` LayerNorm beside the encoder's), which order settles as
    the first alignment does.
    """
    fits = {id(source): [target for target in targets if fit(source, target)]
            for source in sources}
    group_of, groups = {}, []
    for source in sources:
        members = {id(source)} | {id(target) for target in fits[id(source)]}
        merged = [group for group in groups if group & members]
        for group in merged:
            groups.remove(group)
            members |= group
        groups.append(members)
    for index, group in enumerate(groups):
        for member in group:
            group_of[member] = index
    source_counts, target_counts = [0] * len(groups), [0] * len(groups)
    for source in sources:
        source_counts[group_of[id(source)]] += 1
    for target in targets:
        if id(target) in group_of:
            target_counts[group_of[id(target)]] += 1
    kept = {index for index in range(len(groups)) if target_counts[index] <= source_counts[index]}
    return ([source for source in sources if group_of[id(source)] in kept],
            [target for target in targets if group_of.get(id(target)) in kept])


def _align_in_order(sources, targets, fit):
    """The longest-common-subsequence alignment of `align`, with `fit` scoring a pair."""
    rows, columns = len(sources), len(targets)
    # score[i][j]: best score aligning sources[i:] with targets[j:].
    score = [[0.0] * (columns + 1) for _ in range(rows + 1)]
    for i in range(rows - 1, -1, -1):
        row, below = score[i], score[i + 1]
        for j in range(columns - 1, -1, -1):
            best = max(below[j], row[j + 1])
            found = fit(sources[i], targets[j])
            if found is not None:
                best = max(best, found[0] + below[j + 1])
            row[j] = best
    matches, used_sources, used_targets = [], set(), set()
    i = j = 0
    while i < rows and j < columns:
        found = fit(sources[i], targets[j])
        if found is not None and math.isclose(score[i][j], found[0] + score[i + 1][j + 1]):
            matches.append(Match(sources[i], targets[j], found[1], list(found[2])))
            used_sources.add(i)
            used_targets.add(j)
            i, j = i + 1, j + 1
        elif math.isclose(score[i][j], score[i + 1][j]):
            i += 1
        else:
            j += 1
    unmatched_sources = [item for index, item in enumerate(sources) if index not in used_sources]
    unmatched_targets = [item for index, item in enumerate(targets) if index not in used_targets]
    return matches, unmatched_sources, unmatched_targets


def mark_ambiguous(matches, structure):
    """Marks matches that order alone decided between parallel, identical layers.

    Two source layers with the same weights (kinds and shapes) that run in
    parallel in the TF1 graph (neither feeds the other) fit each other's
    targets equally: shapes cannot tell them apart, and the order a Keras
    model builds parallel branches in is its author's choice. Such matches
    are marked uncertain, each with the other candidates, so that a value
    comparison settles them (or the draft reports them).

    Args:
        matches: `Match`es from `align`.
        structure: a `tf1_structure.GraphStructure`, or None (no graph: only
            order decides, and the evidence says so).

    Returns:
        A list of ambiguous groups, each a list of `(source layer, target layer)`.
    """
    by_layer = {}
    for match in matches:
        by_layer.setdefault(match.source.layer, []).append(match)
    if structure is None:
        for match in matches:
            match.evidence.append(f"{match.decided_by} (no graph to tell parallel branches "
                                  f"apart)")
            match.certain = False
        return []
    signature = {}
    for layer, layer_matches in by_layer.items():
        if all(match.decided_by == DATAFLOW for match in layer_matches):
            continue  # The dataflow placed it with no rival: no branch is parallel to it.
        key = tuple(sorted((str(m.source.kind), str(m.source.shape), str(m.source.parts),
                            str(m.source.role)) for m in layer_matches))
        signature.setdefault(key, []).append(layer)
    groups = []
    for layers in signature.values():
        if len(layers) < 2:
            continue
        # Connected groups of pairwise-parallel layers with the same weights.
        remaining = list(layers)
        while remaining:
            seed = remaining.pop(0)
            group = [seed]
            for other in list(remaining):
                if any(_parallel(structure, member, other, by_layer) for member in group):
                    group.append(other)
                    remaining.remove(other)
            if len(group) > 1:
                groups.append(group)
    ambiguous = []
    for group in groups:
        if all(any("name agrees" in note for note in match.evidence)
               for layer in group for match in by_layer[layer]):
            continue  # The names tell them apart (fw/bw -> forward/backward, same names).
        targets = {layer: by_layer[layer][0].target.layer for layer in group}
        for layer in group:
            for match in by_layer[layer]:
                match.certain = False
                match.ambiguous_with = tuple(targets[other] for other in group if other != layer)
                match.evidence.append(
                    "order only: parallel to " + ", ".join(other for other in group
                                                             if other != layer))
        ambiguous.append([(layer, targets[layer]) for layer in group])
    for match in matches:
        if match.certain:
            match.evidence.append(_DECIDED_WORDS[match.decided_by])
        # Certain only when kind, dataflow position and shape agree with no rival.
        match.certain = match.certain and match.decided_by == DATAFLOW
    return ambiguous


_DECIDED_WORDS = {DATAFLOW: "dataflow: kind, position and shape agree, no rival",
                  SHAPE: "shape", NAME: "name (among rivals at the same position)",
                  ORDER: "order"}


def _parallel(structure, first, second, by_layer):
    """Whether two source layers may be parallel branches: the graph's ancestry says so,
    and the dataflow (when it places both) puts them at the same level."""
    levels = [{match.source.flow for match in by_layer[layer]} for layer in (first, second)]
    if None not in levels[0] | levels[1] and levels[0] != levels[1]:
        return False
    return structure.parallel(first, second)


UNIQUE_SHAPE = ("the only free target this fits, and it fits no other free source "
                "(creation order differs)")


def match_unique_fits(matches, unmatched_sources, unmatched_targets):
    """Matches left-over sources that fit exactly one free target, whatever their order.

    The alignment keeps both sides in creation order, so a head a TF1 script
    created before its RNN (`Variable [120, 11]`, `Variable_1 [11]`) is left
    over when the Keras model builds it last. A source that fits exactly one
    free target, which in turn fits no other free source, belongs there: its
    order is no reason to drop it.

    Args:
        matches: `Match`es from `align` (extended in place).
        unmatched_sources, unmatched_targets: what `align` left over.

    Returns:
        `(unmatched_sources, unmatched_targets)` still left over.
    """
    sources, targets = list(unmatched_sources), list(unmatched_targets)
    changed = True
    while changed:
        changed = False
        fits = {id(source): [target for target in targets if compatible(source, target)]
                for source in sources}
        for source in sources:
            candidates = fits[id(source)]
            if len(candidates) != 1:
                continue
            (target,) = candidates
            if any(target in fits[id(other)] for other in sources if other is not source):
                continue
            _, transforms, evidence = compatible(source, target)
            matches.append(Match(source, target, transforms, [*evidence, UNIQUE_SHAPE],
                                 certain=False, decided_by=SHAPE))
            sources.remove(source)
            targets.remove(target)
            changed = True
            break
    return sources, targets


def drop_reason(source, targets, matches, unmatched_sources, unmatched_targets):
    """Says truly why a left-over source gets no target.

    Args:
        source: a left-over `SourceItem`.
        targets: every `TargetItem` of the model.
        matches: the `Match`es made.
        unmatched_sources, unmatched_targets: the items left over.

    Returns:
        One phrase for the draft's drop rule.
    """
    fitting = [target for target in targets if compatible(source, target) is not None]
    shape = _text(source.shape) if source.shape is not None else f"a {source.layout} cell"
    if not fitting:
        return f"no target of this kind and shape in the model ({shape})"
    free = [target for target in fitting if any(target is other for other in unmatched_targets)]
    if len(free) > 1:
        return (f"fits {len(free)} free targets ({', '.join(t.name for t in free)}); shape "
                f"cannot choose: map it by hand")
    if free:
        rivals = [other.name for other in unmatched_sources
                  if other is not source and compatible(other, free[0]) is not None]
        return (f"fits the free target {free[0].name}, as do {', '.join(rivals)}; shape cannot "
                f"choose: map it by hand")
    holders = {id(match.target): match.source.name for match in matches}
    taken = ", ".join(f"{target.name} (filled by {holders.get(id(target), '?')})"
                      for target in fitting[:3])
    return f"the model's targets of this kind and shape ({shape}) are all filled: {taken}"
