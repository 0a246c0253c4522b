"""The sink's buffer: Kafka records grouped by (topic, writer schema), and dead letters.

Pure bookkeeping, no I/O: ``sink.py`` feeds it from the consumer and writes what it holds.

Why it is shaped like this (the sink's target is 100k rows/s on one core, so every record's
Python cost counts): a record whose value is our single-object encoding with a known writer
schema of the topic's record (all of them, normally) costs one slice of its 10-byte header, two
dict look-ups and one list append; the message object itself is kept, so where it came from
(topic, partition, offset, key) is only asked for when ClickHouse refuses a container and the
culprit must be found. The Avro container is built at flush (``Pending.to_bytes``).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastavro import schemaless_writer

from hfloop.analytics.avro_block import container_of_framed, is_canonical, timestamp_problem, validator_of
from hfloop.analytics.tables import TOPIC_TABLE
from hfloop.events.kafka import dead_letter
from hfloop.events.schemas import SchemaVersion
from hfloop.events.serde import SINGLE_OBJECT_MAGIC, Codec, DecodeError, Serde
from hfloop.events.topics import TOPICS

log = logging.getLogger("hfloop.analytics.sink")

PROCESSOR = "analytics-sink"
# Dead-letter reason of a record the serde reads but ClickHouse refuses on its own (sink.py).
REFUSED_BY_STORE = "refused_by_store"
_HEADER = 10  # magic (2) + schema fingerprint (8)


class Record(Protocol):
    """What the batch needs of a record: ``confluent_kafka.Message`` has exactly this."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...


