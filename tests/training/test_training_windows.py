"""Windows read from the real broker with ray.data.read_kafka: exact offsets, tenant scoping, replay."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from hfloop.events.kafka import RecordProducer
from hfloop.events.serde import default_serde
from hfloop.events.topics import PREFERENCES
from hfloop.training import synthetic
from hfloop.training.windows import parse_duration, read_offsets, read_window, resolve_offsets


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def test_parse_duration():
    assert parse_duration("7d").total_seconds() == 7 * 86_400
    assert parse_duration("90s").total_seconds() == 90
    try:
        parse_duration("seven days")
    except ValueError:
        pass
    else:
        raise AssertionError("bad duration accepted")


def test_window_reads_exact_offsets_and_replays(settings_factory, unique, ray_session, produce_pairs):
    settings = settings_factory()
    tenant, other = unique("tenant"), unique("other")
    before = list(synthetic.preference_pairs(30, seed=1, tenant_id=tenant))
    inside = list(synthetic.preference_pairs(60, seed=2, tenant_id=tenant))
    foreign = list(synthetic.preference_pairs(10, seed=3, tenant_id=other))
    produce_pairs(settings, before)
    time.sleep(0.05)
    start, _ = produce_pairs(settings, inside + foreign)
    producer = RecordProducer(settings, default_serde())
    producer.send_raw(PREFERENCES, b"junk", b"not avro")  # counted as undecodable, never trained on
    producer.flush()
    end = int(time.time() * 1000) + 1
    time.sleep(0.05)
    produce_pairs(
        settings, list(synthetic.preference_pairs(20, seed=4, tenant_id=tenant))
    )  # after the window

    window = read_window(settings, _dt(start), _dt(end), tenant_id=tenant)
    assert sorted(p["event_id"] for p in window.pairs) == sorted(p["event_id"] for p in inside)
    assert window.other_tenant == len(foreign) and window.undecodable == 1
    assert window.records_in_range == len(inside) + len(foreign) + 1
    assert {o["partition"] for o in window.offsets} == set(range(settings.kafka_partitions))

    # Replaying the recorded offsets later gives the same pairs, whatever was produced since.
    produce_pairs(settings, list(synthetic.preference_pairs(15, seed=5, tenant_id=tenant)))
    replay = read_offsets(settings, window.offsets, tenant_id=tenant)
    assert [p["event_id"] for p in replay.pairs] == [p["event_id"] for p in window.pairs]
    assert resolve_offsets(settings, _dt(start), _dt(end)) == window.offsets
