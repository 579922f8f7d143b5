import pytest
from starlette.datastructures import Secret

from ingest.auth import authenticate, presented_token
from messagehooks.errors import Unauthorized
from messagehooks.settings import Hook

HOOK = Hook("shop", tokens=(Secret("old-token"), Secret("new-token")))


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Token abc", "abc"),
        ("token abc", "abc"),
        ("Bearer abc", "abc"),
        ("  Bearer   abc  ", "abc"),
        ("Basic abc", None),
        ("Token", None),
        ("", None),
        (None, None),
    ],
)
def test_presented_token(header, token):
    assert presented_token(header) == token


@pytest.mark.parametrize("header", ["Token old-token", "Token new-token", "Bearer new-token"])
def test_every_rotation_token_is_accepted(header):
    authenticate(HOOK, header)


@pytest.mark.parametrize(
    "header", [None, "", "Token wrong", "Token old-token-x", "Token old", "Basic old-token", "Token \udcff"]
)
def test_wrong_or_missing_token_is_unauthorized_without_echo(header):
    with pytest.raises(Unauthorized) as info:
        authenticate(HOOK, header)
    assert "old-token" not in str(info.value)
    assert "new-token" not in str(info.value)


def test_open_dev_hook_needs_no_token():
    authenticate(Hook("default", open=True), None)


def test_a_hook_without_tokens_is_closed_unless_it_says_open():
    with pytest.raises(Unauthorized):
        authenticate(Hook("shop"), "Token anything")
