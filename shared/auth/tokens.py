"""Bearer JWTs: verification and minting for development.

One verifier accepts exactly one algorithm, chosen by how it is configured: HS256 with a shared
secret (development), or RS256 with a PEM public key or a JWKS file (deployments, where an
identity provider signs). Fixing the algorithm on our side is what defeats `alg: none` and the
RS256-to-HS256 confusion attack: the token's header never chooses how it is checked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from shared.auth.policy import Role
from shared.auth.principal import Principal

DEV_SECRET = "aidline-development-secret-do-not-use-in-production"
ISSUER = "aidline"
AUDIENCE = "aidline"
REQUIRED_CLAIMS = ("sub", "exp", "iss", "aud")
# HMAC keys shorter than the hash output are guessable offline (RFC 7518 §3.2).
MIN_SECRET_BYTES = 32
# A bearer token is a header line; anything much larger is not ours and not worth parsing.
MAX_TOKEN_CHARS = 8192
# What a principal may name, so that it fits every column it reaches on every backend: `sub`
# is the idempotency scope (200) and, with `@hub`, the actor (events, audit, approvals: 300).
MAX_SUB_CHARS = 200
MAX_HUB_CHARS = 50

_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidAudienceError, "the token is meant for another audience"),
    (jwt.InvalidIssuerError, "the token was issued by someone else"),
    (jwt.exceptions.InvalidSubjectError, "the token's subject must be a non-empty string"),
    (jwt.InvalidSignatureError, "the token's signature does not match"),
    (jwt.InvalidAlgorithmError, "the token's signing algorithm is not accepted"),
    (jwt.DecodeError, "the token is malformed"),
)


class TokenError(Exception):
    """The token is missing, malformed, expired or not signed by us (answered with 401)."""


class KeyConfigError(ValueError):
    """The configured verification key cannot be used (raised at startup, never per request)."""


# How many verified tokens a verifier remembers (a few hundred bytes each).
VERIFIED_TOKENS_KEPT = 4096


class TokenVerifier:
    """Checks a bearer token and returns who it names.

    Exactly one of `secret` (HS256), `public_key` (RS256, PEM text) or `jwks` (RS256, a JWKS
    document as a mapping) must be given.
    """

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        jwks: Mapping[str, Any] | None = None,
        leeway: int = 10,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
    ) -> None:
        given = [name for name, v in (("secret", secret), ("public key", public_key),
                                      ("JWKS", jwks)) if v]  # fmt: skip
        if not given:
            raise KeyConfigError("a JWT secret, public key or JWKS is required")
        if len(given) > 1:
            raise KeyConfigError(f"configure one JWT key, not {' and '.join(given)}")
        self._keys: dict[str | None, Any]
        if jwks:
            self._keys = _jwks_keys(jwks)
            self._algorithm = "RS256"
        elif public_key:
            self._keys = {None: _rsa_public_key(public_key)}
            self._algorithm = "RS256"
        else:
            self._keys = {None: secret}
            self._algorithm = "HS256"
        self._leeway = leeway
        self._issuer = issuer
        self._audience = audience
        # Tokens already verified, with the time they expire: a client sends the same token
        # with every request, and checking a signature costs more than the rest of auth.
        self._verified: dict[str, tuple[Principal, float]] = {}

    @classmethod
    def from_files(
        cls,
        *,
        secret: str | None = None,
        public_key_file: Path | None = None,
        jwks_file: Path | None = None,
        leeway: int = 10,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
    ) -> TokenVerifier:
        """A verifier from deployment settings: a key file, if any, wins over the secret."""
        options: dict[str, Any] = {"leeway": leeway, "issuer": issuer, "audience": audience}
        try:
            if jwks_file is not None:
                return cls(jwks=json.loads(jwks_file.read_text()), **options)
            if public_key_file is not None:
                return cls(public_key=public_key_file.read_text(), **options)
        except (OSError, json.JSONDecodeError) as exc:
            raise KeyConfigError(f"cannot read the JWT key file: {exc}") from exc
        return cls(secret=secret, **options)

    @property
    def algorithm(self) -> str:
        return self._algorithm

    def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            principal, expires = known
            if time.time() < expires:
                return principal
            del self._verified[token]  # expired: verify again, which says so
        if len(token) > MAX_TOKEN_CHARS:
            raise TokenError("the token is too long")
        try:
            claims = jwt.decode(
                token,
                self._key_for(token),
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(_reason(exc)) from exc
        principal = _principal(claims)
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[token] = (principal, claims["exp"] + self._leeway)
        return principal

    def _key_for(self, token: str) -> Any:
        if len(self._keys) == 1 and None in self._keys:
            return self._keys[None]
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise TokenError(_reason(exc)) from exc
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        if not isinstance(kid, str) or kid not in self._keys:
            raise TokenError("the token is signed with a key we do not know")
        return self._keys[kid]


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token lacks the '{exc.claim}' claim"
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason
    return "the token is not valid"


def _principal(claims: Mapping[str, Any]) -> Principal:
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub.strip():
        raise TokenError("the token's subject must be a non-empty string")
    _check_text("subject", sub, MAX_SUB_CHARS)
    raw_roles = claims.get("roles", [])
    if not isinstance(raw_roles, list) or not all(isinstance(r, str) for r in raw_roles):
        raise TokenError("the token's roles must be a list of names")
    try:
        roles = frozenset(Role(r) for r in raw_roles)
    except ValueError as exc:
        known = ", ".join(Role)
        raise TokenError(f"the token names a role that is not one of {known}") from exc
    nation = _optional_text(claims, "nation")
    if nation is not None and not (len(nation) == 2 and nation.isalpha() and nation.isascii()):
        raise TokenError("the token's nation must be an ISO 3166-1 alpha-2 code")
    hub = _optional_text(claims, "hub")
    if hub is not None:
        _check_text("hub", hub, MAX_HUB_CHARS)
    return Principal(
        sub=sub,
        roles=roles,
        nation=nation.upper() if nation else None,
        hub=hub,
    )


def _check_text(name: str, value: str, max_chars: int) -> None:
    """Printable and short: no NUL or lone surrogate (PostgreSQL stores neither), and short
    enough for the columns a principal's names are stored in."""
    if len(value) > max_chars:
        raise TokenError(f"the token's {name} is longer than {max_chars} characters")
    if not value.isprintable():
        raise TokenError(f"the token's {name} holds characters that are not printable")


