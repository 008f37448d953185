"""Conversion plans: every name mapped, every target filled once, every shape checked.

A plan is computed from metadata alone (names, shapes, dtypes, roles) before
any tensor is read, so a wrong table fails fast and nothing is written. The
writer then executes the plan's assignments one at a time.

Example, with stand-ins for a checkpoint's variables and a model's weights:

>>> from migrate.mapping.table import MappingTable
>>> from migrate.planning.target import TargetWeight
>>> from migrate.source.checkpoint import SourceVariable
>>> from migrate.source.roles import Role, RoleSource
>>> variables = {name: SourceVariable(name, shape, "float32", Role.TRAINABLE,
...                                   RoleSource.NAME_RULE, "stand-in")
...              for name, shape in (("fc/weights", (4, 2)), ("fc/biases", (2,)))}
>>> targets = {path: TargetWeight(path, shape, "float32", True)
...            for path, shape in (("dense/kernel", (4, 2)), ("dense/bias", (3,)))}
>>> table = MappingTable.from_text('''
... [[rule]]
... match = 'fc/weights'
... target = 'dense/kernel'
... [[rule]]
... match = 'fc/biases'
... target = 'dense/bias'
... ''')
>>> plan = make_plan(variables, table, targets, keep="trainable")
>>> for problem in plan.problems:
...     print(problem.describe())
shape mismatch: fc/biases [2] -> dense/bias [3]: rule 2 (match 'fc/biases') gives shape [2]
>>> plan.raise_for_problems()  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
migrate.errors.PlanError: The conversion plan has 1 problem(s) (1 shape mismatch); ...
"""

import collections
import dataclasses
import difflib

from migrate.errors import ArgumentError
from migrate.errors import PlanError
from migrate.mapping import layouts
from migrate.mapping import transforms as transforms_lib
from migrate.source.roles import KEEP_MODES
from migrate.source.roles import Role
from migrate.source.roles import RoleSource


@dataclasses.dataclass(frozen=True)
class Problem:
    """One reason the plan cannot be executed."""

    kind: str
    message: str
    source: str | None = None
    source_shape: tuple | None = None
    target: str | None = None
    target_shape: tuple | None = None

    def describe(self):
        where = []
        if self.source is not None:
            where.append(f"{self.source} {_shape(self.source_shape)}")
        if self.target is not None:
            where.append(f"{self.target} {_shape(self.target_shape)}")
        location = " -> ".join(where)
        return f"{self.kind}: {location}: {self.message}" if location else f"{self.kind}: {self.message}"

    def to_json(self):
        return {key: (list(value) if isinstance(value, tuple) else value)
                for key, value in dataclasses.asdict(self).items()}


def _shape(shape):
    return "?" if shape is None else "[" + ", ".join(str(size) for size in shape) + "]"


