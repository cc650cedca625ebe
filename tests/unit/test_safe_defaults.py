"""Safe by default: the development secret stays on loopback (Docker Compose:
tests/unit/test_compose.py), and `make run`'s token file is its owner's alone."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.cli.run import write_private
from shared.settings import ServiceSettings, is_loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.2", "example.org", ""])
def test_other_hosts(host: str) -> None:
    assert not is_loopback(host)


def test_the_development_secret_does_not_listen_on_the_network() -> None:
    with pytest.raises(ValidationError, match="ALLOW_DEVELOPMENT_ON_NETWORK"):
        ServiceSettings(host="0.0.0.0")
    assert ServiceSettings(host="0.0.0.0", allow_development_on_network=True)
    assert ServiceSettings(host="0.0.0.0", jwt_secret="x" * 40)  # a secret of the deployment's
    assert ServiceSettings(host="127.0.0.1")


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_the_token_file_is_its_owners_alone(tmp_path: Path, umask: int) -> None:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o755)
    path = folder / "tokens.env"
    path.write_text("old\n")
    path.chmod(0o644)  # an older, readable file
    previous = os.umask(umask)
    try:
        write_private(path, "export TOKEN=x\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert path.read_text() == "export TOKEN=x\n"


def test_one_key_source_and_jwks_over_https_in_production(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text("{}")
    with pytest.raises(ValidationError, match="not several"):
        ServiceSettings(jwt_jwks_url="https://idp.example/certs", jwt_jwks_file=jwks)
    with pytest.raises(ValidationError, match="https"):
        ServiceSettings(environment="production", jwt_jwks_url="http://idp.example/certs")
    assert ServiceSettings(environment="production", jwt_jwks_url="https://idp.example/certs")
    assert ServiceSettings(jwt_jwks_url="http://127.0.0.1:8080/certs")  # development
