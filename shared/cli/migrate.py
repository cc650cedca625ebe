"""`aidline migrate`: bring the services' database schemas to their latest revision, once per
deployment (a Kubernetes Job before the new pods start), instead of every replica at its start.

It knows the services by name only: each keeps its Alembic revisions in the `migrations` folder
of its package (`services.<name>`), found without importing the service (which would read its
settings: a JWT key the Job has no need of). The projection's read models live in generations
of their own (`projection_g<n>`); after its base schema the active one is upgraded too, by the
projection's own function, named here as a string (`shared` never imports `services`).

Safe to run twice at once and idempotent: see `shared.db.migrate` (an advisory lock per schema).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from shared.db import Database
from shared.db.migrate import current_revision, head_revision, upgrade
from shared.settings import DEFAULT_SQLITE_URL


@dataclass(frozen=True)
class Target:
    """A service's schema and, where it keeps more schemas than one, the `module:function`
    (`async (database_url, schema) -> list of (schema, revision)`) that upgrades the rest."""

    schema: str
    more: str | None = None


def targets() -> dict[str, Target]:
    return {
        "request": Target("request"),
        "allocation": Target("allocation"),
        "delivery": Target("delivery"),
        # PROJECTION_SCHEMA, as the projection's settings read it.
        "projection": Target(
            os.environ.get("PROJECTION_SCHEMA", "projection"),
            "services.projection.generations:upgrade_active",
        ),
    }


def migrations_of(service: str) -> Path:
    """`services/<service>/migrations`, located without importing the service."""
    spec = importlib.util.find_spec(f"services.{service}")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {service} service is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "migrations"


def _function(path: str) -> Callable[[str, str], Awaitable[list[tuple[str, str | None]]]]:
    module, name = path.split(":")
    function: Callable[[str, str], Awaitable[list[tuple[str, str | None]]]]
    function = getattr(importlib.import_module(module), name)
    return function


async def migrate_service(
    database_url: str, service: str, say: Callable[[str], None]
) -> list[tuple[str, str | None]]:
    """Upgrade one service's schemas; returns each schema with the revision it is now at."""
    target = targets()[service]
    folder = migrations_of(service)
    db = Database(database_url, target.schema, pool_size=2)
    try:
        before = await current_revision(db)
        head = head_revision(folder)
        say(f"{service}: schema {target.schema} at {before or 'nothing'}, head {head}")
        await upgrade(db, folder)
        done = [(target.schema, await current_revision(db))]
    finally:
        await db.dispose()
    if target.more is not None:
        done += await _function(target.more)(database_url, target.schema)
    return done


def _where(database_url: str) -> str:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return f"SQLite files beside {url.database}"
    return f"{url.host}:{url.port or 5432}/{url.database}"


def migrate(
    service: Annotated[
        list[str] | None,
        typer.Option(
            "--service",
            "-s",
            help="Only this service (request, allocation, delivery, projection); repeatable. "
            "Default: all four.",
        ),
    ] = None,
    database_url: Annotated[
        str,
        typer.Option(
            envvar="DATABASE_URL",
            help="The deployment's database (the services' DATABASE_URL); default: the SQLite "
            "files `make run` uses.",
            show_default=False,
        ),
    ] = DEFAULT_SQLITE_URL,
) -> None:
    """Migrate the services' schemas to their latest revision (run once per deployment).

    Idempotent, and safe when two run at once: the second waits for the first and finds
    nothing to do. Exits 1 when the database cannot be reached or a migration fails."""
    known = targets()
    chosen = service or list(known)
    unknown = [name for name in chosen if name not in known]
    if unknown:
        typer.echo(
            f"unknown service {', '.join(unknown)}: choose from {', '.join(known)}", err=True
        )
        raise typer.Exit(2)
    where = _where(database_url)
    typer.echo(f"migrating {', '.join(chosen)} on {where}")
    for name in chosen:
        try:
            done = asyncio.run(migrate_service(database_url, name, typer.echo))
        except (OSError, TimeoutError) as exc:
            typer.echo(f"cannot reach the database at {where}: {exc}", err=True)
            raise typer.Exit(1) from exc
        except Exception as exc:  # the driver's own errors (refused login, missing database)
            typer.echo(f"migrating {name} failed on {where}: {type(exc).__name__}: {exc}", err=True)
            raise typer.Exit(1) from exc
        for schema, revision in done:
            typer.echo(f"{name}: schema {schema} at {revision} (head)")
    typer.echo("done")