@dataclasses.dataclass(frozen=True)
class Assignment:
    """Checkpoint tensors read together, converted, and placed into target weights.

    Attributes:
        rule: the table rule that produced it.
        sources: TF1 names, in the order the conversion takes them.
        read_keys: the checkpoint keys actually read (an EMA shadow's key in
            place of its variable's with `ema=True`).
        targets: target weight paths filled.
        parts: for a layout rule, the source part of each source, in order.
        target_parts: for a layout rule, the target part of each target.
        target_transforms: for a plain rule that fills several targets from
            its one source (tied weights: `also` in the table), each target's
            transforms; empty for one target (the rule's `transform`).
    """

    rule: object
    sources: tuple
    read_keys: tuple
    targets: tuple
    parts: tuple = ()
    target_parts: tuple = ()
    parameters: dict = dataclasses.field(default_factory=dict)
    target_shapes: tuple = ()
    target_transforms: tuple = ()

    def reshaped_sources(self):
        """Returns `{target path: read key}` when every target is one source reshaped in C order
        (its bytes are the source's bytes, as stored), else None.

        That is a plain rule of one target whose transforms only reshape
        (`transforms.ORDER_KEEPING`), or a layout whose converter says so of
        every target part (`LayoutConverter.reshaped_parts`).
        """
        if self.rule.layout is None:
            if len(self.targets) != 1 or any(step.name not in transforms_lib.ORDER_KEEPING
                                             for step in self.rule.transforms):
                return None
            return {self.targets[0]: self.read_keys[0]}
        reshaped = layouts.get(self.rule.layout).reshaped_parts
        keys = dict(zip(self.parts, self.read_keys))
        found = {}
        for target, part in zip(self.targets, self.target_parts):
            if keys.get(reshaped.get(part)) is None:
                return None
            found[target] = keys[reshaped[part]]
        return found

    def transforms_by_target(self):
        """For a plain rule, the transforms that make each target (in `targets` order)."""
        return self.target_transforms or (self.rule.transforms,)

    def convert(self, arrays):
        """Turns the source arrays (in `sources` order) into `{target path: array}`.

        Raises:
            TransformError, LayoutError: the arrays do not fit the rule (the
                plan checked their recorded shapes, so this means the data
                disagrees with the checkpoint's own metadata).
        """
        shapes = ", ".join(f"{name}.shape={tuple(array.shape)}"
                           for name, array in zip(self.sources, arrays))
        if self.rule.layout is None:
            (array,) = arrays  # Read once, whatever number of targets it fills.
            converted = {}
            for target, steps in zip(self.targets, self.transforms_by_target()):
                try:
                    converted[target] = transforms_lib.apply_all(steps, array)
                except ValueError as error:  # NumPy's shape errors, translated.
                    raise transforms_lib.TransformError(
                        f"{self.rule.describe()} cannot transform {self.sources[0]}"
                        f"{f' for {target}' if len(self.targets) > 1 else ''}: {error}. "
                        f"Expected the shape the plan was made from. "
                        f"Received: {shapes}") from error
            return converted
        converter = layouts.get(self.rule.layout)
        try:
            outputs = converter.convert(dict(zip(self.parts, arrays)),
                                        dict(zip(self.target_parts, self.target_shapes)),
                                        self.parameters)
        except ValueError as error:  # NumPy's shape errors, translated.
            raise layouts.LayoutError(
                f"{self.rule.describe()} cannot convert its sources: {error}. Expected the "
                f"shapes the plan was made from. Received: {shapes}") from error
        return {target: outputs[part] for part, target in zip(self.target_parts, self.targets)}


@dataclasses.dataclass
class ConversionPlan:
    """What a conversion will do, computed before anything is read or written.

    Attributes:
        keep: "trainable" or "model_state".
        assignments: the work, in checkpoint-name order.
        dropped: `(SourceVariable, rule index)` for variables a rule drops.
        left_out: dict of `Role` to the `SourceVariable`s not carried over
            because of their role (optimizer slots, step, EMA shadows, and
            model state unless kept).
        unwritten_targets: target weights the output will not carry (the
            model's non-trainable weights when only trainable ones are kept).
        ema_swapped: how many variables are read from their EMA shadow.
        left_as_built: `(TargetWeight, Rule)` for each target weight a
            `leave` rule leaves as the model built it (the rule says why).
        problems: every `Problem` found; empty when the plan can run.
    """

    keep: str
    assignments: list = dataclasses.field(default_factory=list)
    dropped: list = dataclasses.field(default_factory=list)
    left_out: dict = dataclasses.field(default_factory=dict)
    kept: list = dataclasses.field(default_factory=list)
    unwritten_targets: list = dataclasses.field(default_factory=list)
    ema_swapped: int = 0
    left_as_built: list = dataclasses.field(default_factory=list)
    problems: list = dataclasses.field(default_factory=list)

    def raise_for_problems(self):
        """Raises `PlanError` listing every problem, if there is any."""
        if self.problems:
            raise PlanError(self.problems)

    @property
    def target_paths(self):
        return [target for assignment in self.assignments for target in assignment.targets]

    def side_by_side(self):
        """Pairs unmapped source variables with unfilled target weights by shape.

        Returns:
            `(source problem or None, target problem or None)` pairs: same
            shape first, then same element count, then the rest alone, so a
            user fixing a table by hand sees what can go where.
        """
        return side_by_side(self.problems)

    def side_by_side_lines(self):
        """Returns `side_by_side()` as aligned text lines, empty when nothing is unmatched."""
        return side_by_side_lines(self.problems)


