"""A service refuses to start outside development with the development secret or no key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shared.auth import DEV_SECRET
from shared.settings import ServiceSettings
from tests.authkit import public_pem, rsa_key

STRONG = "k" * 48


def _settings(**values: Any) -> ServiceSettings:
    return ServiceSettings(_env_file=None, **values)


def _refused(**values: Any) -> str:
    with pytest.raises(ValidationError) as raised:
        _settings(**values)
    return str(raised.value)


def _pem(tmp_path: Path) -> Path:
    path = tmp_path / "public.pem"
    path.write_text(public_pem(rsa_key()))
    return path


def test_development_and_test_run_with_the_development_secret() -> None:
    assert _settings().jwt_secret == DEV_SECRET
    assert _settings(environment="test").development


def test_production_with_the_development_secret_is_refused() -> None:
    message = _refused(environment="production")
    assert "refusing to start in production with the development JWT secret" in message
    assert _refused(environment="production", jwt_secret=DEV_SECRET)


def test_production_with_the_development_secret_from_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("JWT_SECRET", DEV_SECRET)
    with pytest.raises(ValidationError, match="development JWT secret"):
        ServiceSettings(_env_file=None)


@pytest.mark.parametrize("environment", ["development", "test", "production"])
def test_no_secret_and_no_key_is_refused_everywhere(environment: str) -> None:
    assert "no JWT key configured" in _refused(environment=environment, jwt_secret="")


def test_production_with_a_short_secret_is_refused() -> None:
    assert "shorter than 32 bytes" in _refused(environment="production", jwt_secret="short")


def test_production_with_a_strong_secret_starts() -> None:
    assert not _settings(environment="production", jwt_secret=STRONG).development


def test_production_with_a_public_key_or_jwks_file_starts(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    assert _settings(environment="production", jwt_public_key_file=_pem(tmp_path))
    assert _settings(environment="production", jwt_jwks_file=jwks)


def test_a_key_file_must_exist(tmp_path: Path) -> None:
    assert "jwt_public_key_file" in _refused(jwt_public_key_file=tmp_path / "missing.pem")
    assert "jwt_jwks_file" in _refused(jwt_jwks_file=tmp_path / "missing.json")


def test_public_key_and_jwks_together_are_ambiguous(tmp_path: Path) -> None:
    pem = _pem(tmp_path)
    assert "not several" in _refused(jwt_public_key_file=pem, jwt_jwks_file=pem)


@pytest.mark.parametrize(
    "values",
    [
        {"jwt_leeway_seconds": -1},
        {"jwt_leeway_seconds": 3600},
        {"jwt_issuer": ""},
        {"rate_limit_per_minute": 0},
        {"rate_limit_burst": 0},
        {"max_body_bytes": 10},
        {"environment": "staging"},
    ],
)
def test_out_of_range_values_are_refused(values: dict[str, Any]) -> None:
    assert _refused(**values)
