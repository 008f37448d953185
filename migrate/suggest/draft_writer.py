"""Writes a draft table: a rule per match, repeats folded into regex groups, each with evidence."""

import dataclasses
import re

from migrate.mapping.table import MappingTable

_DIGITS = re.compile(r"(\d+)")
_DROP_PREFIX_DEPTH = 2
UNRESOLVED_MARK = "UNRESOLVED"
AMBIGUOUS_MARK = "AMBIGUOUS"


@dataclasses.dataclass
class DraftRule:
    """One rule of the draft before it is written.

    Attributes:
        members: `(source name, target name)` pairs the rule stands for
            (target None for a drop); one pair before folding.
        transforms: transform texts.
        layout: layout name, or None.
        drop: the rule drops its sources.
        evidence: words for the comment.
        certain: False when order alone chose between equal candidates.
        leaves: after leaf folding, the shared last name components.
        match: the rule's regex, once set by folding or `literal()`.
        target: the rule's target (with group references), None for a drop.
        folded_from: the rules a number fold merged, for keeping table order.
        also: for tied weights, further `(target, transforms)` of the one source.
        parameters: a layout's parameters, `(key, value)` pairs (a `split`
            rule's `source_part`, `target_parts`, `axis`, `reshape`).
        leave: a `leave` rule: `match` names Keras weights the model sets
            itself (`members` are `(weight path, None)`), `reason` says why.
        reason: a `leave` rule's reason.
        decided_by: what chose an uncertain pair (dataflow, shape, name, order).
    """

    members: list
    transforms: tuple = ()
    layout: str | None = None
    drop: bool = False
    evidence: str = ""
    certain: bool = True
    leaves: tuple = ()
    match: str = ""
    target: str | None = None
    folded_from: tuple = ()
    also: tuple = ()
    parameters: tuple = ()
    leave: bool = False
    reason: str = ""
    decided_by: str = ""

    def literal(self):
        """Sets `match` and `target` for a rule standing for one pair."""
        source, target = self.members[0]
        self.match = re.escape(source)
        self.target = None if self.drop else _escape_target(target)
        return self


def _escape_target(text):
    return text.replace("\\", "\\\\")


def fold(rules):
    """Folds rules that differ only in numbers, or in a shared last name component.

    `a/conv1/weights -> block1/kernel` and `a/conv2/weights -> block2/kernel`
    become `a/conv(\\d+)/weights -> block\\1/kernel`; `bn/beta -> bn/beta`
    and `bn/gamma -> bn/gamma` become `bn/(beta|gamma) -> bn/\\1`. Numbers in
    the target must repeat one of the source's in every member, or the rules
    stay apart.

    Args:
        rules: `DraftRule`s with one member each, in table order.

    Returns:
        The folded `DraftRule`s with `match` and `target` set, in the order of
        their first member.
    """
    leaf_folded = _fold_leaves(rules)
    groups = {}
    for rule in leaf_folded:
        source, target = rule.members[0]
        key = (tuple(_DIGITS.split(_stem(source, rule))[0::2]),
               None if target is None else tuple(_DIGITS.split(_stem(target, rule))[0::2]),
               rule.transforms, rule.layout, rule.drop, rule.certain, rule.leaves,
               rule.parameters, rule.decided_by)
        groups.setdefault(key, []).append(rule)
    folded = []
    for group in groups.values():
        made = _fold_numbers(group) if len(group) > 1 else None
        if made is None:
            folded.extend(_with_leaves(rule) for rule in group)
        else:
            folded.append(made)
    order = {id(rule): index for index, rule in enumerate(leaf_folded)}
    first = {}
    for rule in folded:
        indices = [order[id(member)] for member in rule.folded_from]
        first[id(rule)] = min(indices or [order.get(id(rule), len(order))])
    return sorted(folded, key=lambda rule: first[id(rule)])


def _stem(name, rule):
    return name.rpartition("/")[0] if rule.leaves else name


