"""The event registries as documents, generated from the event models (never written by hand):
`docs/events/asyncapi.yaml` (AsyncAPI 3.0) and `docs/events/schemas/<type>.json` (JSON Schema).

    python -m shared.contracts.docs            # regenerate docs/events/
    python -m shared.contracts.docs --check    # exit 1 when the committed files have drifted

A test (tests/unit/test_event_docs.py) fails when the committed files differ from the models.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from shared.contracts import REGISTRIES
from shared.domain import EventRegistry
from shared.messaging.envelope import CONTENT_TYPE, SPEC_VERSION
from shared.messaging.topics import EVENT_TOPICS, INFINITE_RETENTION

SCHEMA_BASE = "https://aidline.dev/events/schemas/"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
KAFKA_BINDING_VERSION = "0.5.0"
API_VERSION = "0.1.0"
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "docs" / "events"

_TOPIC_DESCRIPTIONS = {
    "aidline.requests": "Requirements, pledges, the catalogue and the forum's decisions "
    "(produced by the request service).",
    "aidline.allocations": "Allocations of pledges to requirements and recorded shortfalls "
    "(produced by the allocation service).",
    "aidline.deliveries": "Shipments from dispatch through the hubs to handover "
    "(produced by the delivery service).",
}

_HEADERS: list[tuple[str, dict[str, Any]]] = [
    ("ce_specversion", {"const": SPEC_VERSION, "description": "CloudEvents version."}),
    ("ce_id", {"format": "uuid", "description": "The event's id, unique forever."}),
    ("ce_source", {"description": "The producing service, e.g. /aidline/request."}),
    ("ce_type", {"description": "The event type, e.g. requirement.submitted."}),
    ("ce_subject", {"description": "The stream (aggregate) id; also the Kafka key."}),
    ("ce_time", {"format": "date-time", "description": "When it was stored (RFC 3339)."}),
    ("content-type", {"const": CONTENT_TYPE, "description": "The value's encoding."}),
    ("ce_streamversion", {"pattern": "^[0-9]+$", "description": "Version within its stream."}),
    ("ce_position", {"pattern": "^[0-9]+$", "description": "Position in the producer's store."}),
    ("ce_schemaversion", {"pattern": "^[0-9]+$", "description": "Version of the data schema."}),
    ("ce_correlationid", {"description": "The command this follows from (may be empty)."}),
    ("ce_causationid", {"description": "The event that caused this one (may be empty)."}),
    ("ce_actor", {"description": "Who caused it: a token subject, or `system`."}),
    (
        "ce_occurredat",
        {
            "format": "date-time",
            "description": "When its fact happened in the world (business time; RFC 3339); "
            "equal to ce_time when dated as recorded. Absent on events published before it "
            "existed: read it as ce_time.",
        },
    ),
]
# Optional: may be empty, or (ce_occurredat) absent from events published before it existed.
_OPTIONAL_HEADERS = {"ce_correlationid", "ce_causationid", "ce_occurredat"}


_PARTITIONS = {spec.name: spec.partitions for spec in EVENT_TOPICS}


def _channel_id(topic: str) -> str:
    return topic.removeprefix("aidline.")


def cloudevent_headers() -> dict[str, Any]:
    """The `ce_*` Kafka headers of every Aidline event (CloudEvents 1.0, binary mode)."""
    return {
        "type": "object",
        "description": "CloudEvents 1.0 attributes in Kafka binary mode (values are UTF-8).",
        "required": [name for name, _ in _HEADERS if name not in _OPTIONAL_HEADERS],
        "properties": {name: {"type": "string", **spec} for name, spec in _HEADERS},
    }


def event_schema(
    registry: EventRegistry, event_type: str, schemas: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON Schema of one event type's data (the Kafka value), with its CloudEvents type."""
    cls = registry.types[event_type]
    schema = (schemas or registry.json_schemas())[event_type]
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"{SCHEMA_BASE}{event_type}.json",
        "x-ce-type": event_type,
        "x-ce-source": registry.source,
        "x-ce-schemaversion": cls.VERSION,
        "x-kafka-topic": registry.topic,
        **schema,
    }


