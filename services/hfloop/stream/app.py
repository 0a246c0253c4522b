"""The faust app: topics, tables, agents and the timer. Decisions live in state.py / logic.py.

Topology (all inputs keyed by interaction_id and co-partitioned; N = their partition count)::

    hfloop.interactions --+
    hfloop.feedback     --+--> join agent --[joins table]--> labels, preferences, memory, dlq
    hfloop.outcomes     --+         |
                                    +--> <app_id>-groups (re-keyed by session / prompt, N partitions)
                                              |
                                         group agent --[groups table]--> preferences (implicit pairs)

Delivery (at-least-once, idempotent effects): in every batch the outputs are sent and
*acknowledged* first, then the state changes go to the changelog, and faust commits the
input offsets only after flushing the producer. A crash at any point replays inputs whose
effects may already exist; derived records carry deterministic ids (same inputs, same id)
and joined event ids are remembered in state, so a replay adds no new ids. A failed
output send crashes the worker instead of committing past it.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson

from hfloop.config import Settings
from hfloop.events.serde import DecodeError, Serde, default_serde
from hfloop.events.topics import DLQ, FEEDBACK, INTERACTIONS, LABELS, MEMORY, OUTCOMES, PREFERENCES, key_of
from hfloop.stream import offsets
from hfloop.stream import state as sm
from hfloop.stream.logic import LabelPolicy, invalid_reason
from hfloop.stream.pairs import PairPolicy

log = logging.getLogger(__name__)


def crc32_partitioner(key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
    """librdkafka's default (consistent_random) partitioner, so faust and confluent-kafka producers
    put a key in the same partition (compacted topics and co-partitioning depend on it)."""
    if key is None:
        return (available or all_partitions)[int(time.monotonic_ns()) % len(available or all_partitions)]
    return all_partitions[zlib.crc32(key) % len(all_partitions)]


@dataclass(frozen=True)
class TopicNames:
    """Topics the processors read and write (the contract names unless a test suffixes them)."""

    interactions: str = INTERACTIONS
    feedback: str = FEEDBACK
    outcomes: str = OUTCOMES
    labels: str = LABELS
    preferences: str = PREFERENCES
    memory: str = MEMORY
    dlq: str = DLQ

    @classmethod
    def suffixed(cls, suffix: str) -> TopicNames:
        return cls(**{k: f"{v}.{suffix}" for k, v in cls().__dict__.items()})

    def inputs(self) -> dict[str, str]:
        return {self.interactions: "Interaction", self.feedback: "Feedback", self.outcomes: "Outcome"}


@dataclass
class Stats:
    inputs: int = 0
    labels: int = 0
    pairs: int = 0
    memory: int = 0
    dead: int = 0
    facts: int = 0
    batches: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


@dataclass
class _Batch:
    """State changes and effects of one batch; states are written after the effects are acked."""

    dirty: dict[bytes, tuple[int, sm.State | None]] = field(default_factory=dict)
    fx: sm.Effects = field(default_factory=sm.Effects)
    group_pairs: list[dict[str, Any]] = field(default_factory=list)


def _state(table: Any, key: bytes) -> sm.State | None:
    st = table.data.get(key)
    if isinstance(st, bytes | bytearray):  # recovered from the changelog: decode once
        st = orjson.loads(st)
        table.data[key] = st
    return st


def _broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{h.strip()}" for h in bootstrap.split(",") if h.strip())


def input_partitions(settings: Settings, names: TopicNames, timeout: float = 30.0) -> int:
    """Partition count of the (co-partitioned) input topics; they must agree."""
    from confluent_kafka.admin import AdminClient

    md = AdminClient(settings.kafka_client_config()).list_topics(timeout=timeout).topics
    counts = {t: len(md[t].partitions) for t in names.inputs() if t in md}
    if len(counts) != 3:
        raise RuntimeError(
            f"input topics missing: {sorted(set(names.inputs()) - set(counts))}; run `hfloop topics create`"
        )
    if len(set(counts.values())) != 1:
        raise RuntimeError(f"input topics are not co-partitioned: {counts}")
    return next(iter(counts.values()))


class StreamApp:
    """One faust app with the join agent, the group agent, their tables and the timer."""

    def __init__(self, settings: Settings, names: TopicNames | None = None, serde: Serde | None = None,
                 partitions: int | None = None, now: Callable[[], float] = time.time) -> None:  # fmt: skip
        offsets.install()
        self.settings = s = settings
        self.names = names or TopicNames()
        self.serde = serde or default_serde()
        self.now = now
        self.partitions = partitions or input_partitions(s, self.names)
        self.ctx = sm.Ctx(LabelPolicy.from_settings(s), PairPolicy.from_settings(s), s.label_window_s,
                          s.join_grace_s, s.state_ttl_s, processor=s.stream_app_id)  # fmt: skip
        self.stats = Stats()
        self._lock = asyncio.Lock()
        self._heaps: dict[str, dict[int, list[tuple[float, bytes]]]] = {"joins": {}, "groups": {}}
        self._indexed: dict[str, Any] = {"joins": None, "groups": None}
        self.holes = offsets.HoleWatch(s.stream_hole_timeout_s)
        self.stuck = offsets.StuckWatch(s.stream_stuck_timeout_s)
        # What a worker stuck in a rebalance or recovery does; run_worker exits the process.
        self.on_stuck: Callable[[str], Any] = self._crash_stuck
        (s.data_dir / "stream").mkdir(parents=True, exist_ok=True)
        self.app = faust.App(
            s.stream_app_id,
            broker=_broker_url(s.bootstrap),
            broker_credentials=_credentials(s),
            store="memory://",
            datadir=str(s.data_dir / "stream"),
            web_enabled=False,
            autodiscover=False,
            topic_partitions=self.partitions,
            topic_replication_factor=s.kafka_replication,
            table_standby_replicas=0,
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            producer_partitioner=crc32_partitioner,
            broker_commit_interval=s.stream_commit_interval_s,
            broker_session_timeout=s.stream_session_timeout_s,
            broker_heartbeat_interval=s.stream_heartbeat_interval_s,
            broker_rebalance_timeout=s.stream_rebalance_timeout_s,
            processing_guarantee="at_least_once",
        )
        raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
        self.inputs = self.app.topic(*self.names.inputs(), **raw)  # type: ignore[arg-type]
        self.groups_topic = self.app.topic(f"{s.stream_app_id}-groups", partitions=self.partitions, internal=True,
                                           **raw)  # type: ignore[arg-type]  # fmt: skip
        # Tables hold dicts in memory; the changelog carries them as orjson bytes (recovery
        # loads bytes back, decoded on first read by _state()).
        self.joins = self.app.Table("joins", partitions=self.partitions, key_type=bytes, value_type=bytes,
                                    help="Join state per interaction_id (state.py).")  # fmt: skip
        self.groups = self.app.Table("groups", partitions=self.partitions, key_type=bytes, value_type=bytes,
                                     help="Session and prompt groups for implicit pairs (state.py).")  # fmt: skip
        for name, table in (("joins", self.joins), ("groups", self.groups)):
            table.on_recover(self._reindex_after_recovery(name))
        self.app.agent(self.inputs, name="join")(self._join_agent)
        self.app.agent(self.groups_topic, name="group")(self._group_agent)
        self.app.timer(s.stream_tick_s, name="tick")(self._tick)

    # --- agents ----------------------------------------------------------------------------
    async def _join_agent(self, stream: Any) -> None:  # faust.Stream (StreamT lacks take_events)
        s = self.settings
        async for events in stream.take_events(s.stream_batch_max, within=s.stream_batch_within_s):
            async with self._lock:
                batch = _Batch()
                now = self.now()
                for ev in events:
                    self._on_input(ev.message, batch, now)
                await self._guarded(self._commit(batch, self.joins, "joins"))
                self.stats.batches += 1

    async def _guarded(self, commit: Any) -> None:
        """A batch whose effects Kafka did not acknowledge stops the worker before its offsets commit."""
        try:
            await commit
        except Exception as exc:
            log.exception("sending the effects of a batch failed; stopping so the inputs are processed again")
            # faust acks the batch's events on the way out; nothing may be committed after this.
            offsets.freeze(self.app.consumer, f"a batch failed: {exc!r}")
            await self.app.crash(exc)
            raise

    def _on_input(self, msg: Any, batch: _Batch, now: float) -> None:
        origin = sm.Origin(msg.topic, msg.partition, msg.offset, msg.key, msg.value or b"")
        self.stats.inputs += 1
        try:
            name, rec = self.serde.decode(msg.value)
        except DecodeError as exc:
            batch.fx.dead.append(sm.dead(self.ctx, origin, "undecodable", str(exc)))
            return
        expected = self.names.inputs()[msg.topic]
        tenant = str(rec.get("tenant_id") or "unknown")
        why = f"{msg.topic} carries {expected} records, not {name}" if name != expected else None
        why = why or invalid_reason(name, rec, msg.key)
        if why:
            batch.fx.dead.append(sm.dead(self.ctx, origin, "invalid", why, tenant))
            return
        key = msg.key
        try:
            st = batch.dirty[key][1] if key in batch.dirty else _state(self.joins, key)
            st, fx = sm.on_input(st, name, rec, origin, now, self.ctx)
            batch.dirty[key] = (msg.partition, st)
            batch.fx.extend(fx)
        except Exception as exc:  # a bug or an input the policies did not foresee: never stop
            log.exception("processing %s %s/%s@%s failed", name, msg.topic, msg.partition, msg.offset)
            batch.fx.dead.append(
                sm.dead(self.ctx, origin, "processing_error", f"{type(exc).__name__}: {exc}", tenant)
            )

    async def _group_agent(self, stream: Any) -> None:
        s = self.settings
        async for events in stream.take_events(s.stream_batch_max, within=s.stream_batch_within_s):
            async with self._lock:
                batch = _Batch()
                now = self.now()
                for ev in events:
                    msg = ev.message
                    try:
                        key = msg.key
                        st = batch.dirty[key][1] if key in batch.dirty else _state(self.groups, key)
                        st, pairs = sm.on_fact(
                            st, key.decode(), orjson.loads(msg.value), msg.partition, now, self.ctx
                        )
                        batch.dirty[key] = (msg.partition, st)
                        batch.group_pairs.extend(pairs)
                    except Exception as exc:
                        log.exception("group fact %s/%s@%s failed", msg.topic, msg.partition, msg.offset)
                        origin = sm.Origin(msg.topic, msg.partition, msg.offset, msg.key, msg.value or b"")
                        batch.fx.dead.append(
                            sm.dead(self.ctx, origin, "processing_error", f"{type(exc).__name__}: {exc}")
                        )
                await self._guarded(self._commit(batch, self.groups, "groups"))

    # --- timer -----------------------------------------------------------------------------
    async def _tick(self) -> None:
        app = self.app
        recovered = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
        busy = bool(app.rebalancing or app.in_recovery or not recovered)
        why = self.stuck.check(app, busy)
        if why is not None:
            await self.on_stuck(why)
            return
        if busy:
            return
        await self.holes.check(app.consumer)
        async with self._lock:
            now = self.now()
            for name, table, topic in (("joins", self.joins, self.names.interactions),
                                       ("groups", self.groups, self.groups_topic.get_topic_name())):  # fmt: skip
                batch = _Batch()
                for partition, key in self._due(name, table, topic, now):
                    st = batch.dirty[key][1] if key in batch.dirty else _state(table, key)
                    if st is None:
                        continue
                    if name == "joins":
                        if sm.next_due(st, self.ctx) > now:
                            continue
                        st, fx = sm.on_tick(st, now, self.ctx)
                        batch.fx.extend(fx)
                    else:
                        if sm.group_due(st, self.ctx) > now:
                            continue
                        st, pairs = sm.on_group_tick(st, now, self.ctx)
                        batch.group_pairs.extend(pairs)
                    batch.dirty[key] = (partition, st)
                if batch.dirty:
                    await self._guarded(self._commit(batch, table, name))

    async def _crash_stuck(self, why: str) -> None:
        log.error("stream worker stuck: %s; stopping it", why)
        await self.app.crash(RuntimeError(f"stream worker stuck: {why}"))

    def _reindex_after_recovery(self, name: str) -> Callable[[], Any]:
        async def reindex() -> None:  # recovered keys join the timer's heaps on the next tick
            self._indexed[name] = None

        return reindex

    def _due(self, name: str, table: Any, topic: str, now: float) -> list[tuple[int, bytes]]:
        """Keys whose next deadline passed, from a heap per active partition (rebuilt after a rebalance)."""
        actives = frozenset(tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic)
        marker = (self.app.consumer_generation_id, actives)
        heaps = self._heaps[name]
        if self._indexed[name] != marker:
            heaps.clear()
            due_of = sm.next_due if name == "joins" else sm.group_due
            for key in list(table.data.keys()):
                st = _state(table, key)
                if st is not None and st["p"] in actives:
                    heaps.setdefault(st["p"], []).append((due_of(st, self.ctx), key))
            for h in heaps.values():
                heapq.heapify(h)
            self._indexed[name] = marker
        out = []
        for partition, h in heaps.items():
            while h and h[0][0] <= now:
                out.append((partition, heapq.heappop(h)[1]))
        return out

    # --- effects, then state ---------------------------------------------------------------
    async def _commit(self, batch: _Batch, table: Any, name: str) -> None:
        """Send the batch's effects, wait for Kafka to acknowledge them, then write its state."""
        fx, n = batch.fx, self.names
        futures = []
        for topic, contract, record_name, records in (
            (n.labels, LABELS, "Label", fx.labels),
            (n.preferences, PREFERENCES, "PreferencePair", fx.pairs + batch.group_pairs),
            (n.memory, MEMORY, "MemoryUpdate", fx.memory),
            (n.dlq, DLQ, "DeadLetter", fx.dead),
        ):
            for rec in records:
                value = self.serde.encode(record_name, rec)
                futures.append(
                    await self.app.producer.send(topic, key_of(contract, rec), value, None, None, None)
                )
        groups = self.groups_topic.get_topic_name()
        for gkey, member in fx.facts:
            futures.append(
                await self.app.producer.send(groups, gkey.encode(), orjson.dumps(member), None, None, None)
            )
        if futures:
            await asyncio.gather(*futures)  # raises on a failed delivery: no state written, no commit
        st_ = self.stats
        st_.labels += len(fx.labels)
        st_.pairs += len(fx.pairs) + len(batch.group_pairs)
        st_.memory += len(fx.memory)
        st_.dead += len(fx.dead)
        st_.facts += len(fx.facts)
        for d in fx.dead:
            st_.by_reason[d["reason"]] = st_.by_reason.get(d["reason"], 0) + 1
        due_of = sm.next_due if name == "joins" else sm.group_due
        heaps = self._heaps[name]
        for key, (partition, st) in batch.dirty.items():
            if st is None:
                if key in table.data:
                    table.send_changelog(partition, key, None, value_serializer="raw")
                    del table.data[key]
                continue
            table.send_changelog(partition, key, orjson.dumps(st))
            table.data[key] = st
            if self._indexed[name] is not None:
                heapq.heappush(heaps.setdefault(partition, []), (due_of(st, self.ctx), key))


