"""Run every benchmark module (or those named on the command line) and write the report.

python -m bench [name ...]      e.g. python -m bench allocation relay
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from bench.report import Result, write
from shared.runtime import run_loop

OUT = Path("bench-results")


async def main(selected: list[str]) -> int:
    names = sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if m.name.startswith("bench_")
    )
    results: list[Result] = []
    for name in names:
        if selected and name not in selected:
            continue
        print(f"==> bench {name}", flush=True)
        module = importlib.import_module(f"bench.bench_{name}")
        for result in await module.run():
            results.append(result)
            print(
                f"    {result.name}: {result.value:,.1f} {result.unit}"
                + (
                    f" (baseline {result.baseline_value:,.1f}, ratio {result.ratio:.2f})"
                    if result.baseline_value
                    else ""
                ),
                flush=True,
            )
    json_path, md_path = write(results, OUT)
    print(f"wrote {json_path} and {md_path}")
    print(md_path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(run_loop(main(sys.argv[1:])))
