"""The documentation pages every service serves itself, so an operations network without
internet sees them as anyone else: `/docs` (Swagger UI), `/redoc` (ReDoc), and a page per
problem type at `/problems/<kind>` (the `type` of each problem+json answer).

The assets are the `fastapi-offline` package's copies of Swagger UI 5 and ReDoc 2 (its only use
here); the page's start-up code is our own file, not an inline script, so the docs pages' CSP
(`headers.DOCS_CSP`) allows scripts from 'self' alone.
"""

from __future__ import annotations

import html
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from shared.domain.errors import NotFound
from shared.web.problem_types import PROBLEM_TYPES, TYPE_BASE

DOCS_ASSETS = "/docs/assets"
SWAGGER_INIT = "/docs/swagger-init.js"
_VENDORED = Path(str(files("fastapi_offline") / "static"))
_OWN = Path(__file__).parent / "static"


def _page(title: str, head: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        f'<link rel="icon" href="{DOCS_ASSETS}/favicon.png">{head}</head>'
        f"<body>{body}</body></html>"
    )


def _problem_page(kind: str) -> str:
    page = PROBLEM_TYPES[kind]
    return (
        f'<section id="{kind}"><h2><a href="{TYPE_BASE}{kind}">{kind}</a></h2>'
        f"<p>{page.status} {html.escape(page.title)}</p>"
        f"<p>{html.escape(page.means)}</p><p><b>What to do:</b> {html.escape(page.remedy)}</p>"
        "</section>"
    )


def install_api_docs(app: FastAPI) -> None:
    """`app` must be built with docs_url=None and redoc_url=None (FastAPI's own pages use a CDN)."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=_VENDORED), name="docs-assets")

    @app.get(SWAGGER_INIT, include_in_schema=False)
    async def swagger_init() -> FileResponse:
        return FileResponse(_OWN / "swagger-init.js", media_type="text/javascript")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _page(
            f"{app.title} — API",
            f'<link rel="stylesheet" href="{root}{DOCS_ASSETS}/swagger-ui.css">',
            f'<div id="swagger-ui" data-openapi="{root}{app.openapi_url}"></div>'
            f'<script src="{root}{DOCS_ASSETS}/swagger-ui-bundle.js"></script>'
            f'<script src="{root}{SWAGGER_INIT}"></script>',
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _page(
            f"{app.title} — API reference",
            "",
            f'<redoc spec-url="{root}{app.openapi_url}"></redoc>'
            f'<script src="{root}{DOCS_ASSETS}/redoc.standalone.js"></script>',
        )

    @app.get("/problems", include_in_schema=False)
    async def problem_types() -> HTMLResponse:
        return _page(
            f"{app.title} — problem types",
            "",
            "<h1>Problem types</h1>" + "".join(_problem_page(kind) for kind in PROBLEM_TYPES),
        )

    @app.get(TYPE_BASE + "{kind}", include_in_schema=False)
    async def problem_type(kind: str) -> HTMLResponse:
        if kind not in PROBLEM_TYPES:
            raise NotFound(f"No problem type {kind!r}; GET {TYPE_BASE.rstrip('/')} lists them.")
        return _page(f"{app.title} — {kind}", "", _problem_page(kind))
