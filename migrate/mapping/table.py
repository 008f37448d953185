"""Mapping tables: ordered rules from TF1 variable names to Keras weight paths.

A table is TOML data, never code. Rules are tried in order and the first
rule whose `match` fully matches a TF1 name wins:

    [[rule]]
    match = 'vgg_16/conv(\\d)/conv\\d_(\\d)/weights'
    target = 'block\\1_conv\\2/kernel'
    transform = ["reshape(-1, 4096)"]     # optional, left to right

    [[rule]]
    match = 'vgg_16/fc8/.*'
    drop = true                            # left out on purpose, counted

    [[rule]]
    match = 'encoder/w(\\d)'              # tied weights: one source, several targets
    target = 'encoder_\\1/kernel'
    also = [{target = 'decoder_\\1/kernel', transform = ["transpose(1, 0)"]}]

    [[rule]]
    match = 'rnn/multi_rnn_cell/cell_(\\d)/lstm_cell'   # a TF1 scope
    layout = 'lstm'                                      # see migrate.mapping.layouts
    target = 'lstm_\\1/lstm_cell'                        # a Keras scope
    forget_bias = 1.0                                    # converter parameter

    [[rule]]
    match = 'birnn/fw/lstm_cell'          # one cell run both ways: a shared scope
    layout = 'lstm'                       # fills both directions of a Bidirectional
    target = 'birnn/forward_lstm/lstm_cell'
    also = [{target = 'birnn/backward_lstm/lstm_cell'}]

    [[rule]]
    leave = 'normalization/(mean|variance|count)'   # Keras weight paths, no source
    reason = 'preprocessing statistics the model sets itself'

A `leave` rule names target weights the conversion leaves as the model built
them, with its reason: no TF1 variable fills them (preprocessing statistics,
a pooler the legacy model never had). They are counted in the plan and the
report; a weight a rule also fills, or a `leave` that names no weight of the
model, is a plan problem.

Example:

>>> table = MappingTable.from_text('''
... [[rule]]
... match = 'dense/(kernel|bias)'
... target = 'classifier/\\\\1'
... ''')
>>> table.lookup("dense/kernel").target
'classifier/kernel'
>>> MappingTable.from_text('''
... [[rule]]
... leave = 'normalization/(mean|variance)'
... reason = 'preprocessing statistics'
... ''').left_as_built("normalization/mean").reason
'preprocessing statistics'
"""

import dataclasses
import hashlib
import re
import tomllib
from typing import Any, Mapping

from migrate import files
from migrate.errors import TableError
from migrate.errors import reason
from migrate.mapping import layouts
from migrate.mapping import pattern_cost
from migrate.mapping import transforms as transforms_lib

_RULE_KEYS = frozenset({"match", "target", "transform", "drop", "layout", "also"})
_LEAVE_KEYS = frozenset({"leave", "reason"})
_ALSO_KEYS = frozenset({"target", "transform"})
_TABLE_KEYS = frozenset({"rule", "description"})
_GROUP_REFERENCE = re.compile(r"\\(\d+)|\\g<(\w+)>")
# TF1 op names are short; a bound on what a pattern is asked to match keeps
# even a slow pattern's worst case small.
MAX_NAME_LENGTH = 1024
# Backtracking steps a pattern may need on the worst name of MAX_NAME_LENGTH
# characters (see migrate.pattern_cost): about a tenth of a second of matching.
# `(.*)/(.*)/x` needs about 10^6; `(.*)/(.*)/(.*)/x` about 10^9.
MAX_PATTERN_STEPS = 10**7


