"""Benchmark results: each figure is reported with its baseline, measured in the same run."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class Result:
    name: str  # what was measured, e.g. "relay: events/s"
    value: float
    unit: str
    baseline_name: str | None = None  # e.g. "raw aiokafka producer"
    baseline_value: float | None = None
    target: str | None = None  # e.g. ">= 0.5x baseline" or "<= 5 s"
    met: bool | None = None
    notes: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline_value:
            return self.value / self.baseline_value
        return None


def write(results: list[Result], folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor_count": __import__("os").cpu_count(),
    }
    json_path = folder / "results.json"
    json_path.write_text(
        json.dumps(
            {"meta": meta, "results": [asdict(r) | {"ratio": r.ratio} for r in results]}, indent=2
        )
    )
    lines = [
        f"Benchmarks — {meta['when']}, Python {meta['python']}, {meta['processor_count']} cores",
        "",
        "| figure | value | baseline | ratio | target | met | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        base = f"{r.baseline_value:,.1f} ({r.baseline_name})" if r.baseline_value else "—"
        ratio = f"{r.ratio:.2f}x" if r.ratio else "—"
        met = {True: "yes", False: "**no**", None: "—"}[r.met]
        value = f"{r.value:,.1f} {r.unit}"
        lines.append(
            f"| {r.name} | {value} | {base} | {ratio} | {r.target or '—'} | {met} | {r.notes} |"
        )
    md_path = folder / "results.md"
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path
