"""Access tokens: 24-hour JWTs signed with Ed25519.

Asymmetric signatures let render servers check a client's token with the public key alone. The signing key
lives in the store, so every control-plane replica issues and accepts the same tokens.

Three audiences share the key:
  * ``openrr``          — an account's access token from the STS (claims: sub = account id);
  * ``openrr-render``   — the credential a render server uses to call the control plane back (sub = session);
  * ``openrr-operator`` — ``openrr cluster status``.

Connect tokens (``issue_connect_token``) are the only credential a render server accepts from clients: HS256
with the session's own ``connect_secret``, which only the control plane and that session's render server
hold, so one is good for one session's render server and nothing else (``openrr.protocol.handshake``).

The stock ARR SDK reads ``exp`` by base64-decoding the payload with the *standard* alphabet, dropping the
URL-safe characters ``-`` and ``_``. ``issue`` therefore varies a padding claim until the encoded payload
contains neither (notes §9.4).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
from collections.abc import Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from openrr.domain.account import SigningKey
from openrr.domain.clock import Clock
from openrr.domain.session import MAX_LEASE_MINUTES
from openrr.errors import AuthenticationFailed
from openrr.protocol.handshake import CONNECT_AUDIENCE

ISSUER = "openrr"
ACCOUNT_AUDIENCE = "openrr"
RENDER_AUDIENCE = "openrr-render"
# Operators (``openrr cluster status``): whoever can read the store's signing key.
OPERATOR_AUDIENCE = "openrr-operator"
TOKEN_LIFETIME = dt.timedelta(hours=24)
# The longest-lived token: a render server's callback credential, which lasts a whole lease and an hour more.
MAX_TOKEN_LIFETIME = dt.timedelta(minutes=MAX_LEASE_MINUTES + 60)
_VERIFIED_CACHE_SIZE = 10_000


def new_signing_key(now: dt.datetime) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return SigningKey(kid=secrets.token_hex(8), private_pem=pem, created_at=now)


def _private_key(key: SigningKey) -> Ed25519PrivateKey:
    private = serialization.load_pem_private_key(key.private_pem, password=None)
    assert isinstance(private, Ed25519PrivateKey)
    return private


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class UnknownSigningKey(AuthenticationFailed):
    """A token whose ``kid`` names no key this issuer holds: one made by a newer key (reload the keys and
    try again) or by a key that was revoked."""


class TokenIssuer:
    """Signs with the newest of its keys and accepts tokens of any of them (``openrr keys rotate``).

    ``keys`` is the store's key ring, newest first; ``set_keys`` swaps it for a newer reading.
    """

    def __init__(self, keys: Sequence[SigningKey], clock: Clock) -> None:
        self._clock = clock
        # Signature checks cost ~0.1 ms each and clients send the same token for 24 hours: remember the
        # claims of tokens whose signature was good (lifetime is still checked on every use).
        self._verified: dict[tuple[str, str], dict[str, Any]] = {}
        self._publics: dict[str, Ed25519PublicKey] = {}
        self._kid = ""
        self.set_keys(keys)

    def set_keys(self, keys: Sequence[SigningKey]) -> None:
        if not keys:
            raise ValueError("a token issuer needs at least one signing key")
        # Only keys not seen before are parsed: the ring is read again every few seconds.
        publics: dict[str, Ed25519PublicKey] = {}
        for key in keys:
            known = self._publics.get(key.kid)
            publics[key.kid] = known if known is not None else _private_key(key).public_key()
        if set(self._publics) - set(publics):
            # A key was revoked: what was verified with it must be checked again (and now fail).
            self._verified.clear()
        if keys[0].kid != self._kid:
            self._private = _private_key(keys[0])
            self._kid = keys[0].kid
        self._publics = publics

    @property
    def kid(self) -> str:
        """The key new tokens are signed with."""
        return self._kid

    def _sign(self, claims: dict[str, Any]) -> str:
        # The payload is encoded here rather than by PyJWT so its exact bytes can be checked.
        header = _b64url(
            json.dumps({"alg": "EdDSA", "typ": "JWT", "kid": self._kid}, separators=(",", ":")).encode()
        )
        for _ in range(1000):
            claims["pad"] = secrets.token_hex(4)
            payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
            if "-" not in payload and "_" not in payload:
                break
        signing_input = f"{header}.{payload}".encode()
        return f"{header}.{payload}.{_b64url(self._private.sign(signing_input))}"

    def issue_account_token(self, account_id: str) -> tuple[str, dt.datetime]:
        now = self._clock.now()
        expires = now + TOKEN_LIFETIME
        claims = {
            "iss": ISSUER,
            "aud": ACCOUNT_AUDIENCE,
            "sub": account_id,
            "accountId": account_id,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()) - 60,
            "exp": int(expires.timestamp()),
            "jti": secrets.token_hex(8),
        }
        return self._sign(claims), expires

    def issue_render_token(self, account_id: str, session_id: str, lifetime: dt.timedelta) -> str:
        now = self._clock.now()
        claims = {
            "iss": ISSUER,
            "aud": RENDER_AUDIENCE,
            "sub": session_id,
            "accountId": account_id,
            "iat": int(now.timestamp()),
            "exp": int((now + lifetime).timestamp()),
        }
        return self._sign(claims)

    def issue_connect_token(self, account_id: str, session_id: str, secret: str, expires: dt.datetime) -> str:
        """A client's credential for one session's render server, valid until ``expires``."""
        now = self._clock.now()
        claims = {
            "iss": ISSUER,
            "aud": CONNECT_AUDIENCE,
            "sub": session_id,
            "accountId": account_id,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()) - 60,
            "exp": int(expires.timestamp()),
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, secret, algorithm="HS256")

    def issue_operator_token(self, lifetime: dt.timedelta = dt.timedelta(minutes=1)) -> str:
        now = self._clock.now()
        claims = {
            "iss": ISSUER,
            "aud": OPERATOR_AUDIENCE,
            "sub": "operator",
            "iat": int(now.timestamp()),
            "exp": int((now + lifetime).timestamp()),
        }
        return self._sign(claims)

    def verify(self, token: str, *, audience: str) -> dict[str, Any]:
        """Check signature, issuer, audience and lifetime against the injected clock; return the claims."""
        claims = self._verified.get((token, audience))
        if claims is None:
            claims = self._check_signature(token, audience)
            if len(self._verified) >= _VERIFIED_CACHE_SIZE:
                del self._verified[next(iter(self._verified))]
            self._verified[(token, audience)] = claims
        now = self._clock.now().timestamp()
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
            raise AuthenticationFailed("The access token has expired.")
        if isinstance(claims.get("nbf"), int) and claims["nbf"] > now:
            raise AuthenticationFailed("The access token is not valid yet.")
        return claims

    def _check_signature(self, token: str, audience: str) -> dict[str, Any]:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed(f"The access token is not valid: {exc}.") from None
        public = self._publics.get(kid) if isinstance(kid, str) else None
        if public is None:
            raise UnknownSigningKey("The access token was signed with a key this service no longer accepts.")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                public,
                algorithms=["EdDSA"],
                audience=audience,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed(f"The access token is not valid: {exc}.") from None
        return claims
