"""`/admin/dead-letters`: the routes every service with consumers serves for its dead letters
(`shared.messaging.consumer.dead_letter_admin`), under the rules its access policy names
`dead_letters.read` and `dead_letters.replay`.

The replay is no `handle_command` unit of work: each letter commits on its own, in its
consumer's store (one failing again holds none of the others back), and a replay is idempotent
by itself (a letter replayed is never applied again), so it needs no Idempotency-Key.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal, Self

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from shared.auth import AccessPolicy, Principal, Role
from shared.auth.policy import Rule, rule
from shared.messaging.consumer import dead_letter_admin as admin
from shared.web.deps import Authorize, RuntimeDep
from shared.web.paging import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_OFFSET,
    Limit,
    ListPage,
    Offset,
    paged,
)

READ, REPLAY = "dead_letters.read", "dead_letters.replay"
# The rules each service's policy includes (`**DEAD_LETTER_RULES`): for admins only, as the
# letters hold whole events and a replay changes the service's state.
DEAD_LETTER_RULES: dict[str, Rule] = {
    READ: rule(Role.ADMIN, description="Dead letters per consumer, one letter in full"),
    REPLAY: rule(Role.ADMIN, description="Replay dead letters once the cause is fixed"),
}
MAX_NAME = 100  # a consumer's name (its column)
MAX_TOPIC = 200
MAX_OFFSET_VALUE = 2**63 - 1  # Kafka's offsets are 64-bit
MAX_PARTITION = 2**31 - 1


class ReplayIn(BaseModel):
    """Which letters to replay: `ids`, or a `consumer`'s pending letters narrowed by any of
    `topic`, `partition`, `from_offset`/`to_offset` (original offsets) and `since`/`until`
    (when dead-lettered), or all of them (`"all": true`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"consumer": "allocation-planner", "all": True},
                {
                    "consumer": "allocation-planner",
                    "topic": "aidline.requests",
                    "from_offset": 1200,
                },
                {"ids": ["0b7f3c52-3e0a-4c43-9a51-4f0c2d7e9b11"]},
            ]
        },
    )
    ids: list[uuid.UUID] | None = Field(None, min_length=1, max_length=MAX_LIMIT)
    consumer: str | None = Field(None, min_length=1, max_length=MAX_NAME)
    all: bool = Field(False, description="Every pending letter of `consumer`")
    topic: str | None = Field(None, min_length=1, max_length=MAX_TOPIC)
    partition: int | None = Field(None, ge=0, le=MAX_PARTITION)
    from_offset: int | None = Field(None, ge=0, le=MAX_OFFSET_VALUE)
    to_offset: int | None = Field(None, ge=0, le=MAX_OFFSET_VALUE)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    limit: int = Field(100, ge=1, le=MAX_LIMIT, description="Letters tried in this call")
    skip: int = Field(
        0, ge=0, le=MAX_OFFSET, description="Pending letters to pass over (left failed before)"
    )

    @model_validator(mode="after")
    def _one_selection(self) -> Self:
        filters = (self.topic, self.partition, self.from_offset, self.to_offset, self.since,
                   self.until)  # fmt: skip
        narrowed = any(f is not None for f in filters)
        if (self.ids is None) == (self.consumer is None):
            raise ValueError("give either `ids` or `consumer`")
        if self.ids is not None and (narrowed or self.all):
            raise ValueError("`ids` takes no filters and no `all`")
        if self.consumer is not None and narrowed == self.all:
            raise ValueError("with `consumer`, give filters or `all: true` (not both)")
        return self

    def command(self) -> admin.ReplayDeadLetters:
        return admin.ReplayDeadLetters(
            ids=tuple(self.ids or ()),
            consumer=self.consumer,
            topic=self.topic,
            partition=self.partition,
            from_offset=self.from_offset,
            to_offset=self.to_offset,
            since=self.since,
            until=self.until,
            limit=self.limit,
            skip=self.skip,
        )


# -- answers (what `dead_letter_admin` returns, as the OpenAPI document describes it) -----------


class ErrorCount(BaseModel):
    error_type: str
    pending: int


class ConsumerLetters(BaseModel):
    consumer: str
    pending: int
    replayed: int
    errors: list[ErrorCount]


class DeadLetterOut(BaseModel):
    letter_id: str
    consumer: str
    state: Literal["pending", "replayed"]
    dlq_topic: str
    topic: str
    partition: int
    offset: int
    key: str | None
    event_id: str | None
    event_type: str | None
    error_type: str
    error: str
    attempts: int
    created_at: str | None
    published_at: str | None
    replayed_at: str | None
    replayed_by: str | None
    replay_error: str | None


class DeadLetterPage(ListPage[DeadLetterOut]):
    """The list envelope, and per consumer its letters pending and replayed."""

    consumers: list[ConsumerLetters]


class DeadLetterDetail(DeadLetterOut):
    headers: list[tuple[str, str | None]]
    dlq_headers: list[tuple[str, str]]
    value: str | None
    envelope: dict[str, Any] | None
    decode_error: str | None


class ReplayResult(BaseModel):
    letter_id: str
    consumer: str
    outcome: Literal["replayed", "already-replayed", "already-applied", "failed"]
    error: str | None


class ReplayOut(BaseModel):
    replayed: int
    already_replayed: int
    already_applied: int
    failed: int
    results: list[ReplayResult]
    remaining: int


def dead_letter_router(policy: AccessPolicy) -> APIRouter:
    """The routes, authorized by `policy`'s rules `dead_letters.read` and `.replay`."""
    # Defaults, not `Annotated` aliases: annotations are resolved in the module, not here.
    reader, replayer = Depends(Authorize(policy, READ)), Depends(Authorize(policy, REPLAY))
    router = APIRouter(tags=["operations"])

    @router.get(
        "/admin/dead-letters",
        summary="Dead letters: counts and errors per consumer, and a page of letters",
        response_model=DeadLetterPage,
    )
    async def dead_letters(
        request: Request,
        runtime: RuntimeDep,
        consumer: Annotated[str | None, Query(min_length=1, max_length=MAX_NAME)] = None,
        state: admin.State = "all",
        limit: Limit = DEFAULT_LIMIT,
        offset: Offset = 0,
        _principal: Principal = reader,
    ) -> JSONResponse:
        items, total = await admin.page(
            runtime.consumers, consumer=consumer, state=state, limit=limit, offset=offset
        )
        consumers = await admin.summary(runtime.consumers)
        return paged(
            request, items, total=total, limit=limit, offset=offset, extra={"consumers": consumers}
        )

    @router.get(
        "/admin/dead-letters/{letter_id}",
        summary="One dead letter: its record's headers and value, the event decoded, the error",
        response_model=DeadLetterDetail,
    )
    async def dead_letter(
        letter_id: Annotated[uuid.UUID, Path()],
        runtime: RuntimeDep,
        _principal: Principal = reader,
    ) -> JSONResponse:
        return JSONResponse(await admin.letter(runtime.consumers, letter_id))

    @router.post(
        "/admin/dead-letters/replay",
        summary="Replay dead letters through their consumer once the cause is fixed",
        response_model=ReplayOut,
        responses={
            404: {"description": "No dead letter matches the selection"},
            409: {"description": "Every letter tried failed again; they stay"},
        },
    )
    async def replay(
        body: ReplayIn, runtime: RuntimeDep, principal: Principal = replayer
    ) -> JSONResponse:
        report = await admin.replay(runtime.consumers, body.command(), principal.actor)
        return JSONResponse(report.as_dict())

    return router
