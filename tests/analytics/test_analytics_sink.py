"""The sink against the real broker and real chDB: exact counts, replay, bad records, outage."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from analytics_helpers import produce_every_kind, start_group_at_end, tenant_counts, wait_for
from clickhouse_connect.driver.exceptions import OperationalError
from confluent_kafka import Consumer

from hfloop.analytics.sink import AnalyticsService
from hfloop.analytics.tables import TOPIC_TABLE
from hfloop.config import Settings
from hfloop.events import topics
from hfloop.events.kafka import RecordProducer
from hfloop.events.serde import Serde

pytestmark = pytest.mark.usefixtures("analytics_topics")


def _run_sink(settings: Settings, client: Any, group: str) -> AnalyticsService:
    service = AnalyticsService(settings, client=client, group_id=group).start()
    assert service.ready.wait(60), service.failed
    return service


def test_every_kind_lands_exactly_once_and_replay_changes_nothing(
    settings_factory: Callable[..., Settings], unique: Callable[[str], str], chdb_client: Any
) -> None:
    settings = settings_factory(analytics_batch_ms=200)
    tenant, group = unique("t"), unique("sink")
    start_group_at_end(settings, group)
    n = 300
    produce_every_kind(settings, n, tenant)
    service = _run_sink(settings, chdb_client, group)
    try:
        expected = {table: n for table in TOPIC_TABLE.values()}
        wait_for(
            lambda: tenant_counts(chdb_client, "hfloop", tenant) == expected, 60, "every table to hold n rows"
        )
        # Produce the very same events again (a producer retry / replay upstream).
        produce_every_kind(settings, n, tenant)
        wait_for(
            lambda: service.stats.rows.get("dead_letters", 0) >= 2 * n, 60, "the second copy to be written"
        )
    finally:
        service.stop()
    assert tenant_counts(chdb_client, "hfloop", tenant) == expected
    # Physically the duplicates may still be there until a merge; FINAL hides them.
    raw = tenant_counts(chdb_client, "hfloop", tenant, final=False)
    assert all(raw[t] >= n for t in raw)

    # Replay every topic from offset 0 with a fresh group: counts stay exact.
    replay = _run_sink(settings, chdb_client, unique("replay"))
    try:
        wait_for(lambda: replay.stats.rows.get("interactions", 0) >= 2 * n, 60, "the replay to be written")
        wait_for(lambda: replay.stats.rows.get("dead_letters", 0) >= 2 * n, 60, "the replay to be written")
    finally:
        replay.stop()
    assert tenant_counts(chdb_client, "hfloop", tenant) == expected
    uniq = chdb_client.query("SELECT uniqExact(event_id), count() FROM hfloop.feedback FINAL WHERE tenant_id = %(t)s",
                             parameters={"t": tenant}).result_rows[0]  # fmt: skip
    assert uniq == (n, n)


def test_undecodable_records_go_to_the_dlq_and_the_sink_goes_on(
    settings_factory: Callable[..., Settings], unique: Callable[[str], str], chdb_client: Any
) -> None:
    settings = settings_factory(analytics_batch_ms=200)
    tenant, group = unique("t"), unique("sink")
    start_group_at_end(settings, group)
    serde = Serde()
    producer = RecordProducer(settings, serde)
    from hfloop.analytics import synth

    good = [synth.record("Feedback", i, tenant) for i in range(5)]
    valid = serde.encode("Feedback", good[0])
    bad = {
        b"garbage": b"not avro at all",
        b"truncated": valid[:-7],
        b"wrong-record": serde.encode("Outcome", synth.record("Outcome", 0, tenant)),
    }
    for r in good[:3]:
        producer.send("Feedback", r)
    for key, value in bad.items():
        producer.send_raw(topics.FEEDBACK, key, value)
    for r in good[3:]:
        producer.send("Feedback", r)
    producer.flush()
    service = _run_sink(settings, chdb_client, group)
    try:
        wait_for(
            lambda: tenant_counts(chdb_client, "hfloop", tenant)["feedback"] == 5,
            60,
            "the good feedback rows",
        )
        wait_for(lambda: service.stats.dead_letters >= 3, 30, "three dead letters")
        # The dead letters come back through hfloop.dlq into the dead_letters table.
        sql = ("SELECT key, reason FROM hfloop.dead_letters FINAL WHERE processor = 'analytics-sink' "
               "AND origin_topic = 'hfloop.feedback' AND key IN ('garbage', 'truncated', 'wrong-record') ORDER BY key")  # fmt: skip
        wait_for(lambda: len(chdb_client.query(sql).result_rows) == 3, 30, "dead letters in ClickHouse")
    finally:
        service.stop()
    reasons = dict(chdb_client.query(sql).result_rows)
    assert reasons == {"garbage": "bad_magic", "truncated": "truncated", "wrong-record": "wrong_record"}


class FlakyClient:
    """The real chDB client behind a switch that makes every call fail as if ClickHouse were
    unreachable. A fault injected at the client boundary: no ClickHouse server can run here
    (Debian ships 18.16, too old for this schema), and chDB runs in-process so it cannot be
    'taken down' on its own."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.down = threading.Event()
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down.is_set():
                self.refused += 1
                raise OperationalError("injected: connection refused")
            return attr(*args, **kwargs)

        return call