@dataclasses.dataclass(frozen=True)
class Rule:
    """One table rule; `index` is its 1-based position in the table.

    `also` holds, for tied weights, the further `(target, transforms)` its one
    source fills besides `target` (the table's `also = [{target, transform}]`);
    for a layout rule, further Keras scopes the converted weights fill (a
    cell both directions of a bidirectional RNN share), without transforms.
    A `leave` rule (`leave` True) matches Keras weight paths, not TF1 names:
    `match` and `pattern` are its `leave` regex, `reason` says why the model
    sets those weights itself.
    """

    index: int
    match: str
    pattern: re.Pattern
    target: str | None = None
    transforms: tuple = ()
    drop: bool = False
    layout: str | None = None
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    also: tuple = ()
    leave: bool = False
    reason: str = ""

    def describe(self):
        return f"rule {self.index} ({'leave' if self.leave else 'match'} {self.match!r})"


@dataclasses.dataclass(frozen=True)
class RuleMatch:
    """A TF1 name matched by a rule.

    Attributes:
        rule: the winning rule.
        source: the TF1 name.
        target: the Keras weight path (for a layout rule: the Keras scope);
            `None` when the rule drops the name.
        scope: for a layout rule, the TF1 scope that `rule.match` matched.
        part: for a layout rule, the name's part under that scope.
        also: the further `(target path, transforms)` of a tied-weights rule
            (for a layout rule: `(Keras scope, ())`).
    """

    rule: Rule
    source: str
    target: str | None
    scope: str | None = None
    part: str | None = None
    also: tuple = ()


