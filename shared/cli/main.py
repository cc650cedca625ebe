"""The `aidline` command. Each command lives in its own module under `shared/cli/` and is
registered here, so `aidline --help` lists everything in one place."""

from __future__ import annotations

import typer

from shared.cli import demo, dlq, imports, migrate, rebuild, run, status, tail, token

app = typer.Typer(
    name="aidline",
    help="Aidline: run the stack, migrate, mint tokens, watch events, import, rebuild, dead "
    "letters.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """Aidline's command line."""


@app.command()
def version() -> None:
    """Print the installed version."""
    from importlib.metadata import version as installed

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
