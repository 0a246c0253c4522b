"""The report and the CLI through a running API (the embedded-mode path), rendered in
headless Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import analytics_dataset as ds
import httpx
import pytest

from hfloop.analytics import report
from hfloop.analytics.api import router_factory
from hfloop.analytics.executor import RemoteExecutor
from hfloop.config import Settings
from hfloop.httpcommon import create_app
from hfloop.kafka_local import free_port


@pytest.fixture
def api(chdb_client: Any, tmp_path: Path) -> Iterator[str]:
    """The query route served by uvicorn on a free port, over the test's chDB client."""
    import uvicorn

    ds.load(chdb_client, "acme")
    ds.load(chdb_client, "globex")
    settings = Settings(data_dir=tmp_path, api_keys="k-acme:acme,k-globex:globex")
    factory = router_factory(settings, chdb_client)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, [factory]), host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    server.should_exit = True
    thread.join(10)
    factory.service.close()  # type: ignore[attr-defined]


def test_report_has_plots_and_renders_in_headless_chromium(
    api: str, tmp_path: Path, chromium: str | None
) -> None:
    out = tmp_path / "report"
    ex = RemoteExecutor(api, "k-acme")
    index = report.build(ex, out, {"min_ratings": 5, "min_pairs": 2, "min_group": 1})
    ex.close()
    text = index.read_text()
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) >= 5 and text.count("<img ") == len(pngs)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000 for p in pngs)
    assert "query failed" not in text
    # The demo's question: the report names the biased rater population.
    assert "long+confident" in text and "crowd" in text

    if chromium is None:
        pytest.skip("chromium is not installed and `apt-get install chromium` is not possible here")
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr",
         "--v=0", "--allow-file-access-from-files", f"--screenshot={shot}", "--window-size=1200,4000",
         index.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shot.exists() and shot.stat().st_size > 50_000, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    assert "Failed to load resource" not in proc.stderr


def test_cli_query_goes_through_the_running_api(api: str, tmp_path: Path) -> None:
    """Embedded mode: the CLI cannot open chDB (the API's process holds it), so it asks the API."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HFLOOP_")}
    env.update({"HFLOOP_API_URL": api, "HFLOOP_API_KEY": "k-acme", "HFLOOP_DATA_DIR": str(tmp_path / "cli")})
    hfloop = str(Path(sys.executable).with_name("hfloop"))
    out = subprocess.run([hfloop, "analytics", "query", "SELECT interaction_id FROM interactions ORDER BY 1",
                          "--format", "csv"], env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == ["interaction_id", "i1", "i2", "i3", "i4", "i5"]
    named = subprocess.run([hfloop, "analytics", "query", "--name", "pool_bias", "-p", "min_ratings=5", "-p", "min_group=1", "--format",
                            "json"], env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert named.returncode == 0 and '"long+confident"' in named.stdout
    refused = subprocess.run([hfloop, "analytics", "query", "DROP TABLE interactions"], env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 1 and "403" in refused.stdout
