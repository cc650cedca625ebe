"""Security headers on every answer: a strict Content-Security-Policy, no framing, no MIME
sniffing, no referrer.

The policy is set on JSON, problem and stream answers too: it costs nothing there, and it is
what makes a JSON body that a browser is tricked into rendering inert. The API documentation
pages (`/docs`, `/redoc`) get a policy of their own: Swagger UI and ReDoc set inline styles.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The dashboard and every other page: nothing inline, nothing from elsewhere.
CSP = (
    "default-src 'self'; base-uri 'none'; form-action 'self'; object-src 'none'; "
    "frame-ancestors 'none'"
)
# Swagger UI and ReDoc, served from the service itself (shared/web/api_docs.py): scripts from
# 'self' only; both style elements inline, ReDoc starts a worker from a blob and Swagger UI
# shows its logo as a data: image.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; base-uri 'none'; "
    "form-action 'self'; object-src 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/redoc"})

COMMON = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Cross-Origin-Opener-Policy": "same-origin",
}


def _encoded(policy: str) -> tuple[tuple[bytes, bytes], ...]:
    pairs = {**COMMON, "Content-Security-Policy": policy}
    return tuple(
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in pairs.items()
    )


# Encoded once, not per answer: MutableHeaders and five `setdefault`s per answer (each a scan
# of the answer's headers and two encodes) showed in the profile of every request.
_HEADERS = _encoded(CSP)
_DOCS_HEADERS = _encoded(DOCS_CSP)
_NAMES = frozenset(name for name, _ in _HEADERS)


def add_security_headers(message: Message, headers: tuple[tuple[bytes, bytes], ...]) -> None:
    """Add `headers` to a response start message, each unless the answer set it itself."""
    raw = message.get("headers")
    raw = [] if raw is None else list(raw)
    present = {name.lower() for name, _ in raw}
    if present.isdisjoint(_NAMES):
        raw.extend(headers)
    else:
        raw.extend(pair for pair in headers if pair[0] not in present)
    message["headers"] = raw


class SecurityHeaders:
    """Pure ASGI middleware (never buffers a body, so streams stay streams)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _DOCS_HEADERS if scope.get("path") in DOCS_PATHS else _HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_security_headers(message, headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)
