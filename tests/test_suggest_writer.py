"""Draft rules fold into regex groups only when the folded table maps every name as intended."""

from migrate.suggest import draft_writer
from migrate.suggest import items
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


def _variable(name, shape):
    from migrate.source.checkpoint import SourceVariable
    from migrate.source.roles import Role
    from migrate.source.roles import RoleSource

    return SourceVariable(name, shape, "float32", Role.TRAINABLE, RoleSource.NAME_RULE, "test")


def _target(path, shape):
    from migrate.planning.target import TargetWeight

    return TargetWeight(path, shape, "float32", True)


def _layouts(variables):
    return {item.name: item.layout for item in items.source_items(variables, order=())
            if item.layout is not None}


def test_cells_are_recognised_under_current_and_pre_1_2_names():
    found = _layouts([
        _variable("a/rnn/multi_rnn_cell/cell_0/lstm_cell/kernel", (12, 16)),
        _variable("a/rnn/multi_rnn_cell/cell_0/lstm_cell/bias", (16,)),
        _variable("b/rnn/basic_lstm_cell/weights", (12, 16)),
        _variable("b/rnn/basic_lstm_cell/biases", (16,)),
        _variable("c/bidirectional_rnn/bw/gru_cell/gates/kernel", (12, 8)),
        _variable("c/bidirectional_rnn/bw/gru_cell/gates/bias", (8,)),
        _variable("c/bidirectional_rnn/bw/gru_cell/candidate/kernel", (12, 4)),
        _variable("c/bidirectional_rnn/bw/gru_cell/candidate/bias", (4,)),
    ])
    assert found == {"a/rnn/multi_rnn_cell/cell_0/lstm_cell": "lstm",
                     "b/rnn/basic_lstm_cell": "lstm_legacy_names",
                     "c/bidirectional_rnn/bw/gru_cell": "gru"}


def test_alignment_uses_layouts_squeezes_and_element_counts():
    from migrate.suggest import align

    variables = [
        _variable("net/rnn/basic_lstm_cell/weights", (12, 16)),
        _variable("net/rnn/basic_lstm_cell/biases", (16,)),
        _variable("net/fc6/weights", (2, 2, 3, 5)),
        _variable("net/logits/weights", (1, 1, 5, 7)),
        _variable("net/aux/weights", (9, 9)),
    ]
    # The order is the graph's creation order (here, as listed).
    sources = items.source_items(variables, order=[variable.name for variable in variables])
    targets = items.target_items([
        _target("lstm/lstm_cell/kernel", (8, 16)),
        _target("lstm/lstm_cell/recurrent_kernel", (4, 16)),
        _target("lstm/lstm_cell/bias", (16,)),
        _target("fc1/kernel", (12, 5)),
        _target("predictions/kernel", (5, 7)),
    ], kept=lambda weight: True)
    matches, unmatched_sources, unmatched_targets = align.align(sources, targets)
    assert [(m.source.name, m.target.name, m.source.layout, m.transforms) for m in matches] == [
        ("net/rnn/basic_lstm_cell", "lstm/lstm_cell", "lstm_legacy_names", ()),
        ("net/fc6/weights", "fc1/kernel", None, ("reshape(-1, 5)",)),
        ("net/logits/weights", "predictions/kernel", None, ("squeeze(0, 1)",)),
    ]
    assert [item.name for item in unmatched_sources] == ["net/aux/weights"]
    assert unmatched_targets == []


def test_a_cell_the_graph_runs_in_two_loops_fills_the_other_direction_only_then():
    from migrate.suggest import align
    from migrate.suggest import shared_cells
    from migrate.suggest.tf1_structure import GraphStructure

    variables = [_variable("enc/fw/lstm_cell/kernel", (12, 16)),
                 _variable("enc/fw/lstm_cell/bias", (16,))]
    sources = items.source_items(variables, order=[variable.name for variable in variables])
    targets = items.target_items([
        _target(f"bi/{direction}_lstm/lstm_cell/{part}", shape)
        for direction in ("forward", "backward")
        for part, shape in (("kernel", (8, 16)), ("recurrent_kernel", (4, 16)), ("bias", (16,)))
    ], kept=lambda weight: True)
    matches, _, free = align.align(sources, targets)
    assert [(m.source.name, m.target.name) for m in matches] == [
        ("enc/fw/lstm_cell", "bi/forward_lstm/lstm_cell")]
    loops = frozenset({"enc/fw/fw/while", "enc/bw/bw/while"})
    structure = GraphStructure([], {}, set(), {}, loops={variable.name: loops
                                                         for variable in variables})
    found, taken = shared_cells.shared_cell_candidates(matches, free, structure)
    assert [(m.source.name, m.target.name) for m in found] == [
        ("enc/fw/lstm_cell", "bi/backward_lstm/lstm_cell")]
    assert taken == free and "the graph runs it in 2 loops" in found[0].evidence[-1]
    # One loop reads it, two that are not a bw one (a decoder's training and inference loops),
    # or no graph: the backward layer stays unfilled, for the user to see.
    assert shared_cells.shared_cell_candidates(matches, free, None) == ([], [])
    for other in ({"x/while"}, {"train/decoder/while", "infer/decoder/while"}):
        alone = GraphStructure([], {}, set(), {}, loops={variables[0].name: frozenset(other)})
        assert shared_cells.shared_cell_candidates(matches, free, alone) == ([], [])