def _hoist_defs(schema: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    """Move `$defs` to components/schemas so `$ref`s resolve inside the AsyncAPI document."""
    defs = schema.pop("$defs", {})
    for name, definition in defs.items():
        if shared.setdefault(name, definition) != definition:
            raise ValueError(f"two different schemas are both called {name!r}")
    text = json.dumps(schema).replace('"#/$defs/', '"#/components/schemas/')
    result: dict[str, Any] = json.loads(text)
    return result


def asyncapi(registries: Iterable[EventRegistry]) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the given topics' registries."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {"CloudEventHeaders": cloudevent_headers()}
    for registry in registries:
        channel = _channel_id(registry.topic)
        refs = {}
        payloads = registry.json_schemas()
        for event_type, cls in registry.types.items():
            payload = _hoist_defs(dict(payloads[event_type]), schemas)
            message: dict[str, Any] = {
                "name": event_type,
                "title": cls.__name__,
                "contentType": CONTENT_TYPE,
                "headers": {
                    "allOf": [
                        {"$ref": "#/components/schemas/CloudEventHeaders"},
                        {
                            "type": "object",
                            "properties": {
                                "ce_type": {"const": event_type},
                                "ce_source": {"const": registry.source},
                                "ce_schemaversion": {"const": str(cls.VERSION)},
                            },
                        },
                    ]
                },
                "payload": payload,
                "bindings": {
                    "kafka": {
                        "key": {"type": "string", "description": "The stream id (= ce_subject)."},
                        "bindingVersion": KAFKA_BINDING_VERSION,
                    }
                },
            }
            if "description" in payload:  # the event class's own docstring
                message["summary"] = payload["description"]
            messages[event_type] = message
            refs[event_type] = {"$ref": f"#/components/messages/{event_type}"}
        channels[channel] = {
            "address": registry.topic,
            "description": _TOPIC_DESCRIPTIONS.get(registry.topic, ""),
            "messages": refs,
            "bindings": {
                "kafka": {
                    "topic": registry.topic,
                    "partitions": _PARTITIONS.get(registry.topic, 1),
                    "topicConfiguration": {k: int(v) for k, v in INFINITE_RETENTION.items()},
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
        operations[f"publish-{channel}"] = {
            "action": "send",
            "title": f"{registry.source} publishes to {registry.topic}",
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{t}"} for t in refs],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Aidline events",
            "version": API_VERSION,
            "description": (
                "The events Aidline's services publish to Kafka: CloudEvents 1.0 in binary mode "
                "(key = stream id, value = the event data as JSON, attributes in ce_* headers). "
                "Generated from shared/contracts by `python -m shared.contracts.docs`."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The broker of `make run` / `make infra-up`.",
            },
            "compose": {
                "host": "localhost:9094",
                "protocol": "kafka",
                "description": "The broker of `make up` (Docker Compose), seen from the host.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def _yaml(document: dict[str, Any]) -> str:
    # Imported here, when a document is first asked for: every service serves /asyncapi.yaml,
    # rarely, and PyYAML imported at start held 0.9 MB more in each (RSS once imported).
    import yaml

    text: str = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    return text


def asyncapi_yaml(topics: Iterable[str] | None = None) -> str:
    """The AsyncAPI document of `topics` (default: every topic) as YAML."""
    return _asyncapi_yaml(tuple(REGISTRIES) if topics is None else tuple(topics))


@functools.cache  # the registries are complete once imported; a service serves one document
def _asyncapi_yaml(topics: tuple[str, ...]) -> str:
    return _yaml(asyncapi(REGISTRIES[name] for name in topics))


def render(registries: Mapping[str, EventRegistry] = REGISTRIES) -> dict[str, str]:
    """Every generated file: relative path -> content."""
    files = {"asyncapi.yaml": _yaml(asyncapi(registries.values()))}
    for registry in registries.values():
        schemas = registry.json_schemas()
        for event_type in registry.types:
            schema = event_schema(registry, event_type, schemas)
            files[f"schemas/{event_type}.json"] = json.dumps(schema, indent=2) + "\n"
    return files


def drift(out: Path, files: Mapping[str, str]) -> list[str]:
    """What differs between `out` and `files`: changed, missing and stale files."""
    existing = {
        str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.suffix != ".md"
    }
    problems = [f"stale: {name}" for name in sorted(existing - set(files))]
    for name, content in files.items():
        path = out / name
        if not path.is_file():
            problems.append(f"missing: {name}")
        elif path.read_text() != content:
            problems.append(f"changed: {name}")
    return problems


def write(out: Path, files: Mapping[str, str]) -> None:
    for stale in drift(out, files):
        if stale.startswith("stale: "):
            (out / stale.removeprefix("stale: ")).unlink()
    for name, content in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.contracts.docs", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default: docs/events")
    parser.add_argument("--check", action="store_true", help="only report drift (exit 1)")
    args = parser.parse_args(argv)
    files = render()
    if args.check:
        problems = drift(args.out, files)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("regenerate with: python -m shared.contracts.docs", file=sys.stderr)
        return 1 if problems else 0
    write(args.out, files)
    print(f"wrote {len(files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
