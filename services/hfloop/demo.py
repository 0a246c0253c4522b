"""`make demo`: the closed loop end to end on embedded defaults, then a report.

Stages (each timed; a failed stage is reported and makes the exit code non-zero):
1. stack     — `hfloop dev` in this process: local Kafka, topics, stream processors, fast loop
               (embedded Qdrant), ClickHouse sink (chDB), one HTTP app.
2. simulate  — support agents answer paraphrased questions, looking up hfloop over HTTP before
               each answer; users, correctors and annotators react; events go through the SDK.
3. drain     — wait until every consumer group has caught up.
4. fast loop — repeat-error rate before vs after each first correction (simulator ground truth),
               routes the system rerouted and documents it down-weighted (read from the API).
5. analytics — named queries over ClickHouse: labels, agreement, the biased rater pool.
6. slow loop — a DPO run on the accumulated preference window, with both gates.
7. report    — reports/demo/index.html with plots, plus how to query the history yourself.
"""

from __future__ import annotations

import html
import json
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hfloop.config import Settings
from hfloop.kafka_local import free_port, port_open

console = Console()
TENANT = "demo"
KEY = "demo-key"


@dataclass
class Stage:
    name: str
    ok: bool = False
    seconds: float = 0.0
    detail: str = ""
    error: str | None = None


@dataclass
class Demo:
    settings: Settings
    out: Path
    duration_s: float
    rate: float
    seed: int = 7
    train: bool = True
    min_reduction: float = 0.8
    stages: list[Stage] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    def stage(self, name: str, fn: Callable[[], str]) -> bool:
        st = Stage(name)
        self.stages.append(st)
        console.rule(f"[bold]{name}")
        t0 = time.perf_counter()
        try:
            st.detail = fn() or ""
            st.ok = True
        except Exception as exc:
            st.error = f"{type(exc).__name__}: {exc}"
            console.print(f"[red]stage {name} failed:[/red] {st.error}")
            console.print(traceback.format_exc(), markup=False, highlight=False)
        st.seconds = round(time.perf_counter() - t0, 1)
        if st.ok:
            console.print(f"[green]{name}[/green] done in {st.seconds}s {st.detail}")
        return st.ok

    def check(self, name: str, passed: bool, detail: str) -> None:
        self.checks.append((name, passed, detail))
        mark = "[green]PASS[/green]" if passed else "[red]FAIL[/red]"
        console.print(f"{mark} {name}: {detail}")


def demo_settings(base_dir: Path, **overrides: Any) -> Settings:
    """Embedded defaults in a fresh folder; ports that are free on this machine."""
    kafka_port = 9092 if not port_open(9092) else free_port()
    http_port = 8787 if not port_open(8787) else free_port()
    values: dict[str, Any] = dict(
        data_dir=base_dir,
        kafka_port=kafka_port,
        http_port=http_port,
        api_keys=f"{KEY}:{TENANT}",
        api_key=KEY,
        api_url=f"http://127.0.0.1:{http_port}",
        label_window_s=10.0,
        join_grace_s=30.0,
        # Trust as a support team would set it: the expert pool (staff who take escalations)
        # is trusted, and two end users who independently write a similar correction for a
        # similar question corroborate each other. One user alone stays private (poisoning guard).
        memory_trusted_annotators=",".join(f"experts-{k:02d}" for k in range(1, 4)),
        memory_corroborating_users=2,
        # The simulator's paraphrase check (docs/simulator.md): same-intent questions sit at
        # cosine >= 0.55 for 89% of pairs, two users' rewordings of one answer at >= 0.65.
        memory_situation_similarity=0.55,
        memory_answer_similarity=0.6,
        # A support team reroutes a route that goes bad in 40% of labeled answers.
        routing_upper=0.4,
        routing_lower=0.25,
        routing_fallback_target="large-model",
    )
    values.update(overrides)
    if "http_port" in overrides:
        values["api_url"] = f"http://127.0.0.1:{overrides['http_port']}"
    return Settings(**values)


