"""MemoryService: the memory worker (consumes hfloop.memory and hfloop.labels) plus the shared
objects the HTTP routes use (store, embedder, retraction).

One consumer thread reads batches, applies them (Qdrant writes are synchronous), flushes
what it published, and only then commits the offsets: at-least-once with idempotent effects.
Undecodable or invalid records go to hfloop.dlq with their origin. Records this wing
published itself carry the ``hfloop-origin: memory`` header and are skipped on the way back
in: their effects were applied before they were sent.

In ``hfloop dev`` the API and the worker share one service (the embedded Qdrant folder may
be opened by one process only); in server mode each process builds its own on a Qdrant server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from hfloop.config import Settings
from hfloop.events.errors import ClientErrors, KafkaAuthenticationError, errors_of
from hfloop.events.kafka import RecordProducer, create_topics, dead_letter
from hfloop.events.serde import DecodeError, Serde, default_serde
from hfloop.events.topics import DLQ, DOC_WEIGHTS, LABELS, MEMORY, ROUTING, key_of
from hfloop.memory.corrections import Corrections, trust_policy
from hfloop.memory.embed import Embedder, make_embedder
from hfloop.memory.evidence import Evidence
from hfloop.memory.retract import Retractions, retract
from hfloop.memory.store import MemoryStore

log = logging.getLogger(__name__)
ORIGIN_HEADER = "hfloop-origin"
ORIGIN = b"memory"
PROCESSOR = "memory"


def _from_us(msg: Message) -> bool:
    headers = msg.headers() or []
    pairs = headers.items() if isinstance(headers, dict) else headers
    return any(k == ORIGIN_HEADER and v == ORIGIN for k, v in pairs)


class MemoryService:
    def __init__(self, settings: Settings, store: MemoryStore | None = None, embedder: Embedder | None = None,
                 serde: Serde | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.embedder = embedder or make_embedder(settings)
        self.store = store or MemoryStore(settings, self.embedder.space, self.embedder.dim)
        self._owns_store = store is None
        self.serde = serde or default_serde()
        self.producer = RecordProducer(settings, self.serde)
        self.retractions = Retractions(self.store)
        self.corrections = Corrections(settings, self.store, self.embedder, self.emit, self.retractions)
        self.evidence = Evidence(settings, self.store, self.emit, self.retractions)
        self.stats: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self.error: BaseException | None = None
        # Set when the loop stopped for a reason retrying cannot fix (refused Kafka credentials);
        # `hfloop worker --role memory` exits non-zero on it, so a supervisor shows the reason.
        self.fatal: KafkaAuthenticationError | None = None
        self._kafka_errors: ClientErrors | None = None
        self._topics_ready = False

    # --- outputs -------------------------------------------------------------------------
    def emit(self, record_name: str, record: dict[str, Any]) -> None:
        topic = {"MemoryUpdate": MEMORY, "RoutingUpdate": ROUTING, "DocWeightUpdate": DOC_WEIGHTS}[
            record_name
        ]
        self.producer.send_raw(topic, key_of(topic, record), self.serde.encode(record_name, record),
                               headers=[(ORIGIN_HEADER, ORIGIN)])  # fmt: skip

    def _ensure_topics(self) -> None:
        # An API-only service (server mode) publishes retractions without ever starting the loop.
        if not self._topics_ready:
            create_topics(self.settings, topics=[MEMORY, LABELS, ROUTING, DOC_WEIGHTS, DLQ])
            self._topics_ready = True

    def retract(
        self, tenant_id: str, *, event_id: str | None = None, annotator_id: str | None = None
    ) -> dict[str, Any]:
        self._ensure_topics()
        out = retract(tenant_id, event_id=event_id, annotator_id=annotator_id, store=self.store,
                      evidence=self.evidence, retractions=self.retractions, emit=self.emit,
                      trust=trust_policy(self.settings))  # fmt: skip
        self.producer.flush()
        return out

    # --- one batch -------------------------------------------------------------------------
    def process(self, msgs: Sequence[Message]) -> None:
        """Apply one batch and make its outputs durable (the caller commits afterwards)."""
        updates: list[tuple[dict[str, Any], Message]] = []
        labels: list[tuple[dict[str, Any], Message]] = []
        for msg in msgs:
            if msg.error():
                raise KafkaException(msg.error())
            if _from_us(msg):
                self._count("skipped_own")
                continue
            try:
                name, rec = self.serde.decode(msg.value())
            except DecodeError as exc:
                self._dead(msg, exc.reason, str(exc))
                continue
            if name == "MemoryUpdate" and msg.topic() == MEMORY:
                updates.append((rec, msg))
            elif name == "Label" and msg.topic() == LABELS:
                labels.append((rec, msg))
            else:
                self._dead(msg, "wrong_record", f"{name} on {msg.topic()}")
        if updates:
            rejects, stats = self.corrections.apply([u for u, _ in updates])
            for r in rejects:
                self._dead(
                    updates[r.index][1], r.reason, r.message, updates[r.index][0].get("tenant_id", "unknown")
                )
            self._merge(stats)
        if labels:
            lrejects, lstats = self.evidence.apply([lab for lab, _ in labels])
            for i, reason, message in lrejects:
                self._dead(labels[i][1], reason, message, labels[i][0].get("tenant_id", "unknown"))
            self._merge(lstats)
        self.producer.flush()

    def _dead(self, msg: Message, reason: str, error: str, tenant_id: str = "unknown") -> None:
        rec = dead_letter(reason=reason, error=error, payload=msg.value(), key=msg.key(), origin_topic=msg.topic() or "",
                          origin_partition=msg.partition() or 0, origin_offset=msg.offset() or 0,
                          processor=PROCESSOR, tenant_id=tenant_id)  # fmt: skip
        self.producer.send("DeadLetter", rec, topic=DLQ)
        self._count(f"dlq_{reason}")

    def _count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n

    def _merge(self, stats: dict[str, int]) -> None:
        for k, v in stats.items():
            self._count(k, v)

    # --- the consumer loop ---------------------------------------------------------------------
    def start(self) -> None:
        """Create the topics if needed and start consuming in a background thread."""
        self._ensure_topics()
        # A killed worker's partitions move to a restarted one after 10 s (librdkafka heartbeats
        # from its own thread, so a long embedding batch does not count against it), as the sink's.
        conf = self.settings.consumer_config(self.settings.memory_group_id, **{"session.timeout.ms": 10_000})
        self._kafka_errors = errors_of(conf)
        self._consumer = Consumer(conf)
        self._consumer.subscribe([MEMORY, LABELS])
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="memory-worker", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        while not self._stop.is_set():
            # Block for the first record only, then take what is already fetched: a lone
            # correction is applied at once instead of waiting for a batch to fill.
            first = consumer.poll(0.1)
            # librdkafka retries refused credentials forever, and silently for a consumer: stop.
            auth = self._kafka_errors.auth_error() if self._kafka_errors is not None else None
            if auth is not None:
                log.error("memory worker stopping: %s", auth)
                self.error = self.fatal = auth
                return
            if first is None:
                continue
            msgs = [first, *consumer.consume(num_messages=self.settings.memory_batch_max - 1, timeout=0)]
            try:
                self.process(msgs)
                consumer.commit(asynchronous=False)
                self._count("batches")
            except Exception as exc:  # keep the records: rewind to the batch start and retry
                log.exception("memory batch failed; retrying from its first offsets")
                self.error = exc
                self._rewind(consumer, msgs)
                self._stop.wait(1.0)

    @staticmethod
    def _rewind(consumer: Consumer, msgs: Sequence[Message]) -> None:
        first: dict[tuple[str, int], int] = {}
        for m in msgs:
            if m.error() is None:
                tp = (m.topic() or "", m.partition() or 0)
                first[tp] = min(first.get(tp, m.offset() or 0), m.offset() or 0)
        for (topic, part), off in first.items():
            try:
                consumer.seek(TopicPartition(topic, part, off))
            except KafkaException:
                log.warning("could not rewind %s[%d] to %d", topic, part, off)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self.producer.flush()
        if self._owns_store:
            self.store.close()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """True once the group has committed up to the end of both topics (tests, benchmarks)."""
        probe = Consumer(self.settings.consumer_config(self.settings.memory_group_id))
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                md = probe.list_topics(timeout=5)
                tps = [TopicPartition(t, p) for t in (MEMORY, LABELS) for p in md.topics[t].partitions]
                committed = probe.committed(tps, timeout=5)
                if all((c.offset if c.offset >= 0 else 0) >= probe.get_watermark_offsets(c, timeout=5)[1]
                       for c in committed):  # fmt: skip
                    return True
                time.sleep(0.05)
            return False
        finally:
            probe.close()
