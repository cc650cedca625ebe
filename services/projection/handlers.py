"""The projection's command handlers: `async def <verb>(ctx, command) -> CommandResult`."""

from __future__ import annotations

from services.projection import commands
from services.projection.rebuild import Rebuilder
from shared.commands import CommandContext, CommandResult


async def rebuild(ctx: CommandContext[Rebuilder], command: commands.Rebuild) -> CommandResult:
    """Reserve the next generation; it is built once this command has committed (an idempotent
    replay of the command runs no handler, so it starts no second rebuild)."""
    number = await ctx.deps.reserve(ctx.tx)
    key = f"generation-{number}"
    body = {"id": key, "version": number, "event_id": None,
            "generation": number, "status": "/admin/status"}  # fmt: skip
    return CommandResult(id=key, version=number, status_code=202, body=body)