def _fold_leaves(rules):
    groups, order = {}, []
    for rule in rules:
        source, target = rule.members[0]
        source_stem, _, source_leaf = source.rpartition("/")
        target_stem, _, target_leaf = (target or "").rpartition("/")
        if (rule.layout is None and not rule.drop and source_stem and target_stem
                and source_leaf == target_leaf and not _DIGITS.search(source_leaf)):
            key = (source_stem, target_stem, rule.transforms, rule.certain, rule.decided_by)
            if key in groups:
                groups[key].append(rule)
                continue
            groups[key] = [rule]
        order.append(rule)
    merged = []
    for rule in order:
        source, target = rule.members[0]
        key = (source.rpartition("/")[0], (target or "").rpartition("/")[0], rule.transforms,
               rule.certain, rule.decided_by)
        group = groups.get(key) if rule.layout is None and not rule.drop else None
        if group and group[0] is rule and len(group) > 1:
            merged.append(DraftRule(
                members=[member for item in group for member in item.members],
                transforms=rule.transforms, evidence=rule.evidence, certain=rule.certain,
                decided_by=rule.decided_by,
                leaves=tuple(item.members[0][0].rpartition("/")[2] for item in group)))
        else:
            merged.append(rule)
    return merged


def _with_leaves(rule):
    if not rule.leaves:
        return rule.literal()
    source, target = rule.members[0]
    alternatives = "|".join(re.escape(leaf) for leaf in rule.leaves)
    rule.match = f"{re.escape(source.rpartition('/')[0])}/({alternatives})"
    rule.target = f"{_escape_target(target.rpartition('/')[0])}/\\1"
    return rule


def _fold_numbers(group):
    sources = [_DIGITS.split(_stem(rule.members[0][0], rule)) for rule in group]
    targets = [None if rule.drop else _DIGITS.split(_stem(rule.members[0][1], rule))
               for rule in group]
    varying = [position for position in range(1, len(sources[0]), 2)
               if len({pieces[position] for pieces in sources}) > 1]
    references = {}
    if targets[0] is not None:
        for position in range(1, len(targets[0]), 2):
            values = [pieces[position] for pieces in targets]
            if len(set(values)) == 1:
                continue
            source_position = next((candidate for candidate in varying if all(
                pieces[candidate] == value for pieces, value in zip(sources, values))), None)
            if source_position is None:
                return None
            references[position] = source_position
    group_number = {}
    for position in varying:
        if position in references.values():
            group_number[position] = len(group_number) + 1
    pattern = []
    for position, piece in enumerate(sources[0]):
        if position % 2 == 0:
            pattern.append(re.escape(piece))
        elif position in group_number:
            pattern.append(r"(\d+)")
        elif position in varying:
            pattern.append(r"\d+")
        else:
            pattern.append(piece)
    first = group[0]
    leaf_group = len(group_number) + 1
    match = "".join(pattern)
    target = None
    if targets[0] is not None:
        target = "".join(
            _escape_target(piece) if position % 2 == 0 else
            (f"\\{group_number[references[position]]}" if position in references else piece)
            for position, piece in enumerate(targets[0]))
    if first.leaves:
        alternatives = "|".join(re.escape(leaf) for leaf in first.leaves)
        match += f"/({alternatives})"
        target = None if target is None else f"{target}/\\{leaf_group}"
    folded = DraftRule(members=[member for rule in group for member in rule.members],
                       transforms=first.transforms, layout=first.layout, drop=first.drop,
                       evidence=first.evidence, certain=first.certain, leaves=first.leaves,
                       match=match, target=target, folded_from=tuple(group),
                       parameters=first.parameters, decided_by=first.decided_by)
    return folded


def fold_drops(rules, mapped_sources):
    """Folds drop rules that share a scope no mapped variable lives in into `scope/.*`.

    Drop rules come after every mapping rule, so a wide drop never takes a
    name from a mapping rule.

    Args:
        rules: drop `DraftRule`s with one member each.
        mapped_sources: the source names that mapping rules take.

    Returns:
        The drop rules, folded where a scope holds only dropped names.
    """
    groups = {}
    for rule in rules:
        name = rule.members[0][0]
        pieces = name.split("/")
        prefix = "/".join(pieces[:_DROP_PREFIX_DEPTH]) if len(pieces) > _DROP_PREFIX_DEPTH else name
        groups.setdefault(prefix, []).append(rule)
    folded = []
    for prefix, group in groups.items():
        inside = any(source.startswith(prefix + "/") for source in mapped_sources)
        if len(group) > 1 and not inside:
            folded.append(DraftRule(
                members=[member for rule in group for member in rule.members], drop=True,
                evidence=group[0].evidence, match=f"{re.escape(prefix)}/.*"))
        else:
            folded.extend(rule.literal() for rule in group)
    return folded


