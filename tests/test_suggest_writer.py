"""Draft rules fold into regex groups only when the folded table maps every name as intended."""

from migrate.mapping.suggest import draft_writer
from migrate.mapping.suggest import items
from migrate.mapping.table import MappingTable


def _rule(source, target, **kwargs):
    return draft_writer.DraftRule(members=[(source, target)], evidence="test", **kwargs)


def _text(rules):
    return draft_writer.toml_text(rules, header=["test"])


def test_rules_repeating_with_an_index_fold_into_one_group():
    rules = draft_writer.fold([
        _rule(f"vgg_16/conv{block}/conv{block}_{conv}/weights", f"block{block}_conv{conv}/kernel")
        for block, conv in ((1, 1), (1, 2), (2, 1), (2, 2))])
    assert [(rule.match, rule.target) for rule in rules] == [
        (r"vgg_16/conv(\d+)/conv\d+_(\d+)/weights", r"block\1_conv\2/kernel")]
    table = MappingTable.from_text(_text(rules))
    assert table.lookup("vgg_16/conv2/conv2_1/weights").target == "block2_conv1/kernel"


def test_shared_last_components_fold_into_an_alternation():
    rules = draft_writer.fold([_rule(f"layer_{index}/bn/{leaf}", f"bn_{index}/{leaf}")
                               for index in (0, 1) for leaf in ("gamma", "beta")])
    assert [(rule.match, rule.target) for rule in rules] == [
        (r"layer_(\d+)/bn/(gamma|beta)", r"bn_\1/\2")]


def test_numbers_the_target_does_not_repeat_stay_apart():
    rules = draft_writer.fold([_rule("net/conv_1/weights", "conv2d_7/kernel"),
                               _rule("net/conv_2/weights", "conv2d_3/kernel")])
    assert [rule.match for rule in rules] == ["net/conv_1/weights", "net/conv_2/weights"]


def test_a_fold_that_would_take_another_name_is_undone():
    rules = draft_writer.fold([_rule("a/x1/w", "t1/k"), _rule("a/x2/w", "t2/k")])
    rules.append(_rule("a/x3/w", "other/k").literal())
    intended = {"a/x1/w": "t1/k", "a/x2/w": "t2/k", "a/x3/w": "other/k"}
    checked = draft_writer.check_folding(rules, _text, intended)
    table = MappingTable.from_text(_text(checked))
    assert {name: table.lookup(name).target for name in intended} == intended


def test_drops_under_one_unmapped_scope_fold_into_a_wildcard():
    drops = [_rule(f"net/aux/{name}", None, drop=True) for name in ("conv/weights", "fc/biases")]
    rules = draft_writer.fold_drops(drops, mapped_sources=["net/conv/weights"])
    assert [(rule.match, rule.drop) for rule in rules] == [("net/aux/.*", True)]
    kept_apart = draft_writer.fold_drops(drops, mapped_sources=["net/aux/other"])
    assert [rule.match for rule in kept_apart] == ["net/aux/conv/weights", "net/aux/fc/biases"]


def test_the_kind_of_weight_comes_from_the_name():
    assert items.source_kind("weights") == "kernel"
    assert items.source_kind("moving_variance") == "moving_variance"
    assert items.source_kind("position_embeddings") == "embeddings"
    assert items.source_kind("softmax_b") is None