def side_by_side(problems):
    """`ConversionPlan.side_by_side()` of a list of problems (a `PlanError`'s)."""
    sources = [problem for problem in problems if problem.kind in _UNMAPPED_KINDS]
    targets = [problem for problem in problems if problem.kind == "unfilled"]
    return pair_by_shape(sources, targets, lambda problem: problem.source_shape,
                         lambda problem: problem.target_shape)


def side_by_side_lines(problems):
    """`ConversionPlan.side_by_side_lines()` of a list of problems (a `PlanError`'s)."""
    pairs = side_by_side(problems)
    if not pairs:
        return []
    left = [f"{problem.source} {_shape(problem.source_shape)}" if problem else "(none)"
            for problem, _ in pairs]
    width = max(len(text) for text in left)
    lines = ["unmapped sources and unfilled targets, paired by shape:"]
    for text, (_, target) in zip(left, pairs):
        right = f"{target.target} {_shape(target.target_shape)}" if target else "(none)"
        lines.append(f"  {text.ljust(width)}  <->  {right}")
    return lines


_UNMAPPED_KINDS = ("unmapped", "unknown role")


def pair_by_shape(sources, targets, source_shape, target_shape):
    """Pairs two lists by equal shape, then equal element count, in list order.

    Args:
        sources, targets: lists of anything.
        source_shape, target_shape: give each element's shape (a tuple).

    Returns:
        A list of `(source or None, target or None)`.

    >>> pair_by_shape([("a", (2, 3)), ("b", (4,))], [("x", (4,)), ("y", (6,))],
    ...               lambda s: s[1], lambda t: t[1])
    [(('a', (2, 3)), ('y', (6,))), (('b', (4,)), ('x', (4,)))]
    """
    import math

    free = list(targets)
    pairs = {}
    for key in (lambda shape: tuple(shape), lambda shape: math.prod(shape)):
        for index, source in enumerate(sources):
            if index in pairs or source_shape(source) is None:
                continue
            found = next((target for target in free if target_shape(target) is not None
                          and key(target_shape(target)) == key(source_shape(source))), None)
            if found is not None:
                pairs[index] = found
                free.remove(found)
    result = [(source, pairs.get(index)) for index, source in enumerate(sources)]
    return result + [(None, target) for target in free]


