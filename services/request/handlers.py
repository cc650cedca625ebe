"""Command handlers: plain async functions (tx, command, caller) -> CommandResult.

Each loads aggregates, lets the pure domain decide, and queues the resulting events in the
transaction `run_command` opened; nothing is stored unless the whole command succeeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from services.request import imports
from services.request.domain import CatalogueItem, Decision, Pledge, Requirement
from services.request.domain import decision as decision_ids
from services.request.domain import pledge as pledge_ids
from services.request.domain import requirement as requirement_ids
from services.request.schemas import (
    AmendIn,
    CatalogueItemIn,
    ConfirmIn,
    DecisionIn,
    EndorseIn,
    ImportOut,
    ImportRow,
    PledgeIn,
    ReasonIn,
    ReduceIn,
    RequirementIn,
    utc_today,
)
from services.request.tables import all_items, find_item, remember_item
from shared.auth import Principal, Role, require_own_nation
from shared.catalogue import Item
from shared.commands import CommandResult, ensure_version
from shared.contracts.requests import catalogue
from shared.domain import Aggregate, Metadata, NotFound
from shared.eventstore import Repository, Transaction
from shared.ids import new_id, stable_id
from shared.web.problems import Problem

A = TypeVar("A", bound=Aggregate)

requirements = Repository(Requirement, catalogue)
pledges = Repository(Pledge, catalogue)
decisions = Repository(Decision, catalogue)
catalogue_entries = Repository(CatalogueItem, catalogue)


@dataclass(frozen=True)
class Caller:
    """Who sends the command, what its events record, and the version it expects (If-Match)."""

    principal: Principal
    meta: Metadata
    if_match: int | None = None


async def load(tx: Transaction, repository: Repository[A], prefix: str, aggregate_id: str) -> A:
    """The aggregate, or NotFound (an id of another kind of stream is not found either)."""
    found = None
    if aggregate_id.startswith(f"{prefix}-"):
        found = await repository.get(tx, aggregate_id)
    if found is None:
        raise NotFound(f"There is no {repository.cls.__name__.lower()} {aggregate_id}.")
    return found


def invalid(field: str, message: str) -> Problem:
    return Problem(
        422,
        "Invalid request",
        message,
        kind="invalid-request",
        errors=[{"field": field, "message": message}],
    )


async def _item(tx: Transaction, code: str) -> Item:
    item = await find_item(tx.conn, code)
    if item is None:
        raise invalid("body.item_code", f"{code} is not in the catalogue (GET /catalogue/items).")
    return item


# -- requirements ------------------------------------------------------------------------


async def submit_requirement(tx: Transaction, cmd: RequirementIn, caller: Caller) -> CommandResult:
    requirement = Requirement.submit(
        new_id(requirement_ids.PREFIX),
        item=await _item(tx, cmd.item_code),
        quantity=cmd.quantity,
        priority=cmd.priority,
        needed_by=cmd.needed_by,
        destination=cmd.destination,
        justification=cmd.justification,
    )
    requirements.save(tx, requirement, caller.meta)
    return CommandResult(requirement.id, requirement.version, status_code=201)


async def endorse_requirement(
    tx: Transaction, requirement_id: str, cmd: EndorseIn, caller: Caller
) -> CommandResult:
    requirement = await load(tx, requirements, requirement_ids.PREFIX, requirement_id)
    ensure_version(caller.if_match, requirement.version)
    decision = Decision.record(
        new_id(decision_ids.PREFIX),
        meeting_date=cmd.meeting_date or utc_today(),
        reference=cmd.reference or "one-off endorsement",
        endorse=[(requirement, cmd.priority)],
    )
    return await _decided(tx, decision, requirement, requirements, caller)


async def amend_requirement(
    tx: Transaction, requirement_id: str, cmd: AmendIn, caller: Caller
) -> CommandResult:
    requirement = await load(tx, requirements, requirement_ids.PREFIX, requirement_id)
    ensure_version(caller.if_match, requirement.version)
    if not caller.principal.has(Role.RECIPIENT) and (
        cmd.quantity is not None or cmd.needed_by is not None
    ):
        raise Problem(
            403,
            "Forbidden",
            "The forum may amend a requirement's priority only.",
            kind="forbidden-field",
        )
    requirement.amend(quantity=cmd.quantity, priority=cmd.priority, needed_by=cmd.needed_by)
    requirements.save(tx, requirement, caller.meta)
    return CommandResult(requirement.id, requirement.version)


async def cancel_requirement(
    tx: Transaction, requirement_id: str, cmd: ReasonIn, caller: Caller
) -> CommandResult:
    requirement = await load(tx, requirements, requirement_ids.PREFIX, requirement_id)
    ensure_version(caller.if_match, requirement.version)
    requirement.cancel(cmd.reason)
    requirements.save(tx, requirement, caller.meta)
    return CommandResult(requirement.id, requirement.version)


# -- pledges -----------------------------------------------------------------------------


def _announce(pledge_id: str, cmd: PledgeIn, item: Item) -> Pledge:
    return Pledge.announce(
        pledge_id,
        donor=cmd.donor,
        item=item,
        quantity=cmd.quantity,
        source=cmd.source,
        available_from=cmd.available_from,
        value_eur=cmd.value_eur,
        source_url=cmd.source_url,
    )


async def announce_pledge(tx: Transaction, cmd: PledgeIn, caller: Caller) -> CommandResult:
    require_own_nation(caller.principal, cmd.donor)
    pledge = _announce(new_id(pledge_ids.PREFIX), cmd, await _item(tx, cmd.item_code))
    pledges.save(tx, pledge, caller.meta)
    return CommandResult(pledge.id, pledge.version, status_code=201)


async def confirm_pledge(
    tx: Transaction, pledge_id: str, cmd: ConfirmIn, caller: Caller
) -> CommandResult:
    pledge = await load(tx, pledges, pledge_ids.PREFIX, pledge_id)
    ensure_version(caller.if_match, pledge.version)
    decision = Decision.record(
        new_id(decision_ids.PREFIX),
        meeting_date=cmd.meeting_date or utc_today(),
        reference=cmd.reference or "one-off confirmation",
        confirm=[pledge],
    )
    return await _decided(tx, decision, pledge, pledges, caller)


async def _own_pledge(tx: Transaction, pledge_id: str, caller: Caller) -> Pledge:
    pledge = await load(tx, pledges, pledge_ids.PREFIX, pledge_id)
    require_own_nation(caller.principal, pledge.donor)
    ensure_version(caller.if_match, pledge.version)
    return pledge


async def reduce_pledge(
    tx: Transaction, pledge_id: str, cmd: ReduceIn, caller: Caller
) -> CommandResult:
    pledge = await _own_pledge(tx, pledge_id, caller)
    pledge.reduce(cmd.quantity)
    pledges.save(tx, pledge, caller.meta)
    return CommandResult(pledge.id, pledge.version)


async def withdraw_pledge(
    tx: Transaction, pledge_id: str, cmd: ReasonIn, caller: Caller
) -> CommandResult:
    pledge = await _own_pledge(tx, pledge_id, caller)
    pledge.withdraw(cmd.reason)
    pledges.save(tx, pledge, caller.meta)
    return CommandResult(pledge.id, pledge.version)


# -- decisions ---------------------------------------------------------------------------


async def record_decision(tx: Transaction, cmd: DecisionIn, caller: Caller) -> CommandResult:
    """One meeting's decision across many streams, in this one transaction: all or nothing."""
    unknown: list[dict[str, Any]] = []
    endorse: list[tuple[Requirement, int | None]] = []
    for i, endorsement in enumerate(cmd.endorse):
        requirement = await requirements.get(tx, endorsement.requirement_id)
        if requirement is None:
            unknown.append(_unknown(f"body.endorse.{i}.requirement_id", endorsement.requirement_id))
        else:
            endorse.append((requirement, endorsement.priority))
    confirm: list[Pledge] = []
    for i, pledge_id in enumerate(cmd.confirm):
        pledge = await pledges.get(tx, pledge_id)
        if pledge is None:
            unknown.append(_unknown(f"body.confirm.{i}", pledge_id))
        else:
            confirm.append(pledge)
    if unknown:
        raise Problem(
            422,
            "Invalid request",
            "The decision names requirements or pledges that do not exist.",
            kind="invalid-request",
            errors=unknown,
        )
    decision = Decision.record(
        new_id(decision_ids.PREFIX),
        meeting_date=cmd.meeting_date,
        reference=cmd.reference,
        endorse=endorse,
        confirm=confirm,
    )
    for requirement, _ in endorse:
        requirements.save(tx, requirement, caller.meta)
    for pledge in confirm:
        pledges.save(tx, pledge, caller.meta)
    decisions.save(tx, decision, caller.meta)  # last: the answer's event_id is the decision's
    return CommandResult(decision.id, decision.version, status_code=201)


