"""Records the serde reads but ClickHouse refuses: dead-lettered, never a stalled sink.

fastavro (so the serde and the sink's validator) reads encodings no writer produces: a varint
padded past 10 bytes, a boolean byte other than 0/1, an enum index counted from the end.
ClickHouse's Avro reader refuses them ("Invalid Avro varint", "Invalid value for bool", "enum
index ... out of range"). The sink bisects a refused container, stores what ClickHouse takes and
dead-letters what it refuses alone (reason ``refused_by_store``, ClickHouse's message). A table
that refuses every record (here: a constraint no row meets) is an outage instead: nothing is
dead-lettered, the batch is retried until the table takes it. A connection outage, also in the
middle of a bisection, is retried and loses nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from analytics_helpers import group_lag, start_group_at_end, wait_for
from clickhouse_connect.driver.exceptions import OperationalError

from hfloop.analytics import synth
from hfloop.analytics.batch import Batch
from hfloop.analytics.sink import AnalyticsService, ClickHouseWriter, StoreUnavailable, is_data_refusal
from hfloop.config import Settings
from hfloop.events import topics
from hfloop.events.kafka import RecordProducer
from hfloop.events.serde import Serde

SERDE = Serde()


def _one_byte_apart(name: str, a: dict[str, Any], b: dict[str, Any]) -> tuple[bytes, int]:
    """The encoding of ``a`` and the position of the one byte where ``b``'s encoding differs."""
    ea, eb = SERDE.encode(name, a), SERDE.encode(name, b)
    diff = [i for i in range(len(ea)) if ea[i] != eb[i]]
    assert len(ea) == len(eb) and len(diff) == 1, diff
    return ea, diff[0]


def overlong_varint(tenant: str, i: int) -> bytes:
    """An Outcome whose event_id length is written as a 12-byte varint (same value)."""
    good = SERDE.encode("Outcome", synth.record("Outcome", i, tenant))
    return good[:10] + bytes([good[10] | 0x80]) + b"\x80" * 10 + b"\x00" + good[11:]


def boolean_two(tenant: str, i: int) -> bytes:
    """A PreferencePair whose ``explicit`` byte is 2 (fastavro: True; ClickHouse: refused)."""
    rec = synth.record("PreferencePair", i, tenant)
    value, at = _one_byte_apart("PreferencePair", {**rec, "explicit": True}, {**rec, "explicit": False})
    return value[:at] + b"\x02" + value[at + 1 :]


def negative_enum(tenant: str, i: int) -> bytes:
    """An Outcome whose kind index is -1 (fastavro: the last symbol; ClickHouse: out of range)."""
    rec = synth.record("Outcome", i, tenant)
    value, at = _one_byte_apart("Outcome", {**rec, "kind": "ACCEPTED"}, {**rec, "kind": "COPIED"})
    return value[:at] + b"\x01" + value[at + 1 :]  # zigzag(-1)


CRAFTED = {"varint": overlong_varint, "boolean": boolean_two, "enum": negative_enum}


@pytest.mark.parametrize("craft", CRAFTED.values(), ids=CRAFTED.keys())
def test_the_serde_reads_the_crafted_records(craft: Callable[[str, int], bytes]) -> None:
    value = craft("t", 7)
    name = "PreferencePair" if craft is boolean_two else "Outcome"
    assert SERDE.decode_as(value, name)["event_id"] == synth.record(name, 7, "t")["event_id"]


class CountingClient:
    """The real client, counting inserts. With ``outage_s``, the first insert ClickHouse takes
    after it refused one (a part stored mid-bisection) is the last before an outage: every insert
    then fails as if ClickHouse were unreachable, for ``outage_s`` seconds."""

    def __init__(self, client: Any, outage_s: float = 0.0) -> None:
        self._client = client
        self.inserts = 0
        self.unreachable = 0
        self._outage_s = outage_s
        self._refused = False
        self._outage_until: float | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def raw_insert(self, *args: Any, **kwargs: Any) -> Any:
        if self._outage_until is not None and time.monotonic() < self._outage_until:
            self.unreachable += 1
            raise OperationalError("injected: connection refused")
        self.inserts += 1
        try:
            result = self._client.raw_insert(*args, **kwargs)
        except Exception as exc:
            self._refused = self._refused or is_data_refusal(exc)
            raise
        if self._outage_s and self._refused and self._outage_until is None:
            self._outage_until = time.monotonic() + self._outage_s
        return result


