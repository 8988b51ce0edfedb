"""Access tokens: the stock SDK's base64 quirk, lifetimes, audiences, forgery."""

from __future__ import annotations

import base64
import datetime as dt
import json

import jwt
import pytest

from openrr.domain.clock import ManualClock
from openrr.errors import AuthenticationFailed
from openrr.services.accounts import hash_key, key_matches, new_key
from openrr.services.tokens import (
    ACCOUNT_AUDIENCE,
    RENDER_AUDIENCE,
    TokenIssuer,
    UnknownSigningKey,
    new_signing_key,
)

ACC = "6b9f9a6e-9a5e-4b4f-9d3e-1f2a3b4c5d6e"


@pytest.fixture
def issuer(clock: ManualClock) -> TokenIssuer:
    return TokenIssuer([new_signing_key(clock.now())], clock)


def sdk_exp(token: str) -> int:
    # Exactly what azure-mixedreality-authentication does: standard alphabet, "===" padding.
    payload = json.loads(base64.b64decode(token.split(".")[1] + "==="))
    return int(payload["exp"])


def test_payload_decodes_with_the_standard_alphabet(issuer: TokenIssuer, clock: ManualClock) -> None:
    for _ in range(200):
        token, expires = issuer.issue_account_token(ACC)
        payload = token.split(".")[1]
        assert "-" not in payload
        assert "_" not in payload
        assert sdk_exp(token) == int(expires.timestamp())
    assert expires - clock.now() == dt.timedelta(hours=24)


def test_verify_checks_lifetime_against_the_clock(issuer: TokenIssuer, clock: ManualClock) -> None:
    token, _ = issuer.issue_account_token(ACC)
    assert issuer.verify(token, audience=ACCOUNT_AUDIENCE)["sub"] == ACC
    clock.advance(minutes=24 * 60 - 1)
    issuer.verify(token, audience=ACCOUNT_AUDIENCE)
    clock.advance(minutes=1)
    with pytest.raises(AuthenticationFailed, match="expired"):
        issuer.verify(token, audience=ACCOUNT_AUDIENCE)


def test_audiences_do_not_mix(issuer: TokenIssuer) -> None:
    render = issuer.issue_render_token(ACC, "s1", dt.timedelta(hours=1))
    with pytest.raises(AuthenticationFailed):
        issuer.verify(render, audience=ACCOUNT_AUDIENCE)
    account, _ = issuer.issue_account_token(ACC)
    with pytest.raises(AuthenticationFailed):
        issuer.verify(account, audience=RENDER_AUDIENCE)


def test_forged_tokens_fail(issuer: TokenIssuer, clock: ManualClock) -> None:
    token, _ = issuer.issue_account_token(ACC)
    header, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "00000000-0000-0000-0000-000000000000"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    other = TokenIssuer([new_signing_key(clock.now())], clock)
    for bad in (
        f"{header}.{forged_payload}.{sig}",
        other.issue_account_token(ACC)[0],
        "not-a-jwt",
        f"{header}.{payload}.",
        base64.urlsafe_b64encode(b'{"alg":"none"}').decode() + f".{payload}.",
    ):
        with pytest.raises(AuthenticationFailed):
            issuer.verify(bad, audience=ACCOUNT_AUDIENCE)


def test_a_key_ring_signs_with_its_newest_key_and_accepts_all_of_them(clock: ManualClock) -> None:
    old, new = new_signing_key(clock.now()), new_signing_key(clock.now() + dt.timedelta(seconds=1))
    issuer = TokenIssuer([old], clock)
    before, _ = issuer.issue_account_token(ACC)
    issuer.set_keys([new, old])  # a rotation, as the store lists it: newest first
    after, _ = issuer.issue_account_token(ACC)
    assert jwt.get_unverified_header(before)["kid"] == old.kid
    assert jwt.get_unverified_header(after)["kid"] == new.kid == issuer.kid
    for token in (before, after):
        assert issuer.verify(token, audience=ACCOUNT_AUDIENCE)["sub"] == ACC
    # Revoked: the old key leaves the ring, and what it signed is refused, even if verified before.
    issuer.set_keys([new])
    with pytest.raises(UnknownSigningKey):
        issuer.verify(before, audience=ACCOUNT_AUDIENCE)
    assert issuer.verify(after, audience=ACCOUNT_AUDIENCE)["sub"] == ACC
    # A token of a key this issuer has not read yet names an unknown key (the runtime re-reads the store).
    newer = TokenIssuer([new_signing_key(clock.now())], clock).issue_account_token(ACC)[0]
    with pytest.raises(UnknownSigningKey):
        issuer.verify(newer, audience=ACCOUNT_AUDIENCE)


def test_key_hashes() -> None:
    key = new_key()
    assert len(key) == 44
    assert key.endswith("=")
    stored = hash_key(key)
    assert key not in stored
    assert key_matches(key, stored)
    assert not key_matches(new_key(), stored)
    assert not key_matches(key, "garbage")
    assert hash_key(key) != stored  # salted
