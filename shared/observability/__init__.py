"""Observability every service shares: correlation ids, structured logs, HTTP metrics.

- `context`: the correlation (and causation) id of the work in hand, as context variables.
- `logging`: one JSON (or text) line per log record, configured once per service process.
- `http`: the ASGI middleware that binds the correlation id and measures every request.
"""