def check_folding(rules, make_text, intended):
    """Returns rules whose table sends every source to its intended target, unfolding if needed.

    Args:
        rules: folded `DraftRule`s.
        make_text: `rules -> TOML text`.
        intended: source variable name -> intended target (rule target or
            None for a drop; for a layout, the target scope).

    Returns:
        The rules, with every fold that sends a name elsewhere undone (all of
        them, if the culprit cannot be found).
    """
    for _ in range(len(rules) + 1):
        table = MappingTable.from_text(make_text(rules), origin="<draft>")
        wrong = None
        for name, target in intended.items():
            found = table.lookup(name)
            if found is None or found.target != target:
                wrong = (found.rule.index - 1) if found is not None else None
                break
        if wrong is None and all(table.lookup(name) is not None for name in intended):
            return rules
        if wrong is None or len(rules[wrong].members) == 1:
            return [dataclasses.replace(rule, members=[member], match="", target=None,
                                        leaves=(), folded_from=()).literal()
                    for rule in rules for member in rule.members]
        rule = rules[wrong]
        rules = rules[:wrong] + [
            dataclasses.replace(rule, members=[member], match="", target=None, leaves=(),
                                folded_from=()).literal()
            for member in rule.members] + rules[wrong + 1:]
    return rules


def toml_text(rules, *, header, footer=()):
    """Returns the draft as TOML text: header comments, rules with comments, footer comments.

    Args:
        rules: `DraftRule`s with `match` and `target` set.
        header: comment lines (without `#`) for the top.
        footer: comment lines for the end (unresolved targets and the like).

    Returns:
        The TOML text.
    """
    lines = _comments(header)
    for rule in rules:
        lines.append("")
        count = len(rule.members)
        example = ""
        if count > 1:
            source, target = rule.members[0]
            example = f"{count} matches, e.g. {source} -> {target or 'dropped'}; "
        certainty = ("for you to confirm" if rule.drop or (rule.leave and not rule.certain)
                     else "certain" if rule.certain
                     else f"not certain (decided by {rule.decided_by})" if rule.decided_by
                     else f"{AMBIGUOUS_MARK}: not certain")
        if rule.leave:
            lines += [f"# {rule.evidence}; {certainty}", "[[rule]]",
                      f"leave = {_quote(rule.match)}", f"reason = {_quote(rule.reason)}"]
            continue
        lines.append(f"# {example}{rule.evidence}; {certainty}")
        lines.append("[[rule]]")
        lines.append(f"match = {_quote(rule.match)}")
        if rule.layout is not None:
            lines.append(f"layout = {_quote(rule.layout)}")
        for key, value in rule.parameters:
            lines.append(f"{key} = {_value(value)}")
        if rule.drop:
            lines.append("drop = true")
        else:
            lines.append(f"target = {_quote(rule.target)}")
        if rule.transforms:
            quoted = ", ".join(_quote(text) for text in rule.transforms)
            lines.append(f"transform = [{quoted}]")
        if rule.also:
            entries = []
            for target, steps in rule.also:
                quoted = ", ".join(_quote(text) for text in steps)
                entries.append(f"{{target = {_quote(_escape_target(target))}"
                               + (f", transform = [{quoted}]}}" if steps else "}"))
            lines.append(f"also = [{', '.join(entries)}]")
    if footer:
        lines.append("")
        lines.extend(_comments(footer))
    return "\n".join(lines) + "\n"


def _comments(texts):
    """Comment lines for `texts`; a text of several lines (a parity report) comments each."""
    return [f"# {line}".rstrip() for text in texts for line in text.splitlines() or [""]]


def _value(value):
    """A layout parameter as TOML: a string, a list of strings, an integer or a boolean."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_quote(item) for item in value) + "]"
    return _quote(value)


def _quote(text):
    if "'" not in text and "\n" not in text:
        return f"'{text}'"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
