"""`core.auth`: reading bearer tokens, checking them, and the signed page sign-in value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.auth import (
    BEARER_CHALLENGE,
    Authenticator,
    Identity,
    Permission,
    bearer_token,
    looks_like_jwt,
    new_token,
    sign_in_value,
    signed_in_by,
    signed_in_until,
    token_sha256,
)
from core.errors import Forbidden, Unauthorized
from core.settings import MIN_TOKEN_CHARS, NamedToken, Role

NOW = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)
TOKEN = "a-long-random-token-for-the-researcher"
OTHER = "another-for-the-portal-a-packager-holds"
OPS = "the-operators-token-long-enough-for-voexec"
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


def entry(name: str, token: str, role: Role = "researcher") -> NamedToken:
    return NamedToken(name=name, sha256=token_sha256(token), role=role)


AUTH = Authenticator(
    tokens=(entry("alice", TOKEN), entry("pat", OTHER, "packager"), entry("olga", OPS, "operator"))
)


def test_a_configured_token_names_its_holder_and_role():
    assert AUTH.identify(f"Bearer {TOKEN}", "192.0.2.7") == Identity("token", "alice", "researcher")
    assert AUTH.identify(f"Bearer {OTHER}", None).key == "token:pat"


@pytest.mark.parametrize("token", [TOKEN[:-1], TOKEN + "x", TOKEN.upper(), "x" * 40])
def test_a_token_that_is_not_configured_is_403_saying_what_it_was_for(token: str):
    with pytest.raises(Forbidden, match="this bearer token may not run: it is not one of"):
        AUTH.require(f"Bearer {token}", None, Permission.RUN, to="run")


def test_a_short_token_never_matches_even_if_its_hash_is_configured():
    weak = Authenticator(tokens=(entry("weak", "abc"),))
    assert weak.named_token("abc") is None
    assert len(new_token()) >= MIN_TOKEN_CHARS


@given(token=tokens, allowed=st.lists(tokens, max_size=4, unique=True))
def test_matching_is_membership_for_tokens_long_enough(token: str, allowed: list[str]):
    auth = Authenticator(tokens=tuple(entry(f"n{i}", t) for i, t in enumerate(allowed)))
    expected = token in allowed and len(token) >= MIN_TOKEN_CHARS
    assert (auth.named_token(token) is not None) == expected


@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwYXNz", "Bearer "])
def test_without_credentials_a_write_is_401_saying_what_it_is_for(header: str | None):
    with pytest.raises(Unauthorized, match="a bearer token is needed to change sessions"):
        AUTH.require(header, "192.0.2.7", Permission.RUN, to="change sessions")


def test_roles_decide_what_each_identity_may_do():
    assert AUTH.require(f"Bearer {TOKEN}", None, Permission.RUN, to="run").name == "alice"
    with pytest.raises(Forbidden, match=r"alice \(researcher\) may not publish: .* packager"):
        AUTH.require(f"Bearer {TOKEN}", None, Permission.PUBLISH, to="publish")
    assert AUTH.require(f"Bearer {OTHER}", None, Permission.PUBLISH, to="publish").name == "pat"
    with pytest.raises(Forbidden, match="operator"):
        AUTH.require(f"Bearer {OTHER}", None, Permission.OPERATE, to="cancel theirs")
    assert AUTH.require(f"Bearer {OPS}", None, Permission.OPERATE, to="x").role == "operator"


def test_an_open_voexec_lets_anybody_run_as_their_address_but_not_publish():
    open_ = Authenticator()
    caller = open_.require(None, "192.0.2.7", Permission.RUN, to="run")
    assert caller.key == "address:192.0.2.7"
    # A client's leftover token changes nothing where nobody is configured.
    assert open_.identify("Bearer whatever-it-is", "192.0.2.7") == caller
    with pytest.raises(Unauthorized):
        open_.require(None, "192.0.2.7", Permission.PUBLISH, to="publish")


def test_anonymous_runs_can_be_allowed_beside_identities():
    mixed = Authenticator(tokens=AUTH.tokens, anonymous_runs=True)
    assert mixed.require(None, "192.0.2.7", Permission.RUN, to="run").anonymous
    with pytest.raises(Forbidden):  # a wrong token is still wrong
        mixed.require("Bearer " + "y" * 40, "192.0.2.7", Permission.RUN, to="run")


def test_only_the_owner_or_an_operator_may_act_for_an_owner():
    alice = AUTH.identify(f"Bearer {TOKEN}", None)
    pat = AUTH.identify(f"Bearer {OTHER}", None)
    olga = AUTH.identify(f"Bearer {OPS}", None)
    assert AUTH.may_act_for(alice, "token:alice")
    assert not AUTH.may_act_for(pat, "token:alice")
    assert AUTH.may_act_for(olga, "token:alice")
    assert not AUTH.may_act_for(alice, None)  # recorded before owners were: operators only
    assert Authenticator().may_act_for(Identity("address", "a"), None)
    assert not Authenticator().may_act_for(Identity("address", "a"), "address:b")


def test_a_jwt_goes_to_the_verifier_and_nothing_else_does():
    seen: list[str] = []

    class Verifier:
        def verify(self, token: str) -> Identity:
            seen.append(token)
            return Identity("oidc", "subject-1", "researcher")

    auth = Authenticator(tokens=AUTH.tokens, jwt=Verifier())
    assert auth.identify("Bearer aaa.bbb.ccc", None).key == "oidc:subject-1"
    assert auth.identify(f"Bearer {TOKEN}", None).key == "token:alice"
    assert seen == ["aaa.bbb.ccc"]
    assert looks_like_jwt("aaa.bbb.ccc")
    assert not looks_like_jwt(new_token())


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


def test_a_sign_in_says_which_token_made_it():
    value = sign_in_value(OTHER, NOW + timedelta(hours=1))
    assert signed_in_by(value, [TOKEN, OTHER], NOW) == (1, NOW + timedelta(hours=1))
