"""The report of `migrate.suggest`: the drafted table and what proves it, for people and code."""

import dataclasses

from migrate.mapping.table import MappingTable
from migrate.planning.plan import pair_by_shape
from migrate.suggest import align as align_lib

_PROBLEMS_LISTED = 5


@dataclasses.dataclass
class SuggestReport:
    """A drafted table and what proves (or does not prove) it.

    Attributes:
        table: the draft as a `MappingTable`.
        text: the draft's TOML text (rules with their evidence in comments).
        output: where the draft was written, or None.
        matches: one dict per match: source, target, transforms, evidence,
            certain, decided_by (`dataflow`, `shape`, `name` or `order`).
        dropped: source variables with no target, each `[name, shape]`; drafted as
            `drop = true` rules for the user to confirm.
        unfilled: target weights no source fills, each `[path, shape]`.
        left_as_built: target weights the draft's `leave` rules leave as the
            model built them, each `[path, shape, reason]`.
        ambiguous: groups of `[source layer, target layer]` pairs that only
            order told apart, left unsettled (no parity run, or it failed).
        settled: the same groups, when parity settled them by value.
        plan_problems: `Problem.describe()` texts of the draft's plan.
        parity: the `VerifyReport` of the draft, or None when it was not run.
        parity_note: why parity was not run (or could not compare), when it was not.
        parity_failed: parity was asked for and could not compare (the
            legacy graph refused to run, or the outputs' shapes differ):
            unresolved, `parity_note` says why.
        parity_option: the option that would let parity run or compare
            (`output_tensor`, `builder`, `input_shape`, `feeds`, ...), as an
            error's `option`; None when none would.
    """

    table: MappingTable
    text: str
    output: str | None
    matches: list
    dropped: list
    unfilled: list
    ambiguous: list
    settled: list
    plan_problems: list
    parity: object = None
    parity_note: str = ""
    parity_failed: bool = False
    parity_option: str | None = None
    left_as_built: list = dataclasses.field(default_factory=list)

    @property
    def unresolved(self):
        """Everything that keeps the draft from being proven, as one line each."""
        return self.unresolved_lines()

    def unresolved_lines(self, parity_suffix=""):
        """`unresolved`, with `parity_suffix` after the note of parity that could not compare.

        A caller names `parity_option` its own way there (the command line, by its flag).
        """
        lines = [f"unfilled target {path} {shape_text(shape)}" for path, shape in self.unfilled]
        lines += ["ambiguous: " + ", ".join(f"{source} -> {target}" for source, target in group)
                  for group in self.ambiguous]
        lines += [f"plan: {problem}" for problem in self.plan_problems]
        if self.parity is not None and not self.parity.passed:
            # The verdict line; the layer-by-layer table is in the summary.
            lines.append(f"parity: {self.parity.summary().splitlines()[0]}")
        if self.parity_failed:
            lines.append(f"parity: {self.parity_note}{parity_suffix}")
        return lines

    @property
    def decided_by(self):
        """How many matches each kind of evidence decided: `{dataflow, shape, name, order: n}`."""
        counts = dict.fromkeys(align_lib.DECIDED_BY, 0)
        for match in self.matches:
            counts[match["decided_by"]] += 1
        return counts

    @property
    def ok(self):
        """True when the draft planned clean, nothing is unresolved and parity (if run) passed."""
        return not self.unresolved

    def summary(self, parity_suffix=""):
        """Returns the lines a person reads; `parity_suffix` as for `unresolved_lines`."""
        certain = sum(1 for match in self.matches if match["certain"])
        decided = ", ".join(f"{kind} {count}" for kind, count in self.decided_by.items())
        lines = [f"suggest: {len(self.matches)} matches ({certain} certain; decided by {decided}), "
                 f"{len(self.table)} rules, {len(self.dropped)} source variable(s) dropped, "
                 f"{len(self.unfilled)} target weight(s) unfilled"
                 + (f", {len(self.left_as_built)} left as the model built them"
                    if self.left_as_built else "")]
        if self.dropped:
            lines.append("  dropped (the draft says why for each; confirm or map them):")
            lines += [f"    {name} {shape_text(shape)}" for name, shape in self.dropped]
        if self.unfilled:
            lines.append("  unfilled target weights, beside the dropped sources of the same shape:")
            pairs = pair_entries(self.dropped, self.unfilled)
            width = max(len(f"{s[0]} {shape_text(s[1])}") if s else 6 for s, _ in pairs)
            for source, target in pairs:
                left = f"{source[0]} {shape_text(source[1])}" if source else "(none)"
                right = f"{target[0]} {shape_text(target[1])}" if target else "(none)"
                lines.append(f"    {left.ljust(width)}  <->  {right}")
        if self.left_as_built:
            lines.append("  left as the model built them (leave rules; no source fills them):")
            lines += [f"    {path} {shape_text(shape)}: {reason}"
                      for path, shape, reason in self.left_as_built]
        if self.settled:
            lines.append(f"  settled by value: {settled_text(self.settled)}")
        for group in self.ambiguous:
            lines.append("  AMBIGUOUS (same weights, parallel branches; order chose): " +
                         ", ".join(f"{s} -> {t}" for s, t in group))
        more = len(self.plan_problems) - _PROBLEMS_LISTED
        lines.append("  plan: clean" if not self.plan_problems else
                     f"  plan: {len(self.plan_problems)} problem(s): " + "; ".join(
                         self.plan_problems[:_PROBLEMS_LISTED])
                     + (f"; and {more} more (all in the draft)" if more > 0 else ""))
        lines.append(f"  parity: {self.parity.summary()}" if self.parity is not None
                     else f"  parity: not run ({self.parity_note}){parity_suffix}")
        where = f" -> {self.output}" if self.output else ""
        if not self.ok:
            verdict = f"NOT proven ({len(self.unresolved)} unresolved)"
        elif self.parity is None:
            verdict = f"planned clean, not proven: {self.parity_note}{parity_suffix}"
        else:
            verdict = "proven"
        lines.append(f"draft {verdict}{where}")
        return "\n".join(lines)

    def to_json(self):
        return {
            "ok": self.ok, "output": self.output, "rules": len(self.table),
            "matches": self.matches, "decided_by": self.decided_by,
            "dropped": [[name, list(shape)] for name, shape in self.dropped],
            "unfilled": [[path, list(shape)] for path, shape in self.unfilled],
            "left_as_built": [[path, list(shape), reason]
                              for path, shape, reason in self.left_as_built],
            "ambiguous": self.ambiguous, "settled": self.settled,
            "plan_problems": self.plan_problems, "unresolved": self.unresolved,
            "parity": None if self.parity is None else self.parity.to_json(),
            "parity_note": self.parity_note, "parity_failed": self.parity_failed,
            "parity_option": self.parity_option,
        }


def shape_text(shape):
    return "[" + ", ".join(str(size) for size in shape) + "]"


def settled_text(groups):
    layers = sum(len(group) for group in groups)
    example = ", ".join(f"{source} -> {target}" for source, target in groups[0])
    return (f"{len(groups)} group(s) of {layers} parallel layers with the same weights, where "
            f"order chose and the outputs confirm it (e.g. {example})")


def pair_entries(sources, targets):
    return pair_by_shape(sources, targets, lambda item: tuple(item[1]), lambda item: tuple(item[1]))