class MappingTable:
    """An ordered list of `Rule`s read from TOML.

    Attributes:
        rules: the rules in table order.
        origin: the file the table came from, or a description.
        sha256: hex digest of the table's bytes, for manifests and resuming.
        description: the table's optional `description`.
    """

    def __init__(self, rules, *, origin="<table>", sha256="", description=""):
        self.rules = tuple(rules)
        self.origin = origin
        self.sha256 = sha256
        self.description = description

    @classmethod
    def empty(cls, origin="<empty table>"):
        """Returns a table with no rules: planned against a model, it lists everything unmatched.

        >>> len(MappingTable.empty())
        0
        """
        return cls((), origin=origin, sha256=hashlib.sha256(b"").hexdigest())

    @classmethod
    def load(cls, path):
        """Reads a table from a TOML file.

        Raises:
            TableError: the file cannot be read or the table is not valid; the
                message names the file, the rule index and the problem.
        """
        path = str(path)
        try:
            # Local tables are read without importing TensorFlow, so `lint` stays fast.
            data = files.read_bytes(path)
        except Exception as error:  # OSError, or tf.errors.NotFoundError and friends for a URL.
            why = error.strerror if isinstance(error, OSError) and error.strerror else None
            raise _unreadable(path, why or reason(error)) from None
        return cls.from_bytes(data, origin=path)

    @classmethod
    def from_text(cls, text, origin="<string>"):
        """Reads a table from TOML text."""
        return cls.from_bytes(text.encode("utf-8"), origin=origin)

    @classmethod
    def from_bytes(cls, data, origin="<bytes>"):
        try:
            document = tomllib.loads(data.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise TableError(f"Mapping table {origin} is not valid TOML: {error}. Expected a "
                             f"UTF-8 TOML document of [[rule]] entries. Received: "
                             f"table={origin!r}") from None
        unknown = sorted(set(document) - _TABLE_KEYS)
        if unknown:
            raise TableError(
                f"Mapping table {origin} has unknown top-level key(s). Expected only [[rule]] "
                f"entries and an optional description. Received: {', '.join(unknown)}")
        entries = document.get("rule", [])
        if not isinstance(entries, list) or not entries:
            raise TableError(f"Mapping table {origin} has no [[rule]] entries. Expected at least "
                             f"one. Received: rule={entries!r}")
        rules = [_parse_rule(index, entry, origin) for index, entry in enumerate(entries, 1)]
        return cls(rules, origin=origin, sha256=hashlib.sha256(data).hexdigest(),
                   description=str(document.get("description", "")))

    def lookup(self, name):
        """Returns the `RuleMatch` of the first rule that fully matches `name`, or None."""
        if len(name) > MAX_NAME_LENGTH:
            raise TableError(f"TF1 name is longer than {MAX_NAME_LENGTH} characters. Expected a "
                             f"shorter name. Received: name={name[:80]!r}... ({len(name)} "
                             f"characters)")
        for rule in self.rules:
            found = _match_rule(rule, name)
            if found is not None:
                return found
        return None

    def left_as_built(self, path):
        """Returns the first `leave` rule that fully matches the Keras weight `path`, or None."""
        return next((rule for rule in self.rules
                     if rule.leave and rule.pattern.fullmatch(path) is not None), None)

    def matches(self, name):
        """Returns every rule's `RuleMatch` for `name`, in table order (the first one wins)."""
        return [found for found in (_match_rule(rule, name) for rule in self.rules)
                if found is not None]

    def __len__(self):
        return len(self.rules)

    def __repr__(self):
        return f"MappingTable({self.origin!r}, {len(self.rules)} rules)"


def load_table(table):
    """Returns a `MappingTable` for a path, the table itself, or an empty table for None.

    Example:

    >>> load_table(None).rules
    ()
    """
    if table is None:
        return MappingTable.empty()
    return table if isinstance(table, MappingTable) else MappingTable.load(table)


def _match_rule(rule, name):
    if rule.leave:
        return None  # It names Keras weights, never a TF1 variable.
    if rule.layout is None:
        match = rule.pattern.fullmatch(name)
        if match is None:
            return None
        target = None if rule.drop else match.expand(rule.target)
        also = tuple((match.expand(extra), steps) for extra, steps in rule.also)
        return RuleMatch(rule, name, target, also=also)
    converter = layouts.get(rule.layout)
    parts = converter.sources(rule.parameters) + tuple(converter.unsupported_parts)
    for part in parts:
        if name.endswith("/" + part):
            scope = name[:-len(part) - 1]
            match = rule.pattern.fullmatch(scope)
            if match is not None:
                target = None if rule.drop else match.expand(rule.target)
                also = tuple((match.expand(extra), steps) for extra, steps in rule.also)
                return RuleMatch(rule, name, target, scope=scope, part=part, also=also)
    return None


def _parse_rule(index, entry, origin):
    where = f"Rule {index} of mapping table {origin}"
    if not isinstance(entry, dict):
        raise TableError(f"{where} is not a table of keys. Expected match = ..., target = ... "
                         f"entries. Received: {entry!r}")
    if "leave" in entry:
        return _parse_leave(index, entry, where)
    layout_name = entry.get("layout")
    allowed = set(_RULE_KEYS)
    converter = None
    if layout_name is not None:
        try:
            converter = layouts.get(layout_name)
        except layouts.LayoutError as error:
            raise TableError(f"{where}: {error}") from None  # Names the layout received.
        allowed |= set(converter.parameters)
    _refuse_unknown_keys(where, entry, allowed)
    match_text = entry.get("match")
    if not isinstance(match_text, str) or not match_text:
        raise TableError(f"{where} needs `match` (or `leave`, for target weights the model "
                         f"sets itself). Expected a regular expression string. "
                         f"Received: match={match_text!r}")
    pattern = _compile(match_text, where, "match")
    drop = entry.get("drop", False)
    if not isinstance(drop, bool):
        raise TableError(f"{where}: `drop` must be true or false. Received: drop={drop!r}")
    target = entry.get("target")
    if drop and target is not None:
        raise TableError(f"{where} has both `drop` and `target`; a rule either maps or drops. "
                         f"Expected one of them. Received: drop=true, target={target!r}")
    if not drop:
        if not isinstance(target, str) or not target:
            raise TableError(f"{where} needs `target` (a Keras weight path) or `drop = true`. "
                             f"Expected a non-empty string. Received: target={target!r}")
        _check_group_references(target, pattern, where)
    transform_texts = entry.get("transform", [])
    if isinstance(transform_texts, str):
        transform_texts = [transform_texts]
    if not isinstance(transform_texts, list):
        raise TableError(f"{where}: `transform` must be a list of strings. "
                         f"Received: transform={transform_texts!r}")
    if transform_texts and (drop or converter is not None):
        raise TableError(f"{where}: `transform` applies only to a rule with a plain `target`. "
                         f"Expected no transform with `drop` or `layout`. "
                         f"Received: transform={transform_texts!r}")
    try:
        parsed = transforms_lib.parse_all(transform_texts)
    except transforms_lib.TransformError as error:
        raise TableError(f"{where}: `transform` is not valid: {error}") from None
    also = _parse_also(entry.get("also"), pattern, where, drop=drop,
                       layout=None if converter is None else layout_name)
    parameters = {}
    if converter is not None:
        parameters = dict(converter.parameters)
        parameters.update({key: value for key, value in entry.items() if key not in _RULE_KEYS})
        try:
            # Converters whose parts come from parameters check them here, so a
            # bad key fails when the table is read, not halfway through a plan.
            converter.sources(parameters)
            converter.targets(parameters)
        except layouts.LayoutError as error:
            raise TableError(f"{where}: layout {layout_name!r}: {error}") from None
    return Rule(index=index, match=match_text, pattern=pattern, target=target,
                transforms=parsed, drop=drop, layout=layout_name, parameters=parameters,
                also=also)


def _parse_leave(index, entry, where):
    """Reads `leave = 'regex'` and `reason = '...'`: target weights the model sets itself."""
    _refuse_unknown_keys(f"{where} (a `leave` rule)", entry, _LEAVE_KEYS)
    text, why = entry.get("leave"), entry.get("reason")
    if not isinstance(text, str) or not text:
        raise TableError(f"{where}: `leave` names the Keras weights the model sets itself. "
                         f"Expected a regular expression string. Received: leave={text!r}")
    if not isinstance(why, str) or not why.strip():
        raise TableError(f"{where}: `leave` needs `reason`, why the model sets these weights "
                         f"itself (e.g. 'preprocessing statistics'). Expected a non-empty "
                         f"string. Received: reason={why!r}")
    pattern = _compile(text, where, "leave")
    return Rule(index=index, match=text, pattern=pattern, leave=True, reason=why.strip())


def _compile(text, where, key):
    """Compiles a rule's regex, refusing one that is invalid or may backtrack for too long."""
    try:
        pattern = re.compile(text)
    except re.error as error:
        raise TableError(f"{where}: `{key}` {text!r} is not a valid regex: {error}. "
                         f"Expected a Python regular expression. Received: {key}={text!r}"
                         ) from None
    _check_backtracking(pattern, where)
    _check_cost(pattern, where)
    return pattern


def _parse_also(entries, pattern, where, *, drop, layout):
    """Reads `also = [{target = ..., transform = [...]}, ...]`: more targets of one source.

    On a layout rule each entry is a further Keras scope, without `transform`:
    the converter's weights fill it as they fill `target`.
    """
    if entries is None:
        return ()
    if drop:
        raise TableError(f"{where}: `also` applies only to a rule with a `target`. "
                         f"Expected no `also` with `drop`. Received: also={entries!r}")
    if not isinstance(entries, list) or not entries:
        raise TableError(f"{where}: `also` must be a non-empty list of tables, e.g. also = "
                         f"[{{target = 'decoder/kernel', transform = ['transpose(1, 0)']}}]. "
                         f"Received: also={entries!r}")
    also = []
    for position, extra in enumerate(entries, 1):
        here = f"{where}, `also` entry {position},"
        if not isinstance(extra, dict):
            raise TableError(f"{here} is not a table. Expected {{target = ..., transform = "
                             f"[...]}}. Received: {extra!r}")
        _refuse_unknown_keys(here, extra, _ALSO_KEYS if layout is None else {"target"})
        target = extra.get("target")
        if not isinstance(target, str) or not target:
            raise TableError(f"{here} needs `target` (a Keras weight path). Expected a "
                             f"non-empty string. Received: target={target!r}")
        _check_group_references(target, pattern, here)
        texts = extra.get("transform", [])
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list):
            raise TableError(f"{here} `transform` must be a list of strings. "
                             f"Received: transform={texts!r}")
        try:
            also.append((target, transforms_lib.parse_all(texts)))
        except transforms_lib.TransformError as error:
            raise TableError(f"{here} `transform` is not valid: {error}") from None
    return tuple(also)


