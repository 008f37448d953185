"""Table checks that need no TensorFlow: rules that can never win, and duplicated targets."""

import dataclasses

from migrate.errors import TableError
from migrate.table import MappingTable


@dataclasses.dataclass
class LintReport:
    """Findings of `lint_table`; `ok` is False when any finding is an error."""

    table: str
    rules: int
    errors: list
    warnings: list

    @property
    def ok(self):
        return not self.errors

    def summary(self):
        lines = [f"lint {'OK' if self.ok else 'FAILED'}: {self.table}: {self.rules} rule(s), "
                 f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"]
        lines += [f"  error: {text}" for text in self.errors]
        lines += [f"  warning: {text}" for text in self.warnings]
        return "\n".join(lines)

    def to_json(self):
        document = dataclasses.asdict(self)
        document["ok"] = self.ok
        return document


def lint_table(path):
    """Reads a table and reports problems a plan would only find later.

    Errors: the table does not parse (bad TOML, unknown keys, bad regex,
    slow regex, unknown transform or layout). Warnings: a rule whose `match`
    repeats an earlier rule's (it can never win), and rules whose literal
    targets are the same (several sources would land on one weight).
    """
    try:
        table = MappingTable.load(path)
    except TableError as error:
        return LintReport(table=str(path), rules=0, errors=[str(error)], warnings=[])
    warnings = []
    first_with_pattern = {}
    first_with_target = {}
    for rule in table.rules:
        earlier = first_with_pattern.setdefault(rule.match, rule.index)
        if earlier != rule.index:
            warnings.append(f"rule {rule.index} repeats the match of rule {earlier} and can "
                            f"never win: {rule.match!r}")
        if rule.target and "\\" not in rule.target and rule.layout is None:
            other = first_with_target.setdefault(rule.target, rule.index)
            if other != rule.index:
                warnings.append(f"rules {other} and {rule.index} both target {rule.target!r}")
    return LintReport(table=table.origin, rules=len(table.rules), errors=[], warnings=warnings)
