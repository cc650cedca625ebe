"""docs/access.md is generated from the services' access rules and must not go stale."""

from __future__ import annotations

from pathlib import Path

import pytest

from services import access_docs as render_docs


def test_docs_access_md_matches_the_code() -> None:
    assert render_docs.OUTPUT.read_text() == render_docs.render(), (
        "docs/access.md is stale: run `python -m services.access_docs` and commit the result"
    )


def test_check_mode_reports_staleness(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stale = tmp_path / "access.md"
    stale.write_text("# old\n")
    monkeypatch.setattr(render_docs, "OUTPUT", stale)
    assert render_docs.main(["--check"]) == 1
    assert render_docs.main([]) == 0
    assert render_docs.main(["--check"]) == 0
