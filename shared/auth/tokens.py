"""Bearer JWTs: verification and minting for development.

One verifier accepts exactly one algorithm, chosen by how it is configured: HS256 with a shared
secret (development), or RS256 with a PEM public key, a JWKS file or the identity provider's
JWKS URL (deployments, where an identity provider signs). Fixing the algorithm on our side is
what defeats `alg: none` and the RS256-to-HS256 confusion attack: the token's header never
chooses how it is checked. Keys rotate without a restart: a JWKS file is read again when it
changes, a JWKS URL fetched again when its cache runs out or a token names a key it lacks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from shared.auth.policy import Role
from shared.auth.principal import Principal

log = logging.getLogger(__name__)

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


class KeysUnavailable(Exception):
    """The signing keys cannot be fetched now (the JWKS URL does not answer): not the token's
    fault, so answered with 503."""


# How many verified tokens a verifier remembers (a few hundred bytes each).
VERIFIED_TOKENS_KEPT = 4096


class KeySource(Protocol):
    """Where the verification keys come from."""

    # Whether `key` may wait on the network (a JWKS URL): then verification runs off the loop.
    may_block: bool

    def peek(self, kid: str | None) -> Any | None:
        """The key now known for `kid`, without waiting on the network (None: none known)."""

    def key(self, kid: str | None) -> Any:
        """The key for `kid`, fetching the key set again for an unknown one (TokenError when
        there is none)."""


class FixedKey:
    """One key, for every token: the HS256 secret or an RS256 PEM public key."""

    may_block = False

    def __init__(self, key: Any) -> None:
        self._key = key

    def peek(self, kid: str | None) -> Any:
        return self._key

    def key(self, kid: str | None) -> Any:
        return self._key


class JwksFile:
    """A JWKS document in a file, read again whenever the file changes (its modification time,
    size or inode: replace it atomically, with a rename). A file that cannot be read or parsed
    after a change leaves the keys as they were, with a warning."""

    may_block = False

    def __init__(self, path: Path) -> None:
        self._path = path
        try:
            self._stamp = self._stat()
            self._keys = _jwks_keys(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise KeyConfigError(f"cannot read the JWT key file: {exc}") from exc

    def _stat(self) -> tuple[int, int, int]:
        stat = self._path.stat()
        return stat.st_mtime_ns, stat.st_size, stat.st_ino

    def _current(self) -> dict[str | None, Any]:
        try:
            stamp = self._stat()
        except OSError:
            return self._keys  # between an unlink and a rename: keep what we have
        if stamp != self._stamp:
            self._stamp = stamp  # once per change, even when this one cannot be read
            try:
                self._keys = _jwks_keys(json.loads(self._path.read_text()))
            except (OSError, ValueError) as exc:
                log.warning("JWKS file %s changed but is not usable (%s); keeping the keys "
                            "read before", self._path, exc)  # fmt: skip
            else:
                log.info("JWKS file %s read again: key ids %s", self._path, sorted(
                    str(k) for k in self._keys))  # fmt: skip
        return self._keys

    def peek(self, kid: str | None) -> Any | None:
        return _pick(self._current(), kid)

    def key(self, kid: str | None) -> Any:
        found = self.peek(kid)
        if found is None:
            raise TokenError(UNKNOWN_KEY)
        return found


class JwksUrl:
    """The identity provider's JWKS endpoint, through PyJWT's `PyJWKClient`: the key set is
    cached for `lifespan` seconds and fetched again for a `kid` it does not hold (at most once
    per `cooldown` seconds, so tokens naming made-up keys cannot flood the provider)."""

    may_block = True

    def __init__(self, url: str, *, lifespan: float, cooldown: float, timeout: float) -> None:
        try:
            self._client = jwt.PyJWKClient(
                url, lifespan=lifespan, cooldown_duration=cooldown, timeout=timeout
            )
        except jwt.PyJWKClientError as exc:
            raise KeyConfigError(f"the JWKS URL is not usable: {exc}") from exc

    def peek(self, kid: str | None) -> Any | None:
        cache = self._client.jwk_set_cache
        cached = cache.get() if cache is not None else None  # None once the lifespan is over
        if cached is None:
            return None
        return _pick(_signing_keys(cached), kid)

    def key(self, kid: str | None) -> Any:
        if kid is None:
            raise TokenError("the token names no signing key (kid)")
        try:
            jwk = self._client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            raise KeysUnavailable(f"the signing keys could not be fetched: {exc}") from exc
        except (jwt.PyJWKSetError, ValueError) as exc:  # not a key set, not JSON
            raise KeysUnavailable(f"the JWKS URL answered no usable key set: {exc}") from exc
        except jwt.PyJWKClientError as exc:
            raise TokenError(UNKNOWN_KEY) from exc
        if jwk.key_type != "RSA" or jwk.public_key_use not in (None, "sig"):
            raise TokenError(UNKNOWN_KEY)
        return jwk.key


UNKNOWN_KEY = "the token is signed with a key we do not know"


class TokenVerifier:
    """Checks a bearer token and returns who it names.

    Exactly one of `secret` (HS256), `public_key` (RS256, PEM text), `jwks` (RS256, a JWKS
    document as a mapping) or `keys` (RS256, a `JwksFile` or `JwksUrl`) must be given.
    """

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        jwks: Mapping[str, Any] | None = None,
        keys: KeySource | None = None,
        leeway: int = 10,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
    ) -> None:
        given = [name for name, v in (("secret", secret), ("public key", public_key),
                                      ("JWKS", jwks), ("key source", keys)) if v]  # fmt: skip
        if not given:
            raise KeyConfigError("a JWT secret, public key or JWKS is required")
        if len(given) > 1:
            raise KeyConfigError(f"configure one JWT key, not {' and '.join(given)}")
        self._keys: KeySource
        if keys is not None:
            self._keys = keys
        elif jwks:
            self._keys = _StaticJwks(_jwks_keys(jwks))
        elif public_key:
            self._keys = FixedKey(_rsa_public_key(public_key))
        else:
            self._keys = FixedKey(secret)
        self._algorithm = "HS256" if secret else "RS256"
        self._leeway = leeway
        self._issuer = issuer
        self._audience = audience
        # Tokens already verified: who, until when, and with which key. A client sends the same
        # token with every request, and checking a signature costs more than the rest of auth;
        # an entry counts only while its key is still the one the source holds for its kid, so
        # a key removed from the JWKS takes its tokens with it.
        self._verified: dict[str, tuple[Principal, float, str | None, Any]] = {}
        self._lock = threading.Lock()  # verification may run in worker threads (JWKS URL)

    @classmethod
    def from_files(
        cls,
        *,
        secret: str | None = None,
        public_key_file: Path | None = None,
        jwks_file: Path | None = None,
        jwks_url: str | None = None,
        jwks_cache_seconds: float = 300,
        jwks_cooldown_seconds: float = 10,
        leeway: int = 10,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
    ) -> TokenVerifier:
        """A verifier from deployment settings: a key file or URL, if any, wins over the
        secret."""
        options: dict[str, Any] = {"leeway": leeway, "issuer": issuer, "audience": audience}
        if jwks_url is not None:
            source = JwksUrl(jwks_url, lifespan=jwks_cache_seconds,
                             cooldown=jwks_cooldown_seconds, timeout=5)  # fmt: skip
            return cls(keys=source, **options)
        if jwks_file is not None:
            return cls(keys=JwksFile(jwks_file), **options)
        if public_key_file is not None:
            try:
                pem = public_key_file.read_text()
            except OSError as exc:
                raise KeyConfigError(f"cannot read the JWT key file: {exc}") from exc
            return cls(public_key=pem, **options)
        return cls(secret=secret, **options)

    @property
    def algorithm(self) -> str:
        return self._algorithm

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified before, if it still holds (no network)."""
        known = self._verified.get(token)
        if known is None:
            return None
        principal, expires, kid, key = known
        if time.time() < expires and self._keys.peek(kid) is key:
            return principal
        with self._lock:
            self._verified.pop(token, None)  # expired or its key changed: verify again
        return None

    async def verify_async(self, token: str) -> Principal:
        """`verify`, off the event loop when it may wait on the network (a JWKS fetch)."""
        principal = self.cached(token)
        if principal is not None:
            return principal
        if self._keys.may_block:
            return await asyncio.to_thread(self.verify, token)
        return self.verify(token)

    def verify(self, token: str) -> Principal:
        principal = self.cached(token)
        if principal is not None:
            return principal
        if len(token) > MAX_TOKEN_CHARS:
            raise TokenError("the token is too long")
        kid = None if isinstance(self._keys, FixedKey) else _kid(token)
        key = self._keys.key(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(_reason(exc)) from exc
        expires = float(claims["exp"] + self._leeway)
        principal = replace(_principal(claims), expires_at=expires)
        with self._lock:
            if len(self._verified) >= VERIFIED_TOKENS_KEPT:
                del self._verified[next(iter(self._verified))]  # the oldest
            self._verified[token] = (principal, expires, kid, key)
        return principal


class _StaticJwks:
    """A JWKS document given once (tests, tools): its keys never change."""

    may_block = False

    def __init__(self, keys: dict[str | None, Any]) -> None:
        self._keys = keys

    def peek(self, kid: str | None) -> Any | None:
        return _pick(self._keys, kid)

    def key(self, kid: str | None) -> Any:
        found = self.peek(kid)
        if found is None:
            raise TokenError(UNKNOWN_KEY)
        return found


def _kid(token: str) -> str | None:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError as exc:
        raise TokenError(_reason(exc)) from exc
    if kid is not None and not isinstance(kid, str):
        raise TokenError(UNKNOWN_KEY)
    return kid


def _pick(keys: Mapping[str | None, Any], kid: str | None) -> Any | None:
    """The key a token naming `kid` (or none) is checked with: a key set of one key without a
    kid serves every token."""
    if len(keys) == 1 and (kid is None or None in keys):
        return next(iter(keys.values()))
    return keys.get(kid) if kid is not None else None


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


def _signing_keys(keyset: jwt.PyJWKSet) -> dict[str | None, Any]:
    """The RSA signing keys of a key set, by key id (`use: enc` and other key types ignored)."""
    return {
        jwk.key_id: jwk.key
        for jwk in keyset.keys
        if jwk.key_type == "RSA" and jwk.public_key_use in (None, "sig")
    }


def _jwks_keys(document: Mapping[str, Any]) -> dict[str | None, Any]:
    """The RSA signing keys of a JWKS document, by key id."""
    try:
        keyset = jwt.PyJWKSet.from_dict(dict(document))
    except (jwt.PyJWTError, AttributeError) as exc:
        raise KeyConfigError(f"the JWKS is not usable: {exc}") from exc
    keys = _signing_keys(keyset)
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
