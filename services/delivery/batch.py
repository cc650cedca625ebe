"""POST /milestones/batch: many milestones at once, from field staff who were offline for hours.

- Each row is validated on its own: a malformed row is rejected, the others go on.
- Rows are applied in the order they happened (`at`); rows at the same moment in milestone order
  (dispatch, arrive, inspect, depart, delay/loss, handover, receive), then as uploaded. A row
  that does not fit the shipment's state at its turn is rejected with the reason.
- Each row is all or nothing (a savepoint holds its events, its table update and its record).
- Each row is checked against the access rule of its milestone (role, hub, nation).
- Idempotent per row: a row applied once (same uploader, same `row_id`) answers as it did the
  first time when sent again; the same `row_id` with other content is rejected. Rejected rows
  are not remembered, so a row can be re-sent once it fits (e.g. after the missing dispatch).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from services.delivery import handlers
from services.delivery.commands import BATCH_ROW, BatchRow
from services.delivery.tables import batch_rows
from shared.auth import Principal
from shared.domain import DomainError, Forbidden, NotFound
from shared.eventstore import ConcurrencyError, Transaction
from shared.web.commands import canonical_json
from shared.web.problems import Problem, field_errors, problem_for

RANK = {
    "dispatch": 0,
    "arrive": 1,
    "inspect": 2,
    "depart": 3,
    "delay": 4,
    "report_loss": 4,
    "handover": 5,
    "receive": 6,
}


def application_order(rows: Sequence[tuple[int, BatchRow]]) -> list[tuple[int, BatchRow]]:
    """(upload index, row) pairs in the order to apply them."""
    return sorted(rows, key=lambda pair: (pair[1].at, RANK[pair[1].milestone], pair[0]))


async def apply_batch(
    tx: Transaction, raw_rows: Sequence[dict[str, Any]], principal: Principal
) -> dict[str, Any]:
    results: list[dict[str, Any]] = [{} for _ in raw_rows]
    valid: list[tuple[int, BatchRow]] = []
    for index, raw in enumerate(raw_rows):
        try:
            valid.append((index, BATCH_ROW.validate_python(raw)))
        except ValidationError as exc:
            problem = Problem(422, "Invalid row", "The row does not match its milestone's schema.")
            problem.errors = _row_errors(exc)
            results[index] = _rejected(index, raw, problem)
    for order, (index, row) in enumerate(application_order(valid)):
        results[index] = await _apply_row(tx, index, row, principal) | {"applied_as": order}
    counts = {status: 0 for status in ("applied", "replayed", "rejected")}
    for result in results:
        counts[result["status"]] += 1
    return {"results": results, **counts}


async def _apply_row(
    tx: Transaction, index: int, row: BatchRow, principal: Principal
) -> dict[str, Any]:
    described = {
        "index": index,
        "row_id": row.row_id,
        "shipment_id": row.shipment_id,
        "milestone": row.milestone,
    }
    digest = hashlib.sha256(canonical_json(row.model_dump(mode="json"))).hexdigest()
    first = (
        await tx.conn.execute(
            sa.select(batch_rows.c.request_hash, batch_rows.c.result).where(
                batch_rows.c.scope == principal.sub, batch_rows.c.row_id == row.row_id
            )
        )
    ).first()
    if first is not None:
        if first.request_hash != digest:
            problem = Problem(
                409,
                "Row id reused",
                f"Row {row.row_id} was applied before with other content; give new rows new ids.",
            )
            return _rejected(index, described, problem)
        return {**first.result, **described, "status": "replayed"}
    try:
        async with tx.savepoint():
            result = await handlers.record_milestone(
                tx, row.shipment_id, row, principal, reported_on=row.at.date()
            )
            applied = {
                **described,
                "status": "applied",
                "code": 200,
                "version": result.version,
                "event_id": result.event_id,
            }
            await tx.conn.execute(
                batch_rows.insert().values(
                    scope=principal.sub,
                    row_id=row.row_id,
                    request_hash=digest,
                    result=applied,
                    created_at=datetime.now(UTC),
                )
            )
    except (DomainError, NotFound, Forbidden, Problem, ConcurrencyError, IntegrityError) as exc:
        return _rejected(index, described, _as_problem(exc))
    return applied


def _row_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Field errors named within the row (pydantic puts the milestone's tag first)."""
    errors = []
    for error in exc.errors():
        tag_error = error["type"] in ("union_tag_invalid", "union_tag_not_found")
        errors.append({**error, "loc": ("milestone",) if tag_error else error["loc"][1:]})
    return field_errors(errors)


def _as_problem(exc: Exception) -> Problem:
    match exc:
        case Problem():
            return exc
        case DomainError() | NotFound() | Forbidden():
            return problem_for(exc)
        case _:  # another upload changed the shipment (or applied this row) meanwhile
            return Problem(
                409, "Conflict", "The shipment changed while this row was applied; send it again."
            )


def _rejected(index: int, row: dict[str, Any], problem: Problem) -> dict[str, Any]:
    described = {
        "index": index,
        "row_id": row.get("row_id"),
        "shipment_id": row.get("shipment_id"),
        "milestone": row.get("milestone"),
    }
    body = problem.body()
    return {
        **described,
        "status": "rejected",
        "code": problem.status,
        "type": body["type"],
        "title": body["title"],
        "detail": body.get("detail"),
        **({"errors": body["errors"]} if "errors" in body else {}),
    }
