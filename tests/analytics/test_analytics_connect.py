"""The read-only client of a ClickHouse *server* (the analysts' route in production). No
ClickHouse server can run here (Debian's is 18.16, no Docker), so clickhouse_connect.get_client
is replaced by a recorder: the test checks what hfloop asks the driver for, not the server."""

from __future__ import annotations

from typing import Any

import clickhouse_connect

from hfloop.analytics import querying, store
from hfloop.config import Settings


def test_server_clients_send_readonly_with_every_query(monkeypatch, tmp_path):
    calls: list[dict[str, Any]] = []

    def get_client(**kwargs: Any) -> object:
        calls.append(kwargs)
        return object()

    monkeypatch.setattr(clickhouse_connect, "get_client", get_client)
    s = Settings(data_dir=tmp_path, clickhouse_dsn="http://analyst:pw@clickhouse:8123/hfloop")
    querying.sibling_client(object(), s, "tenant_acme")
    assert calls == [{"dsn": s.clickhouse, "database": "tenant_acme", "settings": {"readonly": 2}}]
    store.connect(s)
    assert calls[-1] == {"dsn": s.clickhouse}
