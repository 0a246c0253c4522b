"""Every kind of Kafka client hfloop has honours HFLOOP_KAFKA_SECURITY_PROTOCOL / _SASL_* / _SSL_*,
against a real broker whose clients must authenticate (SCRAM-SHA-512 over TLS or plaintext, and
mutual TLS): the admin client (topic creation), the SDK producer, confluent consumers, and the
faust stream processors (aiokafka) turning an interaction and an outcome into a label."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from hfloop.config import Settings
from hfloop.events.kafka import DeliveryError, create_topics
from hfloop.events.serde import default_serde
from hfloop.events.topics import INTERACTIONS, LABELS, OUTCOMES
from hfloop.sdk.client import FeedbackClient
from hfloop.stream.app import StreamService

SERDE = default_serde()


def read_all(settings: Settings, topic: str, match: Callable[[dict[str, Any]], bool],
             want: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:  # fmt: skip
    """Records of ``topic`` matching ``match``, read from the start by a consumer built from
    ``settings.consumer_config`` (so the read itself proves the consumer honours the settings)."""
    c = Consumer(settings.consumer_config(f"probe-{uuid.uuid4().hex[:8]}"))
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(out) < want and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            rec = SERDE.decode(m.value())[1]
            if match(rec):
                out.append(rec)
        return out
    finally:
        c.close()


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL", "SSL"])
def test_admin_sdk_producer_and_consumer_honour_the_settings(secure_settings, protocol: str) -> None:
    s = secure_settings(protocol)
    assert s.kafka_client_config()["security.protocol"] == protocol
    result = create_topics(s, topics=[INTERACTIONS, OUTCOMES])
    assert set(result) == {INTERACTIONS, OUTCOMES}
    tenant = f"t-{protocol.lower()}"
    with FeedbackClient(tenant, settings=s) as fb:
        iid = fb.log_interaction("support", "How do I reset my password?", "Call us.", wait=True)
        fb.signal(iid, "ESCALATED")
    got = read_all(s, OUTCOMES, lambda r: r["interaction_id"] == iid)
    assert [(r["tenant_id"], r["kind"]) for r in got] == [(tenant, "ESCALATED")]


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL", "SSL"])
def test_stream_processors_label_an_interaction(secure_settings, protocol: str) -> None:
    """The faust app (aiokafka, credentials from ``stream.app._credentials``) reads, keeps its
    changelog and writes through the secured listener."""
    tenant = f"t-stream-{protocol.lower()}"
    s = secure_settings(protocol, stream_app_id=f"stream-{uuid.uuid4().hex[:8]}", label_window_s=1.0,
                        join_grace_s=4.0, stream_tick_s=0.2, stream_commit_interval_s=0.2)  # fmt: skip
    with StreamService(s) as svc:  # creates the contract topics through the admin client first
        svc.wait_ready(60)
        with FeedbackClient(tenant, settings=s) as fb:
            iid = fb.log_interaction("support", "Where is my refund?", "It is lost.", wait=True)
            fb.signal(iid, "ESCALATED", wait=True)
        labels = read_all(s, LABELS, lambda r: r["interaction_id"] == iid, timeout=40)
        assert svc.error is None
    assert len(labels) == 1 and labels[0]["tenant_id"] == tenant and labels[0]["score"] < 0


def test_wrong_password_fails_naming_authentication_and_does_not_hang(secure_settings, capfd) -> None:
    """librdkafka retries a failed SASL handshake until the call's own timeout: the calls end
    with that timeout's error, and the reason (invalid credentials) is in the client log."""
    s = secure_settings("SASL_SSL", password="not-the-password", kafka_client_log_level=3)
    start = time.monotonic()
    with pytest.raises(KafkaException):
        create_topics(s, timeout=4, topics=[INTERACTIONS])
    with pytest.raises(DeliveryError, match="timed out"):
        FeedbackClient("t", settings=s, **{"message.timeout.ms": 3000}).log_interaction(
            "support", "q", "a", wait=True
        )
    assert time.monotonic() - start < 20
    log = capfd.readouterr().err
    assert "SASL authentication error" in log and "invalid credentials" in log, log[-2000:]
    assert "not-the-password" not in log