def make_plan(variables, table, targets, *, keep="trainable", ema_shadows=None,
              resolve_parameters=None, cell_facts=(), partitioned=None):
    """Plans a conversion from metadata alone.

    Args:
        variables: dict of checkpoint key to `migrate.source.checkpoint.SourceVariable`.
        table: a `migrate.MappingTable`.
        targets: dict of path to `migrate.planning.target.TargetWeight`.
        keep: "trainable" (default) or "model_state" (also carry the model's
            non-trainable weights, such as BatchNorm statistics).
        ema_shadows: when given, a dict of variable key to the key of its
            `ExponentialMovingAverage` shadow, read in its place.
        resolve_parameters: optional `(layout name, TF1 scope, parameters) ->
            parameters`, which fills parameters the table left unset (for
            example an LSTM's forget_bias read from the graph).
        cell_facts: what the legacy graph shows about its RNN cells (each an
            `LstmGraphFacts`); a cell that Keras cannot reproduce (projection,
            peepholes, clipping) is a problem whatever rules claim its variables.
        partitioned: what the legacy graph shows about its partitioned
            variables (`{key: migrate.source.lookups.PartitionedVariable}`); a
            rule that reorders a 'div' lookup's rows with `unpartition_mod`, or
            leaves a 'mod' lookup's rows in saved order, is a problem.

    Returns:
        A `ConversionPlan`; check `problems` or call `raise_for_problems()`.

    Raises:
        ArgumentError: `keep` is not one of `KEEP_MODES`.
    """
    if keep not in KEEP_MODES:
        raise ArgumentError(f"Expected keep to be one of {', '.join(KEEP_MODES)}. "
                            f"Received: keep={keep!r}")
    kept_roles = KEEP_MODES[keep]
    ema_shadows = ema_shadows or {}
    plan = ConversionPlan(keep=keep, left_out={role: [] for role in Role})
    layout_groups = collections.OrderedDict()
    filled = collections.defaultdict(list)

    for name, variable in variables.items():
        if variable.role not in kept_roles and variable.role is not Role.UNKNOWN:
            plan.left_out[variable.role].append(variable)
            continue
        found = table.lookup(name)
        if (found is None and variable.role is Role.UNKNOWN and keep == "trainable"
                and variable.role_source is not RoleSource.NAME_RULE):
            # The graph says it is not trainable (e.g. a string `vocab_path`),
            # so a trainable-only conversion leaves it out, counted; without a
            # graph, names cannot tell, and the table must decide.
            plan.left_out[Role.UNKNOWN].append(variable)
            continue
        if found is None:
            kind = "unknown role" if variable.role is Role.UNKNOWN else "unmapped"
            hint = ("its role is unknown (not trainable, not a slot, step or statistic); map it or "
                    "add a rule with drop = true" if variable.role is Role.UNKNOWN
                    else f"no rule matches this {variable.role.value} variable")
            plan.problems.append(Problem(kind, hint, name, variable.shape))
            continue
        if found.rule.drop:
            plan.dropped.append((variable, found.rule.index))
            continue
        plan.kept.append(variable)
        read_key = ema_shadows.get(name, name)
        if read_key != name:
            plan.ema_swapped += 1
        if found.rule.layout is not None:
            group = layout_groups.setdefault((found.rule.index, found.scope), {
                "rule": found.rule, "targets": (found.target, *(scope for scope, _ in found.also)),
                "scope": found.scope, "parts": {}})
            group["parts"][found.part] = (variable, read_key)
            continue
        _plan_plain(plan, found, variable, read_key, targets, filled)

    for group in layout_groups.values():
        _plan_layout(plan, group, targets, filled, resolve_parameters)

    _check_cells(plan, cell_facts)
    _check_partitions(plan, partitioned or {}, variables, targets)

    required = {path for path, weight in targets.items() if weight.trainable or keep == "model_state"}
    required -= _leave_as_built(plan, table, targets, filled)
    for path, sources in sorted(filled.items()):
        if len(sources) > 1:
            plan.problems.append(Problem(
                "collision", f"{len(sources)} sources land on this target: {', '.join(sources)}",
                target=path, target_shape=targets[path].shape))
        elif path in targets and path not in required:
            plan.problems.append(Problem(
                "not kept", "the target is a non-trainable weight; it is written only with "
                "keep=model_state", sources[0], None, path, targets[path].shape))
    for path in sorted(required - set(filled)):
        plan.problems.append(Problem(
            "unfilled", "no source variable fills this target weight",
            target=path, target_shape=targets[path].shape))
    left = {weight.path for weight, _ in plan.left_as_built}
    plan.unwritten_targets = [targets[path] for path in sorted(set(targets) - required - left)]
    return plan


def _leave_as_built(plan, table, targets, filled):
    """Records the targets `leave` rules leave as the model built them; returns their paths.

    A target that a rule also fills, and a `leave` rule that names no weight
    of the model (a typo would otherwise leave nothing, silently), are problems.
    """
    left, used = set(), set()
    for path in sorted(targets):
        rule = table.left_as_built(path)
        if rule is None:
            continue
        used.add(rule.index)
        if path in filled:
            plan.problems.append(Problem(
                "collision", f"{rule.describe()} leaves it as the model built it, but "
                f"{', '.join(filled[path])} fill(s) it: remove one of them",
                target=path, target_shape=targets[path].shape))
            continue
        plan.left_as_built.append((targets[path], rule))
        left.add(path)
    for rule in table.rules:
        if rule.leave and rule.index not in used:
            plan.problems.append(Problem(
                "no such target", f"{rule.describe()} leaves no weight: the model has none "
                f"whose path it matches{_suggest(rule.match, targets)}"))
    return left


