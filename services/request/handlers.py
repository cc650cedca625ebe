"""Command handlers: `async def verb(ctx, command) -> CommandResult`, one per command.

Each loads aggregates, lets the pure domain decide, and queues the resulting events in the
unit of work (`ctx.tx`) that `handle_command` opened; nothing is stored unless the whole command
succeeds. They raise the domain's errors only; the web layer answers for them.
"""

from __future__ import annotations

from datetime import date
from typing import TypeVar

from services.request import imports, tables
from services.request.commands import (
    AddCatalogueItem,
    AmendRequirement,
    AnnouncePledge,
    CancelRequirement,
    ConfirmPledge,
    EndorseRequirement,
    ImportPledges,
    RecordDecision,
    ReducePledge,
    SubmitRequirement,
    WithdrawPledge,
    utc_today,
)
from services.request.domain import CatalogueItem, Decision, Pledge, Requirement
from services.request.domain import decision as decision_ids
from services.request.domain import pledge as pledge_ids
from services.request.domain import requirement as requirement_ids
from shared.auth import Role, require_own_nation
from shared.catalogue import Item
from shared.commands import CommandContext, CommandResult
from shared.contracts.requests import registry
from shared.domain import Aggregate, Forbidden, InvalidInput, Metadata, NotFound
from shared.eventstore import Repository, Transaction
from shared.ids import new_id, stable_id

A = TypeVar("A", bound=Aggregate)
Context = CommandContext[None]  # the request service's handlers need no collaborators

requirements = Repository(Requirement, registry)
pledges = Repository(Pledge, registry)
decisions = Repository(Decision, registry)
catalogue_entries = Repository(CatalogueItem, registry)


async def load(tx: Transaction, repository: Repository[A], prefix: str, aggregate_id: str) -> A:
    """The aggregate, or NotFound (an id of another kind of stream is not found either)."""
    found = None
    if aggregate_id.startswith(f"{prefix}-"):
        found = await repository.get(tx, aggregate_id)
    if found is None:
        raise NotFound(f"There is no {repository.cls.__name__.lower()} {aggregate_id}.")
    return found


async def _item(tx: Transaction, code: str) -> Item:
    item = await tables.find_item(tx.conn, code)
    if item is None:
        raise InvalidInput(
            "body.item_code", f"{code} is not in the catalogue (GET /catalogue/items)."
        )
    return item


# -- requirements ------------------------------------------------------------------------


async def submit_requirement(ctx: Context, command: SubmitRequirement) -> CommandResult:
    requirement = Requirement.submit(
        new_id(requirement_ids.PREFIX),
        item=await _item(ctx.tx, command.item_code),
        quantity=command.quantity,
        priority=command.priority,
        needed_by=command.needed_by,
        destination=command.destination,
        justification=command.justification,
    )
    requirements.save(ctx.tx, requirement, ctx.meta.occurred(command.stated_on))
    return CommandResult(requirement.id, requirement.version, status_code=201)


async def endorse_requirement(ctx: Context, command: EndorseRequirement) -> CommandResult:
    requirement = await load(ctx.tx, requirements, requirement_ids.PREFIX, command.requirement_id)
    ctx.check_version(requirement.version)
    decision = Decision.record(
        new_id(decision_ids.PREFIX),
        meeting_date=command.meeting_date,
        reference=command.reference,
        endorse=[(requirement, command.priority)],
    )
    return await _decided(ctx, decision, requirement, requirements)


async def amend_requirement(ctx: Context, command: AmendRequirement) -> CommandResult:
    requirement = await load(ctx.tx, requirements, requirement_ids.PREFIX, command.requirement_id)
    ctx.check_version(requirement.version)
    if not ctx.principal.has(Role.RECIPIENT) and (
        command.quantity is not None or command.needed_by is not None
    ):
        raise Forbidden(
            "The forum may amend a requirement's priority only.", kind="forbidden-field"
        )
    requirement.amend(
        quantity=command.quantity, priority=command.priority, needed_by=command.needed_by
    )
    requirements.save(ctx.tx, requirement, ctx.meta)
    return CommandResult(requirement.id, requirement.version)