def _optional_text(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TokenError(f"the token's {name} must be a string")
    return value


def _rsa_public_key(pem: str) -> RSAPublicKey:
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise KeyConfigError(f"the JWT public key is not a PEM public key: {exc}") from exc
    if not isinstance(key, RSAPublicKey):
        raise KeyConfigError("the JWT public key must be an RSA key (RS256)")
    return key


def _jwks_keys(document: Mapping[str, Any]) -> dict[str | None, Any]:
    """The RSA signing keys of a JWKS document, by key id."""
    try:
        keyset = jwt.PyJWKSet.from_dict(dict(document))
    except jwt.PyJWTError as exc:
        raise KeyConfigError(f"the JWKS is not usable: {exc}") from exc
    keys: dict[str | None, Any] = {}
    for jwk in keyset.keys:
        if jwk.key_type == "RSA" and jwk.public_key_use in (None, "sig"):
            keys[jwk.key_id] = jwk.key
    if not keys:
        raise KeyConfigError("the JWKS holds no RSA signing key")
    if None in keys and len(keys) > 1:
        raise KeyConfigError("every key of a JWKS with several keys needs a `kid`")
    return keys


def mint_token(
    secret: str,
    sub: str,
    roles: list[Role] | list[str],
    *,
    nation: str | None = None,
    hub: str | None = None,
    ttl_seconds: int = 12 * 3600,
    extra: dict[str, Any] | None = None,
    algorithm: str = "HS256",
    kid: str | None = None,
) -> str:
    """A signed token. `secret` is the HS256 secret, or a PEM private key for RS256."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "roles": [str(r) for r in roles],
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if nation:
        claims["nation"] = nation.upper()
    if hub:
        claims["hub"] = hub
    claims.update(extra or {})
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, secret, algorithm=algorithm, headers=headers)
