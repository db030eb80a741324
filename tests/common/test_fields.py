"""`common.fields`: the one type check of a record field and its one wording, used by the scoring
flow's schema checks and the scoring service's input checks alike."""

from __future__ import annotations

from typing import Any

import pytest

from common.fields import TYPE_CHECKS, missing_message, value_message


@pytest.mark.parametrize(
    ("ftype", "good", "bad"),
    [
        ("boolean", [True, False], [0, 1, "true", None]),
        ("int", [0, -(2**31), 2**31 - 1], [2**31, True, 1.0, "1"]),
        ("long", [2**31, -(2**63)], [2**63, False, 1.5]),
        ("double", [1.5, 2, -0.0], [True, "1.5", None]),
        ("float", [1.5, 2], [False, [1.0]]),
        ("string", ["", "x"], [1, b"x", None]),
        ("bytes", ["aGk=", b"hi"], [1, None]),
    ],
)
def test_each_type_accepts_its_values_only(ftype: str, good: list[Any], bad: list[Any]) -> None:
    check = TYPE_CHECKS[ftype]
    assert [check(v) for v in good] == [True] * len(good)
    assert [check(v) for v in bad] == [False] * len(bad)


def test_one_wording_for_every_problem() -> None:
    assert missing_message("x") == "field 'x' is missing"
    assert value_message("x", "double", None) == "field 'x' is null but not nullable (type double)"
    assert value_message("x", "double", "1.5") == "field 'x': expected double, got string"
    assert value_message("id", "long", True) == "field 'id': expected long, got boolean"
    assert value_message("n", "int", 2**40) == (
        "field 'n': expected int, got integer (out of range for int)"
    )
