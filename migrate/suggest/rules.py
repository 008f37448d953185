"""Drafting the rules of a suggested table from the matches `migrate.suggest` found."""

from migrate.mapping.layouts import feature_columns
from migrate.suggest import draft_writer
from migrate.suggest import items as items_lib
from migrate.suggest import model_sets


def _split_rule(parts):
    """One `split` layout rule for the matches of a fused source's parts (in part order)."""
    parts = sorted(parts, key=lambda match: match.source.split[0])
    scope, _, leaf = parts[0].source.name.rpartition("/")
    names = [match.target.name.split("/") for match in parts]
    common = 0
    while all(len(name) > common + 1 and name[common] == names[0][common] for name in names):
        common += 1
    target = "/".join(names[0][:common])
    reshape = any(tuple(match.target.shape) != tuple(match.source.shape) for match in parts)
    return draft_writer.DraftRule(
        members=[(scope, target)], layout="split", evidence=", ".join(parts[0].evidence),
        certain=all(match.certain for match in parts),
        decided_by=parts[0].decided_by if not all(match.certain for match in parts) else "",
        parameters=(("source_part", leaf),
                    ("target_parts", ["/".join(name[common:]) for name in names]),
                    ("axis", -1), ("reshape", reshape))).literal()


def draft_rules(matches, unmatched_sources, drop_reasons, left=()):
    """The draft's rules: split, tied, folded mapping and drop rules, then `leave` rules."""
    mapping_rules, tied_rules, first_match = [], [], {}
    split_parts = {}
    for match in matches:
        if match.source.split:
            split_parts.setdefault(match.source.name, []).append(match)
    split_rules = [_split_rule(parts) for parts in split_parts.values()]
    matches = [match for match in matches if not match.source.split]
    for match in matches:
        first_match.setdefault(match.source.name, match)
    for match in matches:
        primary = first_match[match.source.name]
        if match is not primary:
            continue
        tied = [other for other in matches
                if other is not match and other.source.name == match.source.name]
        rule = draft_writer.DraftRule(
            members=[(match.source.name, _rule_target(match))], transforms=match.transforms,
            layout=match.source.layout, parameters=_rule_parameters(match),
            evidence=", ".join(
                [*match.evidence, *(f"also {other.target.name}: " + ", ".join(other.evidence)
                                    for other in tied)]),
            certain=match.certain and all(other.certain for other in tied),
            decided_by="" if match.certain else match.decided_by,
            also=tuple((other.target.name, other.transforms) for other in tied))
        # A tied rule stays literal, ahead of every folded rule, so none takes its name.
        (tied_rules if tied else mapping_rules).append(rule.literal() if tied else rule)
    drop_rules = [draft_writer.DraftRule(
        members=[(variable.name, None)], drop=True,
        evidence=drop_reasons[item.name])
        for item in unmatched_sources for variable in item.variables]
    intended = {}
    for match in matches:
        for variable in match.source.variables:
            intended.setdefault(variable.name, _rule_target(match))  # A tied rule's `target`.
    for rule in split_rules:
        scope, target = rule.members[0]
        intended[f"{scope}/{dict(rule.parameters)['source_part']}"] = target
    for rule in drop_rules:
        intended[rule.members[0][0]] = None
    rules = split_rules + tied_rules + draft_writer.fold(mapping_rules) + draft_writer.fold_drops(
        drop_rules, [name for name, target in intended.items() if target is not None])

    def make_text(candidate):
        return draft_writer.toml_text(candidate, header=["check"])

    # `leave` rules name Keras weights, so no TF1 name can reach them: they come last.
    return (draft_writer.check_folding(rules, make_text, intended)
            + model_sets.draft_rules(left))


def _rule_target(match):
    """The rule's target: the weight, or for a one-weight layout (the roll) its layer."""
    if match.source.layout == items_lib.VOCABULARY_OOV_ROLL:
        return match.target.layer
    return match.target.name


def _rule_parameters(match):
    """A layout's parameters the rule writes: what the graph gave, and parts not the defaults."""
    if match.source.layout != items_lib.VOCABULARY_OOV_ROLL:
        return ()
    (part,) = match.source.parts
    leaf = match.target.name.rpartition("/")[2]
    written = [("oov_buckets", match.source.parameters["oov_buckets"])]
    if part != feature_columns.SOURCE_PART:
        written.append(("source_part", part))
    if leaf != feature_columns.TARGET_PART:
        written.append(("target_part", leaf))
    return tuple(written)