def run(
    settings: Settings,
    out: Path,
    duration_s: float,
    rate: float,
    seed: int = 7,
    train: bool = True,
    min_reduction: float = 0.8,
) -> int:
    from hfloop.dev import DevStack

    demo = Demo(settings, out, duration_s, rate, seed, train, min_reduction=min_reduction)
    stack = DevStack(settings)
    try:
        if demo.stage("stack", lambda: _start(stack)):
            demo.stage("simulate", lambda: _simulate(demo))
            demo.stage("drain", lambda: _drain(stack))
            demo.stage("fast loop", lambda: _fast_loop(demo))
            demo.stage("analytics", lambda: _analytics(demo))
            if train:
                demo.stage("slow loop", lambda: _slow_loop(demo))
            failed_services = stack.failures()
            demo.check("services stayed up", not failed_services, json.dumps(failed_services) or "all up")
    finally:
        demo.stage("report", lambda: _report(demo))
        stack.stop()
        from hfloop.demo_report import write_results

        write_results(demo)
    _print_summary(demo)
    ok = all(s.ok for s in demo.stages) and all(c[1] for c in demo.checks)
    return 0 if ok else 1


def _start(stack: Any) -> str:
    stack.start()
    s = stack.settings
    return f"(Kafka {s.bootstrap}, HTTP {s.api_url})"


def _simulate(demo: Demo) -> str:
    from hfloop.simulate import SimulationConfig, run_simulation

    s = demo.settings
    cfg = SimulationConfig(seed=demo.seed, rate=demo.rate, duration_s=demo.duration_s, via="sdk", tenant=TENANT,
                           api_url=s.api_url, api_key=KEY, progress=True)  # fmt: skip
    t_start = datetime.now(UTC)
    result = run_simulation(s, cfg)
    demo.facts["window"] = (t_start, datetime.now(UTC))
    demo.facts["sim"] = result.summary
    lk = result.summary.get("lookups", {})
    if lk.get("errors"):
        raise RuntimeError(f"{lk['errors']} lookups failed; last: {lk.get('last_error')}")
    return f"({result.summary['interactions']} interactions, {result.summary['events_total']} events)"


def _drain(stack: Any, timeout: float = 240.0, quiet_s: float = 6.0) -> str:
    """Until no group lags and labels stopped arriving (the join's windows closed)."""
    t0 = time.monotonic()
    last_labels, last_change = -1, time.monotonic()
    while time.monotonic() - t0 < timeout:
        st = stack.status()
        if st["failed"]:
            raise RuntimeError(f"services failed: {st['failed']}")
        if st["labels"] != last_labels:
            last_labels, last_change = st["labels"], time.monotonic()
        lag = sum(st["lag"].values())
        if lag == 0 and time.monotonic() - last_change > quiet_s:
            return f"(labels {st['labels']}, pairs {st['pairs']}, memory points {st['memory_points']})"
        time.sleep(1.0)
    raise TimeoutError(f"pipeline did not drain in {timeout:.0f}s: {stack.status()}")


def _fast_loop(demo: Demo) -> str:
    from hfloop.sdk.http import HfloopClient

    sim = demo.facts["sim"]
    rep = sim["repeat_error"]
    demo.check(f"repeat-error rate falls >= {demo.min_reduction:.0%} after the first correction",
               (rep["reduction"] or 0) >= demo.min_reduction,
               f"reduction {rep['reduction']:.0%} (before {rep['before']}, after {rep['after']})")  # fmt: skip
    planted = sim["planted"]
    with HfloopClient(demo.settings.api_url, api_key=KEY) as client:
        agents = sorted(set(planted["bad_route"]["agents"]))
        routing = {a: client.routing(a) for a in agents}
        weights = client.retrieval_weights(sorted(sim["docs"]))
    rerouted = [
        (a, r, v) for a, rt in routing.items() for r, v in rt["routes"].items() if v["action"] != "DEFAULT"
    ]
    down = {d: w for d, w in weights.items() if w < 0.999}
    demo.facts.update(routing=routing, weights=weights, rerouted=rerouted, down=down)
    bad = planted["bad_route"]["route"]
    demo.check("a route rerouted by the system", any(r == bad for _, r, _ in rerouted),
               f"rerouted: {[(a, r, v['action']) for a, r, v in rerouted]}; planted bad route {bad!r}")  # fmt: skip
    current = {intent: d for d, intent in planted["current_docs"].items()}
    for stale, intent in planted["stale_docs"].items():
        cur = current.get(intent)
        w_stale, w_cur = weights.get(stale, 1.0), weights.get(cur, 1.0) if cur else 1.0
        demo.check(f"stale document {stale} down-weighted", w_stale < 1.0 and w_stale < w_cur,
                   f"{stale}: {w_stale:.2f} vs current {cur}: {w_cur:.2f}")  # fmt: skip
    return f"(rerouted {len(rerouted)}, down-weighted docs {sorted(down)})"


