"""Strict JSON bodies (`scheduler.api.body.parse_strict`): nesting counted from the bytes
(brackets inside strings do not count), lone surrogates refused wherever they are while escaped
pairs pass, NaN and non-UTF-8 refused; each refusal a `JSONDecodeError` saying why."""

from __future__ import annotations

import json

import pytest

from scheduler.api.body import MAX_JSON_DEPTH, parse_strict
from tests.attacks import nested


def test_nesting_up_to_the_limit_parses_and_one_level_more_is_refused():
    assert parse_strict(json.dumps(nested(MAX_JSON_DEPTH)).encode()) == nested(MAX_JSON_DEPTH)
    with pytest.raises(json.JSONDecodeError, match="nested more than 100 levels deep"):
        parse_strict(json.dumps(nested(MAX_JSON_DEPTH + 1)).encode())
    with pytest.raises(json.JSONDecodeError, match="nested more than 100 levels deep"):
        parse_strict(b"[" * 100_000 + b"]" * 100_000)  # json itself would recurse


def test_brackets_and_escaped_quotes_inside_strings_do_not_count():
    text = "[" * 5 + "{" + '"x": "' + '[{\\"' * 500 + '"' + "}" + "]" * 5
    assert parse_strict(text.encode())[0][0][0][0][0] == {"x": '[{"' * 500}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"name": "a\\ud800"}', "a lone UTF-16 surrogate"),
        (b'{"a\\udfff": 1}', "a lone UTF-16 surrogate"),
        (b'[["\\udbff\\ud800"]]', "a lone UTF-16 surrogate"),
        (b'{"x": NaN}', "NaN is not a JSON value"),
        (b'{"x": -Infinity}', "-Infinity is not a JSON value"),
        (b'{"x": "\xff"}', "not UTF-8 text"),
    ],
)
def test_what_is_not_plain_json_text_is_refused_saying_why(body: bytes, why: str):
    with pytest.raises(json.JSONDecodeError, match=why):
        parse_strict(body)


def test_an_escaped_surrogate_pair_and_a_literal_backslash_u_pass():
    assert parse_strict(b'{"s": "\\ud83d\\ude00", "t": "\\\\ud800"}') == {"s": "😀", "t": "\\ud800"}
