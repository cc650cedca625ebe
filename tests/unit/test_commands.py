"""`ensure_version`: the If-Match check for handlers that get the expected version in a command."""

from __future__ import annotations

import pytest

from shared.commands import ensure_version
from shared.domain import VersionMismatch
from shared.web.problems import problem_for


def test_no_expectation_or_the_current_version_passes() -> None:
    ensure_version(None, 3)
    ensure_version(3, 3)


def test_a_stale_version_is_412_with_the_current_etag() -> None:
    with pytest.raises(VersionMismatch) as caught:
        ensure_version(2, 3)
    problem = problem_for(caught.value)
    assert problem.status == 412
    assert problem.headers == {"ETag": '"3"'}
