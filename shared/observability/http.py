"""Every request: its ids bound (and echoed), Prometheus metrics, one access log line.

- `X-Request-ID`: a fresh id per request (the cause of the events the request stores).
- `X-Correlation-ID`: the caller's, or the request id; it follows the work through every
  service. A malformed one is answered 400 rather than silently replaced.

Runs outside every other middleware (see `shared.web.app.AidlineApp`), so it also sees the 500s
that Starlette's error middleware answers, and their error logs carry the correlation id.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.observability.context import bound, new_correlation_id
from shared.web.problems import Problem, problem_response

HEADER = "X-Correlation-ID"
REQUEST_ID_HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode()
_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode()
# Visible ASCII only: the id goes into Kafka headers, logs and response headers verbatim.
_VALID = re.compile(r"[\x21-\x7e]{1,128}")
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

# The label series of each (method, route, status), resolved once: `labels()` takes a lock,
# builds and checks the label tuple and looks it up for each metric, on every request. Bounded
# (methods are any token a client sends): past it, series are resolved per request as before.
_SERIES: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_MAX_SERIES = 1000


def incoming_correlation_id(scope: Scope) -> str | None:
    """The caller's correlation id; "" when it sent one that is not acceptable."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
    for name, value in headers:
        if name == _HEADER_KEY:
            text = value.decode("latin-1")
            return text if _VALID.fullmatch(text) else ""
    return None


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
        request_id = new_correlation_id()
        sent = incoming_correlation_id(scope)
        correlation = sent or request_id
        scope.setdefault("state", {})["request_id"] = request_id
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
                    (_REQUEST_ID_KEY, request_id.encode()),
                ]
                self._observe(scope, status, time.perf_counter() - started)
            await send(message)

        with bound(correlation):
            try:
                if sent == "":
                    await problem_response(_bad_correlation_id())(scope, receive, send_with_header)
                else:
                    await self.app(scope, receive, send_with_header)
            finally:
                if not answered:
                    self._observe(scope, status, time.perf_counter() - started)
                route = route_template(scope)
                level = logging.DEBUG if route in QUIET_ROUTES else logging.INFO
                # Checked first: the line's fields are built only when it is written (at WARNING,
                # as benchmarks and quiet deployments run, never).
                if access_log.isEnabledFor(level):
                    _access_line(scope, route, level, status, started)

    @staticmethod
    def _observe(scope: Scope, status: int, seconds: float) -> None:
        key = (scope["method"], route_template(scope), status)
        series = _SERIES.get(key)
        if series is None:
            labels = (key[0], key[1], str(status))
            series = REQUESTS.labels(*labels), LATENCY.labels(*labels)
            if len(_SERIES) < _MAX_SERIES:
                _SERIES[key] = series
        series[0].inc()
        series[1].observe(seconds)


def _access_line(scope: Scope, route: str, level: int, status: int, started: float) -> None:
    access_log.log(
        level,
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


def _bad_correlation_id() -> Problem:
    return Problem(
        400,
        "Invalid X-Correlation-ID",
        "Use 1 to 128 visible ASCII characters, or leave the header out.",
        kind="invalid-correlation-id",
        errors=[{"field": "header.x-correlation-id", "message": "invalid id"}],
    )