async def cancel_requirement(ctx: Context, command: CancelRequirement) -> CommandResult:
    requirement = await load(ctx.tx, requirements, requirement_ids.PREFIX, command.requirement_id)
    ctx.check_version(requirement.version)
    requirement.cancel(command.reason)
    requirements.save(ctx.tx, requirement, ctx.meta)
    return CommandResult(requirement.id, requirement.version)


# -- pledges -----------------------------------------------------------------------------


def _announce(pledge_id: str, command: AnnouncePledge, item: Item) -> Pledge:
    return Pledge.announce(
        pledge_id,
        donor=command.donor,
        item=item,
        quantity=command.quantity,
        source=command.source,
        available_from=command.available_from,
        value_eur=command.value_eur,
        source_url=command.source_url,
    )


async def announce_pledge(ctx: Context, command: AnnouncePledge) -> CommandResult:
    require_own_nation(ctx.principal, command.donor)
    item = await _item(ctx.tx, command.item_code)
    pledge = _announce(new_id(pledge_ids.PREFIX), command, item)
    pledges.save(ctx.tx, pledge, ctx.meta.occurred(command.announced_on))
    return CommandResult(pledge.id, pledge.version, status_code=201)


async def confirm_pledge(ctx: Context, command: ConfirmPledge) -> CommandResult:
    pledge = await load(ctx.tx, pledges, pledge_ids.PREFIX, command.pledge_id)
    ctx.check_version(pledge.version)
    decision = Decision.record(
        new_id(decision_ids.PREFIX),
        meeting_date=command.meeting_date,
        reference=command.reference,
        confirm=[pledge],
    )
    return await _decided(ctx, decision, pledge, pledges)


async def _own_pledge(ctx: Context, pledge_id: str) -> Pledge:
    pledge = await load(ctx.tx, pledges, pledge_ids.PREFIX, pledge_id)
    require_own_nation(ctx.principal, pledge.donor)
    ctx.check_version(pledge.version)
    return pledge


async def reduce_pledge(ctx: Context, command: ReducePledge) -> CommandResult:
    pledge = await _own_pledge(ctx, command.pledge_id)
    pledge.reduce(command.quantity)
    pledges.save(ctx.tx, pledge, ctx.meta)
    return CommandResult(pledge.id, pledge.version)


async def withdraw_pledge(ctx: Context, command: WithdrawPledge) -> CommandResult:
    pledge = await _own_pledge(ctx, command.pledge_id)
    pledge.withdraw(command.reason)
    pledges.save(ctx.tx, pledge, ctx.meta)
    return CommandResult(pledge.id, pledge.version)


# -- decisions ---------------------------------------------------------------------------


async def record_decision(ctx: Context, command: RecordDecision) -> CommandResult:
    """One meeting's decision across many streams, in this one transaction: all or nothing."""
    unknown: list[tuple[str, str]] = []
    endorse: list[tuple[Requirement, int | None]] = []
    for i, endorsement in enumerate(command.endorse):
        requirement = await requirements.get(ctx.tx, endorsement.requirement_id)
        if requirement is None:
            unknown.append(_unknown(f"body.endorse.{i}.requirement_id", endorsement.requirement_id))
        else:
            endorse.append((requirement, endorsement.priority))
    confirm: list[Pledge] = []
    for i, pledge_id in enumerate(command.confirm):
        pledge = await pledges.get(ctx.tx, pledge_id)
        if pledge is None:
            unknown.append(_unknown(f"body.confirm.{i}", pledge_id))
        else:
            confirm.append(pledge)
    if unknown:
        detail = "The decision names requirements or pledges that do not exist."
        raise InvalidInput.each(detail, unknown)
    decision = Decision.record(
        new_id(decision_ids.PREFIX),
        meeting_date=command.meeting_date,
        reference=command.reference,
        endorse=endorse,
        confirm=confirm,
    )
    meta = _at_meeting(ctx.meta, decision.meeting_date)
    for requirement, _ in endorse:
        requirements.save(ctx.tx, requirement, meta)
    for pledge in confirm:
        pledges.save(ctx.tx, pledge, meta)
    decisions.save(ctx.tx, decision, meta)  # last: the answer's event_id is the decision's
    return CommandResult(decision.id, decision.version, status_code=201)


