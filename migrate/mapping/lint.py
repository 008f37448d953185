"""Table checks that need no TensorFlow: rules that can never win, and duplicated targets."""

import dataclasses

from migrate.errors import TableError
from migrate.mapping import layouts
from migrate.mapping.table import MappingTable


@dataclasses.dataclass
class LintReport:
    """Findings of `lint_table`; `ok` is False when any finding is an error.

    Attributes:
        unmatched: given a checkpoint's names, those no rule matches (a plan
            would call them unmapped); None without names.
        checked_names: how many names were checked, or None.
    """

    table: str
    rules: int
    errors: list
    warnings: list
    unmatched: list | None = None
    checked_names: int | None = None

    @property
    def ok(self):
        return not self.errors

    def summary(self):
        lines = [f"lint {'OK' if self.ok else 'FAILED'}: {self.table}: {self.rules} rule(s), "
                 f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"
                 + (f"; {len(self.unmatched)} of {self.checked_names} variable(s) no rule "
                    f"matches" if self.unmatched is not None else "")]
        lines += [f"  error: {text}" for text in self.errors]
        lines += [f"  warning: {text}" for text in self.warnings]
        return "\n".join(lines)

    def to_json(self):
        document = dataclasses.asdict(self)
        document["ok"] = self.ok
        return document


def lint_table(path, names=None):
    """Reads a table and reports problems a plan would only find later.

    Errors: the table does not parse (bad TOML, unknown keys, bad regex,
    slow regex, unknown transform or layout, a bad `also`). Warnings: a rule
    whose `match` repeats an earlier rule's (it can never win; for a layout
    rule, with the same parts read), and rules whose
    literal targets are the same, `also` targets included (several sources
    would land on one weight). Given the TF1 names of a checkpoint, also:
    rules that win for none of them (unused, or shadowed by earlier rules).

    Args:
        path: the table's path.
        names: optional TF1 variable names the table is meant for; those no
            rule matches are counted and listed in `unmatched`.

    Returns:
        A `LintReport`; a table that does not parse is one error in it,
        not an exception.

    Example:

    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as directory:
    ...     path = os.path.join(directory, "table.toml")
    ...     with open(path, "w") as file:
    ...         _ = file.write("[[rule]]\\nmatch = 'fc/.*'\\ntarget = 'dense/kernel'\\n"
    ...                        "[[rule]]\\nmatch = 'fc/.*'\\ntarget = 'dense/bias'\\n")
    ...     report = lint_table(path, names=["fc/weights"])
    >>> report.ok, report.warnings[0]
    (True, "rule 2 repeats the match of rule 1 and can never win: 'fc/.*'")
    """
    try:
        table = MappingTable.load(path)
    except TableError as error:
        return LintReport(table=str(path), rules=0, errors=[str(error)], warnings=[])
    warnings = []
    first_with_pattern = {}
    first_with_target = {}
    for rule in table.rules:
        # A layout rule matches the scope of the parts it reads (`source_part`):
        # rules of one `match` reading other parts take other names. A `leave`
        # rule's regex matches Keras weights, never a TF1 name.
        claimed = [first_with_pattern.setdefault((rule.leave, rule.match, part), rule.index)
                   for part in _parts(rule)]
        if all(earlier != rule.index for earlier in claimed):
            key = "leave" if rule.leave else "match"
            warnings.append(f"rule {rule.index} repeats the {key} of rule {min(claimed)} and can "
                            f"never win: {rule.match!r}")
        if rule.target and rule.layout is None:
            # A tied-weights rule fills its `also` targets too: each counts once.
            targets = [rule.target, *(target for target, _ in rule.also)]
            for position, target in enumerate(targets):
                if target in targets[:position]:
                    warnings.append(f"rule {rule.index} names target {target!r} twice (in "
                                    f"`target` and `also`)")
                    continue
                if "\\" in target:
                    continue
                other = first_with_target.setdefault(target, rule.index)
                if other != rule.index:
                    warnings.append(f"rules {other} and {rule.index} both target {target!r}")
    unmatched = None
    if names is not None:
        names = list(names)
        warnings.extend(_unused_rules(table, names))
        unmatched = [name for name in names if not table.matches(name)]
        if unmatched:
            examples = ", ".join(repr(name) for name in unmatched[:3])
            warnings.append(f"{len(unmatched)} of {len(names)} variable(s) no rule matches "
                            f"(e.g. {examples}); a plan reports them as unmapped")
    return LintReport(table=table.origin, rules=len(table.rules), errors=[], warnings=warnings,
                      unmatched=unmatched, checked_names=None if names is None else len(names))


def _parts(rule):
    """The names under a layout rule's scope it reads; (None,) for a rule matching whole names."""
    if rule.layout is None:
        return (None,)
    converter = layouts.get(rule.layout)
    return converter.sources(rule.parameters) + tuple(converter.unsupported_parts)


def _unused_rules(table, names):
    # A `leave` rule names Keras weights: the checkpoint's names say nothing of it.
    wins = {rule.index: 0 for rule in table.rules if not rule.leave}
    shadowed = {rule.index: [] for rule in table.rules if not rule.leave}
    for name in names:
        found = table.matches(name)
        if found:
            wins[found[0].rule.index] += 1
            for later in found[1:]:
                shadowed[later.rule.index].append((name, found[0].rule.index))
    notes = []
    for index, count in wins.items():
        if count:
            continue
        if shadowed[index]:
            name, winner = shadowed[index][0]
            notes.append(f"rule {index} wins for no variable: the {len(shadowed[index])} it "
                         f"matches are taken by earlier rules (e.g. {name!r} by rule {winner})")
        else:
            notes.append(f"rule {index} matches no variable of the checkpoint")
    return notes
