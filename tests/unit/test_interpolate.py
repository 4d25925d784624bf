"""flowmake.config.interpolate: ``${name}``, ``$$`` and typed whole-string references."""

from __future__ import annotations

import pytest

from flowmake.config.interpolate import (
    UnknownReference,
    format_value,
    has_refs,
    interpolate,
    references,
)

SCOPE = {"lr": 0.01, "n": 3, "on": True, "off": False, "tags": ["a", "b"], "name": "x y",
         "params.seed": 42, "nested": [1, [2, 3]]}


def lookup(name: str):
    try:
        return SCOPE[name]
    except KeyError:
        raise UnknownReference(name) from None


@pytest.mark.parametrize(("text", "expected"), [
    ("${lr}", 0.01),
    ("${n}", 3),
    ("${on}", True),
    ("${tags}", ["a", "b"]),
    ("${params.seed}", 42),
    ("${ n }", 3),  # whitespace inside the braces is ignored
])
def test_whole_reference_keeps_type(text, expected):
    result = interpolate(text, lookup)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(("text", "expected"), [
    ("lr=${lr}", "lr=0.01"),
    ("${n}${n}", "33"),
    ("${on}/${off}", "true/false"),
    ("--tags ${tags}", "--tags a b"),
    ("[${nested}]", "[1 2 3]"),
    ("seed ${params.seed}!", "seed 42!"),
    (" ${n}", " 3"),
])
def test_reference_inside_text_is_formatted(text, expected):
    assert interpolate(text, lookup) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("$$", "$"),
    ("$$HOME", "$HOME"),
    ("$${n}", "${n}"),
    ("$$$${n}", "$${n}"),
    ("$$${n}", "$3"),
    ("cost: $$5 for ${n}", "cost: $5 for 3"),
    ("$HOME stays", "$HOME stays"),  # a lone $ not followed by { is left alone
])
def test_double_dollar_is_literal(text, expected):
    assert interpolate(text, lookup) == expected


def test_keep_dollars_leaves_escapes_for_a_later_pass():
    first = interpolate("$$HOME/${n}", lookup, keep_dollars=True)
    assert first == "$$HOME/3"
    assert interpolate(first, lookup) == "$HOME/3"


def test_text_without_dollar_is_returned_unchanged():
    text = "plain {braces} here"
    assert interpolate(text, lookup) is text
    assert not has_refs(text)
    assert has_refs("a $ b")


@pytest.mark.parametrize("text", ["${missing}", "a ${missing} b", "${n} ${params.nope}"])
def test_unknown_reference_raises_with_the_name(text):
    with pytest.raises(UnknownReference) as info:
        interpolate(text, lookup)
    assert info.value.name in {"missing", "params.nope"}
    assert isinstance(info.value, KeyError)


def test_references_lists_names_in_order_and_skips_escapes():
    assert references("${a} $${b} $$ ${ c }x${params.d}") == ["a", "c", "params.d"]
    assert references("no refs $$") == []


@pytest.mark.parametrize(("value", "text"), [
    (True, "true"), (False, "false"), (3, "3"), (0.1, "0.1"), ("s", "s"),
    ([1, "a", True], "1 a true"), ((1, 2), "1 2"), ([], ""),
])
def test_format_value(value, text):
    assert format_value(value) == text
