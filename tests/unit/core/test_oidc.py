"""`core.oidc`: bearer JWTs checked against a provider's published keys (a local JWKS server)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from core.auth import Identity
from core.errors import Forbidden, Unauthorized, Unavailable
from core.oidc import OidcVerifier
from core.settings import OidcSettings
from tests.oidc_support import JwksServer, jwks_server


@pytest.fixture
def provider() -> Iterator[JwksServer]:
    with jwks_server() as server:
        yield server


def verifier(provider: JwksServer, **settings: Any) -> OidcVerifier:
    return OidcVerifier(msgspec.convert(provider.settings(**settings), OidcSettings))


def test_a_valid_token_names_its_subject_with_the_default_role(provider):
    check = verifier(provider)
    assert check.verify(provider.token()) == Identity("oidc", "researcher-7", "researcher")
    assert check.verify(provider.token(sub="someone-else")).key == "oidc:someone-else"
    assert provider.requests == 1  # the keys are fetched once and kept


def test_the_name_can_come_from_another_claim(provider):
    check = verifier(provider, name_claim="preferred_username")
    assert check.verify(provider.token(preferred_username="ada")).name == "ada"
    with pytest.raises(Unauthorized, match="no 'preferred_username'"):
        check.verify(provider.token())


def test_an_expired_token_is_401_saying_so(provider):
    past = int(time.time()) - 3600
    with pytest.raises(Unauthorized, match="has expired"):
        verifier(provider).verify(provider.token(iat=past - 300, exp=past))


def test_a_token_without_an_expiry_is_refused(provider):
    with pytest.raises(Unauthorized, match="exp"):
        verifier(provider).verify(provider.token(exp=None))


def test_a_token_from_another_issuer_is_401(provider):
    with pytest.raises(Unauthorized, match="issued by another provider"):
        verifier(provider).verify(provider.token(iss="https://evil.example.org"))


def test_a_token_for_another_audience_is_401(provider):
    with pytest.raises(Unauthorized, match="meant for another service"):
        verifier(provider).verify(provider.token(aud="another-client"))
    # A list of audiences naming ours is fine.
    assert verifier(provider).verify(provider.token(aud=["another-client", "voexec"]))


def test_a_rotated_key_is_fetched_on_first_sight_of_its_kid(provider):
    check = verifier(provider, jwks_refetch_after="PT0S")
    assert check.verify(provider.token()).name == "researcher-7"
    provider.rotate()
    assert check.verify(provider.token()).name == "researcher-7"
    assert check.fetches == 2


def test_a_key_no_longer_published_is_refused_after_rotation(provider):
    check = verifier(provider, jwks_refetch_after="PT0S")
    old = provider.key
    provider.rotate()
    with pytest.raises(Unauthorized, match="does not publish"):
        check.verify(provider.token(key=old))


def test_unknown_keys_refetch_at_most_once_per_interval(provider):
    check = verifier(provider, jwks_refetch_after="PT1H")
    assert check.verify(provider.token())
    stranger = RSAKey.generate_key(2048, parameters={"kid": "made-up"})
    for _ in range(5):
        with pytest.raises(Unauthorized, match="does not publish"):
            check.verify(provider.token(key=stranger))
    assert check.fetches == 1  # the first fetch was moments ago: no refetch for made-up keys


def test_a_token_signed_by_an_unpublished_key_with_a_known_kid_is_refused(provider):
    forger = RSAKey.generate_key(2048, parameters={"kid": provider.key.kid})
    with pytest.raises(Unauthorized, match="not valid"):
        verifier(provider).verify(provider.token(key=forger))


def test_shared_secret_and_unsigned_tokens_are_never_accepted(provider):
    secret = OctKey.generate_key(256, parameters={"kid": provider.key.kid})
    hs = jwt.encode({"alg": "HS256", "kid": secret.kid}, {"sub": "x"}, secret)
    check = verifier(provider, algorithms=["RS256", "HS256", "none"])
    with pytest.raises(Unauthorized):
        check.verify(hs)


def test_roles_come_from_a_claim_through_the_mapping(provider):
    check = verifier(
        provider,
        role_claim="groups",
        roles={"astro-ops": "operator", "astro-pkg": "packager"},
        default_role=None,
    )
    assert check.verify(provider.token(groups=["astro-pkg", "astro-ops"])).role == "operator"
    assert check.verify(provider.token(groups="astro-pkg")).role == "packager"
    with pytest.raises(Forbidden, match="no role"):
        check.verify(provider.token(groups=["students"]))


def test_a_provider_that_cannot_be_reached_is_503_not_500(provider):
    settings = OidcSettings(issuer="i", audience="a", jwks_url="http://127.0.0.1:9/jwks")
    token = provider.token()
    with pytest.raises(Unavailable, match="could not be read"):
        OidcVerifier(settings).verify(token)


def test_a_malformed_token_is_401(provider):
    with pytest.raises(Unauthorized, match="not valid"):
        verifier(provider).verify("abc.def.ghi")
