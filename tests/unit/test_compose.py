"""docker-compose.yml and the Dockerfile, checked without Docker (none runs on the development
machine): what they name exists, and they start the services the way `aidline run` does."""

from __future__ import annotations

import importlib
import inspect
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from shared.cli.run import SERVICES
from shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
INFRASTRUCTURE = {"kafka", "postgres"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def dockerfile() -> list[str]:
    """The Dockerfile's instructions, one string each (continuation lines joined)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def _app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in compose["services"].items() if k not in INFRASTRUCTURE}


def _settings_class(service: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"services.{service}.settings")
    classes = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, ServiceSettings) and cls.__module__ == module.__name__
    ]
    assert len(classes) == 1, f"services/{service}/settings.py should define one settings class"
    return classes[0]


def _env_names(settings: type[ServiceSettings]) -> set[str]:
    """The environment variables pydantic-settings reads for `settings` (lower case)."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names = set()
    for name, info in settings.model_fields.items():
        assert isinstance(info, FieldInfo)
        alias = info.validation_alias if isinstance(info.validation_alias, str) else None
        names.add((alias or prefix + name).lower())
    return names


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def test_the_file_names_the_infrastructure_and_the_four_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == INFRASTRUCTURE | set(SERVICES)
    assert compose["services"]["kafka"]["image"] == "apache/kafka:4.1.1"
    assert compose["services"]["postgres"]["image"].startswith("postgres:15")


def test_every_service_it_names_exists(compose: dict[str, Any]) -> None:
    for name in _app_services(compose):
        assert (ROOT / "services" / name / "__main__.py").is_file(), name


def test_services_start_the_way_the_cli_starts_them(compose: dict[str, Any]) -> None:
    # `aidline run` and the e2e stack run `[sys.executable, "-m", f"services.{name}"]`.
    for name, service in _app_services(compose).items():
        assert _command(service) == ["python", "-m", f"services.{name}"]
        assert service["build"] == "."


def test_every_environment_variable_is_a_settings_field(compose: dict[str, Any]) -> None:
    for name, service in _app_services(compose).items():
        known = _env_names(_settings_class(name))
        unknown = {var for var in service["environment"] if var.lower() not in known}
        assert not unknown, f"{name} sets variables its settings do not read: {unknown}"


def test_the_services_reach_kafka_and_postgres_inside_the_network(
    compose: dict[str, Any],
) -> None:
    kafka = compose["services"]["kafka"]["environment"]
    advertised = kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    postgres = compose["services"]["postgres"]["environment"]
    for service in _app_services(compose).values():
        env = service["environment"]
        assert f"PLAINTEXT://{env['KAFKA_BOOTSTRAP_SERVERS']}" in advertised
        user, db = postgres["POSTGRES_USER"], postgres["POSTGRES_DB"]
        assert re.fullmatch(
            rf"postgresql\+asyncpg://{user}:{postgres['POSTGRES_PASSWORD']}@postgres:5432/{db}",
            env["DATABASE_URL"],
        )
        assert env["HOST"] == "0.0.0.0"
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_ports_are_the_settings_defaults(compose: dict[str, Any]) -> None:
    for name, service in _app_services(compose).items():
        port = _settings_class(name).model_fields["port"].default  # not the environment's
        assert port == SERVICES[name]
        assert service["ports"] == [f"127.0.0.1:{port}:{port}"]  # this machine only
        probe = " ".join(service["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/readyz" in probe


def test_every_published_port_is_on_loopback(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} everywhere"


def test_development_mode_only_when_asked(compose: dict[str, Any]) -> None:
    """ENVIRONMENT defaults to production, which refuses the development secret: the services
    start only with a key of the user's, or with AIDLINE_ENVIRONMENT=development on purpose."""
    for name, service in _app_services(compose).items():
        env = service["environment"]
        assert env["ENVIRONMENT"] == "${AIDLINE_ENVIRONMENT:-production}", name
        assert env["JWT_SECRET"] is None, name  # from the user's shell, or unset
        assert env["JWT_JWKS_URL"] is None, name
        as_deployed = {k.lower(): v for k, v in env.items() if v is not None and "$" not in v}
        with pytest.raises(ValidationError, match="production with the development JWT secret"):
            _settings_class(name)(**as_deployed, environment="production")


def test_services_wait_for_healthy_kafka_and_postgres(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "kafka-broker-api-versions.sh" in " ".join(services["kafka"]["healthcheck"]["test"])
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    for service in _app_services(compose).values():
        assert service["depends_on"] == {
            "kafka": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
        }


def test_the_dockerfile_installs_the_project_and_runs_a_service(dockerfile: list[str]) -> None:
    froms = [line for line in dockerfile if line.startswith("FROM")]
    # Two stages on one base, pinned to a patch release (not a moving "3.11-slim").
    assert len(froms) == 2 and froms[0].endswith(" AS build")
    assert {line.split()[1] for line in froms} == {"python:3.11.14-slim-bookworm"}
    copied = {part for line in dockerfile if line.startswith("COPY") for part in line.split()[1:-1]}
    assert {"pyproject.toml", "shared", "services", "requirements/run.txt"} <= copied
    assert any(re.match(r"RUN pip install --no-deps /src(\s|$)", line) for line in dockerfile)
    cmd = next(line for line in dockerfile if line.startswith("CMD"))
    match = re.fullmatch(r'CMD \["python", "-m", "services\.(\w+)"\]', cmd)
    assert match and (ROOT / "services" / match.group(1) / "__main__.py").is_file()


def test_the_dependency_layer_comes_before_the_code(dockerfile: list[str]) -> None:
    """An edit to the code rebuilds the small last layers, not the locked dependencies."""
    locked = next(
        i
        for i, line in enumerate(dockerfile)
        if line.startswith("RUN pip install --require-hashes")
    )
    code = next(i for i, line in enumerate(dockerfile) if line.startswith("COPY shared"))
    assert locked < code
    assert "requirements/run.txt" in dockerfile[locked - 1]


def test_the_image_runs_as_a_user_and_reports_its_health(dockerfile: list[str]) -> None:
    final = dockerfile[max(i for i, line in enumerate(dockerfile) if line.startswith("FROM")) :]
    assert any(re.fullmatch(r"USER [1-9]\d*", line) for line in final)
    healthcheck = next(line for line in final if line.startswith("HEALTHCHECK"))
    assert "/healthz" in healthcheck


def test_the_makefile_drives_compose() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "docker compose up -d --build" in makefile
    assert "docker compose down" in makefile


def test_the_image_leaves_local_state_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".aidline", ".env"} <= ignored
