"""The projection's HTTP contract where it is a model of its own (the read models answer with
the rows `queries` shapes)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class StreamTicket(BaseModel):
    ticket: str = Field(description="Pass as `GET /events/stream?ticket=…`; opens one stream")
    expires_in: float = Field(description="Seconds the ticket is good for")