def _unknown(field: str, aggregate_id: str) -> dict[str, Any]:
    return {"field": field, "message": f"there is no {aggregate_id}"}


async def _decided(
    tx: Transaction,
    decision: Decision,
    subject: A,
    repository: Repository[A],
    caller: Caller,
) -> CommandResult:
    """Store a one-off decision and the one aggregate it changed; answer for that aggregate."""
    decisions.save(tx, decision, caller.meta)
    repository.save(tx, subject, caller.meta)
    return CommandResult(
        subject.id,
        subject.version,
        body={
            "id": subject.id,
            "version": subject.version,
            "event_id": str(tx.last_event_id),
            "decision_id": decision.id,
        },
    )


# -- catalogue ---------------------------------------------------------------------------


async def add_catalogue_item(
    tx: Transaction, cmd: CatalogueItemIn, caller: Caller
) -> CommandResult:
    entry = CatalogueItem.add(
        code=cmd.code,
        name=cmd.name,
        capability=cmd.capability,
        unit=cmd.unit,
        eum_class=cmd.eum_class,
        substitutes=cmd.substitutes,
        known=await all_items(tx.conn),
    )
    catalogue_entries.save(tx, entry, caller.meta)
    await tx.flush()  # a concurrent add of the same code loses here, as a 409
    assert entry.item is not None
    await remember_item(tx.conn, entry.item)
    return CommandResult(
        cmd.code, entry.version, event_id=str(tx.stored[-1].event_id), status_code=201
    )


