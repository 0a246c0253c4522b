"""Every kind of Kafka client hfloop has honours HFLOOP_KAFKA_SECURITY_PROTOCOL / _SASL_* / _SSL_*,
against a real broker whose clients must authenticate (SCRAM-SHA-512 over TLS or plaintext, and
mutual TLS): the admin client (topic creation), the SDK producer, confluent consumers, and the
faust stream processors (aiokafka) turning an interaction and an outcome into a label."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from security_helpers import USER

from hfloop.config import Settings
from hfloop.events.errors import KafkaAuthenticationError
from hfloop.events.kafka import DeliveryError, create_topics
from hfloop.events.serde import default_serde
from hfloop.events.topics import INTERACTIONS, LABELS, OUTCOMES
from hfloop.memory.embed import HashEmbedder
from hfloop.memory.service import MemoryService
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


WRONG = "not-the-password"


def _worker_env(s: Settings, tmp: Path) -> dict[str, str]:
    """The environment a deployment would give a worker: the same settings as HFLOOP_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HFLOOP_")}
    env.update(HFLOOP_KAFKA_BOOTSTRAP=s.bootstrap, HFLOOP_KAFKA_SECURITY_PROTOCOL=s.kafka_security_protocol,
               HFLOOP_KAFKA_SASL_MECHANISM=str(s.kafka_sasl_mechanism), HFLOOP_KAFKA_SASL_USERNAME=USER,
               HFLOOP_KAFKA_SASL_PASSWORD=WRONG, HFLOOP_KAFKA_SSL_CAFILE=str(s.kafka_ssl_cafile),
               HFLOOP_DATA_DIR=str(tmp), HFLOOP_EMBEDDER="hash")  # fmt: skip
    return env


def test_wrong_password_fails_naming_authentication_and_does_not_hang(
    secure_settings, tmp_path, caplog
) -> None:
    """librdkafka retries a refused SASL handshake forever; hfloop's error_cb (events/errors.py)
    turns it into an error naming authentication, the mechanism and the user, never the password:
    topic creation raises at once, the consumer workers exit with EX_CONFIG, and a producer's
    sends still fail through the delivery-error path without killing its poll thread."""
    s = secure_settings("SASL_SSL", password=WRONG, kafka_client_log_level=3)
    # The workers run as real processes, as a supervisor starts them; they start while we test the rest.
    workers = {role: subprocess.Popen([sys.executable, "-m", "hfloop.cli", "worker", "--role", role],
                                      env=_worker_env(s, tmp_path / role), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT)
               for role in ("memory", "analytics", "stream")}  # fmt: skip
    try:
        start = time.monotonic()
        with pytest.raises(KafkaAuthenticationError) as raised:
            create_topics(s, timeout=30, topics=[INTERACTIONS])
        assert time.monotonic() - start < 5  # not the 30 s transport timeout
        msg = str(raised.value)
        assert "authentication failed" in msg.lower() and "SCRAM-SHA-512" in msg and USER in msg, msg
        assert "invalid credentials" in msg and WRONG not in msg
        # A producer (the SDK's poll thread, the gateway's) keeps running: its sends time out.
        start = time.monotonic()
        with pytest.raises(DeliveryError, match="timed out"):
            FeedbackClient("t", settings=s, **{"message.timeout.ms": 3000}).log_interaction(
                "support", "q", "a", wait=True
            )
        assert time.monotonic() - start < 10
        # The memory and stream workers (whose start creates their topics) and the analytics sink
        # (which only consumes) all stop on their own, saying why, with the exit code of a configuration error.
        for role, proc in workers.items():
            out, _ = proc.communicate(timeout=120)
            text = out.decode(errors="replace")
            assert proc.returncode == os.EX_CONFIG, f"{role} exited {proc.returncode}:\n{text[-3000:]}"
            assert "ERROR" in text and "Kafka authentication failed" in text and USER in text, text[-3000:]
            assert WRONG not in text
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert not any(WRONG in r.getMessage() for r in caplog.records)


def test_memory_worker_loop_stops_when_its_credentials_are_refused(secure_settings) -> None:
    """Credentials revoked while a worker runs: the consumer loop stops and reports it (fatal),
    instead of retrying in silence; `hfloop worker --role memory` exits non-zero on it."""
    svc = MemoryService(secure_settings("SASL_SSL", password=WRONG), embedder=HashEmbedder())
    svc._topics_ready = True  # as if its topics existed: the consumer is the first client to connect
    svc.start()
    try:
        deadline = time.monotonic() + 20
        while svc.fatal is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert isinstance(svc.fatal, KafkaAuthenticationError) and svc.error is svc.fatal
        assert "SCRAM-SHA-512" in str(svc.fatal) and WRONG not in str(svc.fatal)
        assert svc._thread is not None and not svc._thread.is_alive()
    finally:
        svc.stop()