class _RedactSaslBytes(logging.Filter):
    """aiokafka logs every request it sends at DEBUG, SaslAuthenticateRequest included; with
    SASL/PLAIN those bytes are the password in clear. The filter masks that one argument."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                "SaslAuthenticateRequest(<redacted>)"
                if type(a).__name__.startswith("SaslAuthenticate")
                else a
                for a in record.args
            )
        return True


_SASL_REDACT = _RedactSaslBytes()


def _credentials(s: Settings) -> Any:
    if s.kafka_security_protocol == "PLAINTEXT":
        return None
    logging.getLogger("aiokafka.conn").addFilter(_SASL_REDACT)  # idempotent: one filter object
    import ssl

    context = None
    if s.kafka_security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=str(s.kafka_ssl_cafile) if s.kafka_ssl_cafile else None)
        if s.kafka_ssl_certfile:
            context.load_cert_chain(
                str(s.kafka_ssl_certfile), str(s.kafka_ssl_keyfile) if s.kafka_ssl_keyfile else None
            )
    if s.kafka_security_protocol == "SSL":
        return faust.SSLCredentials(context)
    password = s.kafka_sasl_password.get_secret_value() if s.kafka_sasl_password else None
    return faust.SASLCredentials(username=s.kafka_sasl_username, password=password,
                                 mechanism=s.kafka_sasl_mechanism or "PLAIN", ssl_context=context)  # fmt: skip


def run_worker(settings: Settings, names: TopicNames | None = None) -> None:
    """``hfloop worker --role stream``: run the processors until SIGINT/SIGTERM (blocking)."""
    from hfloop.stream.service import run_worker as _run

    _run(settings, names)


def __getattr__(name: str) -> Any:
    if name == "StreamService":  # the composition root imports it from here; it lives in service.py
        from hfloop.stream.service import StreamService

        return StreamService
    raise AttributeError(name)
