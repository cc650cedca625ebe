"""Every request: a correlation id bound (and echoed), Prometheus metrics, one access log line.

Runs outside every other middleware (see `shared.web.app.AidlineApp`), so it also sees the 500s
that Starlette's error middleware answers, and their error logs carry the correlation id.
"""

from __future__ import annotations

import logging
import re
import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.observability.context import bound, new_correlation_id

HEADER = "X-Correlation-ID"
_HEADER_KEY = HEADER.lower().encode()
# Accept what a caller's tracing system would send, nothing that could forge a log line.
_VALID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}")
UNMATCHED = "<unmatched>"
# Probes and scrapes arrive every few seconds: their access lines are DEBUG, not INFO.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})

REQUESTS = Counter(
    "aidline_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "aidline_http_request_duration_seconds",
    "Time from receiving a request to sending its response headers",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

access_log = logging.getLogger("aidline.access")


def incoming_correlation_id(scope: Scope) -> str:
    headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
    for name, value in headers:
        if name == _HEADER_KEY:
            text = value.decode("latin-1").strip()
            if _VALID.fullmatch(text):
                return text
    return new_correlation_id()


def route_template(scope: Scope) -> str:
    """`/requirements/{id}`, never the raw path: one time series per route, not per id."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class RequestObservability:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation = incoming_correlation_id(scope)
        started = time.perf_counter()
        status = 500  # what the client sees if the app fails before answering
        answered = False

        async def send_with_header(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = int(message["status"]), True
                message["headers"] = [
                    *message.get("headers", []),
                    (_HEADER_KEY, correlation.encode()),
                ]
                self._observe(scope, status, time.perf_counter() - started)
            await send(message)

        with bound(correlation):
            try:
                await self.app(scope, receive, send_with_header)
            finally:
                if not answered:
                    self._observe(scope, status, time.perf_counter() - started)
                route = route_template(scope)
                access_log.log(
                    logging.DEBUG if route in QUIET_ROUTES else logging.INFO,
                    "%s %s %d",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )

    @staticmethod
    def _observe(scope: Scope, status: int, seconds: float) -> None:
        labels = (scope["method"], route_template(scope), str(status))
        REQUESTS.labels(*labels).inc()
        LATENCY.labels(*labels).observe(seconds)
