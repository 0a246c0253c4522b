"""End to end: the demo's closed loop, shorter, in one process on the real broker.

Everything real: the stream processors (faust), the fast loop (embedded Qdrant, MiniLM via
ONNX Runtime), the ClickHouse sink (chDB), the HTTP app, and the simulated agents that look
hfloop up over HTTP before every answer. The assertions are the demo's checks with
thresholds for a 90-second run, so a regression in any stage fails CI.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from hfloop.demo import demo_settings, run
from hfloop.kafka_local import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, dict]:
    base = tmp_path_factory.mktemp("e2e")
    settings = demo_settings(base / "data", kafka_bootstrap=kafka_bootstrap, http_port=free_port())
    out = base / "report"
    rc = run(settings, out, duration_s=90, rate=4, seed=7, train=True, min_reduction=0.6)
    return rc, out, json.loads((out / "results.json").read_text())


def test_every_stage_ran_and_every_check_passed(demo_run):
    rc, _, facts = demo_run
    failed = [s for s in facts["stages"] if not s["ok"]] + [c for c in facts["checks"] if not c["passed"]]
    assert rc == 0 and not failed, failed


def test_the_fast_loop_effects(demo_run):
    _, _, facts = demo_run
    sim = facts["sim"]
    assert sim["lookups"]["errors"] == 0
    assert sim["repeat_error"]["reduction"] >= 0.6
    bad = sim["planted"]["bad_route"]["route"]
    assert any(r == bad for _, r, _ in facts["rerouted"]), facts["routing"]
    for stale in sim["planted"]["stale_docs"]:
        assert facts["weights"][stale] < 1.0


def test_the_biased_pool_is_flagged_and_the_slow_loop_answered(demo_run):
    _, _, facts = demo_run
    bias = facts["analytics"]["pool_bias"]
    col = {c: i for i, c in enumerate(bias["columns"])}
    flagged = sorted(r[col["pool"]] for r in bias["rows"] if r[col["flagged"]])
    assert flagged == sorted(facts["sim"]["planted"]["biased_pools"])
    run_record = facts["training"]
    assert run_record["status"] in ("PROMOTED", "REFUSED_DATA", "REFUSED_EVAL")
    assert json.loads(run_record["gate_report"])  # the gate says what it did and why


def test_the_report_renders_in_headless_chromium(demo_run, tmp_path, chromium: str | None):
    _, out, _ = demo_run
    index = out / "index.html"
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) >= 5 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    if chromium is None:
        pytest.skip("chromium is not installed and `apt-get install chromium` is not possible here")
    shot = tmp_path / "demo.png"
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr",
         "--v=0", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--screenshot={shot}", "--window-size=1200,5000", index.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shot.exists() and shot.stat().st_size > 50_000, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console


def test_the_stopped_stack_lets_go_of_its_chdb_folder(demo_run, tmp_path):
    # chDB serves one folder per process until its last client closes; a stopped stack must
    # not keep the process (a test session, a notebook) from opening another folder.
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=f"chdb:///{tmp_path / 'other'}")
    try:
        assert client.query("SELECT 1").result_rows == [(1,)]
    finally:
        client.close()