def _at_meeting(meta: Metadata, meeting_date: date) -> Metadata:
    """A decision and what it endorses and confirms happened at its meeting (business time):
    on that day when it is recorded afterwards; when recorded on the day (or, across time
    zones, the day before it), at the command's time, which is then the truer one."""
    return meta.occurred(meeting_date) if meeting_date < utc_today() else meta


def _unknown(field: str, aggregate_id: str) -> tuple[str, str]:
    return field, f"there is no {aggregate_id}"


async def _decided(
    ctx: Context, decision: Decision, subject: A, repository: Repository[A]
) -> CommandResult:
    """Store a one-off decision and the one aggregate it changed; answer for that aggregate."""
    meta = _at_meeting(ctx.meta, decision.meeting_date)
    decisions.save(ctx.tx, decision, meta)
    repository.save(ctx.tx, subject, meta)
    return CommandResult(
        subject.id,
        subject.version,
        body={
            "id": subject.id,
            "version": subject.version,
            "event_id": str(ctx.tx.last_event_id),
            "decision_id": decision.id,
        },
    )


# -- catalogue ---------------------------------------------------------------------------


async def add_catalogue_item(ctx: Context, command: AddCatalogueItem) -> CommandResult:
    entry = CatalogueItem.add(
        code=command.code,
        name=command.name,
        capability=command.capability,
        unit=command.unit,
        eum_class=command.eum_class,
        substitutes=command.substitutes,
        known=await tables.all_items(ctx.tx.conn),
    )
    catalogue_entries.save(ctx.tx, entry, ctx.meta)
    await ctx.tx.flush()  # a concurrent add of the same code loses here, as a 409
    assert entry.item is not None
    await tables.remember_item(ctx.tx.conn, entry.item)
    return CommandResult(
        command.code, entry.version, event_id=str(ctx.tx.stored[-1].event_id), status_code=201
    )


# -- imports -----------------------------------------------------------------------------


def import_pledge_id(command: AnnouncePledge) -> str:
    """The same row content always names the same pledge, so a re-sent file stores nothing."""
    value = "" if command.value_eur is None else repr(float(command.value_eur))
    return stable_id(
        pledge_ids.PREFIX,
        command.donor,
        command.item_code,
        str(command.quantity),
        command.source,
        command.available_from.isoformat(),
        value,
        command.source_url or "",
        # Only when given, so files from before the column keep their pledges' ids; with it,
        # two like announcements on two days are two pledges.
        *([command.announced_on.isoformat()] if command.announced_on else []),
    )


async def import_pledges(ctx: Context, command: ImportPledges) -> CommandResult:
    known = await tables.all_items(ctx.tx.conn)
    outcomes: list[imports.Outcome] = []
    accepted: dict[str, tuple[AnnouncePledge, imports.Outcome]] = {}
    for row in command.rows:
        pledge, errors = row.pledge, row.errors
        if pledge is not None and pledge.item_code not in known:
            errors = [
                {"field": "item_code", "message": f"{pledge.item_code} is not in the catalogue"}
            ]
        if pledge is None or errors:
            outcomes.append(imports.Outcome(row.line, "rejected", errors=errors))
            continue
        pledge_id = import_pledge_id(pledge)
        if pledge_id in accepted:
            note = f"same as row {accepted[pledge_id][1].row}"
            outcomes.append(imports.Outcome(row.line, "duplicate", pledge_id, note))
            continue
        outcome = imports.Outcome(row.line, "stored", pledge_id)
        accepted[pledge_id] = (pledge, outcome)
        outcomes.append(outcome)
    existing = await ctx.tx.store.existing_streams(ctx.tx.conn, list(accepted))
    for pledge_id, (pledge, outcome) in accepted.items():
        if pledge_id in existing:
            outcome.status, outcome.note = "duplicate", "imported before"
            continue
        pledge_meta = ctx.meta.occurred(pledge.announced_on)  # the row's announcement day
        pledges.save(ctx.tx, _announce(pledge_id, pledge, known[pledge.item_code]), pledge_meta)
    return CommandResult("import", 0, body=imports.answer(outcomes))
