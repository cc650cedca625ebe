"""Text every backend can store, checked at the edge: a NUL character (or a lone UTF-16
surrogate, which JSON's `\\ud800` escapes can produce) fits no PostgreSQL text or JSONB column,
so a request carrying one in its path, its query or its body is answered 422, naming the field,
before any handler or query sees it. Lengths are each schema's own business.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import Request

from shared.web.problems import Problem

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _problem(fields: list[str]) -> Problem:
    return Problem(
        422,
        "Invalid request",
        "Text may not contain NUL characters or unpaired surrogates.",
        errors=[
            {"field": f, "message": "unstorable character", "type": "string_chars"} for f in fields
        ],
    )


def _walk(value: Any, where: str, found: list[str]) -> None:
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            found.append(where)
    elif isinstance(value, dict):
        for key, item in value.items():
            if _UNSTORABLE.search(key):
                found.append(where)
            _walk(item, f"{where}.{key}", found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, f"{where}.{index}", found)


async def storable_text(request: Request) -> None:
    """A dependency of every route (see `shared.web.app.create_app`)."""
    found: list[str] = []
    # The decoded path from the scope: `request.url` would build a URL object for it first.
    if _UNSTORABLE.search(request.scope["path"]):
        found.append("path")
    if request.scope["query_string"]:
        found += [
            f"query.{k}" for k, v in request.query_params.multi_items() if _UNSTORABLE.search(k + v)
        ]
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        body = await request.body()  # read once: FastAPI and run_command reuse it
        try:
            parsed = json.loads(body) if b"\\u" in body else None
        except ValueError:
            parsed = None  # not JSON: FastAPI's own parsing answers for that
        _walk(parsed, "body", found)
    elif content_type.startswith("text/") and b"\x00" in await request.body():
        found.append("body")
    if found:
        raise _problem(found)
