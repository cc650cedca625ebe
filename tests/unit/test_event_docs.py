"""docs/events/ is generated from the event models and must not drift from them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.contracts import REGISTRIES
from shared.contracts import docs as event_docs

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "events"
EVERY_TYPE = {t: c for c in REGISTRIES.values() for t in c.types}


def test_the_committed_documents_match_the_models(tmp_path: Path) -> None:
    assert event_docs.main(["--out", str(tmp_path)]) == 0
    generated = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    committed = {
        str(p.relative_to(COMMITTED))
        for p in COMMITTED.rglob("*")
        if p.is_file() and p.suffix != ".md"  # a hand-written README may sit beside them
    }
    assert committed == generated, "regenerate with: python -m shared.contracts.docs"
    for name in sorted(generated):
        assert (COMMITTED / name).read_text() == (tmp_path / name).read_text(), (
            f"docs/events/{name} has drifted; regenerate with: python -m shared.contracts.docs"
        )


def test_check_reports_a_changed_a_missing_and_a_stale_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event_docs.main(["--out", str(tmp_path)])
    assert event_docs.main(["--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "schemas" / "shipment.lost.json").write_text("{}")
    (tmp_path / "schemas" / "pledge.reduced.json").unlink()
    (tmp_path / "schemas" / "pledge.renamed.json").write_text("{}")
    assert event_docs.main(["--out", str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert "changed: schemas/shipment.lost.json" in err
    assert "missing: schemas/pledge.reduced.json" in err
    assert "stale: schemas/pledge.renamed.json" in err
    event_docs.main(["--out", str(tmp_path)])  # regenerating removes the stale file
    assert event_docs.main(["--out", str(tmp_path), "--check"]) == 0


def test_one_schema_per_event_type_with_its_id_and_cloudevents_type() -> None:
    files = event_docs.render()
    for event_type, registry in EVERY_TYPE.items():
        schema = json.loads(files[f"schemas/{event_type}.json"])
        assert schema["$id"].endswith(f"/{event_type}.json")
        assert schema["x-ce-type"] == event_type
        assert schema["x-ce-source"] == registry.source
        assert schema["x-kafka-topic"] == registry.topic
        assert schema["type"] == "object"


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_the_asyncapi_document_covers_every_topic_and_type() -> None:
    document = yaml.safe_load(event_docs.render()["asyncapi.yaml"])
    assert document["asyncapi"] == "3.0.0"
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == set(REGISTRIES)
    assert set(document["components"]["messages"]) == set(EVERY_TYPE)
    for channel in document["channels"].values():
        assert set(channel["messages"]) == set(REGISTRIES[channel["address"]].types)
    for ref in _refs(document):
        assert ref.startswith("#/"), ref
        _resolve(document, ref)  # raises KeyError when a reference dangles


def test_messages_carry_the_cloudevents_headers_and_the_stream_key() -> None:
    document = event_docs.asyncapi(REGISTRIES.values())
    headers = document["components"]["schemas"]["CloudEventHeaders"]["properties"]
    assert {"ce_id", "ce_type", "ce_subject", "ce_correlationid", "content-type"} <= set(headers)
    message = document["components"]["messages"]["shipment.lost"]
    assert message["headers"]["allOf"][1]["properties"]["ce_type"] == {"const": "shipment.lost"}
    assert message["bindings"]["kafka"]["key"]["type"] == "string"


def test_one_topic_only() -> None:
    document = yaml.safe_load(event_docs.asyncapi_yaml(["aidline.deliveries"]))
    assert [c["address"] for c in document["channels"].values()] == ["aidline.deliveries"]
    assert "pledge.announced" not in document["components"]["messages"]
