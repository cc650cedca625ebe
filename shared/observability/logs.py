"""Structured logs: one line per record, configured once per service process (`serve`).

JSON (the default outside development) carries `time`, `level`, `logger`, `message`, `service`,
`correlation_id`, any `extra={...}` fields, and `exception` with the traceback. Text (the default
in development) is one readable line with the same service and correlation id.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from shared.observability.context import correlation_id

LogFormat = Literal["json", "text"]

# What every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "service",
    "correlation_id",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}
# Loggers that say at INFO what only a developer debugging them needs.
_CHATTY = ("alembic.runtime.plugins",)
_TEXT = "%(asctime)s %(levelname)-7s %(service)s %(name)s [%(correlation_id)s] %(message)s"


class ContextFilter(logging.Filter):
    """Stamps every record with the service name and the bound correlation id."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        if getattr(record, "correlation_id", None) is None:
            record.correlation_id = correlation_id()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": getattr(record, "service", None),
            "correlation_id": getattr(record, "correlation_id", None),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "correlation_id", None) is None:
            record.correlation_id = "-"
        return super().format(record)


def resolve_format(log_format: str, environment: str) -> LogFormat:
    """`auto` is text for a person at a terminal (development), JSON for machines otherwise."""
    if log_format == "auto":
        return "text" if environment == "development" else "json"
    if log_format not in ("json", "text"):
        raise ValueError(f"unknown log format {log_format!r}")
    return "json" if log_format == "json" else "text"


def configure_logging(
    *, service: str, level: str = "INFO", log_format: LogFormat = "json", stream: Any = None
) -> logging.Handler:
    """Route every logger (uvicorn's too) through one handler; calling it again replaces it."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter(service))
    handler.setFormatter(JsonFormatter() if log_format == "json" else _TextFormatter(_TEXT))
    handler.set_name("aidline")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "aidline"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # warnings too become records, not stray stderr text
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return handler
