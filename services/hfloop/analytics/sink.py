"""The ClickHouse sink: every topic -> one table each, at-least-once with idempotent rows.

Shape (quix-streams): records are ``add``-ed to a :class:`~hfloop.analytics.batch.Batch`;
``flush`` writes it (one ``INSERT ... FORMAT Avro`` per table and writer schema) and only then
are the offsets committed. A failed insert blocks the commit: the sink retries with backoff
(tenacity) while holding the offsets, so nothing is lost while ClickHouse is down, and
whatever was inserted but not committed is read again and merges away by ``event_id``
(ReplacingMergeTree; queries read through FINAL views).

Undecodable records never stop the sink: they go to ``hfloop.dlq`` (flushed before the
commit) and the batch goes on. "Undecodable" is the serde's verdict, not ClickHouse's: every
container is screened first (``Batch.screen``, a native validator that agrees with the serde),
because ClickHouse would store some records the serde refuses. The reverse, records the serde
reads but ClickHouse refuses, is found at insert by bisecting the refused container
(``ClickHouseWriter._settle``) and dead-lettered as ``refused_by_store``; a table that refuses
every record is taken for an outage and retried, not emptied into the DLQ.

    hfloop worker --role analytics      -> run_worker(settings), blocks until SIGINT/SIGTERM
    AnalyticsService(settings, client)  -> start()/stop() a consumer thread (``hfloop dev``)
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_never,
    wait_exponential_jitter,
)

from hfloop.analytics import store
from hfloop.analytics.batch import Batch, Pending, Record
from hfloop.analytics.tables import TOPIC_TABLE
from hfloop.config import Settings
from hfloop.events.errors import ClientErrors, KafkaAuthenticationError, errors_of
from hfloop.events.kafka import RecordProducer
from hfloop.events.serde import Serde, default_serde

log = logging.getLogger("hfloop.analytics.sink")

# ClickHouse maps Avro fields to columns by name; a v1 writer lacks the v2 fields (defaults).
# optimize_on_insert=0: ReplacingMergeTree would otherwise collapse equal sorting keys inside each
# inserted block, a merge pass comparing String keys row by row (~1-3 us/row, a third of the
# insert's CPU). Duplicates are collapsed by background merges, and every reader is already
# duplicate-proof (FINAL views, or aggregates a copy cannot change), so it buys nothing.
# throw_on_max_partitions_per_insert_block=0: tables are partitioned by month of event_time, and
# a batch spanning more than 100 months (a backfill, skewed clocks; times before 1970 or after 9999
# are dead-lettered by Batch.screen, but 1970..9999 is 96,000 months) was refused as a whole; every record decodes, so the refusal read as an outage and
# the sink retried it forever, stalled. Now ClickHouse logs a warning and writes the rows.
INSERT_SETTINGS = {"input_format_avro_allow_missing_fields": 1, "optimize_on_insert": 0,
                   "throw_on_max_partitions_per_insert_block": 0}  # fmt: skip


class StoreUnavailable(Exception):
    """ClickHouse refused or failed an insert for a reason that is not the data's."""


@dataclass
class SinkStats:
    rows: dict[str, int] = field(default_factory=dict)  # inserted per table (incl. duplicates)
    dead_letters: int = 0
    flushes: int = 0
    retries: int = 0
    commits: int = 0
    last_error: str | None = None
    last_flush_at: float | None = None
    first_record_at: float | None = None  # when the first record arrived (drain-rate measurements)

    def as_dict(self) -> dict[str, Any]:
        return {"rows": dict(self.rows), "dead_letters": self.dead_letters, "flushes": self.flushes,
                "retries": self.retries, "commits": self.commits, "last_error": self.last_error,
                "last_flush_at": self.last_flush_at}  # fmt: skip


