"""Fixtures of the analytics tests: topics on the session broker and a chDB client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hfloop.analytics import store
from hfloop.config import Settings
from hfloop.events.kafka import create_topics


@pytest.fixture(scope="module")
def analytics_topics(kafka_bootstrap: str) -> None:
    create_topics(Settings(kafka_bootstrap=kafka_bootstrap))


@pytest.fixture
def chdb_client(tmp_path: Path) -> Iterator[Any]:
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=f"chdb:///{tmp_path / 'chdb'}")
    store.migrate(client, "hfloop")
    yield client
    client.close()
