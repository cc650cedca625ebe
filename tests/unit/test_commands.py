"""`ensure_version`: the If-Match check for handlers that get the expected version in a command."""

from __future__ import annotations

import pytest

from shared.web.commands import ensure_version
from shared.web.problems import Problem


def test_no_expectation_or_the_current_version_passes() -> None:
    ensure_version(None, 3)
    ensure_version(3, 3)


def test_a_stale_version_is_412_with_the_current_etag() -> None:
    with pytest.raises(Problem) as caught:
        ensure_version(2, 3)
    assert caught.value.status == 412
    assert caught.value.headers == {"ETag": '"3"'}