# ClickHouse error codes that mean "these rows cannot be parsed or stored as they are": a refusal
# of the data, which the writer bisects to find the records at fault. Every other refusal (no
# connection, timeouts, TOO_MANY_PARTS, MEMORY_LIMIT_EXCEEDED, READONLY, UNKNOWN_TABLE,
# THERE_IS_NO_COLUMN, ...) is the store's: retried with backoff, never bisected, since a transient
# error during a bisection would pass for a bad record. Numbers checked with errorCodeToName().
DATA_CODES = frozenset({
    6,    # CANNOT_PARSE_TEXT
    25,   # CANNOT_PARSE_ESCAPE_SEQUENCE
    26,   # CANNOT_PARSE_QUOTED_STRING
    27,   # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    32,   # ATTEMPT_TO_READ_AFTER_EOF
    33,   # CANNOT_READ_ALL_DATA
    38,   # CANNOT_PARSE_DATE
    41,   # CANNOT_PARSE_DATETIME
    53,   # TYPE_MISMATCH
    69,   # ARGUMENT_OUT_OF_BOUND
    70,   # CANNOT_CONVERT_TYPE
    72,   # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA (e.g. an Avro enum index out of range)
    128,  # TOO_LARGE_ARRAY_SIZE
    131,  # TOO_LARGE_STRING_SIZE
    190,  # SIZES_OF_ARRAYS_DONT_MATCH
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    395,  # FUNCTION_THROW_IF_VALUE_IS_NON_ZERO
    407,  # DECIMAL_OVERFLOW
    469,  # VIOLATED_CONSTRAINT
    691,  # UNKNOWN_ELEMENT_OF_ENUM
})  # fmt: skip
# avro-cpp's own errors ("Invalid Avro varint", "Invalid value for bool") arrive wrapped as
# STD_EXCEPTION, which is also any other C++ exception: data only when avro-cpp threw it.
STD_EXCEPTION = 1001
_CODE = re.compile(r"\bCode:\s*(\d+)")


def is_data_refusal(exc: BaseException) -> bool:
    """Whether ClickHouse refused an insert because of the rows it was sent (see DATA_CODES)."""
    from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

    if not isinstance(exc, DatabaseError) or isinstance(exc, OperationalError):
        return False
    code = exc.code
    if code is None:  # a client that did not fill it in: the message still says "Code: N."
        found = _CODE.search(str(exc))
        code = int(found.group(1)) if found else None
    if code == STD_EXCEPTION:
        return "avro::Exception" in str(exc)
    return code in DATA_CODES


def _is_unreachable(exc: BaseException) -> bool:
    """Errors that say nothing about the data: connection refused, timeouts, the injected fault."""
    from clickhouse_connect.driver.exceptions import OperationalError

    return isinstance(exc, OperationalError | StoreUnavailable | OSError | TimeoutError)


@dataclass
class _Bisection:
    """What bisecting one refused container found out."""

    stored: int = 0  # records inserted by a part that ClickHouse took
    refused: list[tuple[Record, Exception]] = field(default_factory=list)  # refused alone
    deferred: list[tuple[list[Record], Exception]] = field(default_factory=list)
    probing: bool = True  # until something is stored, only one refused half per level is opened


class ClickHouseWriter:
    """Writes a batch. When ClickHouse refuses a container's data it bisects the container: the
    parts it takes are stored, a record it refuses alone is dead-lettered (``refused_by_store``),
    unless the table refuses good records too, which is an outage (retried).
    """

    def __init__(self, client: Any, database: str) -> None:
        self.client = client
        self.database = store.check_ident(database)

    def write(self, batch: Batch) -> dict[str, int]:
        written: dict[str, int] = {}
        for key in list(batch.groups):
            pending = batch.groups[key]
            batch.screen(pending)  # takes out what the serde refuses: ClickHouse would store it
            if pending.count:
                error = self._attempt(pending, pending.records)
                if error is not None:
                    self._settle(batch, pending, error)
                written[pending.table] = written.get(pending.table, 0) + pending.count
            # Written: a retry of the rest must not write this group again (a duplicate is
            # harmless, but wasted work while ClickHouse struggles).
            del batch.groups[key]
        return written

    def _attempt(self, pending: Pending, records: Sequence[Record]) -> Exception | None:
        """Insert ``records``; None when stored, the error when ClickHouse refused their data.
        Any other failure raises (the caller retries the whole group)."""
        try:
            self.client.raw_insert(f"{self.database}.{pending.table}", None, pending.to_bytes(records),
                                   fmt="Avro", settings=INSERT_SETTINGS)  # fmt: skip
        except Exception as exc:
            if is_data_refusal(exc):
                return exc
            if _is_unreachable(exc):
                raise
            raise StoreUnavailable(f"{pending.table}: {exc}") from exc
        return None

    def _settle(self, batch: Batch, pending: Pending, error: Exception) -> None:
        """ClickHouse refused ``pending``'s data: store what it takes, dead-letter what it refuses.

        Which records are refused is found by bisection (parts that were stored stay stored; if a
        retry stores them again they merge away by event_id). A record refused alone is
        dead-lettered when the refusal is evidently about it: its body is not the canonical Avro
        encoding (bytes only a crafted record has), or ClickHouse stored other records of this
        container. A canonical record refused while nothing else is stored may be a table that
        refuses everything (a column type changed, a constraint every row violates): dead-lettering
        would empty the stream into the DLQ, so that is an outage, retried until the table is fixed.

        Cost: k bad records in n cost about 2 k log2(n) inserts. To keep a table that refuses
        everything cheap to detect (O(log n) inserts, not 2n), only the first refused half of each
        level is opened until a part has been stored; the other refused halves wait (``deferred``).
        """
        split = _Bisection()
        self._bisect(pending, pending.records, error, split)
        if not split.stored and all(batch.is_canonical(pending, r) for r, _ in split.refused):
            raise StoreUnavailable(
                f"{pending.table} refuses every record tried, each one well-formed: {error}"
            )
        split.probing = False
        for part, part_error in split.deferred:
            self._bisect(pending, part, part_error, split)
        data: list[tuple[Record, str]] = []
        unsettled: list[tuple[Record, str]] = []
        for r, exc in split.refused:
            (data if split.stored or not batch.is_canonical(pending, r) else unsettled).append((r, str(exc)))
        if data:
            log.warning("dead-lettered %d record(s) ClickHouse refused for %s: %s", len(data), pending.table,
                        data[0][1][:300])  # fmt: skip
        batch.refused_by_store(pending, data)  # what is left in pending was stored by some part
        if unsettled:
            # Only well-formed records refused and nothing stored: as above, the table's refusal.
            raise StoreUnavailable(
                f"{pending.table}: {len(unsettled)} well-formed record(s) refused: {error}"
            )

    def _bisect(self, pending: Pending, part: list[Record], error: Exception, split: _Bisection) -> None:
        """``part`` was refused with ``error``: insert its halves, recursing into refused ones."""
        if len(part) == 1:
            split.refused.append((part[0], error))
            return
        mid = len(part) // 2
        opened = False
        for half in (part[:mid], part[mid:]):
            half_error = self._attempt(pending, half)
            if half_error is None:
                split.stored += len(half)
            elif opened and split.probing and not split.stored:
                split.deferred.append((half, half_error))
            else:
                opened = True
                self._bisect(pending, half, half_error, split)


