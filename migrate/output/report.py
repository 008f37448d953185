"""Conversion reports: a short summary for people and a JSON document for programs."""

import dataclasses

import numpy as np

from migrate.options import FILE_NAMES
from migrate.progress import format_bytes
from migrate.source import graph_listing
from migrate.source.roles import Role


def not_saved_line(names):
    """Returns the line saying which trainable graph variables the checkpoint lacks, or "".

    Example:

    >>> not_saved_line(["learning_rate"])  # doctest: +ELLIPSIS
    'not saved: 1 trainable graph variable the checkpoint lacks, left out (... learning_rate'
    """
    if not names:
        return ""
    listed = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return (f"not saved: {len(names)} trainable graph variable{'s' if len(names) > 1 else ''} "
            f"the checkpoint lacks, left out (made after the Saver or outside its var_list, "
            f"so no weight of the model): {listed}")


def role_totals(variables, plan=None):
    """Counts variables and bytes per role, and how many of each are kept, dropped, left out.

    Args:
        variables: dict of checkpoint key to `SourceVariable`.
        plan: the `ConversionPlan`, or None to count roles only.

    Returns:
        `{role value: {"count", "bytes", "kept", "kept_bytes", "dropped",
        "dropped_bytes", "left_out", "left_out_bytes"}}` for every role.
    """
    totals = {role.value: dict.fromkeys(
        ("count", "bytes", "kept", "kept_bytes", "dropped", "dropped_bytes", "left_out",
         "left_out_bytes"), 0) for role in Role}
    for variable in variables.values():
        entry = totals[variable.role.value]
        entry["count"] += 1
        entry["bytes"] += variable.nbytes
    if plan is not None:
        for variable in plan.kept:
            totals[variable.role.value]["kept"] += 1
            totals[variable.role.value]["kept_bytes"] += variable.nbytes
        for variable, _ in plan.dropped:
            totals[variable.role.value]["dropped"] += 1
            totals[variable.role.value]["dropped_bytes"] += variable.nbytes
        for role, left_out in plan.left_out.items():
            totals[role.value]["left_out"] += len(left_out)
            totals[role.value]["left_out_bytes"] += sum(variable.nbytes for variable in left_out)
    return totals


