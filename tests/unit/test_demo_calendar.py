"""The demo tells its story in business time: needs and pledges over months, two meetings that
each decide what came before them, the execution today."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from shared.demo.scenario import MEETINGS, STORY_DAYS, Calendar

TODAY = date(2026, 12, 3)


@pytest.mark.parametrize("scale", [1, 2, 5])
def test_needs_and_pledges_span_months_and_come_before_their_meeting(scale: int) -> None:
    calendar, rng = Calendar(TODAY), random.Random(7)
    needs = 12 * scale
    stated = [calendar.stated(n, needs) for n in range(needs)]
    assert stated == sorted(stated)
    assert stated[0] == TODAY - timedelta(days=STORY_DAYS)
    assert (stated[-1] - stated[0]).days >= 120  # months, not a day
    last_meeting = calendar.meeting(len(MEETINGS) - 1)
    for day in stated:
        for _ in range(3):
            announced = calendar.announced(day, rng)
            assert day <= announced < last_meeting
            assert calendar.decided_at(announced) >= calendar.decided_at(day)
    # Every meeting has needs of its own to endorse (the last need waits for the next one).
    assert {calendar.decided_at(day) for day in stated[:-1]} == set(range(len(MEETINGS)))


def test_meetings_are_weeks_apart_and_in_the_past() -> None:
    calendar = Calendar(TODAY)
    days = [calendar.meeting(i) for i in range(len(MEETINGS))]
    assert days == sorted(days) and days[-1] < TODAY
    assert (days[-1] - days[0]).days >= 30
    assert calendar.decided_at(days[0] - timedelta(days=1)) == 0
    assert calendar.decided_at(days[0]) == 1  # a need stated on the day waits for the next
