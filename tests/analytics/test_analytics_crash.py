"""kill -9 the sink process (`hfloop worker --role analytics`) mid-load, restart: exact counts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from analytics_helpers import group_lag, produce_every_kind, tenant_counts, wait_for

from hfloop.analytics.tables import TOPIC_TABLE
from hfloop.config import Settings

pytestmark = pytest.mark.usefixtures("analytics_topics")


def _worker(settings: Settings, group: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HFLOOP_")}
    env.update({
        "HFLOOP_KAFKA_BOOTSTRAP": settings.bootstrap,
        "HFLOOP_DATA_DIR": str(settings.data_dir),
        "HFLOOP_ANALYTICS_GROUP": group,
        "HFLOOP_ANALYTICS_BATCH_ROWS": "300",
        "HFLOOP_ANALYTICS_BATCH_MS": "200",
    })  # fmt: skip
    hfloop = Path(sys.executable).with_name("hfloop")
    return subprocess.Popen([str(hfloop), "worker", "--role", "analytics"], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)  # fmt: skip


def test_kill_9_mid_load_then_restart_gives_exact_counts(
    settings_factory: Callable[..., Settings], unique: Callable[[str], str], tmp_path: Path
) -> None:
    from analytics_helpers import start_group_at_end

    settings = settings_factory()
    tenant, group = unique("t"), unique("crash")
    start_group_at_end(settings, group)
    n = 1000
    produce_every_kind(settings, n, tenant)  # 10,000 records waiting
    total = group_lag(settings, group)
    log = tmp_path / "worker.log"
    proc = _worker(settings, group, log)
    try:
        # Kill once part of the load is committed and part is not.
        wait_for(lambda: group_lag(settings, group) < total - 1000 or proc.poll() is not None, 90, "progress")
        assert proc.poll() is None, log.read_text()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        left = group_lag(settings, group)
        assert 0 < left < total, f"kill -9 should land mid-load (lag {left} of {total})"
        proc = _worker(settings, group, log)
        wait_for(
            lambda: group_lag(settings, group) == 0 or proc.poll() is not None, 120, "the restart to drain"
        )
        assert proc.poll() is None, log.read_text()[-3000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, log.read_text()[-3000:]
    import clickhouse_connect

    time.sleep(0.5)
    client = clickhouse_connect.get_client(dsn=settings.clickhouse)
    try:
        assert tenant_counts(client, "hfloop", tenant) == {t: n for t in TOPIC_TABLE.values()}
        dup = client.query("SELECT count() - uniqExact(event_id) FROM hfloop.interactions FINAL WHERE tenant_id = %(t)s",
                           parameters={"t": tenant}).result_rows[0][0]  # fmt: skip
        assert dup == 0
    finally:
        client.close()
