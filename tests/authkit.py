"""Tokens and keys for tests: a bearer header for any role, and RSA keys made on the spot."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from shared.auth import DEV_SECRET, Role, mint_token

NATION = "PL"
HUB = "PL-RZE"
OTHER_NATION = "DE"
OTHER_HUB = "RO-SUC"


def token(
    *roles: Role | str,
    nation: str | None = None,
    hub: str | None = None,
    sub: str | None = None,
    secret: str = DEV_SECRET,
    **kw: Any,
) -> str:
    """A development token; donors default to NATION and hub operators to HUB."""
    if Role.DONOR in roles and nation is None:
        nation = NATION
    if Role.HUB in roles and hub is None:
        hub = HUB
    name = sub or "test-" + "-".join(str(r) for r in roles)
    return mint_token(secret, name, list(map(str, roles)), nation=nation, hub=hub, **kw)


def bearer(*roles: Role | str, **kw: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(*roles, **kw)}"}


_KEYS: dict[str, rsa.RSAPrivateKey] = {}


def rsa_key(name: str = "default") -> rsa.RSAPrivateKey:
    """A fresh 2048-bit key per name, made once per test run (`name` tells keys apart)."""
    if name not in _KEYS:
        _KEYS[name] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _KEYS[name]


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def jwk(key_name: str, kid: str | None) -> dict[str, Any]:
    """The public half of `rsa_key(key_name)` as a JWKS entry (a signing key named `kid`)."""
    entry: dict[str, Any] = RSAAlgorithm.to_jwk(rsa_key(key_name).public_key(), as_dict=True)
    return entry | ({"kid": kid, "use": "sig"} if kid else {})


def rs256(key_name: str, kid: str | None, **claims: Any) -> str:
    """A token signed with `rsa_key(key_name)`, naming `kid` in its header."""
    sub = str(claims.pop("sub", "test-planner"))
    roles = claims.pop("roles", ["planner"])
    return mint_token(private_pem(rsa_key(key_name)), sub, roles, algorithm="RS256", kid=kid,
                      **claims)  # fmt: skip