def _plan_plain(plan, found, variable, read_key, targets, filled):
    """Plans a plain rule: its one source read once, into `target` and any `also` targets."""
    rule = found.rule
    wanted = ((found.target, rule.transforms), *found.also)
    for path, _ in wanted:
        filled[path].append(variable.name)
    planned = []
    for path, steps in wanted:
        target = _plan_plain_target(plan, rule, variable, path, steps, targets)
        if target is None:
            return
        planned.append((target.path, steps))
    plan.assignments.append(Assignment(
        rule, (variable.name,), (read_key,), tuple(path for path, _ in planned),
        target_transforms=tuple(steps for _, steps in planned) if found.also else ()))


def _plan_plain_target(plan, rule, variable, path, steps, targets):
    """Checks one target of a plain rule; returns its `TargetWeight`, or None after a problem."""
    target = targets.get(path)
    if target is None:
        plan.problems.append(Problem(
            "no such target", f"{rule.describe()} names a weight the model does not have"
            f"{_suggest(path, targets)}", variable.name, variable.shape, path))
        return None
    try:
        shape, dtype = transforms_lib.output_spec(steps, variable.shape, variable.dtype)
    except transforms_lib.TransformError as error:
        plan.problems.append(Problem("transform", f"{rule.describe()}: {error}",
                                     variable.name, variable.shape, target.path, target.shape))
        return None
    if shape != target.shape:
        after = f" after {', '.join(map(str, steps))}" if steps else ""
        plan.problems.append(Problem(
            "shape mismatch", f"{rule.describe()} gives shape {_shape(shape)}{after}",
            variable.name, variable.shape, target.path, target.shape))
        return None
    if dtype != target.dtype:
        plan.problems.append(Problem(
            "dtype mismatch", f"{rule.describe()} gives {dtype}, the target is {target.dtype}; "
            f"add transform cast({target.dtype}) if the conversion is intended",
            variable.name, variable.shape, target.path, target.shape))
        return None
    return target


def _plan_layout(plan, group, targets, filled, resolve_parameters):
    """Plans a layout rule's scope: its parts converted once, into the rule's Keras scope and
    any `also` scopes (each gets every converted part)."""
    rule, scope, target_scopes = group["rule"], group["scope"], group["targets"]
    target_scope = target_scopes[0]
    converter = layouts.get(rule.layout)
    parameters = dict(rule.parameters)
    present = group["parts"]
    failed = False
    scope_parts = converter.targets(parameters)
    target_parts = scope_parts * len(target_scopes)
    target_paths = tuple(f"{keras_scope}/{part}" for keras_scope in target_scopes
                         for part in scope_parts)
    for path in target_paths:
        filled[path].append(f"{scope} ({rule.layout})")
        if path not in targets:
            plan.problems.append(Problem(
                "no such target", f"{rule.describe()}: layout {rule.layout!r} fills a weight the "
                f"model does not have{_suggest(path, targets)}", scope, None, path))
            failed = True
    if resolve_parameters is not None:
        try:
            parameters = resolve_parameters(rule.layout, scope, parameters)
        except layouts.LayoutError as error:
            plan.problems.append(Problem("layout", f"{rule.describe()}: {error}", scope))
            return
    by_reason = {}
    for part, reason in converter.unsupported_parts.items():
        if part in present:
            by_reason.setdefault(reason, []).append(present[part][0])
    for reason, unsupported in by_reason.items():
        unsupported = sorted(unsupported, key=lambda variable: variable.name)
        # One line per reason: a peephole cell's three vectors are one fact.
        others = "".join(f", {variable.name} {_shape(variable.shape)}"
                         for variable in unsupported[1:])
        plan.problems.append(Problem(
            "unsupported", f"{rule.describe()}: layout {rule.layout!r} cannot convert "
            f"{'them' if others else 'it'}{others and ' (with' + others[1:] + ')'}: {reason}",
            unsupported[0].name, unsupported[0].shape))
        failed = True
    source_parts = converter.sources(parameters)
    for part in source_parts:
        if part not in present:
            plan.problems.append(Problem(
                "missing part", f"{rule.describe()}: layout {rule.layout!r} needs "
                f"{scope}/{part}, which the checkpoint does not hold", f"{scope}/{part}"))
            failed = True
    if failed:
        return
    sources = [present[part][0] for part in source_parts]
    # The converter sees the first scope's shapes; each further scope must have the same.
    target_shapes = {part: targets[path].shape
                     for part, path in zip(scope_parts, target_paths[:len(scope_parts)])}
    try:
        shapes = converter.output_shapes({part: variable.shape for part, variable
                                          in zip(source_parts, sources)}, target_shapes, parameters)
    except layouts.LayoutError as error:
        plan.problems.append(Problem("layout", f"{rule.describe()}: {error}", scope, None,
                                     target_scope))
        return
    for part, path in zip(target_parts, target_paths):
        produced = tuple(shapes[part])
        if produced != targets[path].shape:
            plan.problems.append(Problem(
                "shape mismatch", f"{rule.describe()}: layout {rule.layout!r} gives "
                f"{_shape(produced)}", f"{scope}/{part}", None, path, targets[path].shape))
            failed = True
        if sources[0].dtype != targets[path].dtype:
            plan.problems.append(Problem(
                "dtype mismatch", f"{rule.describe()}: the sources are {sources[0].dtype}, "
                f"the target is {targets[path].dtype}", scope, None, path, targets[path].shape))
            failed = True
    if failed:
        return
    plan.assignments.append(Assignment(
        rule, tuple(variable.name for variable in sources),
        tuple(present[part][1] for part in source_parts), target_paths, tuple(source_parts),
        tuple(target_parts), parameters, tuple(targets[path].shape for path in target_paths)))