@dataclasses.dataclass
class ConversionReport:
    """What a conversion (or a dry run) did.

    Attributes:
        checkpoint: the legacy checkpoint prefix.
        role_origin: where the roles came from (graph collections or name rules).
        table: the mapping table's origin.
        output: the output directory, or None for a dry run.
        keep: "trainable" or "model_state".
        roles: `role_totals(...)` of the checkpoint.
        written_weights: target weights written.
        written_bytes: bytes of those weights.
        dropped: TF1 names a table rule dropped.
        unwritten_targets: model weights the output does not carry.
        left_as_built: `[path, reason]` of each model weight a `leave` rule
            leaves as the model built it (not in the output; the model sets it).
        unwritten_at_initial: True when the checkpoint holds every weight the
            output does not carry at the value the model initializes it to
            (BatchNorm statistics never updated): nothing is lost.
        ema_swapped: variables read from their EMA shadow.
        nonfinite: `[name, count]` of tensors holding NaN/Inf.
        seconds: wall time of the conversion.
        dry_run: True when nothing was written.
        verified: the parity check run after writing (`VerifyReport.manifest_entry()`),
            or None when not asked for.
        exports: export formats written beside the checkpoint
            (`migrate.output.export`).
        recovered: what was done with the `NAME.previous-*` directories a run
            killed while replacing the output left (`atomic.recover_previous`),
            one sentence each; also among the warnings.
        not_saved: trainable graph variables the checkpoint lacks
            (`LegacyCheckpoint.not_saved`), left out.
    """

    checkpoint: str
    role_origin: str
    table: str
    output: str | None
    keep: str
    roles: dict
    written_weights: int = 0
    written_bytes: int = 0
    dropped: list = dataclasses.field(default_factory=list)
    unwritten_targets: list = dataclasses.field(default_factory=list)
    left_as_built: list = dataclasses.field(default_factory=list)
    unwritten_at_initial: bool = False
    ema: bool = False
    ema_swapped: int = 0
    nonfinite: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False
    verified: dict | None = None
    exports: list = dataclasses.field(default_factory=list)
    recovered: list = dataclasses.field(default_factory=list)
    not_saved: list = dataclasses.field(default_factory=list)

    @property
    def warnings(self):
        # Said first: it happened before the conversion, to the output's directory.
        notes = list(self.recovered)
        if self.unwritten_targets and not self.unwritten_at_initial:
            examples = ", ".join(self.unwritten_targets[:3])
            notes.append(
                f"The output does not carry {len(self.unwritten_targets)} non-trainable model "
                f"weight(s) ({examples}{', ...' if len(self.unwritten_targets) > 3 else ''}); "
                f"restored models keep their initial values (BatchNorm: mean 0, variance 1), so "
                f"inference differs from the legacy graph. Use keep='model_state' to carry them.")
        if self.unwritten_targets and self.exports and not self.unwritten_at_initial:

            # Unlike the checkpoint, these formats store every weight of the model.
            names = ", ".join(FILE_NAMES[name] for name in self.exports)
            notes.append(
                f"The exports ({names}) hold every weight of the model: the "
                f"{len(self.unwritten_targets)} non-trainable weight(s) the conversion does not "
                f"carry are stored at their initial values, so loading them gives a model whose "
                f"inference differs from the legacy graph. Use keep='model_state' to carry them.")
        if self.ema and not self.ema_swapped and self.written_weights:
            notes.append(
                "EMA shadows were asked for, but the checkpoint has no ExponentialMovingAverage "
                "shadow of any kept variable: the raw weights were used.")
        if self.nonfinite:
            notes.append(f"{len(self.nonfinite)} tensor(s) hold NaN/Inf: "
                         + ", ".join(f"{name} ({count})" for name, count in self.nonfinite[:5]))
        return notes

    def to_json(self):
        document = dataclasses.asdict(self)
        document["warnings"] = self.warnings
        return document

    def summary(self):
        """Returns a few lines a person can read."""
        action = "Planned (dry run, nothing written)" if self.dry_run else f"Wrote {self.output}"
        lines = [
            f"{action}: {self.written_weights} weight(s), {format_bytes(self.written_bytes)}, "
            f"keep={self.keep}" + (f", EMA shadows used for {self.ema_swapped}" if self.ema else "")
            + (f", {self.seconds:.1f}s" if self.seconds else ""),
            f"  source {self.checkpoint} (roles from {self.role_origin})",
            f"  {'role':<15}{'variables':>10}{'kept':>7}{'dropped':>9}{'left out':>10}"
            f"{'bytes left out':>16}",
        ]
        for role, entry in self.roles.items():
            if entry["count"]:
                lines.append(f"  {role:<15}{entry['count']:>10}{entry['kept']:>7}"
                             f"{entry['dropped']:>9}{entry['left_out']:>10}"
                             f"{format_bytes(entry['left_out_bytes']):>16}")
        if self.not_saved:
            lines.append(f"  {not_saved_line(self.not_saved)}")
        if self.verified is not None:
            # Several outputs compared at once: each one's figure (older records have none).
            each = "".join(f"{item['output_tensor']} {item['max_rel_diff']:.3g}, "
                           for item in self.verified.get("outputs") or () if len(
                               self.verified["outputs"]) > 1)
            lines.append(f"  verified: {'PASS' if self.verified['passed'] else 'FAIL'}, max "
                         f"relative diff {self.verified['max_rel_diff']:.3g} ({each}tolerance "
                         f"{self.verified['tolerance']:g}, batch {self.verified['batch']})")
            if self.verified.get("squeezed"):  # A comparison rule (size-1 axes, class 0).
                lines.append(f"    {self.verified['squeezed']}")
        if self.left_as_built:
            lines.append(f"  left as the model built them (leave rules): "
                         f"{len(self.left_as_built)} weight(s)")
            by_reason = {}
            for path, reason in self.left_as_built:
                by_reason.setdefault(reason, []).append(path)
            for reason, paths in by_reason.items():
                shown = ", ".join(paths[:4]) + (f", ... ({len(paths)})" if len(paths) > 4 else "")
                lines.append(f"    {shown}: {reason}")
        if self.unwritten_targets and self.unwritten_at_initial:
            lines.append(f"  note: the output does not carry {len(self.unwritten_targets)} "
                         f"non-trainable model weight(s), but the checkpoint holds them at the "
                         f"values the model starts with (statistics never updated): nothing is "
                         f"lost, inference is the same.")
        lines.extend(f"  warning: {note}" for note in self.warnings)
        return "\n".join(lines)