def _committed(settings: Settings, group: str) -> int:
    from analytics_helpers import group_lag

    return group_lag(settings, group)


def test_clickhouse_unreachable_for_30s_loses_nothing(
    settings_factory: Callable[..., Settings], unique: Callable[[str], str], chdb_client: Any
) -> None:
    settings = settings_factory(analytics_batch_ms=200, analytics_batch_rows=500, analytics_retry_max_s=2.0)
    tenant, group = unique("t"), unique("sink")
    start_group_at_end(settings, group)
    flaky = FlakyClient(chdb_client)
    service = _run_sink(settings, flaky, group)
    try:
        produce_every_kind(settings, 100, tenant)
        wait_for(
            lambda: tenant_counts(chdb_client, "hfloop", tenant)["interactions"] == 100, 60, "first load"
        )
        flaky.down.set()
        outage_started = time.monotonic()
        produce_every_kind(settings, 400, tenant, start=100)  # the load continues during the outage
        while time.monotonic() - outage_started < 30:
            time.sleep(1)
        # Offsets were held: everything produced during the outage is still uncommitted.
        assert _committed(settings, group) >= 10 * 400
        assert flaky.refused > 3 and service.stats.retries > 3
        flaky.down.clear()
        expected = {table: 500 for table in TOPIC_TABLE.values()}
        wait_for(lambda: tenant_counts(chdb_client, "hfloop", tenant) == expected, 90, "the backlog to drain")
        wait_for(lambda: _committed(settings, group) == 0, 30, "offsets committed after the outage")
    finally:
        service.stop()
    assert service.failed is None


def test_server_dsn_that_refuses_connections_holds_the_sink_without_committing(
    settings_factory: Callable[..., Settings], unique: Callable[[str], str]
) -> None:
    from hfloop.kafka_local import free_port

    settings = settings_factory(clickhouse_dsn=f"http://127.0.0.1:{free_port()}", analytics_retry_max_s=0.5)
    group = unique("sink")
    service = AnalyticsService(settings, group_id=group).start()
    try:
        wait_for(lambda: service.stats.retries >= 3, 30, "connection retries")
        assert not service.ready.is_set() and service.failed is None
        consumer = Consumer(settings.consumer_config(group))
        from confluent_kafka import TopicPartition

        committed = consumer.committed([TopicPartition(topics.FEEDBACK, 0)], timeout=10)
        consumer.close()
        assert committed[0].offset < 0  # nothing consumed, nothing committed
        assert "connect to ClickHouse" in (service.stats.last_error or "")
    finally:
        service.stop(10)
    assert service.failed is None