def _analytics(demo: Demo) -> str:
    from hfloop.analytics.executor import RemoteExecutor

    ex = RemoteExecutor(demo.settings.api_url, KEY)
    try:
        results = {name: ex.named(name) for name in ("label_distribution", "pool_bias", "annotator_alpha",
                                                     "fast_loop_effect", "training_readiness")}  # fmt: skip
    finally:
        ex.close()
    demo.facts["analytics"] = {k: {"columns": v.columns, "rows": v.rows} for k, v in results.items()}
    bias = results["pool_bias"]
    col = {c: i for i, c in enumerate(bias.columns)}
    flagged = sorted(r[col["pool"]] for r in bias.rows if r[col["flagged"]])
    planted = sorted(demo.facts["sim"]["planted"]["biased_pools"])
    demo.check("the biased rater pool identified by the agreement analysis", flagged == planted,
               f"flagged {flagged}; planted {planted}")  # fmt: skip
    return f"(flagged pools: {flagged})"


def _slow_loop(demo: Demo) -> str:
    from hfloop.training.dpo import run_dpo_on_window

    start, end = demo.facts["window"]
    record = run_dpo_on_window(demo.settings, start, end)
    demo.facts["training"] = record
    status = record["status"]
    gate = json.loads(record["gate_report"]) if record.get("gate_report") else {}
    reasons = gate.get("reasons") or [a["name"] for a in record.get("audits", []) if not a["passed"]]
    demo.check("a DPO run passed or was refused by the gates with reasons", status in ("PROMOTED", "REFUSED_DATA",
               "REFUSED_EVAL") and (status == "PROMOTED" or bool(reasons)), f"{status}: {reasons}")  # fmt: skip
    return f"({status})"


def _report(demo: Demo) -> str:
    from hfloop.demo_report import write_report

    index = write_report(demo)
    return f"({index})"


def _print_summary(demo: Demo) -> None:
    t = Table("stage", "ok", "seconds", "detail", title="hfloop demo")
    for s in demo.stages:
        t.add_row(s.name, "yes" if s.ok else "[red]NO[/red]", str(s.seconds), s.error or s.detail)
    console.print(t)
    c = Table("check", "result", "detail")
    for name, passed, detail in demo.checks:
        c.add_row(name, "[green]pass[/green]" if passed else "[red]FAIL[/red]", detail)
    console.print(c)
    cfg = demo.settings
    console.print(f"Report: {demo.out / 'index.html'}")
    console.print(
        "Query the history yourself (start the stack again with the same data: "
        f"HFLOOP_DATA_DIR={cfg.data_dir} HFLOOP_API_KEYS={KEY}:{TENANT} hfloop dev), then:\n"
        f"  HFLOOP_API_URL=http://127.0.0.1:{cfg.http_port} HFLOOP_API_KEY={KEY} hfloop analytics query "
        '"SELECT kind, count() FROM feedback GROUP BY kind"\n'
        f"  curl -H 'Authorization: Bearer {KEY}' -H 'content-type: application/json' "
        f'127.0.0.1:{cfg.http_port}/v1/analytics/query -d \'{{"name": "pool_bias"}}\''
    )


def main(out: Path, duration_s: float, rate: float, seed: int, train: bool, data_dir: Path) -> int:
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    out.mkdir(parents=True, exist_ok=True)
    return run(demo_settings(data_dir), out, duration_s, rate, seed, train)


def escape(v: Any) -> str:
    return html.escape(str(v))
