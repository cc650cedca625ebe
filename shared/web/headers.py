"""Security headers on every answer: a strict Content-Security-Policy, no framing, no MIME
sniffing, no referrer.

The policy is set on JSON, problem and stream answers too: it costs nothing there, and it is
what makes a JSON body that a browser is tricked into rendering inert. The API documentation
pages (`/docs`, `/redoc`) are FastAPI's: they load Swagger UI / ReDoc from a CDN and start it
with an inline script, so they get a policy of their own that allows exactly that.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The dashboard and every other page: nothing inline, nothing from elsewhere.
CSP = (
    "default-src 'self'; base-uri 'none'; form-action 'self'; object-src 'none'; "
    "frame-ancestors 'none'"
)
_CDN = "https://cdn.jsdelivr.net"
DOCS_CSP = (
    f"default-src 'self'; script-src 'self' 'unsafe-inline' {_CDN}; "
    f"style-src 'self' 'unsafe-inline' {_CDN}; img-src 'self' data: https://fastapi.tiangolo.com; "
    "worker-src 'self' blob:; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})

COMMON = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Cross-Origin-Opener-Policy": "same-origin",
}


class SecurityHeaders:
    """Pure ASGI middleware (never buffers a body, so streams stay streams)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = DOCS_CSP if scope.get("path") in DOCS_PATHS else CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in COMMON.items():
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", policy)
            await send(message)

        await self.app(scope, receive, send_with_headers)
