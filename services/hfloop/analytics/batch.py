"""The sink's buffer: Kafka values grouped by (table, writer schema), offsets, dead letters.

Pure bookkeeping, no I/O: ``sink.py`` feeds it from the consumer and writes what it holds.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastavro import schemaless_writer

from hfloop.analytics.avro_block import Container
from hfloop.analytics.tables import TOPIC_TABLE
from hfloop.events.kafka import dead_letter
from hfloop.events.schemas import SchemaVersion
from hfloop.events.serde import SINGLE_OBJECT_MAGIC, Codec, DecodeError, Serde
from hfloop.events.topics import TOPICS

PROCESSOR = "analytics-sink"
_HEADER = 10


@dataclass
class Pending:
    """One container's worth of records plus where each came from (for the fallback path)."""

    table: str
    container: Container
    origins: list[tuple[str, int, int, bytes | None]] = field(
        default_factory=list
    )  # topic, partition, offset, key
    values: list[bytes] = field(default_factory=list)


class Batch:
    """Records waiting for one insert, grouped by (table, writer schema fingerprint)."""

    def __init__(self, serde: Serde) -> None:
        self.serde = serde
        self._by_fp = serde.schemas.by_fingerprint
        self._expected = {topic: spec.record for topic, spec in TOPICS.items() if topic in TOPIC_TABLE}
        self.groups: dict[tuple[str, bytes], Pending] = {}
        self.offsets: dict[tuple[str, int], int] = {}  # next offset to commit per (topic, partition)
        self.dead: list[dict[str, Any]] = []
        self.rows = 0
        self._reencode: dict[str, Codec] = {}

    def __len__(self) -> int:
        return self.rows

    def add(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        self.offsets[(topic, partition)] = offset + 1
        expected = self._expected.get(topic)
        if expected is None:
            return
        sv: SchemaVersion | None = None
        body: bytes | memoryview | None = None
        if value is not None and value[:2] == SINGLE_OBJECT_MAGIC and len(value) >= _HEADER:
            sv = self._by_fp.get(value[2:_HEADER])
            if sv is not None and sv.name == expected:
                body = memoryview(value)[_HEADER:]
            else:
                sv = None
        if sv is None:
            # Confluent framing, an unknown fingerprint, a wrong record or garbage: the serde
            # decides (and names the reason); a good record is re-encoded with our reader schema.
            try:
                name, record = self.serde.decode(value, expected=expected)
            except DecodeError as exc:
                self.dead_letter(topic, partition, offset, key, value, exc.reason, str(exc))
                return
            sv = self.serde.schemas.latest(name)
            body = self._encode(name, record)
        group_key = (topic, sv.fingerprint)
        pending = self.groups.get(group_key)
        if pending is None:
            pending = self.groups[group_key] = Pending(TOPIC_TABLE[topic], Container(sv))
        pending.container.add(body)  # type: ignore[arg-type]
        pending.origins.append((topic, partition, offset, key))
        pending.values.append(value)  # type: ignore[arg-type]
        self.rows += 1

    def _encode(self, name: str, record: dict[str, Any]) -> bytes:
        codec = self._reencode.get(name)
        if codec is None:
            codec = self._reencode[name] = Codec.of(self.serde.schemas.latest(name))
        buf = io.BytesIO()
        schemaless_writer(buf, codec.plain, record)
        return buf.getvalue()

    def dead_letter(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                    reason: str, error: str) -> None:  # fmt: skip
        self.dead.append(dead_letter(reason=reason, error=error, payload=value, key=key, origin_topic=topic,
                                     origin_partition=partition, origin_offset=offset, processor=PROCESSOR))  # fmt: skip

    def split_bad(self, pending: Pending) -> Pending:
        """Decode every record of a container ClickHouse refused; dead-letter the bad ones.

        Returns a container of the good ones (the same records when none is bad: then the
        refusal was not the data's fault and the caller retries).
        """
        good = Pending(pending.table, Container(pending.container.schema))
        expected = pending.container.schema.name
        for (topic, partition, offset, key), value in zip(pending.origins, pending.values, strict=True):
            try:
                self.serde.decode(value, expected=expected)
            except DecodeError as exc:
                self.dead_letter(topic, partition, offset, key, value, exc.reason, str(exc))
                self.rows -= 1
                continue
            good.container.add(memoryview(value)[_HEADER:] if value[:2] == SINGLE_OBJECT_MAGIC else
                               self._encode(expected, self.serde.decode(value)[1]))  # fmt: skip
            good.origins.append((topic, partition, offset, key))
            good.values.append(value)
        return good


OnDead = Callable[[dict[str, Any]], None]
