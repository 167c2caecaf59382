"""REDCap branching logic: parser precedence, quoting, checkbox terms, refusals with positions, shared cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.questionnaire.branching import (
    BoolOp,
    Compare,
    Lit,
    LogicError,
    Ref,
    checkbox_column,
    evaluate,
    parse_logic,
    referenced_fields,
    to_json,
)

CASES = json.loads((Path(__file__).parent / "branching_cases.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES, ids=[f"{i}:{c['logic']}" for i, c in enumerate(CASES)])
def test_shared_cases_evaluate_as_expected_and_keep_their_ast(case):
    node = parse_logic(case["logic"])
    assert evaluate(node, case["answers"]) is case["expected"]
    assert to_json(node) == case["ast"]  # the browser replays the same AST


def test_and_binds_tighter_than_or():
    node = parse_logic("[a] = '1' or [b] = '1' and [c] = '1'")
    assert isinstance(node, BoolOp) and node.op == "or"
    assert node.args[0] == Compare("=", Ref("a"), Lit("1"))
    assert isinstance(node.args[1], BoolOp) and node.args[1].op == "and"


def test_parentheses_override_precedence():
    node = parse_logic("([a] = '1' or [b] = '1') and [c] = '1'")
    assert isinstance(node, BoolOp) and node.op == "and"
    assert isinstance(node.args[0], BoolOp) and node.args[0].op == "or"


def test_chains_of_the_same_operator_are_flat():
    node = parse_logic("[a]='1' or [b]='1' or [c]='1'")
    assert isinstance(node, BoolOp) and len(node.args) == 3


@pytest.mark.parametrize(
    ("logic", "literal"),
    [
        ("[a] = 'x y'", "x y"),
        ('[a] = "x y"', "x y"),
        ("[a] = 12.5", "12.5"),
        ("[a] = -3", "-3"),
        ("[a] = ''", ""),
    ],
)
def test_quotes_and_numbers_become_literals(logic, literal):
    assert parse_logic(logic) == Compare("=", Ref("a"), Lit(literal))


def test_checkbox_terms_read_the_option_column():
    node = parse_logic("[sym(3)] = '1'")
    assert node == Compare("=", Ref("sym", "3"), Lit("1"))
    assert node.left.column == "sym___3"
    assert to_json(node)["left"] == {"col": "sym___3", "field": "sym", "code": "3"}
    assert evaluate(node, {"sym___3": "1"}) and not evaluate(node, {"sym___1": "1"})


@pytest.mark.parametrize(
    ("code", "column"), [("1", "f___1"), ("-99", "f____99"), ("Other_X", "f___other_x"), ("1.5", "f___1_5")]
)
def test_checkbox_column_follows_redcaps_export_names(code, column):
    assert checkbox_column("f", code) == column


def test_operators_are_normalized():
    assert parse_logic("[a] != 1").op == "<>"
    assert parse_logic("[a] == 1").op == "="


def test_referenced_fields_are_base_names():
    node = parse_logic("[a] = '1' and ([b(2)] = '1' or [c] > [d])")
    assert referenced_fields(node) == {"a", "b", "c", "d"}


@pytest.mark.parametrize(
    ("logic", "position", "words"),
    [
        ("[a] = ", 7, "end of the logic"),
        ("[a] = '1' and", 14, "end of the logic"),
        ("[a] = '1' [b] = '2'", 11, "'and', 'or'"),
        ("[a] = '1' xor [b] = '2'", 11, "unsupported word 'xor'"),
        ("([a] = '1'", 11, "')'"),
        ("[a] = '1')", 10, "'and', 'or'"),
        ("[a] = 'open", 7, "never closed"),
        ("[a = '1'", 1, None),
        ("[event_1][a] = '1'", 10, "other events"),
        ("[a] + 1 > 2", 5, "unexpected '+'"),
        ("datediff([a], 'today', 'd') > 3", 1, "unsupported word 'datediff'"),
        ("not [a] = '1'", 1, "unsupported word 'not'"),
        ("[a]", 4, "a comparison"),
        ("[a] = '1' and or [b] = '1'", 15, "a [field]"),
        ("[a] ! '1'", 5, "'!'"),
        ("[user-name] = 'x'", 1, "unsupported reference"),
        ("[a] = = '1'", 7, "a [field]"),
        ("[a] = '1' & [b] = '2'", 11, "unexpected '&'"),
    ],
)
def test_bad_logic_is_refused_with_its_position(logic, position, words):
    with pytest.raises(LogicError) as caught:
        parse_logic(logic)
    message = str(caught.value)
    assert f"at character {position}" in message
    assert caught.value.position == position - 1
    if words:
        assert words in message


@pytest.mark.parametrize("logic", ["", "   ", "\n"])
def test_empty_logic_is_refused(logic):
    with pytest.raises(LogicError, match="empty"):
        parse_logic(logic)


def test_deep_nesting_is_refused_not_a_crash():
    with pytest.raises(LogicError, match="nested"):
        parse_logic("(" * 5000 + "[a] = '1'" + ")" * 5000)


def test_a_blank_checkbox_column_counts_as_unticked():
    assert evaluate(parse_logic("[cb(1)] = '0'"), {"cb___1": ""})


_ALPHABET = st.sampled_from(
    [*"[]()'\"=<>!-+.,_ aAnNdDoOrR019xyz(", "and", "or", "[a]", "[b(1)]", "'1'", "<>"]
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=80), st.lists(_ALPHABET, max_size=25).map("".join)))
def test_the_parser_only_ever_raises_logic_error(text):
    try:
        node = parse_logic(text)
    except LogicError:
        return
    # Whatever parses can be evaluated and serialised.
    evaluate(node, {"a": "1", "b___1": "1"})
    json.dumps(to_json(node))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c___1"]), st.text(max_size=8)))
def test_evaluation_never_raises_on_any_values(answers):
    node = parse_logic("[a] > 2 or [b] = '' and ([c(1)] = '1' or [a] <= [b])")
    assert evaluate(node, answers) in (True, False)
