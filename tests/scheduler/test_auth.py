"""The token list syntax (`TOKEN[:ROLE],...`, a bare token is admin), its refusals (which never
quote a token), and token checks on any bytes a header can carry."""

from __future__ import annotations

import pytest

from scheduler.auth import (
    Role,
    TokenSyntaxError,
    callback_token,
    is_callback_token,
    parse_tokens,
    role_of,
)


def test_the_old_form_is_admin_and_roles_follow_a_colon():
    tokens = parse_tokens(" ops , grafana:read,modelops:submit , a:b:admin,,")
    assert tokens == {
        "ops": Role.ADMIN,
        "grafana": Role.READ,
        "modelops": Role.SUBMIT,
        "a:b": Role.ADMIN,
    }
    assert Role.READ < Role.SUBMIT < Role.ADMIN


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ok,secret-1:reed", "entry 2: unknown role 'reed'"),
        ("secret-2:", "entry 1: unknown role ''"),
        (":read", "entry 1: the token is empty"),
        ("secret-3:read,secret-3:admin", "entry 2: the same token with two roles"),
    ],
)
def test_a_bad_entry_is_named_by_its_number_never_by_its_token(value: str, message: str):
    with pytest.raises(TokenSyntaxError) as info:
        parse_tokens(value)
    assert message in str(info.value)
    assert "secret-" not in str(info.value)


def test_any_header_text_is_checked_without_error():
    tokens = parse_tokens("t\u00e9st:read,plain")
    assert role_of(tokens, "t\u00e9st") == Role.READ
    assert role_of(tokens, "plain") == Role.ADMIN
    assert role_of(tokens, "\u00ff\u00fe") is None
    token = callback_token(b"s", "j-1")
    assert is_callback_token(b"s", "j-1", token)
    assert not is_callback_token(b"s", "j-1", "t\u00e9st")
    assert not is_callback_token(b"s", "j-2", token)