def _refuse_unknown_keys(where, entry, allowed):
    """Refuses keys of a rule (or of one of its `also` entries) that the table format lacks."""
    unknown = sorted(set(entry) - set(allowed))
    if unknown:
        raise TableError(f"{where} has unknown key(s) {unknown}. Expected: {sorted(allowed)}. "
                         f"Received: {', '.join(unknown)}")


def _check_group_references(target, pattern, where):
    for reference in _GROUP_REFERENCE.finditer(target):
        number, name = reference.groups()
        if number is not None and int(number) > pattern.groups:
            raise TableError(
                f"{where}: `target` refers to group {number} but `match` has "
                f"{pattern.groups} group(s). Received: target={target!r}")
        if name is not None and not name.isdigit() and name not in pattern.groupindex:
            raise TableError(f"{where}: `target` refers to unknown group {name!r}. Expected a "
                             f"group that `match` names. Received: target={target!r}")


def _check_backtracking(pattern, where):
    """Refuses repetition that can make a regex take exponential time.

    Python's `re` backtracks; a repeated group whose body can match the same
    text in several ways (`(a+)+`, `(a|a?)+`, `(a|aa)+`) explodes on names
    that almost match. Inside an unbounded repeat we therefore refuse other
    repeats and alternations. Table rules never need them: write `(a|b)`
    without a repeat around it, or `[ab]+`.
    """
    import re._parser as parser  # The standard library's own regex parser.

    repeats = (parser.MAX_REPEAT, parser.MIN_REPEAT)

    def refuse(construct):
        raise TableError(
            f"{where}: `match` has {construct} inside an unbounded repetition, which can take "
            f"exponential time on some names. Expected a pattern without, e.g. '(a+)+' "
            f"rewritten as 'a+' or '(a|b)+' as '[ab]+'. Received: match={pattern.pattern!r}")

    def walk(items, inside_unbounded):
        for operation, argument in items:
            if operation in repeats:
                _, high, body = argument
                if inside_unbounded:
                    refuse("a repetition")
                walk(body, inside_unbounded or high == parser.MAXREPEAT or high > 64)
            elif operation == parser.BRANCH:
                if inside_unbounded:
                    refuse("an alternation")
                for branch in argument[1]:
                    walk(branch, inside_unbounded)
            elif operation == parser.SUBPATTERN:
                walk(argument[-1], inside_unbounded)
            elif operation in (parser.ASSERT, parser.ASSERT_NOT):
                walk(argument[1], inside_unbounded)
            elif operation == parser.ATOMIC_GROUP:
                walk(argument, False)
            elif operation == parser.POSSESSIVE_REPEAT:
                walk(argument[2], False)

    walk(parser.parse(pattern.pattern), False)


def _check_cost(pattern, where):
    """Refuses flat patterns whose repeats multiply, such as `(.*)/(.*)/(.*)/x` or `(a?){30}`."""
    steps = pattern_cost.worst_case_steps(pattern, name_length=MAX_NAME_LENGTH)
    if steps > MAX_PATTERN_STEPS:
        raise TableError(
            f"{where}: `match` may need about 10^{len(str(steps)) - 1} backtracking steps on a "
            f"{MAX_NAME_LENGTH}-character name (the limit is "
            f"10^{len(str(MAX_PATTERN_STEPS)) - 1}) because its repeats can trade characters. "
            f"Expected repeats that cannot, e.g. '(.*)/(.*)/(.*)' rewritten as "
            f"'([^/]*)/([^/]*)/(.*)'. Received: match={pattern.pattern!r}")


def _unreadable(path, why):
    return TableError(f"Cannot read mapping table {path}: {why}. Expected a readable TOML "
                      f"file. Received: table={path!r}")

