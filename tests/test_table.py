"""Mapping tables: first full match wins, drops, layouts, and errors that name the rule."""

import time

import pytest

from migrate import MappingTable
from migrate import TableError
from migrate.mapping import lint


def _table(text):
    return MappingTable.from_text(text)


def test_first_full_match_wins_and_groups_expand():
    table = _table("""
[[rule]]
match = 'vgg_16/conv(\\d)/conv\\d_(\\d)/weights'
target = 'block\\1_conv\\2/kernel'

[[rule]]
match = 'vgg_16/conv.*'
target = 'never/used'

[[rule]]
match = 'vgg_16/fc8/.*'
drop = true
""")
    assert table.lookup("vgg_16/conv3/conv3_2/weights").target == "block3_conv2/kernel"
    assert table.lookup("vgg_16/conv3/conv3_2/biases").target == "never/used"
    assert table.lookup("vgg_16/fc8/weights").rule.drop
    # Full match only: a prefix or a substring is not a match.
    assert table.lookup("outer/vgg_16/fc8/weights") is None
    assert table.lookup("vgg_16/conv1/conv1_1/weights/Momentum").target == "never/used"
    assert len(table) == 3 and table.sha256


def test_layout_rule_matches_scope_plus_known_part():
    table = _table("""
[[rule]]
match = 'rnn/multi_rnn_cell/cell_(\\d)/lstm_cell'
layout = 'lstm'
target = 'lstm_\\1/lstm_cell'
forget_bias = 1.0
""")
    found = table.lookup("rnn/multi_rnn_cell/cell_1/lstm_cell/kernel")
    assert (found.scope, found.part, found.target) == (
        "rnn/multi_rnn_cell/cell_1/lstm_cell", "kernel", "lstm_1/lstm_cell")
    assert found.rule.parameters["forget_bias"] == 1.0
    assert table.lookup("rnn/multi_rnn_cell/cell_1/lstm_cell/other") is None


@pytest.mark.parametrize("body, message", [
    ("match = 'a('\ntarget = 'x'", "Rule 1 of mapping table <string>: `match` 'a(' is not a valid regex"),
    ("match = '(a+)+'\ntarget = 'x'", "inside an unbounded repetition"),
    ("match = '(.*)*b'\ntarget = 'x'", "inside an unbounded repetition"),
    ("match = 'a'\ntarget = 'x'\ntransform = ['frobnicate(1)']", "Unknown transform 'frobnicate'"),
    ("match = 'a'\ntargte = 'x'", "unknown key(s) ['targte']"),
    ("match = 'a'", "needs `target`"),
    ("match = 'a'\ntarget = 'x'\ndrop = true", "both `drop` and `target`"),
    ("match = 'a'\ntarget = '\\\\2'", "refers to group 2"),
    ("match = 'a'\nlayout = 'no_such_layout'\ntarget = 'x'", "Unknown layout converter"),
    ("match = 'a'\nlayout = 'lstm'\ntarget = 'x'\nheads = 3", "unknown key(s) ['heads']"),
    ("target = 'x'", "needs `match`"),
])
def test_invalid_rules_name_the_rule_and_the_problem(body, message):
    with pytest.raises(TableError, match=None) as raised:
        _table("[[rule]]\nmatch = 'ok'\ntarget = 'ok'\n\n[[rule]]\n" + body)
    assert "Rule 2" in str(raised.value)
    assert message.replace("Rule 1", "Rule 2") in str(raised.value)


def test_table_level_errors():
    with pytest.raises(TableError, match="not valid TOML"):
        _table("[[rule]\nmatch=")
    with pytest.raises(TableError, match="no \\[\\[rule\\]\\] entries"):
        _table("description = 'empty'")
    with pytest.raises(TableError, match="unknown top-level key"):
        _table("[[rules]]\nmatch='a'\ntarget='b'")
    with pytest.raises(TableError, match="Cannot read mapping table /no/such/table.toml"):
        MappingTable.load("/no/such/table.toml")


def test_slow_regex_is_refused_before_it_can_run():
    # '(a|aa)+$' style patterns are what make re take exponential time.
    started = time.monotonic()
    with pytest.raises(TableError, match="exponential"):
        _table("[[rule]]\nmatch = '(a|a?)+b'\ntarget = 'x'")
    assert time.monotonic() - started < 1.0
    with pytest.raises(TableError, match="longer than"):
        _table("[[rule]]\nmatch = 'a'\ntarget = 'x'").lookup("a" * 5000)


def test_lint_reports_shadowed_rules_and_shared_targets(tmp_path):
    path = tmp_path / "table.toml"
    path.write_text("[[rule]]\nmatch='a'\ntarget='t'\n[[rule]]\nmatch='a'\ntarget='u'\n"
                    "[[rule]]\nmatch='b'\ntarget='t'\n")
    report = lint.lint_table(str(path))
    assert report.ok and report.rules == 3
    assert report.warnings == ["rule 2 repeats the match of rule 1 and can never win: 'a'",
                               "rules 1 and 3 both target 't'"]
    path.write_text("[[rule]]\nmatch='('\ntarget='t'\n")
    report = lint.lint_table(str(path))
    assert not report.ok and "not a valid regex" in report.errors[0]


def test_lint_with_checkpoint_names_reports_unused_and_shadowed_rules(tmp_path):
    path = tmp_path / "table.toml"
    path.write_text("[[rule]]\nmatch='.*'\ntarget='x'\n[[rule]]\nmatch='conv/kernel'\ntarget='y'\n"
                    "[[rule]]\nmatch='nothing'\ntarget='z'\n")
    report = lint.lint_table(str(path), names=["conv/kernel", "bn/beta"])
    assert report.warnings == [
        "rule 2 wins for no variable: the 1 it matches are taken by earlier rules "
        "(e.g. 'conv/kernel' by rule 1)",
        "rule 3 matches no variable of the checkpoint"]
    table = MappingTable.load(str(path))
    assert [found.rule.index for found in table.matches("conv/kernel")] == [1, 2]


def test_lint_counts_the_variables_no_rule_matches(tmp_path):
    path = tmp_path / "table.toml"
    path.write_text("[[rule]]\nmatch='conv/kernel'\ntarget='y'\n")
    names = ["conv/kernel", "bn/beta", "bn/gamma", "dense/kernel", "dense/bias"]
    report = lint.lint_table(str(path), names=names)
    assert report.ok and report.unmatched == names[1:]
    assert report.summary().splitlines()[0].endswith("; 4 of 5 variable(s) no rule matches")
    assert report.warnings[-1] == ("4 of 5 variable(s) no rule matches (e.g. 'bn/beta', "
                                   "'bn/gamma', 'dense/kernel'); a plan reports them as unmapped")
    assert report.to_json()["unmatched"] == names[1:]
    assert lint.lint_table(str(path)).unmatched is None
