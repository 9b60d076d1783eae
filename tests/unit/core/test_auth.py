"""`core.auth`: reading bearer tokens, checking them, and the signed page sign-in value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.auth import (
    BEARER_CHALLENGE,
    bearer_token,
    require_bearer,
    sign_in_value,
    signed_in_until,
    token_allowed,
)
from core.errors import Forbidden, Unauthorized

NOW = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)
TOKEN = "a-long-random-token"
OTHER = "another-for-the-portal"
tokens = st.text(min_size=1, max_size=64)


# ----------------------------------------------------------------------------- bearer tokens
@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc123", "abc123"),
        ("bearer abc123", "abc123"),
        ("BEARER abc123", "abc123"),
        ("  Bearer   abc123  ", "abc123"),
        ("Bearer a.b-c_d~e+f/g=", "a.b-c_d~e+f/g="),
    ],
)
def test_a_bearer_header_gives_its_token(header: str, token: str):
    assert bearer_token(header) == token


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer    ", "Basic dXNlcjpwYXNz", "Token abc", "abc123"]
)
def test_no_token_without_a_bearer_header_that_carries_one(header: str | None):
    assert bearer_token(header) is None


def test_the_challenge_names_the_bearer_scheme():
    assert BEARER_CHALLENGE == "Bearer"


def test_only_a_configured_token_is_allowed():
    allowed = [TOKEN, OTHER]
    assert token_allowed(TOKEN, allowed)
    assert token_allowed(OTHER, allowed)
    assert not token_allowed(TOKEN[:-1], allowed)  # a prefix is not the token
    assert not token_allowed(TOKEN + "x", allowed)
    assert not token_allowed(TOKEN.upper(), allowed)
    assert not token_allowed(TOKEN, [])


@given(token=tokens, allowed=st.lists(tokens, max_size=5))
def test_token_allowed_is_membership(token: str, allowed: list[str]):
    assert token_allowed(token, allowed) == (token in allowed)


def test_require_bearer_lets_an_allowed_token_through():
    require_bearer(f"Bearer {OTHER}", [TOKEN, OTHER], to="write here")


@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwYXNz", "Bearer "])
def test_require_bearer_without_a_token_is_401_saying_what_it_is_for(header: str | None):
    with pytest.raises(Unauthorized, match="a bearer token is needed to change sessions"):
        require_bearer(header, [TOKEN], to="change sessions")


@pytest.mark.parametrize("allowed", [[TOKEN], []])
def test_require_bearer_with_a_token_not_allowed_is_403(allowed: list[str]):
    with pytest.raises(Forbidden, match="this bearer token may not publish"):
        require_bearer(f"Bearer {OTHER}", allowed, to="publish")


# ----------------------------------------------------------------------------- page sign-in
def test_a_sign_in_value_lasts_until_its_expiry_to_the_second():
    expires = NOW + timedelta(hours=8, microseconds=250)
    value = sign_in_value(TOKEN, expires)
    assert signed_in_until(value, [OTHER, TOKEN], NOW) == expires.replace(microsecond=0)
    assert signed_in_until(value, [TOKEN], expires - timedelta(seconds=1)) is not None


def test_a_sign_in_value_carries_no_token_and_only_cookie_characters():
    value = sign_in_value(TOKEN, NOW + timedelta(hours=1))
    assert TOKEN not in value
    assert all(c.isalnum() or c in "._-" for c in value)


def test_an_expired_sign_in_is_refused():
    expires = NOW + timedelta(hours=1)
    value = sign_in_value(TOKEN, expires)
    assert signed_in_until(value, [TOKEN], expires) is None  # the end is not included
    assert signed_in_until(value, [TOKEN], expires + timedelta(days=1)) is None


def test_removing_a_token_ends_its_sign_ins_and_only_those():
    mine = sign_in_value(TOKEN, NOW + timedelta(hours=1))
    theirs = sign_in_value(OTHER, NOW + timedelta(hours=1))
    assert signed_in_until(mine, [OTHER], NOW) is None
    assert signed_in_until(theirs, [OTHER], NOW) is not None
    assert signed_in_until(mine, [], NOW) is None


def test_a_changed_expiry_or_mac_is_refused():
    value = sign_in_value(TOKEN, NOW + timedelta(hours=1))
    version, expiry, mac = value.split(".")
    later = f"{version}.{int(expiry) + 3600}.{mac}"
    changed = f"{version}.{expiry}.{mac[:-1]}{'B' if mac[-1] == 'A' else 'A'}"
    for forged in (later, changed, f"2.{expiry}.{mac}", f"{version}.0{expiry}.{mac}"):
        assert signed_in_until(forged, [TOKEN], NOW) is None, forged
    # Another token's MAC on the same expiry is a sign-in only while that token is allowed.
    theirs = sign_in_value(OTHER, NOW + timedelta(hours=1))
    assert signed_in_until(theirs, [TOKEN], NOW) is None
    assert signed_in_until(theirs, [TOKEN, OTHER], NOW) is not None


def test_a_sign_in_lasting_longer_than_any_ever_given_is_refused():
    value = sign_in_value(TOKEN, NOW + timedelta(days=30))
    assert signed_in_until(value, [TOKEN], NOW) is not None
    assert signed_in_until(value, [TOKEN], NOW, longest=timedelta(hours=8)) is None
    short = sign_in_value(TOKEN, NOW + timedelta(hours=8))
    assert signed_in_until(short, [TOKEN], NOW, longest=timedelta(hours=8)) is not None


def test_the_same_sign_in_from_two_processes_is_the_same_value():
    expires = NOW + timedelta(hours=1)
    assert sign_in_value(TOKEN, expires) == sign_in_value(TOKEN, expires)
    assert sign_in_value(TOKEN, expires) != sign_in_value(OTHER, expires)


def test_an_expiry_without_a_time_zone_is_refused():
    with pytest.raises(ValueError, match="time-zone aware"):
        sign_in_value(TOKEN, datetime(2030, 1, 1))


@pytest.mark.parametrize(
    "value", [None, "", TOKEN, "1.abc.def", "1..", "1.99999999999999.x", "1.1.=" + "A" * 42]
)
def test_malformed_values_are_refused(value: str | None):
    assert signed_in_until(value, [TOKEN], NOW) is None


@given(value=st.text(max_size=80))
def test_no_text_signs_in_or_raises(value: str):
    assert signed_in_until(value, [TOKEN], NOW) is None


@given(token=tokens, hours=st.integers(min_value=1, max_value=24 * 365))
def test_every_token_signs_in_and_only_itself(token: str, hours: int):
    value = sign_in_value(token, NOW + timedelta(hours=hours))
    assert signed_in_until(value, [token], NOW) == NOW + timedelta(hours=hours)
    assert signed_in_until(value, [token + "x"], NOW) is None
