"""Kafka plumbing every wing shares: topic creation, a record producer, dead letters."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from hfloop.config import Settings
from hfloop.events.errors import cluster_metadata, errors_of
from hfloop.events.serde import Serde
from hfloop.events.topics import DLQ, RECORD_TOPIC, TOPICS, key_of


class DeliveryError(RuntimeError):
    """Kafka did not acknowledge one or more records."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(f"{len(errors)} record(s) not delivered: {'; '.join(errors[:5])}")
        self.errors = errors


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id() -> str:
    return uuid.uuid4().hex


def create_topics(
    settings: Settings,
    partitions: int | None = None,
    timeout: float = 30.0,
    topics: Iterable[str] | None = None,
) -> dict[str, str]:
    """Create every contract topic that does not exist; returns {topic: 'created'|'exists'}."""
    conf = settings.kafka_client_config()
    admin = AdminClient(conf)
    # Refused credentials: KafkaAuthenticationError at once, not a transport error after `timeout`.
    existing = set(cluster_metadata(admin, errors_of(conf), timeout).topics)
    wanted = [TOPICS[t] for t in (topics or TOPICS)]
    result = {t.name: "exists" for t in wanted if t.name in existing}
    new = [
        NewTopic(
            t.name,
            num_partitions=t.partitions or partitions or settings.kafka_partitions,
            replication_factor=settings.kafka_replication,
            config=t.config(),
        )
        for t in wanted
        if t.name not in existing
    ]
    if new:
        for name, fut in admin.create_topics(new, operation_timeout=timeout).items():
            try:
                fut.result(timeout)
                result[name] = "created"
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
                result[name] = "exists"
        _wait_for_leaders(admin, [t.topic for t in new], timeout)
    return result


def _wait_for_leaders(admin: AdminClient, names: list[str], timeout: float) -> None:
    """New partitions answer NOT_LEADER until an election finished: wait so callers can use them."""
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=timeout).topics
        pending = [
            n for n in names
            if n not in topics or topics[n].error is not None
            or any(p.leader < 0 for p in topics[n].partitions.values())
        ]  # fmt: skip
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics without a leader after {timeout}s: {pending}")
        time.sleep(0.1)