# -- imports -----------------------------------------------------------------------------


def import_pledge_id(cmd: PledgeIn) -> str:
    """The same row content always names the same pledge, so a re-sent file stores nothing."""
    value = "" if cmd.value_eur is None else repr(float(cmd.value_eur))
    return stable_id(
        pledge_ids.PREFIX,
        cmd.donor,
        cmd.item_code,
        str(cmd.quantity),
        cmd.source,
        cmd.available_from.isoformat(),
        value,
        cmd.source_url or "",
    )


async def import_pledges(
    tx: Transaction, rows: Sequence[imports.CsvRow], caller: Caller
) -> CommandResult:
    known = await all_items(tx.conn)
    results: list[ImportRow] = []
    accepted: dict[str, tuple[PledgeIn, ImportRow]] = {}
    for row in rows:
        cmd, errors = imports.validate(row)
        if cmd is not None and cmd.item_code not in known:
            errors = [{"field": "item_code", "message": f"{cmd.item_code} is not in the catalogue"}]
        if cmd is None or errors:
            results.append(ImportRow(row=row.line, status="rejected", errors=errors))
            continue
        pledge_id = import_pledge_id(cmd)
        if pledge_id in accepted:
            first = accepted[pledge_id][1].row
            note = f"same as row {first}"
            results.append(
                ImportRow(row=row.line, status="duplicate", pledge_id=pledge_id, note=note)
            )
            continue
        result = ImportRow(row=row.line, status="stored", pledge_id=pledge_id)
        accepted[pledge_id] = (cmd, result)
        results.append(result)
    existing = await tx.store.existing_streams(tx.conn, list(accepted))
    for pledge_id, (cmd, result) in accepted.items():
        if pledge_id in existing:
            result.status, result.note = "duplicate", "imported before"
            continue
        pledges.save(tx, _announce(pledge_id, cmd, known[cmd.item_code]), caller.meta)
    body = ImportOut(
        stored=sum(r.status == "stored" for r in results),
        duplicates=sum(r.status == "duplicate" for r in results),
        rejected=sum(r.status == "rejected" for r in results),
        rows=results,
    )
    return CommandResult("import", 0, body=body.model_dump(mode="json", exclude_none=True))
