"""Poison message → dead-letter topic → cause fixed → `aidline dlq replay` → read model correct
(issue 15's proof), through the real stack and the real CLI.

The poison is real: a trigger in the projection's read-model schema refuses the audit row of
one command's event (found by its correlation id), as a database constraint a handler's writes
break would. The consumer tries it `CONSUMER_MAX_ATTEMPTS` times, dead-letters it and goes on;
the operator drops the trigger (the fix) and replays the letter with the CLI. The requirement
is then on the board with its quantity, and its event is in the audit trail exactly once — also
after replaying it again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from shared.auth import DEV_SECRET, Role, mint_token
from shared.contracts.topics import REQUESTS
from shared.messaging.topics import dlq_topic
from tests.e2e.stack import Stack
from tests.infra import eventually, header, read_topic


def _headers(role: Role, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(DEV_SECRET, f'e2e-{role}', [role])}"} | more


ADMIN = _headers(Role.ADMIN)


async def _connect(stack: Stack) -> asyncpg.Connection:
    url = make_url(stack.database_url)
    return await asyncpg.connect(host=url.host, port=url.port, user=url.username,
                                 password=url.password, database=url.database)  # fmt: skip


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {f"AIDLINE_{s.upper()}_URL": stack.url(s) for s in stack.ports}
    return subprocess.run(
        [sys.executable, "-m", "shared.cli.main", "dlq", *args],
        env=env | {"COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_poison_message_fixed_and_replayed_with_the_cli(stack: Stack) -> None:
    poison = f"poison-{uuid.uuid4()}"
    conn = await _connect(stack)
    try:
        schema = await conn.fetchval(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'audit'"
            " AND table_schema LIKE 'projection%' ORDER BY table_schema DESC LIMIT 1"
        )
        await conn.execute(f"""
            CREATE FUNCTION "{schema}".refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'audit refuses correlation %', NEW.correlation_id; END $$;
            CREATE TRIGGER refuse_poison BEFORE INSERT ON "{schema}".audit FOR EACH ROW
            WHEN (NEW.correlation_id = '{poison}') EXECUTE FUNCTION "{schema}".refuse_poison();
        """)  # fmt: skip
        async with httpx.AsyncClient(timeout=30) as client:
            body = {
                "item_code": "ART-155-HE",
                "quantity": 77,
                "priority": 1,
                "needed_by": (date.today() + timedelta(days=30)).isoformat(),
                "destination": "Operational Command East",
                "justification": "dlq e2e",
            }
            created = await client.post(
                stack.url("request") + "/requirements",
                json=body,
                headers=_headers(Role.RECIPIENT, **{"X-Correlation-ID": poison}),
            )
            assert created.status_code in (200, 201), created.text
            requirement = created.json()["id"]
            projection = stack.url("projection")

            async def dead_lettered() -> bool:
                page = await _letters(client, projection, "pending")
                return any(i["published_at"] for i in _of(page, requirement))

            await eventually(dead_lettered, 90, "the poison to be dead-lettered and published")
            (letter,) = _of(await _letters(client, projection, "pending"), requirement)
            assert letter["error_type"] and "audit refuses" in letter["error"]
            on_topic = await read_topic(dlq_topic(REQUESTS, letter["consumer"]))
            assert [header(m, "dlq_id") for m in on_topic] == [letter["letter_id"]]
            board = await client.get(f"{projection}/board/requirements/{requirement}",
                                     headers=ADMIN)  # fmt: skip
            assert board.status_code == 404, "not in the read model while dead-lettered"

            listed = _cli(stack, "list", "--state", "pending", "--service", "projection")
            assert listed.returncode == 0, listed.stdout + listed.stderr
            assert letter["letter_id"][:8] in listed.stdout
            listed = _cli(stack, "list", "--state", "pending", "--service", "projection", "--json")
            assert listed.returncode == 0, listed.stderr
            found = json.loads(listed.stdout)
            assert letter["letter_id"] in [i["letter_id"] for i in found["letters"]], found
            assert {c["service"] for c in found["consumers"]} == {"projection"}
            assert found["unanswered"] == []
            shown = _cli(stack, "show", letter["letter_id"], "--json")
            assert shown.returncode == 0, shown.stderr
            full = json.loads(shown.stdout)
            assert (full["service"], full["letter_id"], full["error"]) == (
                "projection", letter["letter_id"], letter["error"]
            )  # fmt: skip

            await conn.execute(f'DROP TRIGGER refuse_poison ON "{schema}".audit')  # the fix
            replayed = _cli(stack, "replay", letter["letter_id"])
            assert replayed.returncode == 0, replayed.stdout + replayed.stderr
            assert "1 replayed" in replayed.stdout
            again = _cli(stack, "replay", letter["letter_id"])
            assert again.returncode == 0 and "already-replayed" in again.stdout, again.stdout
            as_json = _cli(stack, "replay", letter["letter_id"], "--json")
            assert as_json.returncode == 0, as_json.stderr
            report = json.loads(as_json.stdout)
            assert report["counts"] == {"already-replayed": 1} and report["problems"] == []
            assert [r["letter_id"] for r in report["results"]] == [letter["letter_id"]]

            shown = (await client.get(f"{projection}/board/requirements/{requirement}",
                                      headers=ADMIN)).json()  # fmt: skip
            assert shown["requested"] == 77, shown
            audited = await conn.fetchval(
                f'SELECT count(*) FROM "{schema}".audit WHERE stream_id = $1', requirement
            )
            assert audited == 1, "applied exactly once"
            (done,) = _of(await _letters(client, projection, "replayed"), requirement)
            assert done["replayed_by"] == "aidline-cli" and done["replay_error"] is None
            assert datetime.fromisoformat(done["replayed_at"]) <= datetime.now(UTC)
    finally:
        await conn.close()


async def _letters(client: httpx.AsyncClient, url: str, state: str) -> dict[str, Any]:
    page = await client.get(f"{url}/admin/dead-letters", params={"state": state, "limit": 500},
                            headers=ADMIN)  # fmt: skip
    assert page.status_code == 200, page.text
    result: dict[str, Any] = page.json()
    return result


def _of(page: dict[str, Any], stream: str) -> list[dict[str, Any]]:
    """The letters of `stream`'s events (a record is keyed by its stream)."""
    return [i for i in page["items"] if i["key"] == stream]
