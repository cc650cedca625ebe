"""`aidline import pledges` against the service served over real HTTP (uvicorn, a free port)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn

from services.request.app import build_app
from services.request.settings import RequestSettings
from shared.auth import DEV_SECRET, mint_token
from shared.db import Database
from tests.infra import KAFKA, POSTGRES_URL, unique_schema

AIDLINE = str(Path(sys.executable).with_name("aidline"))


@contextlib.asynccontextmanager
async def served() -> AsyncIterator[str]:
    schema = unique_schema()
    settings = RequestSettings(
        database_url=POSTGRES_URL,
        kafka_bootstrap_servers=KAFKA,
        consumers_enabled=False,  # not needed here
        environment="test",
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(build_app(settings, schema=schema), log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()
        database = Database(POSTGRES_URL, schema)
        await database.drop_schema()
        await database.dispose()


async def aidline(*args: str) -> tuple[int, str]:
    status, output, _ = await aidline_apart(*args, stderr=asyncio.subprocess.STDOUT)
    return status, output


async def aidline_apart(*args: str, stderr: int = asyncio.subprocess.PIPE) -> tuple[int, str, str]:
    """The exit status, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        AIDLINE, *args, stdout=asyncio.subprocess.PIPE, stderr=stderr
    )
    output, errors = await process.communicate()
    return process.returncode or 0, output.decode(), (errors or b"").decode()


async def test_the_cli_imports_in_batches_and_reports_refused_lines(
    kafka: str, tmp_path: Path
) -> None:
    good = [f"PL,ART-155-HE,{100 + i},stock,2030-01-01,,https://example.org/{i}" for i in range(10)]
    lines = ["donor,item_code,quantity,source,available_from,value_eur,source_url", *good]
    lines.insert(4, "XX,ART-155-HE,5,stock,2030-01-01,,")  # line 5
    lines.insert(9, "PL,NOPE-1,5,stock,2030-01-01,,")  # line 10
    file = tmp_path / "pledges.csv"
    file.write_text("\n".join(lines) + "\n")
    token = mint_token(DEV_SECRET, "forum-secretariat", ["forum"])
    async with served() as url:
        status, output = await aidline(
            "import", "pledges", str(file), "--request-url", url, "--token", token,
            "--batch-size", "5",
        )  # fmt: skip
        assert status == 1, output
        assert "12/12" in output  # the progress bar finished
        assert cells(output) == [
            ["10", "0", "2"],
            ["5", "donor: 'XX' is not an ISO 3166-1 alpha-2 country code"],
            ["10", "item_code: NOPE-1 is not in the catalogue"],
        ]
        again, output = await aidline(
            "import", "pledges", str(file), "--request-url", url, "--token", token
        )
        assert again == 1
        assert cells(output)[0] == ["0", "10", "2"]  # nothing stored twice
        # For a script: the summary as one JSON document on stdout, the progress on stderr.
        status, out, err = await aidline_apart(
            "import", "pledges", str(file), "--request-url", url, "--token", token, "--json"
        )
        assert status == 1 and "12/12" in err, err
        assert json.loads(out) == {
            "rows": 12, "stored": 0, "duplicates": 10,
            "refused": [
                {"line": 5, "why": "donor: 'XX' is not an ISO 3166-1 alpha-2 country code"},
                {"line": 10, "why": "item_code: NOPE-1 is not in the catalogue"},
            ],
        }  # fmt: skip
        # The old spelling still works, with a warning.
        status, out, err = await aidline_apart(
            "import", "pledges", str(file), "--url", url, "--token", token, "--json", "-q"
        )
        assert status == 1 and json.loads(out)["duplicates"] == 10
        assert "--url is deprecated; use --request-url" in err and "12/12" not in err
        donor = mint_token(DEV_SECRET, "pl-mod", ["donor"], nation="PL")
        status, output = await aidline(
            "import", "pledges", str(file), "--request-url", url, "--token", donor
        )
        assert status == 2 and "Forbidden (403)" in output


def cells(output: str) -> list[list[str]]:
    """The body rows of the tables rich printed."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in output.splitlines()
        if line.strip().startswith("│")
    ]