def _check_cells(plan, cell_facts):
    """Adds a problem for each kept cell the graph shows Keras cannot reproduce.

    A projection mapped by a plain rule onto a Dense after a Keras LSTM plans
    fine by shapes, but TF1 feeds the projected state back into the recurrence.
    Cells whose rules already reported a problem are not reported twice.
    """
    kept = [variable.name for variable in plan.kept]
    reported = [problem.source for problem in plan.problems if problem.source]
    for facts in cell_facts:
        prefix = facts.scope + "/"
        claimed = [name for name in kept if name.startswith(prefix)]
        if not claimed or any(source == facts.scope or source.startswith(prefix)
                              for source in reported):
            continue
        # Which layout a fused op's gate order needs is the rule's to judge;
        # here only what no keras.layers.LSTM can do.
        for reason in dataclasses.replace(facts, cell_op=None).problems():
            plan.problems.append(Problem(
                "graph", f"the legacy graph shows {reason}; rules claiming "
                f"{', '.join(claimed)} cannot reproduce it", facts.scope))


def _check_partitions(plan, partitioned, variables, targets):
    """Adds a problem for each rule whose `unpartition_mod` contradicts the graph's lookup.

    Only the rule's own `target` is the lookup's (an Embedding): a tied `also`
    target, such as an output projection, reads the parts as saved.
    """
    for assignment in plan.assignments:
        facts = partitioned.get(assignment.sources[0])
        if assignment.rule.layout is not None or facts is None or facts.strategy is None:
            continue
        variable = variables[assignment.sources[0]]
        for target, steps in zip(assignment.targets[:1], assignment.transforms_by_target()):
            reorders = [step for step in steps if step.name == "unpartition_mod"]
            wanted = facts.transform()
            if wanted is None and reorders:
                message = (f"{assignment.rule.describe()} reorders its rows with {reorders[0]}, "
                           f"but the graph looks it up with partition_strategy='div', which "
                           f"keeps the saved rows in order; remove the transform")
            elif wanted is not None and [str(step) for step in reorders] != [wanted]:
                given = f"gives {', '.join(map(str, reorders))}" if reorders else "has none"
                message = (f"{assignment.rule.describe()} {given}, but the graph looks it up "
                           f"with partition_strategy='mod' from {facts.partitions} partitions "
                           f"(id i is row i // {facts.partitions} of partition "
                           f"i % {facts.partitions}); add transform {wanted} first")
            else:
                continue
            plan.problems.append(Problem("partition", message, variable.name, variable.shape,
                                         target, targets[target].shape))


def _suggest(path, targets):
    close = difflib.get_close_matches(path, list(targets), n=1)
    return f" (closest model weight: {close[0]!r})" if close else ""