class Origin:
    """A record that did not come straight from the consumer as it is: handed to :meth:`Batch.add`,
    or re-encoded (Confluent framing). ``value()`` is the single-object encoding that goes into
    the container; ``original`` what arrived (the payload of a dead letter)."""

    __slots__ = ("_key", "_offset", "_partition", "_topic", "_value", "original")

    def __init__(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> None:
        self._topic, self._partition, self._offset, self._key = topic, partition, offset, key
        self._value = self.original = value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value


def original_value(r: Record) -> bytes | None:
    return r.original if isinstance(r, Origin) else r.value()


@dataclass
class Pending:
    """One container's worth of records: single-object-encoded values of one writer schema."""

    table: str
    schema: SchemaVersion
    records: list[Record] = field(default_factory=list)
    screened: bool = False  # Batch.screen ran: a retried write does not validate again

    @property
    def count(self) -> int:
        return len(self.records)

    def to_bytes(self, records: Sequence[Record] | None = None) -> bytes:
        """The container of ``records`` (default: all of them; a part when bisecting a refusal)."""
        chosen = self.records if records is None else records
        return container_of_framed(self.schema, (r.value() for r in chosen), _HEADER)  # type: ignore[misc]


class Batch:
    """Records waiting for one insert, grouped by (topic, writer schema fingerprint)."""

    def __init__(self, serde: Serde) -> None:
        self.serde = serde
        self._by_fp = serde.schemas.by_fingerprint
        self._expected = {topic: spec.record for topic, spec in TOPICS.items() if topic in TOPIC_TABLE}
        self.groups: dict[tuple[str, bytes], Pending] = {}
        # topic -> {value header (magic + fingerprint) -> append of its group}: the fast path.
        self._routes: dict[str, dict[bytes, Callable[[Record], None]]] = {t: {} for t in self._expected}
        self.dead: list[dict[str, Any]] = []
        self.rows = 0  # records buffered for insert
        self.consumed = 0  # records taken (buffered, dead-lettered or of no table): offsets to commit
        self._reencode: dict[str, Codec] = {}

    def __len__(self) -> int:
        return self.rows

    def add_messages(self, msgs: list[Any]) -> list[Any]:
        """Take a ``Consumer.consume()`` result; returns the messages that carry an error (EOF,
        broker errors) for the caller to judge, untouched."""
        routes, slow = self._routes, self._add_slow
        errors = []
        rows = 0
        for m in msgs:
            if m.error() is not None:
                errors.append(m)
                continue
            v = m.value()
            route = routes.get(m.topic())
            if route is not None and v is not None:
                append = route.get(v[:_HEADER])
                if append is not None:
                    append(m)
                    rows += 1
                    continue
            rows += slow(m)
        self.rows += rows
        self.consumed += len(msgs) - len(errors)
        return errors

    def add(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        """One record by its parts (tests, tools): the same rules as :meth:`add_messages`."""
        self.rows += self._add_slow(Origin(topic, partition, offset, key, value))
        self.consumed += 1

    def _add_slow(self, r: Record) -> int:
        """Resolve a record the fast path did not know; returns 1 if buffered, else 0."""
        topic = r.topic()
        expected = self._expected.get(topic)  # type: ignore[arg-type]
        if expected is None:
            return 0
        value = r.value()
        sv: SchemaVersion | None = None
        if value is not None and value[:2] == SINGLE_OBJECT_MAGIC and len(value) >= _HEADER:
            sv = self._by_fp.get(value[2:_HEADER])
            if sv is not None and sv.name != expected:
                sv = None
        if sv is None:
            # Confluent framing, an unknown fingerprint, a wrong record or garbage: the serde
            # decides (and names the reason); a good record is re-encoded with our reader schema.
            try:
                name, record = self.serde.decode(value, expected=expected)  # type: ignore[arg-type]
            except DecodeError as exc:
                self._dead_letter(r, exc.reason, str(exc))
                return 0
            sv = self.serde.schemas.latest(name)
            origin = Origin(topic, r.partition(), r.offset(), r.key(), value)  # type: ignore[arg-type]
            origin._value = SINGLE_OBJECT_MAGIC + sv.fingerprint + self._encode(name, record)
            self._pending(topic, sv).records.append(origin)  # type: ignore[arg-type]
            return 1
        self._pending(topic, sv).records.append(r)  # type: ignore[arg-type]
        return 1

    def _pending(self, topic: str, sv: SchemaVersion) -> Pending:
        key = (topic, sv.fingerprint)
        pending = self.groups.get(key)
        if pending is None:
            pending = self.groups[key] = Pending(TOPIC_TABLE[topic], sv)
            self._routes[topic][SINGLE_OBJECT_MAGIC + sv.fingerprint] = pending.records.append
        return pending

    def _encode(self, name: str, record: dict[str, Any]) -> bytes:
        codec = self._reencode.get(name)
        if codec is None:
            codec = self._reencode[name] = Codec.of(self.serde.schemas.latest(name))
        buf = io.BytesIO()
        schemaless_writer(buf, codec.plain, record)
        return buf.getvalue()

    def _dead_letter(self, r: Record, reason: str, error: str) -> None:
        # A consumed message without an error always has all three; -1 is the schema's "unknown".
        topic, partition, offset = r.topic(), r.partition(), r.offset()
        self.dead.append(dead_letter(reason=reason, error=error, payload=original_value(r), key=r.key(),
                                     origin_topic=topic or "", origin_partition=-1 if partition is None else partition,
                                     origin_offset=-1 if offset is None else offset, processor=PROCESSOR))  # fmt: skip

    def screen(self, pending: Pending) -> None:
        """Dead-letter the records of ``pending`` that must not be stored: exactly those
        :meth:`Serde.decode` refuses (with its reason), and those with a timestamp outside
        1970..9999 (reason ``invalid``, naming the field). ClickHouse would store both.

        The native validator checks every body in one call; only the records it refuses are
        decoded, to get the serde's reason and message.
        """
        if pending.screened:
            return
        pending.screened = True
        reader = self.serde.schemas.latest(pending.schema.name)
        validator = validator_of(pending.schema, reader)
        suspects: Sequence[int]
        if validator is None:  # no native extension (it warned at import), or a resolution it cannot mirror
            suspects = range(len(pending.records))
        else:
            suspects = validator.rejects([r.value() for r in pending.records], _HEADER)
            if not suspects:
                return
        bad = set()
        for i in suspects:
            r = pending.records[i]
            try:
                _, record = self.serde.decode(r.value(), expected=pending.schema.name)
            except DecodeError as exc:
                self._dead_letter(r, exc.reason, str(exc))
                bad.add(i)
                continue
            problem = timestamp_problem(reader, record)
            if problem is not None:
                self._dead_letter(r, "invalid", problem)
                bad.add(i)
            elif validator is not None:
                # The serde is the reference: store it. Reaching here is a bug in the validator.
                log.error("native validator refused a record the serde reads (%s, offset %s); storing it",
                          r.topic(), r.offset())  # fmt: skip
        if bad:
            pending.records = [r for i, r in enumerate(pending.records) if i not in bad]
            self.rows -= len(bad)

    def refused_by_store(self, pending: Pending, refused: Sequence[tuple[Record, str]]) -> None:
        """Dead-letter records ClickHouse refused one by one (reason ``refused_by_store``, its message)
        and take them out of ``pending``."""
        gone = {id(r) for r, _ in refused}
        for r, message in refused:
            self._dead_letter(r, REFUSED_BY_STORE, f"ClickHouse refused it: {message}")
        pending.records = [r for r in pending.records if id(r) not in gone]
        self.rows -= len(refused)

    def is_canonical(self, pending: Pending, r: Record) -> bool:
        """Whether ``r``'s body is the canonical Avro encoding of what it holds (see ``avro_block``)."""
        value = r.value()
        return value is not None and is_canonical(pending.schema, memoryview(value)[_HEADER:])
