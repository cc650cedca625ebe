"""Token verification: what is accepted, and every way a token can be forged or go stale."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shared.auth import DEV_SECRET, Role, TokenError, TokenVerifier, mint_token
from shared.auth.tokens import AUDIENCE, ISSUER, KeyConfigError
from tests.authkit import jwk, private_pem, public_pem, rsa_key, token

HS = TokenVerifier(secret=DEV_SECRET)


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"sub": "alice", "roles": ["planner"], "iss": ISSUER, "aud": AUDIENCE,
              "iat": now, "exp": now + 600}  # fmt: skip
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _hs(claims: dict[str, Any], secret: str = DEV_SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def _segment(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _rejected(verifier: TokenVerifier, value: str) -> str:
    with pytest.raises(TokenError) as raised:
        verifier.verify(value)
    return str(raised.value)


# -- accepted ---------------------------------------------------------------------------------


def test_a_development_token_names_its_principal() -> None:
    principal = HS.verify(token(Role.DONOR, nation="pl", sub="warsaw-1"))
    assert principal.sub == "warsaw-1"
    assert principal.roles == {Role.DONOR}
    assert principal.nation == "PL"
    assert principal.actor == "warsaw-1@PL"


def test_a_hub_operator_token_carries_its_hub() -> None:
    principal = HS.verify(token(Role.HUB, hub="RO-SUC"))
    assert (principal.hub, principal.actor) == ("RO-SUC", "test-hub@RO-SUC")


def test_a_token_just_past_expiry_is_accepted_within_the_leeway() -> None:
    assert HS.verify(_hs(_claims(exp=int(time.time()) - 5))).sub == "alice"


def test_a_remembered_token_is_checked_in_full_again_once_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checks: list[str] = []
    decode = jwt.decode

    def counted(value: str, *a: Any, **k: Any) -> Any:
        checks.append(value)
        return decode(value, *a, **k)

    monkeypatch.setattr(jwt, "decode", counted)
    verifier = TokenVerifier(secret=DEV_SECRET, leeway=0)
    now = int(time.time())
    value = _hs(_claims(exp=now + 60))
    assert verifier.verify(value).sub == "alice"
    assert verifier.verify(value).sub == "alice"
    assert len(checks) == 1  # the second time it was remembered
    monkeypatch.setattr(time, "time", lambda: now + 61.0)
    verifier.verify(value)  # (still valid by the clock jwt reads)
    assert len(checks) == 2


def test_a_remembered_token_does_not_vouch_for_a_tampered_copy() -> None:
    verifier = TokenVerifier(secret=DEV_SECRET)
    value = _hs(_claims())
    verifier.verify(value)
    header, _payload, signature = value.split(".")
    forged = ".".join([header, _segment(_claims(sub="mallory")), signature])
    assert "signature" in _rejected(verifier, forged)


# -- tampering: each is a TokenError (answered with 401) --------------------------------------


def test_expired() -> None:
    assert "expired" in _rejected(HS, _hs(_claims(exp=int(time.time()) - 60)))


def test_expired_by_the_minting_helper() -> None:
    assert "expired" in _rejected(HS, token(Role.PLANNER, ttl_seconds=-60))


def test_not_yet_valid() -> None:
    assert "not valid yet" in _rejected(HS, _hs(_claims(nbf=int(time.time()) + 600)))


def test_alg_none_is_refused() -> None:
    unsigned = f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(_claims())}."
    assert "algorithm" in _rejected(HS, unsigned)


def test_alg_none_made_by_pyjwt_is_refused() -> None:
    unsigned = jwt.encode(_claims(), None, algorithm="none")  # type: ignore[arg-type]
    assert "algorithm" in _rejected(HS, unsigned)


def test_signed_with_another_secret() -> None:
    forged = _hs(_claims(), secret="someone-else-s-secret-of-32-bytes!!")
    assert "signature" in _rejected(HS, forged)


def test_payload_changed_after_signing() -> None:
    header, _, signature = token(Role.OBSERVER).split(".")
    elevated = _segment(_claims(roles=["admin"]))
    assert "signature" in _rejected(HS, f"{header}.{elevated}.{signature}")


def test_signature_stripped() -> None:
    header, payload, _ = token(Role.ADMIN).split(".")
    assert "signature" in _rejected(HS, f"{header}.{payload}.")


def test_wrong_audience() -> None:
    assert "audience" in _rejected(HS, _hs(_claims(aud="another-system")))


def test_wrong_issuer() -> None:
    assert "issued by someone else" in _rejected(HS, _hs(_claims(iss="evil")))


@pytest.mark.parametrize("claim", ["sub", "exp", "iss", "aud"])
def test_missing_required_claim(claim: str) -> None:
    assert f"'{claim}'" in _rejected(HS, _hs(_claims(**{claim: None})))


@pytest.mark.parametrize(
    "value",
    ["", "garbage", "a.b.c", "a.b", "....", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln", "é.é.é"],
)
def test_malformed(value: str) -> None:
    assert _rejected(HS, value)


def test_oversized_token() -> None:
    assert "too long" in _rejected(HS, "a" * 10_000)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"roles": "admin"}, "list"),
        ({"roles": [1]}, "list"),
        ({"roles": ["emperor"]}, "role"),
        ({"sub": 42}, "subject"),
        ({"sub": "  "}, "subject"),
        ({"nation": "POL"}, "alpha-2"),
        ({"nation": 48}, "nation"),
        ({"hub": ["PL-RZE"]}, "hub"),
        ({"exp": "tomorrow"}, "malformed"),
    ],
)
def test_claims_of_the_wrong_shape(claims: dict[str, Any], reason: str) -> None:
    assert reason in _rejected(HS, _hs(_claims(**claims)))


def test_a_token_without_roles_is_valid_but_may_do_nothing() -> None:
    assert HS.verify(_hs(_claims(roles=None))).roles == frozenset()


# -- RS256: a PEM public key or a JWKS ---------------------------------------------------------


def _rs(claims: dict[str, Any], key_name: str = "default", kid: str | None = None) -> str:
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, private_pem(rsa_key(key_name)), algorithm="RS256", headers=headers)


_jwk = jwk


RS = TokenVerifier(public_key=public_pem(rsa_key()))


def test_rs256_with_the_public_key() -> None:
    assert RS.verify(_rs(_claims())).sub == "alice"
    assert RS.algorithm == "RS256"


def test_rs256_minted_by_the_helper() -> None:
    value = mint_token(private_pem(rsa_key()), "bob", ["forum"], algorithm="RS256")
    assert RS.verify(value).roles == {Role.FORUM}


def test_rs256_signed_by_another_key() -> None:
    assert "signature" in _rejected(RS, _rs(_claims(), key_name="attacker"))


def test_rs256_verifier_refuses_hs256_signed_with_the_public_key() -> None:
    """The algorithm-confusion attack: the public key (which anyone has) as an HMAC secret."""
    forged = jwt.api_jws.PyJWS()
    forged._algorithms["HS256"].prepare_key = lambda key: key  # type: ignore[method-assign]
    value = forged.encode(json.dumps(_claims()).encode(), public_pem(rsa_key()).encode(), "HS256")
    assert "algorithm" in _rejected(RS, value)


def test_hs256_verifier_refuses_rs256() -> None:
    assert "algorithm" in _rejected(HS, _rs(_claims()))


def test_rs256_expired_and_wrong_audience() -> None:
    assert "expired" in _rejected(RS, _rs(_claims(exp=int(time.time()) - 60)))
    assert "audience" in _rejected(RS, _rs(_claims(aud="other")))


def test_jwks_picks_the_key_by_kid() -> None:
    verifier = TokenVerifier(jwks={"keys": [_jwk("default", "k1"), _jwk("next", "k2")]})
    assert verifier.verify(_rs(_claims(), "default", kid="k1")).sub == "alice"
    assert verifier.verify(_rs(_claims(sub="bob"), "next", kid="k2")).sub == "bob"
    assert "do not know" in _rejected(verifier, _rs(_claims(), "default", kid="k3"))
    assert "do not know" in _rejected(verifier, _rs(_claims(), "default"))
    assert "signature" in _rejected(verifier, _rs(_claims(), "attacker", kid="k1"))


def test_jwks_with_one_key_accepts_tokens_without_kid() -> None:
    verifier = TokenVerifier(jwks={"keys": [_jwk("default", None)]})
    assert verifier.verify(_rs(_claims())).sub == "alice"


def test_jwks_ignores_keys_that_are_not_rsa_signing_keys() -> None:
    encryption = _jwk("next", "enc") | {"use": "enc"}
    verifier = TokenVerifier(jwks={"keys": [_jwk("default", "k1"), encryption]})
    assert "do not know" in _rejected(verifier, _rs(_claims(), "next", kid="enc"))


def test_from_files(tmp_path: Path) -> None:
    pem = tmp_path / "public.pem"
    pem.write_text(public_pem(rsa_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [_jwk("default", "k1")]}))
    assert TokenVerifier.from_files(public_key_file=pem).verify(_rs(_claims())).sub == "alice"
    from_jwks = TokenVerifier.from_files(secret=DEV_SECRET, jwks_file=jwks)
    assert from_jwks.verify(_rs(_claims(), kid="k1")).sub == "alice"
    assert TokenVerifier.from_files(secret=DEV_SECRET).algorithm == "HS256"


def test_configured_issuer_and_audience() -> None:
    verifier = TokenVerifier(secret=DEV_SECRET, issuer="https://idp.example", audience="aidline")
    assert verifier.verify(_hs(_claims(iss="https://idp.example"))).sub == "alice"
    assert "issued by someone else" in _rejected(verifier, _hs(_claims()))


# -- configuration errors surface at startup ---------------------------------------------------


def _ec_public_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "required"),
        ({"secret": ""}, "required"),
        ({"secret": "s" * 40, "public_key": "x"}, "not secret and public key"),
        ({"public_key": "not a key"}, "PEM"),
        ({"public_key": "EC"}, "RSA"),
        ({"jwks": {"keys": []}}, "JWKS"),
        ({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}, "no RSA signing key"),
    ],
)
def test_unusable_key_configuration(options: dict[str, Any], message: str) -> None:
    if options.get("public_key") == "EC":
        options["public_key"] = _ec_public_pem()
    with pytest.raises(KeyConfigError, match=message):
        TokenVerifier(**options)


def test_unreadable_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match="cannot read"):
        TokenVerifier.from_files(public_key_file=tmp_path / "missing.pem")
    broken = tmp_path / "jwks.json"
    broken.write_text("{not json")
    with pytest.raises(KeyConfigError, match="cannot read"):
        TokenVerifier.from_files(jwks_file=broken)


# -- keys that rotate ---------------------------------------------------------------------


def _publish(path: Path, *keys: tuple[str, str]) -> None:
    """Replace the JWKS file atomically, as a deployment should (write, then rename)."""
    draft = path.with_suffix(".tmp")
    draft.write_text(json.dumps({"keys": [_jwk(name, kid) for name, kid in keys]}))
    os.replace(draft, path)


def test_a_jwks_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    _publish(path, ("default", "k1"))
    verifier = TokenVerifier.from_files(jwks_file=path)
    old = _rs(_claims(), "default", kid="k1")
    assert verifier.verify(old).sub == "alice"
    _publish(path, ("next", "k2"))  # rotated: k1 removed, k2 added
    assert verifier.verify(_rs(_claims(sub="bob"), "next", kid="k2")).sub == "bob"
    # The token verified before is refused too: its key is gone (no stale cache entry).
    assert "do not know" in _rejected(verifier, old)
    assert "do not know" in _rejected(verifier, _rs(_claims(sub="carol"), "default", kid="k1"))


def test_a_broken_jwks_file_keeps_the_keys_read_before(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    _publish(path, ("default", "k1"))
    verifier = TokenVerifier.from_files(jwks_file=path)
    path.write_text('{"keys": [')  # half written
    assert verifier.verify(_rs(_claims(), "default", kid="k1")).sub == "alice"
    _publish(path, ("default", "k1"), ("next", "k2"))
    assert verifier.verify(_rs(_claims(), "next", kid="k2")).sub == "alice"


def test_a_verified_token_keeps_its_expiry() -> None:
    exp = int(time.time()) + 120
    principal = TokenVerifier(secret=DEV_SECRET, leeway=5).verify(_hs(_claims(exp=exp)))
    assert principal.expires_at == exp + 5
