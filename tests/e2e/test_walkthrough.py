"""The README's walk-through (docs/integration/walkthrough.sh), run as written against the
whole stack: from a stated need to a handed-over, received shipment on the board, and the
decision's execution view."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, date, datetime, time
from pathlib import Path

from tests.e2e.stack import Stack

SCRIPT = Path(__file__).parents[2] / "docs" / "integration" / "walkthrough.sh"


async def test_from_zero_to_a_handed_over_shipment(stack: Stack) -> None:
    env = os.environ | {
        "R": stack.url("request"),
        "A": stack.url("allocation"),
        "D": stack.url("delivery"),
        "P": stack.url("projection"),
        "AIDLINE": str(Path(sys.executable).with_name("aidline")),
    }
    process = await asyncio.create_subprocess_exec(
        "bash", str(SCRIPT), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 240)
    assert process.returncode == 0, err.decode()[-3000:]
    board = json.loads(out)
    # "fulfilled" follows once the request service's own event about it comes round too.
    assert board["status"] in ("delivered", "fulfilled"), board
    assert (board["requested"], board["delivered"]) == (2000, 2000), board
    assert "shipment.received" in err.decode()
    # It ends with the decision's execution view: the line received in full, its days counted
    # from the meeting three days ago (business time), not from when it was recorded.
    execution = json.loads(err.decode().strip().splitlines()[-1])
    (line,) = [x for x in execution["lines"] if x["kind"] == "requirement"]
    assert (line["confirmed"], line["received"], line["stuck"]) == (2000, 2000, []), execution
    met = datetime.combine(date.fromisoformat(execution["meeting_date"]), time.min, UTC)
    since_meeting = (datetime.now(UTC) - met).total_seconds() / 86400
    assert since_meeting >= 3  # the script's meeting was three days ago (midnight may pass)
    assert 3 <= line["days_to_allocated"] <= line["days_to_received"] <= since_meeting + 0.01