def _count(client: Any, sql: str, **params: Any) -> int:
    return int(client.query(sql, parameters=params).result_rows[0][0])


@pytest.mark.usefixtures("analytics_topics")
@pytest.mark.parametrize("outage_s", [0.0, 4.0], ids=["no-outage", "outage-mid-bisection"])
def test_refused_records_between_good_ones_are_dead_lettered_once_and_committed_past(
    settings_factory: Callable[..., Settings], unique: Callable[[str], str], chdb_client: Any, outage_s: float
) -> None:
    settings = settings_factory(analytics_batch_ms=300, analytics_retry_max_s=1.0)
    tenant, group = unique("t"), unique("refused")
    start_group_at_end(settings, group)
    producer = RecordProducer(settings, Serde())
    n = 60
    crafted: dict[bytes, tuple[str, bytes]] = {}  # key -> (topic, value)
    for i in range(n):
        producer.send("Outcome", synth.record("Outcome", i, tenant))
        producer.send("PreferencePair", synth.record("PreferencePair", i, tenant))
        if i in (5, 31):
            for kind, craft in CRAFTED.items():
                key = f"{tenant}-{kind}-{i}".encode()
                topic = topics.PREFERENCES if craft is boolean_two else topics.OUTCOMES
                crafted[key] = (topic, craft(tenant, 1000 + i))
                producer.send_raw(topic, key, crafted[key][1])
    producer.flush(30)
    client = CountingClient(chdb_client, outage_s=outage_s)
    service = AnalyticsService(settings, client=client, group_id=group).start()
    try:
        assert service.ready.wait(60), service.failed
        wait_for(
            lambda: group_lag(settings, group) == 0 or service.failed is not None, 90, "the group to commit"
        )
        assert service.failed is None
        sql = ("SELECT count() FROM hfloop.dead_letters WHERE processor = 'analytics-sink' "
               "AND key IN %(keys)s")  # fmt: skip
        keys = [k.decode() for k in crafted]
        wait_for(
            lambda: _count(chdb_client, sql, keys=keys) >= len(crafted), 60, "the dead letters in ClickHouse"
        )
    finally:
        service.stop()
    assert service.failed is None
    # Good records stored once each (raw: bisection inserts each stored record in one part only;
    # a retry after the mid-bisection outage may store a part twice, which FINAL merges).
    for table in ("outcomes", "preferences"):
        final = f"SELECT count(), uniqExact(event_id) FROM hfloop.{table} FINAL WHERE tenant_id = %(t)s"
        assert tuple(chdb_client.query(final, parameters={"t": tenant}).result_rows[0]) == (n, n)
        if not outage_s:
            assert (
                _count(chdb_client, f"SELECT count() FROM hfloop.{table} WHERE tenant_id = %(t)s", t=tenant)
                == n
            )
    rows = chdb_client.query(
        "SELECT key, reason, error, origin_topic, origin_offset, hex(payload) FROM hfloop.dead_letters "
        "WHERE processor = 'analytics-sink' AND key IN %(keys)s ORDER BY key",
        parameters={"keys": keys},
    ).result_rows
    assert len(rows) == len(crafted)  # once each: no FINAL here
    expected_message = {
        "varint": "Invalid Avro varint",
        "boolean": "Invalid value for bool",
        "enum": "enum index",
    }
    for key, reason, error, origin_topic, origin_offset, payload in rows:
        topic, value = crafted[key.encode()]
        kind = key.split("-")[-2]
        assert reason == "refused_by_store" and expected_message[kind] in error, (key, error)
        assert origin_topic == topic and origin_offset >= 0 and payload == value.hex().upper()
    assert service.stats.dead_letters == len(crafted)
    if outage_s:
        # The outage struck in the middle of a bisection and was retried, not taken for bad data.
        assert client.unreachable > 0 and service.stats.retries > 0


