"""`make bench`: run every benchmarks/bench_*.py against a real broker, record the figures.

python -m benchmarks.run              # all
python -m benchmarks.run backbone     # only bench_backbone.py
python -m benchmarks.run --quick      # smaller sizes (smoke)
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from pathlib import Path

from rich.console import Console

from benchmarks.common import RESULTS, bench_context, machine

console = Console()


def _render(results: dict[str, dict]) -> str:
    lines = ["# Benchmark results", "",
             "Written by `make bench` (`python -m benchmarks.run`); each section says the machine it ran on.",
             "Figures are measured side by side in one run; ratios compare hfloop with the raw client on the",
             "same data.", ""]  # fmt: skip
    for name, res in sorted(results.items()):
        lines.append(f"## {name}")
        lines.append("")
        m = res.get("machine", {})
        if "device" in res and "runs" in res:  # benchmarks/gpu_dpo.py, run on the GPU machine
            lines.append(f"Machine: {res['device']} (torch {res.get('torch')}, transformers {res.get('transformers')}, "
                         f"trl {res.get('trl')}); {res.get('params', 0) / 1e6:.0f}M parameters, {res.get('dtype')}.")  # fmt: skip
            res = {**res, "table": [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()}
                                    for r in res["runs"]]}  # fmt: skip
        else:
            lines.append(f"Machine: {m.get('cpu')} — {m.get('cores')} cores, {m.get('memory_gib')} GiB, "
                         f"Python {m.get('python')}, run {m.get('date')}.")  # fmt: skip
        lines.append("")
        if res.get("summary"):
            lines.append(str(res["summary"]))
            lines.append("")
        rows = res.get("table") or []
        if rows:
            cols = list(dict.fromkeys(k for r in rows for k in r))  # rows of one table may differ in columns
            lines.append("| " + " | ".join(cols) + " |")
            lines.append("|" + "---|" * len(cols))
            for r in rows:
                lines.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
            lines.append("")
        if res.get("notes"):
            lines.append(str(res["notes"]))
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    only = [a for a in argv if not a.startswith("-")]
    names = sorted(p.stem[len("bench_") :] for p in Path(__file__).parent.glob("bench_*.py"))
    if only:
        names = [n for n in names if n in only]
    RESULTS.mkdir(exist_ok=True)
    failed = []
    with bench_context(quick=quick) as ctx:
        for name in names:
            console.rule(f"bench {name}")
            start = time.time()
            try:
                mod = importlib.import_module(f"benchmarks.bench_{name}")
                res = mod.run(ctx)
            except Exception:
                traceback.print_exc()
                failed.append(name)
                continue
            res["machine"] = machine()
            res["seconds"] = round(time.time() - start, 1)
            res["quick"] = quick
            (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=2, default=str) + "\n")
            console.print_json(json.dumps({k: v for k, v in res.items() if k != "machine"}, default=str))
    all_results = {p.stem: json.loads(p.read_text()) for p in RESULTS.glob("*.json")}
    (Path(__file__).parent / "RESULTS.md").write_text(_render(all_results))
    if failed:
        console.print(f"[red]failed benchmarks: {', '.join(failed)}[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
