"""The `aidline` command. Each command lives in its own module under `shared/cli/` and is
registered here, so `aidline --help` lists everything in one place."""

from __future__ import annotations

from importlib.metadata import version as installed
from typing import Annotated

import typer

from shared.cli import demo, dlq, imports, migrate, rebuild, run, status, tail, token
from shared.cli._options import Json, emit_json

app = typer.Typer(
    name="aidline",
    help="Aidline: run the stack, migrate, mint tokens, watch events, import, rebuild, dead "
    "letters.",
    no_args_is_help=True,
)


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(installed("aidline"))
        raise typer.Exit()


@app.callback()
def main(
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            expose_value=False,
            help="Print the installed version and exit.",
        ),
    ] = False,
) -> None:
    """Aidline's command line. Addresses: `--<service>-url` (or AIDLINE_<SERVICE>_URL); tokens:
    `--token` (or AIDLINE_TOKEN); `--json` prints one JSON document on stdout."""


@app.command()
def version(json: Json = False) -> None:
    """Print the installed version."""
    if json:
        emit_json({"version": installed("aidline")})
    else:
        typer.echo(installed("aidline"))


# Commands registered by their modules (one line each).
app.command("run")(run.run)
app.command("token")(token.token)
app.command("demo")(demo.demo)
app.command("status")(status.status)
app.command("tail")(tail.tail)
app.command("rebuild")(rebuild.rebuild)
app.command("migrate")(migrate.migrate)
app.add_typer(imports.app, name="import")
app.add_typer(dlq.app, name="dlq")


if __name__ == "__main__":
    app()