def _outcomes(tenant: str, n: int) -> list[bytes]:
    return [SERDE.encode("Outcome", synth.record("Outcome", i, tenant)) for i in range(n)]


def _batch(values: list[bytes]) -> Batch:
    batch = Batch(SERDE)
    for i, v in enumerate(values):
        batch.add(topics.OUTCOMES, 0, i, None, v)
    return batch


def test_a_table_that_refuses_every_record_is_an_outage_not_dead_letters(chdb_client: Any) -> None:
    n = 1000
    values = _outcomes("t-all", n)
    values[500] = overlong_varint("t-all", 5000)  # a bad one in there too: still not a data verdict
    client = CountingClient(chdb_client)
    # Every row violates it: a data error (VIOLATED_CONSTRAINT), but the table's, not the records'.
    chdb_client.command("ALTER TABLE hfloop.outcomes ADD CONSTRAINT nobody CHECK tenant_id = 'nobody'")
    try:
        batch = _batch(values)
        with pytest.raises(StoreUnavailable, match="well-formed"):
            ClickHouseWriter(client, "hfloop").write(batch)
        assert batch.dead == [] and len(batch) == n
        # Telling costs O(log n) inserts, not the 2n of a full bisection.
        assert client.inserts <= 2 * 11 + 1, client.inserts
    finally:
        chdb_client.command("ALTER TABLE hfloop.outcomes DROP CONSTRAINT nobody")
    # The table fixed, the retry of the same batch stores every good record and dead-letters the bad one.
    assert ClickHouseWriter(client, "hfloop").write(batch) == {"outcomes": n - 1}
    assert [d["reason"] for d in batch.dead] == ["refused_by_store"] and batch.dead[0]["origin_offset"] == 500
    count = "SELECT count() FROM hfloop.outcomes FINAL WHERE tenant_id = 't-all'"
    assert _count(chdb_client, count) == n - 1


def test_well_formed_records_the_table_refuses_next_to_stored_ones_are_dead_lettered(
    chdb_client: Any,
) -> None:
    # Records our encoder wrote, refused per row (a constraint on one kind): ClickHouse stored
    # the others of the container, so the refusal is about these records.
    values = _outcomes("t-some", 40)  # kinds cycle ACCEPTED, REPHRASED, ESCALATED, COPIED
    chdb_client.command("ALTER TABLE hfloop.outcomes ADD CONSTRAINT no_copied CHECK kind != 'COPIED'")
    try:
        batch = _batch(values)
        assert ClickHouseWriter(chdb_client, "hfloop").write(batch) == {"outcomes": 30}
    finally:
        chdb_client.command("ALTER TABLE hfloop.outcomes DROP CONSTRAINT no_copied")
    assert sorted(d["origin_offset"] for d in batch.dead) == list(range(3, 40, 4))
    assert all(d["reason"] == "refused_by_store" and "VIOLATED_CONSTRAINT" in d["error"] for d in batch.dead)
    assert _count(chdb_client, "SELECT count() FROM hfloop.outcomes WHERE tenant_id = 't-some'") == 30


def test_errors_that_are_not_about_the_data_are_retried_not_bisected(chdb_client: Any) -> None:
    batch = _batch([overlong_varint("t-gone", 1), *_outcomes("t-gone", 3)])
    client = CountingClient(chdb_client)
    with pytest.raises(StoreUnavailable, match="UNKNOWN_DATABASE"):  # the store's, whatever the records
        ClickHouseWriter(client, "hfloop_missing").write(batch)
    assert client.inserts == 1 and batch.dead == []
    assert not is_data_refusal(OperationalError("Code: 117. injected"))  # a transport error, never data