class AnalyticsService:
    """The sink as a service object: ``start()`` runs the consumer loop in a thread.

    ``client`` is shared with the query route in ``hfloop dev`` (chDB locks its folder to one
    process; clients inside that process share the engine).
    """

    def __init__(self, settings: Settings, client: Any | None = None, serde: Serde | None = None,
                 group_id: str | None = None, migrate: bool = True) -> None:  # fmt: skip
        self.settings = settings
        self._client = client
        self.serde = serde or default_serde()
        self.group_id = group_id or settings.analytics_group
        self._migrate = migrate
        self.stats = SinkStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self._kafka_errors: ClientErrors | None = None
        self._producer: RecordProducer | None = None
        self._batch = Batch(self.serde)
        self._batch_started = time.monotonic()
        self.ready = threading.Event()
        self.failed: BaseException | None = None

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("analytics client not connected yet")
        return self._client

    def start(self) -> AnalyticsService:
        self._thread = threading.Thread(target=self._run_guarded, name="analytics-sink", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Blocking loop (the worker's main thread); returns after :meth:`stop`."""
        self._connect_and_migrate()
        if self._stop.is_set():
            return
        # A crashed sink's partitions move to a restarted one after 10 s instead of the default 45 s;
        # an outage may hold the loop in retries for minutes, hence the long poll interval.
        conf = {"max.poll.interval.ms": 600_000, "session.timeout.ms": 10_000}
        consumer_conf = self.settings.consumer_config(self.group_id, **conf)
        self._kafka_errors = errors_of(consumer_conf)
        self._consumer = Consumer(consumer_conf)
        self._producer = RecordProducer(self.settings, self.serde)
        self._consumer.subscribe(list(TOPIC_TABLE), on_revoke=self._on_revoke)
        self.ready.set()
        try:
            self._loop()
        finally:
            if self._batch.consumed:
                self._flush(retry_until_stopped=False)
            self._consumer.close()
            self._producer.flush(10)

    def _run_guarded(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # surfaced through .failed; a thread has no caller
            self.failed = exc
            log.exception("analytics sink stopped")
            raise

    def _retrying(self, what: str, max_attempts: int | None = None) -> Retrying:
        """Retry while ClickHouse is unreachable: until stop() (or ``max_attempts``)."""

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.stats.retries += 1
            self.stats.last_error = f"{what}: {type(exc).__name__}: {exc}"[:500]
            log.warning("%s failed (attempt %d), retrying: %s", what, state.attempt_number, exc)

        return Retrying(
            wait=wait_exponential_jitter(initial=0.2, max=self.settings.analytics_retry_max_s),
            retry=retry_if_exception(lambda e: _is_unreachable(e) and not self._stop.is_set()),
            stop=stop_after_attempt(max_attempts) if max_attempts else stop_never,
            before_sleep=before_sleep,
            sleep=self._sleep,
            reraise=True,
        )

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)  # a retry's backoff that ends at once on stop()

    def _connect_and_migrate(self) -> None:
        try:
            for attempt in self._retrying("connect to ClickHouse"):
                with attempt:
                    if self._client is None:
                        self._client = store.connect(self.settings)
                    if self._migrate:
                        store.migrate(self._client, self.settings.analytics_database)
        except Exception:
            if self._stop.is_set():
                return
            raise

    # --- consume / flush / commit -----------------------------------------------------------
    def _loop(self) -> None:
        assert self._consumer is not None
        max_rows = self.settings.analytics_batch_rows
        max_age = self.settings.analytics_batch_ms / 1000
        while not self._stop.is_set():
            want = max(1, min(10_000, max_rows - len(self._batch)))
            msgs = self._consumer.consume(num_messages=want, timeout=0.1)
            if self._kafka_errors is not None:
                # librdkafka retries refused credentials forever, silently for a consumer: stop.
                self._kafka_errors.raise_if_auth_failed()
            if msgs:
                if self.stats.first_record_at is None:
                    self.stats.first_record_at = time.time()
                for m in self._batch.add_messages(msgs):  # only those that carry an error come back
                    err = m.error()
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    if err.fatal():
                        raise KafkaException(err)
                    log.warning("consumer error: %s", err)
            if not self._batch.consumed:
                self._batch_started = time.monotonic()
                continue
            if len(self._batch) >= max_rows or time.monotonic() - self._batch_started >= max_age:
                self._flush()

    def _flush(self, retry_until_stopped: bool = True) -> bool:
        """Insert, then dead letters, then commit. False when stopped before it succeeded."""
        batch = self._batch
        writer = ClickHouseWriter(self.client, self.settings.analytics_database)
        try:
            attempts = None if retry_until_stopped else 1
            for attempt in self._retrying("insert into ClickHouse", max_attempts=attempts):
                with attempt:
                    written = writer.write(batch)
                    for table, n in written.items():
                        self.stats.rows[table] = self.stats.rows.get(table, 0) + n
        except Exception as exc:
            if self._stop.is_set() or not retry_until_stopped:
                # Offsets stay uncommitted: the next start reads these records again.
                log.warning("stopping with an unwritten batch (%s); it will be re-read", exc)
                return False
            raise
        assert self._producer is not None and self._consumer is not None
        for record in batch.dead:
            self._producer.send("DeadLetter", record)
        if batch.dead:
            self._producer.flush(30)  # durable before the commit that skips their origin
            self.stats.dead_letters += len(batch.dead)
        try:
            # The consumer's stored offsets: one past every message consume() handed us, i.e.
            # exactly what this batch took (librdkafka stores them as it hands them out;
            # enable.auto.offset.store). Tracking them per record in Python cost ~0.3 us each.
            self._consumer.commit(asynchronous=False)
            self.stats.commits += 1
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError._NO_OFFSET:
                pass  # nothing new to commit (e.g. only error events since the last commit)
            else:
                # Lost the partitions (rebalance): the new owner re-reads them; rows dedup by event_id.
                log.warning("offset commit failed, records will be re-read: %s", exc)
        self.stats.flushes += 1
        self.stats.last_flush_at = time.time()
        self._batch = Batch(self.serde)
        self._batch_started = time.monotonic()
        return True

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Eager rebalance: every partition goes; after the next assignment fetching resumes at
        # the committed offsets. So flush what we hold if ClickHouse takes it now, else drop it
        # (it is re-read, nothing is lost).
        if not self._batch.consumed:
            return
        try:
            self._flush(retry_until_stopped=False)
        except Exception as exc:
            log.warning("flush on revoke failed, batch dropped and re-read later: %s", exc)
        self._batch = Batch(self.serde)


def run_worker(settings: Settings) -> None:
    """``hfloop worker --role analytics``: the sink in the foreground until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service = AnalyticsService(settings)

    def _stop(signum: int, _frame: Any) -> None:
        log.info("signal %d: flushing and stopping", signum)
        service._stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    log.info("analytics sink: %s -> %s (database %s)", settings.bootstrap, settings.clickhouse,
             settings.analytics_database)  # fmt: skip
    try:
        service.run()
    except KafkaAuthenticationError as exc:
        log.error("analytics sink stopping: %s", exc)
        sys.exit(os.EX_CONFIG)  # a configuration error: a supervisor shows it, restarting will not help