class RecordProducer:
    """Encodes hfloop records and produces them with the project's producer defaults.

    Delivery failures are never dropped: each is passed to ``on_error`` when given, and
    :meth:`flush` raises :class:`DeliveryError` for any not reported elsewhere.

    ``errors_only=True`` is the high-volume mode (the SDK's): librdkafka's delivery reports
    reach Python only for failures (``delivery.report.only.error``), which saves a Python
    callback per acknowledged record, and delivery reports are served every
    :data:`POLL_EVERY` sends instead of after each. An ``on_delivery`` passed to
    :meth:`send_raw` then hears only failures too: wait for an acknowledgement with
    :meth:`flush`.
    """

    POLL_EVERY = 32

    def __init__(
        self,
        settings: Settings,
        serde: Serde,
        on_error: Callable[[str, KafkaError], None] | None = None,
        *,
        errors_only: bool = False,
        **overrides: Any,
    ) -> None:
        self.serde = serde
        self.errors_only = errors_only
        if errors_only:
            # The producer-wide report callback: produce() calls need no per-message callback.
            overrides = {"on_delivery": self._delivered, "delivery.report.only.error": True, **overrides}
        config = settings.producer_config(**overrides)
        self._message_timeout_s = float(config.get("message.timeout.ms", 300_000)) / 1000
        self._producer = Producer(config)
        self._on_error = on_error
        self._errors: list[str] = []
        self._lock = threading.Lock()
        self._sends = 0

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            return
        self._report(f"{msg.topic()}[{msg.key()!r}]: {err.str()}", err)

    def _report(self, desc: str, err: KafkaError) -> None:
        if self._on_error is not None:
            self._on_error(desc, err)
        else:
            with self._lock:
                self._errors.append(desc)

    def send(
        self, record_name: str, record: dict[str, Any], topic: str | None = None, strict: bool = False
    ) -> None:
        topic = topic or RECORD_TOPIC[record_name]
        value = self.serde.encode(record_name, record, strict=strict)
        self.send_raw(topic, key_of(topic, record), value)

    def send_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    ) -> None:
        """Produce bytes; ``on_delivery`` replaces the default report (which feeds ``flush``)."""
        if self.errors_only and on_delivery is None and headers is None:
            self.send_fast(topic, key, value)
            return
        cb = on_delivery or self._delivered
        # The stub wants list[tuple[str, str | bytes | None]]; a list of (str, bytes) is one (list is invariant).
        hdrs = cast(list[tuple[str, str | bytes | None]] | None, headers)
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=cb, headers=hdrs)
                break
            except BufferError:
                # Local queue full: serve delivery reports until there is room (backpressure).
                self._producer.poll(0.05)
        self._producer.poll(0)

    def send_fast(self, topic: str, key: bytes | None, value: bytes) -> None:
        """:meth:`send_raw` without headers or a per-record callback, in ``errors_only`` mode only.

        The SDK's hot path: positional produce (the producer-wide callback reports failures),
        delivery reports served every :data:`POLL_EVERY` sends."""
        assert self.errors_only, "send_fast needs errors_only=True (no other callback reports failures)"
        try:
            self._producer.produce(topic, value, key)
        except BufferError:
            self.produce_when_room(topic, value, key)
        self._sends += 1
        if not self._sends % self.POLL_EVERY:
            self._producer.poll(0)

    def produce_when_room(self, topic: str, value: bytes, key: bytes | None) -> None:
        """After a BufferError (local queue full): serve delivery reports until the record fits
        (backpressure). The native SDK sender calls this too."""
        while True:
            self._producer.poll(0.05)
            try:
                self._producer.produce(topic, value, key)
                return
            except BufferError:
                continue

    def fast_hooks(self) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
        """``produce(topic, value, key)``, ``poll(timeout)`` and :meth:`produce_when_room`: what a
        native sender calls to behave as :meth:`send_fast` (``errors_only`` mode only)."""
        assert self.errors_only, "a fast sender needs errors_only=True (no other callback reports failures)"
        return self._producer.produce, self._producer.poll, self.produce_when_room

    def send_batch(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Produce many (key, value) records to one topic with one call (librdkafka produce_batch).

        Keys are partitioned as by :meth:`send_raw`. A record librdkafka refuses outright (say,
        too large) is reported like a failed delivery (``on_error`` or the next ``flush``).
        """
        self.produce_batch(topic, [{"key": k, "value": v} for k, v in records])

    def produce_batch(self, topic: str, messages: list[dict[str, Any]]) -> None:
        """:meth:`send_batch` for messages already in produce_batch's shape (``{"key", "value"}``
        dicts, which it marks with ``_error``); returns once librdkafka queued all of them."""
        # Without errors_only no producer-wide callback exists: pass ours, or failures vanish.
        cb = None if self.errors_only else self._delivered
        pending = messages
        while pending:
            queued = self._producer.produce_batch(topic, cast(Any, pending), on_delivery=cb)
            if queued == len(pending):
                break
            retry = []
            for m in pending:
                err = m.get("_error")
                if err is None:
                    continue
                if err.code() == KafkaError._QUEUE_FULL:
                    del m["_error"]
                    retry.append(m)
                else:
                    self._report(f"{topic}[{m['key']!r}]: {err.str()}", err)
            pending = retry
            if pending:
                # Local queue full: serve delivery reports until there is room (backpressure).
                self._producer.poll(0.05)
        self._producer.poll(0)

    def send_and_wait(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Produce one record and return once Kafka acknowledged it; DeliveryError if it failed."""
        failed: list[KafkaError] = []
        done = threading.Event()

        def report(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failed.append(err)
            done.set()

        self.send_raw(topic, key, value, on_delivery=report)
        # errors_only: success is never reported. The record is acknowledged once the queue is
        # empty (a failure would have been reported first), or at the latest when
        # message.timeout.ms passed without a failure (librdkafka fails a record by then).
        deadline = time.monotonic() + self._message_timeout_s + 5
        while not done.is_set() and (
            not self.errors_only or (len(self._producer) > 0 and time.monotonic() < deadline)
        ):
            self._producer.poll(0.05)
        if failed:
            raise DeliveryError([f"{topic}[{key!r}]: {failed[0].str()}"])

    def poll(self, timeout: float = 0) -> int:
        return self._producer.poll(timeout)

    def flush(self, timeout: float = 60.0) -> None:
        remaining = self._producer.flush(timeout)
        if remaining:
            raise DeliveryError([f"{remaining} record(s) still queued after {timeout}s"])
        with self._lock:
            errors, self._errors = self._errors, []
        if errors:
            raise DeliveryError(errors)

    def __len__(self) -> int:
        return len(self._producer)


def dead_letter(
    *,
    reason: str,
    error: str,
    payload: bytes | None,
    key: bytes | None,
    origin_topic: str,
    origin_partition: int = -1,
    origin_offset: int = -1,
    processor: str,
    tenant_id: str = "unknown",
) -> dict[str, Any]:
    """A DeadLetter record; its id is derived from the origin so a redelivery dedups."""
    if origin_offset >= 0:
        event_id = uuid.uuid5(
            uuid.NAMESPACE_URL, f"dlq/{processor}/{origin_topic}/{origin_partition}/{origin_offset}"
        ).hex
    else:
        event_id = new_id()
    return {
        "event_id": event_id,
        "tenant_id": tenant_id,
        "event_time": now_ms(),
        "reason": reason,
        "error": error[:2000],
        "origin_topic": origin_topic,
        "origin_partition": origin_partition,
        "origin_offset": origin_offset,
        "processor": processor,
        "key": key,
        "payload": payload or b"",
    }


__all__ = ["DLQ", "DeliveryError", "RecordProducer", "create_topics", "dead_letter", "new_id", "now_ms"]
