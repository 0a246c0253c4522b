"""Round trips on the real Apache Kafka broker: SDK and record producer, both framings."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from kafkautil import consume_all
from records import examples

from hfloop.events.kafka import RecordProducer, create_topics
from hfloop.events.serde import Serde
from hfloop.events.topics import RECORD_TOPIC, TOPICS
from hfloop.kafka_local import LocalKafka, free_port
from hfloop.sdk import AsyncFeedbackClient, FeedbackClient


@pytest.fixture(scope="module")
def topics_ready(kafka_bootstrap, tmp_path_factory):
    from hfloop.config import Settings

    s = Settings(kafka_bootstrap=kafka_bootstrap, data_dir=tmp_path_factory.mktemp("d"))
    first = create_topics(s)
    assert set(first) == set(TOPICS)
    again = create_topics(s)
    assert set(again.values()) == {"exists"}  # idempotent
    return s


@pytest.fixture(scope="module")
def private_broker(tmp_path_factory):
    """A broker of this module's own: Confluent-framed records and dead letters written here must not
    reach the shared broker's topics, whose other consumers have no registry configured."""
    from hfloop.config import Settings

    base = Settings()
    home = tmp_path_factory.mktemp("private-kafka")
    broker = LocalKafka(home=home, port=free_port(), version=base.kafka_version, cache_dir=base.cache_dir)
    broker.start()
    settings = Settings(kafka_bootstrap=broker.bootstrap, data_dir=home / "d")
    create_topics(settings)
    yield settings
    broker.stop()


@pytest.mark.parametrize("framing", ["single-object", "confluent"])
def test_every_schema_round_trips_through_the_broker(private_broker, unique, framing):
    settings = private_broker
    registry = SchemaRegistryClient.new_client({"url": "mock://rt"}) if framing == "confluent" else None
    serde = Serde(registry=registry)
    tenant = unique("t")
    recs = examples(tenant)
    producer = RecordProducer(settings, serde)
    for name, rec in recs.items():
        producer.send(name, rec)
    producer.flush()
    got = consume_all(settings, sorted(RECORD_TOPIC.values()), serde, expect=len(recs), group=unique("g"),
                      predicate=lambda r: r["tenant_id"] == tenant)  # fmt: skip
    assert dict(got) == recs


def test_sdk_events_round_trip(topics_ready, settings_factory, unique):
    settings = settings_factory()
    tenant = unique("t")
    with FeedbackClient(tenant, settings=settings) as fb:
        iid = fb.log_interaction("support", "How do I get a refund?", "In 5 days.", route="billing", user_id="u1",
                                 retrieved_doc_ids=["kb-1"], wait=True)  # fmt: skip
        ids = [
            fb.rate(iid, annotator_id="u1", thumbs_up=False),
            fb.rate(iid, annotator_id="a2", stars=4, annotator_pool="experts"),
            fb.correct(iid, "In 10 days.", annotator_id="u1"),
            fb.prefer(iid, "A", "B", "b", annotator_id="a3"),
            fb.demonstrate(iid, "Refunds take 10 business days.", annotator_id="expert-1"),
            fb.comment(iid, "too short", annotator_id="u1"),
            fb.signal(iid, "rephrased", session_id="s", text="refund time?"),
            fb.signal(iid, "custom", custom_kind="dwell", value=0.3),
        ]
    got = consume_all(settings, ["hfloop.interactions", "hfloop.feedback", "hfloop.outcomes"], Serde(),
                      expect=9, group=unique("g"), predicate=lambda r: r["tenant_id"] == tenant)  # fmt: skip
    by_id = {rec["event_id"]: (name, rec) for name, rec in got}
    assert set(ids) <= set(by_id)
    assert sum(1 for n, _ in got if n == "Interaction") == 1
    interaction = next(r for n, r in got if n == "Interaction")
    assert interaction["interaction_id"] == iid and interaction["retrieved_doc_ids"] == ["kb-1"]
    kinds = sorted(r["kind"] for n, r in got if n == "Feedback")
    assert kinds == ["COMMENT", "CORRECTION", "DEMONSTRATION", "PREFERENCE", "RATING", "RATING"]
    pref = next(r for n, r in got if n == "Feedback" and r["kind"] == "PREFERENCE")
    assert pref["comparison"]["choice"] == "B"
    assert all(r["interaction_id"] == iid for _, r in got)


def test_sdk_rejects_bad_calls_before_producing(settings_factory):
    fb = FeedbackClient("t", settings=settings_factory())
    with pytest.raises(ValueError, match="exactly one"):
        fb.rate("i", annotator_id="a", thumbs_up=True, stars=3)
    with pytest.raises(ValueError, match="stars"):
        fb.rate("i", annotator_id="a", stars=9)
    with pytest.raises(ValueError, match="unknown outcome kind"):
        fb.signal("i", "liked")
    with pytest.raises(ValueError, match="choice"):
        fb.prefer("i", "a", "b", "C", annotator_id="x")


def test_async_client_waits_for_acks(topics_ready, settings_factory, unique):
    settings = settings_factory()
    tenant = unique("t")

    async def go():
        async with AsyncFeedbackClient(tenant, settings=settings) as fb:
            iid = await fb.log_interaction("a", "q", "r")
            await asyncio.gather(*(fb.signal(iid, "accepted") for _ in range(5)))
            return iid

    iid = asyncio.run(go())
    got = consume_all(settings, ["hfloop.interactions", "hfloop.outcomes"], Serde(), expect=6, group=unique("g"),
                      predicate=lambda r: r["tenant_id"] == tenant)  # fmt: skip
    assert len(got) == 6 and all(r["interaction_id"] == iid for _, r in got)


def test_delivery_failure_surfaces(settings_factory):
    """A broker that does not exist: flush raises instead of dropping silently."""
    from hfloop.events.kafka import DeliveryError

    settings = settings_factory(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    fb = FeedbackClient("t", settings=settings, **{"message.timeout.ms": 1500})
    fb.log_interaction("a", "q", "r")
    with pytest.raises(DeliveryError):
        fb.flush(timeout=10)


def test_broker_data_survives_stop_and_start(tmp_path, unique):
    from hfloop.config import Settings

    base = Settings()
    broker = LocalKafka(
        home=tmp_path / "k", port=free_port(), version=base.kafka_version, cache_dir=base.cache_dir
    )
    broker.start()
    try:
        settings = Settings(kafka_bootstrap=broker.bootstrap, data_dir=tmp_path / "d")
        create_topics(settings, topics=["hfloop.outcomes"])
        with FeedbackClient("t", settings=settings) as fb:
            ids = {fb.signal(f"i{n}", "accepted") for n in range(50)}
        assert broker.stop() is True
        assert not broker.running()
        broker.start()
        got = consume_all(settings, ["hfloop.outcomes"], Serde(), expect=50, group=unique("g"))
        assert {r["event_id"] for _, r in got} == ids
    finally:
        broker.stop()
