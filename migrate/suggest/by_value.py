"""Settles layers that only order told apart by value: the choice whose layer outputs match."""

import itertools

# Groups of up to this many layers try every permutation (24); larger groups
# try each swap of two layers, which keeps the number of graph runs small.
MAX_PERMUTED_LAYERS = 4


def score(report):
    """Ranks a parity run of a candidate draft: lower is better, `(0, 0)` is a pass.

    The layer-by-layer comparison (`VerifyReport.layers`, attached when parity
    fails) gives the number of Keras layers whose output diverges from their
    legacy twin and where the first one is; fewer, and later, is closer.

    Args:
        report: a `VerifyReport`, or None when the candidate did not plan clean.

    Returns:
        A tuple to compare; None ranks last.

    Example:

    >>> from migrate.verification.parity import VerifyReport
    >>> report = VerifyReport(output_tensor="logits:0", shape=(2, 3), max_abs_diff=0.5,
    ...                       max_rel_diff=0.5, tolerance=1e-5, batch_size=2, seed=0,
    ...                       layers=[{"diverged": False}, {"diverged": True}])
    >>> score(report), score(None) > score(report)
    ((1, -1), True)
    """
    if report is None:
        return (float("inf"), 0)
    if report.passed:
        return (0, 0)
    layers = report.layers or []
    diverged = [index for index, layer in enumerate(layers) if layer["diverged"]]
    if not diverged:  # The output differs, yet no layer does: rank below any layer match.
        return (len(layers) + 1, 0)
    return (len(diverged), -diverged[0])


def choose(groups, evaluate, *, current=None):
    """Picks, group by group, the assignment of source layers whose layer outputs match.

    Args:
        groups: lists of `(source layer, target layer)` pairs that only order
            told apart (same weights, parallel branches).
        evaluate: `choice -> VerifyReport or None`: drafts the matches with
            `choice` (`{source layer: target layer}`) applied, assigns them into
            the model and runs parity with the layer-by-layer comparison.
        current: the report of the draft as order decided it (evaluated when None).

    Returns:
        The `{source layer: target layer}` choice that passes parity, or None
        when no tried choice does (the groups stay ambiguous).

    Example:

    >>> from migrate.verification.parity import VerifyReport
    >>> def evaluate(choice):  # Passes only with a and b swapped.
    ...     passed = choice.get("a") == "y"
    ...     return VerifyReport(output_tensor="o:0", shape=(1,), max_abs_diff=0.0 if passed
    ...                         else 1.0, max_rel_diff=0.0 if passed else 1.0, tolerance=1e-5,
    ...                         batch_size=1, seed=0, layers=[{"diverged": not passed}])
    >>> choose([[("a", "x"), ("b", "y")]], evaluate)
    {'a': 'y', 'b': 'x'}
    """
    choice = {}
    best = score(current if current is not None else evaluate(choice))
    for group in groups:
        sources = [source for source, _ in group]
        targets = [target for _, target in group]
        chosen = choice
        for candidate in _rearrangements(targets):
            if candidate == targets:
                continue
            trial = {**choice, **dict(zip(sources, candidate))}
            ranked = score(evaluate(trial))
            if ranked < best:
                best, chosen = ranked, trial
            if best == (0, 0):
                return chosen
        choice = chosen
    return choice if best == (0, 0) else None


def _rearrangements(targets):
    """Every order of `targets` for small groups, else every swap of two of them."""
    if len(targets) <= MAX_PERMUTED_LAYERS:
        return [list(order) for order in itertools.permutations(targets)]
    swaps = []
    for first, second in itertools.combinations(range(len(targets)), 2):
        swapped = list(targets)
        swapped[first], swapped[second] = swapped[second], swapped[first]
        swaps.append(swapped)
    return swaps