def left_out_at_initial(checkpoint, table, initial_value, unwritten_targets):
    """True when each target weight left unwritten has, in the checkpoint, the value the model holds.

    With keep="trainable" a BatchNorm's statistics are left out; when the
    checkpoint's are still at their initial values (mean 0, variance 1: the
    update ops never ran), the model's own initial values are the same, so
    nothing is lost. Each unwritten target must be named by a plain rule (no
    layout, no transform) for a checkpoint variable holding exactly its value.

    Args:
        checkpoint: the `LegacyCheckpoint`.
        table: the `MappingTable`.
        initial_value: returns a target weight's value as the model was built,
            given its path (`migrate.planning.target.Template.initial_value`).
        unwritten_targets: the paths of the weights the output does not carry.

    Example:

        if left_out_at_initial(checkpoint, table, initial_values.get, ["bn/moving_mean"]):
            print("nothing is lost")
    """
    sources = unwritten_sources(checkpoint.variables, table, unwritten_targets)
    if sources is None:
        return False
    return all(same_value(checkpoint.read(name), initial_value(target))
               for name, target in sources)


def unwritten_sources(variable_names, table, unwritten_targets):
    """Returns `[(checkpoint key, target path)]` of the plain rules (no layout, no transform)
    naming the unwritten targets, when they name every one of them; else None.

    Those are the values `left_out_at_initial` compares; from names alone.
    """
    left = set(unwritten_targets)
    if not left:
        return None
    found_pairs = []
    for name in variable_names:
        found = table.lookup(name)
        if (found is None or found.target not in left or found.rule.layout is not None
                or found.rule.transforms):
            continue
        found_pairs.append((name, found.target))
    return found_pairs if {target for _, target in found_pairs} == left else None


def same_value(value, current):
    """Whether a checkpoint value equals a weight's (same shape, same numbers)."""
    value, current = np.asarray(value), np.asarray(current)
    return value.shape == current.shape and bool(np.array_equal(value, current))


def inspect_summary(description):
    """Returns `migrate.inspect`'s description as aligned columns a person can read.

    Columns are as wide as their longest entry, so long variable names
    (BERT's run past 60 characters) never push the others out of line.

    Args:
        description: the dict `migrate.inspect` returns.

    Returns:
        The lines, joined: a header naming the checkpoint, its format and
        where the roles came from; one line per variable; totals per role.

    Example:

    >>> print(inspect_summary({"checkpoint": "m.ckpt-1", "format": "V1",
    ...     "role_origin": "name rules", "roles": {}, "variables": [
    ...     {"name": "w", "shape": [2, 3], "dtype": "float32", "bytes": 24,
    ...      "role": "trainable", "role_source": "name rule"}]}))
    m.ckpt-1 (V1 checkpoint; roles from name rules)
      name  shape   dtype         bytes  role
      w     [2, 3]  float32        24 B  trainable (name rule)
      totals:
    """
    variables = description["variables"]
    rows = [(variable["name"], str(variable["shape"]), variable["dtype"],
             format_bytes(variable["bytes"]), f"{variable['role']} ({variable['role_source']})")
            for variable in variables]
    header = ("name", "shape", "dtype", "bytes", "role")
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(4)]
    widths[3] = max(widths[3], 10)

    def line(row):
        return (f"  {row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  "
                f"{row[3]:>{widths[3]}}  {row[4]}")

    checkpoint_format = description.get("format")
    kind = ""
    if checkpoint_format:
        # A checkpoint's format is V1 or V2; a frozen graph's is named in full.
        kind = (f"{checkpoint_format} checkpoint; " if checkpoint_format in ("V1", "V2")
                else f"{checkpoint_format}; ")
    lines = [f"{description['checkpoint']} ({kind}roles from {description['role_origin']})"]
    lines.append(line(header))
    lines.extend(line(row) for row in rows)
    lines.append("  totals:")
    role_width = max((len(role) for role, entry in description["roles"].items()
                      if entry["count"]), default=0)
    for role, entry in description["roles"].items():
        if entry["count"]:
            lines.append(f"    {role:<{role_width}}  {entry['count']:>6} variable(s) "
                         f"{format_bytes(entry['bytes']):>10}")
    if "not_weights" in description:
        # A frozen graph's weights are constants told apart by their use: say why.
        lines.append("  constants that are weights, and why:")
        lines.extend(f"    {variable['name']}: {variable['reason']}" for variable in variables)
        lines.append(f"  constants that are not weights ({len(description['not_weights'])}), "
                     f"and why:")
        lines.extend(f"    {entry['name']}: {entry['reason']}"
                     for entry in description["not_weights"])
    if description.get("not_saved"):
        lines.append(f"  {not_saved_line(description['not_saved'])}")
    if "graph" in description:
        lines.extend(graph_listing.summary_lines(description["graph"]))
    if description.get("folded"):
        lines.append("  folded: optimize_for_inference merged BatchNorm into the convolutions; "
                     "the Keras model must be the folded one (convolutions with a bias, no "
                     "BatchNormalization)")
    return "\n".join(lines)
