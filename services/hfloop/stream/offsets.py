"""Guards on faust's offset bookkeeping (faust-streaming 0.15.3), installed by the stream app.

The chaos run (tests/test_chaos.py) found records committed but never processed, and
partitions whose commits stalled for minutes, after rebalances. Three faust behaviours
combine into that:

1. The fetch loop drops a record whose offset is below the last one it read (``DROPPED
   MESSAGE``). After a rebalance faust seeks each partition back to its committed offset,
   but records of an earlier fetch can still arrive after the seek; they move the "last
   read" mark forward and the re-fetched records below it are dropped, never processed.
2. ``Consumer._new_offset`` commits past a hole of exactly one record at the head of the
   acked offsets: it compares the lowest acked offset with the committed one using ``> 1``
   although faust commits the *next* offset to read, so one never-processed record is
   skipped (a longer hole stalls the partition instead).
3. When a batch's effects fail, the agent's ``take_events`` buffer acks the batch on its way
   out and the stopping consumer commits what is acked.

The fix here: the fetch loop never drops (a replayed record is processed again, which the
processors make idempotent: deterministic ids, remembered event ids); the commit never
passes a record that was not acked; a consumer whose batch failed commits nothing more; and
:class:`HoleWatch` re-seeks a partition whose head record stayed unacked, so it is fetched
and processed again instead of stalling the group.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any

from faust.transport.consumer import Consumer
from faust.utils.functional import consecutive_numbers

log = logging.getLogger(__name__)
_installed = False


class _NeverRead(defaultdict):  # type: ignore[type-arg]
    """faust's per-partition "last read offset", which only its fetch loop reads (to drop
    records below it, and to call a jump a gap). Reading ``None`` keeps every record."""

    def __init__(self) -> None:
        super().__init__(lambda: None)

    def __getitem__(self, key: Any) -> None:
        return None


def _new_offset(self: Any, tp: Any) -> int | None:
    """faust's ``Consumer._new_offset`` with a strict head check: the committed offset is the
    next record to process, so acked offsets must start exactly there."""
    acked: list[int] = self._acked[tp]
    if not acked:
        return None
    acked.sort()
    committed = self._committed_offset[tp]
    if committed is not None and acked[0] > committed:
        return None  # the record at `committed` is not processed yet: commit nothing
    batch = next(consecutive_numbers(acked))
    acked[: len(batch)] = []
    self._acked_index[tp].difference_update(batch)
    return int(batch[-1]) + 1


def freeze(consumer: Any, why: str) -> None:
    """Stop this consumer from committing anything again (its process is about to crash)."""
    if not getattr(consumer, "_hfloop_frozen", False):
        log.error("offset commits frozen: %s", why)
    consumer._hfloop_frozen = True


def install() -> None:
    global _installed
    if _installed:
        return
    original_init = Consumer.__init__
    original_commit = Consumer._commit_offsets

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._read_offset = _NeverRead()

    async def _commit_offsets(self: Any, offsets: Any, *args: Any, **kwargs: Any) -> bool:
        if getattr(self, "_hfloop_frozen", False):
            return False
        return bool(await original_commit(self, offsets, *args, **kwargs))

    Consumer.__init__ = __init__  # type: ignore[method-assign]
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    Consumer._commit_offsets = _commit_offsets  # type: ignore[method-assign]
    _installed = True


class HoleWatch:
    """Re-seeks a partition whose next record to commit stays unprocessed while later ones are
    done (a hole at the head of the acked offsets), after ``timeout`` seconds."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.reseeks = 0
        self._since: dict[Any, tuple[int, float]] = {}

    async def check(self, consumer: Any) -> None:
        now = time.monotonic()
        assigned = consumer.assignment()
        holes = {}
        for tp, acked in list(consumer._acked.items()):
            committed = consumer._committed_offset.get(tp)
            if tp in assigned and acked and committed is not None and min(acked) > committed:
                holes[tp] = committed
        for tp in list(self._since):
            if tp not in holes:
                del self._since[tp]
        for tp, committed in holes.items():
            seen = self._since.get(tp)
            if seen is None or seen[0] != committed:
                self._since[tp] = (committed, now)
            elif now - seen[1] >= self.timeout:
                log.warning(
                    "%s[%s]: record %s unprocessed for %.0fs while later ones are done; re-reading from it",
                    tp.topic, tp.partition, committed, now - seen[1],
                )  # fmt: skip
                await consumer.seek(tp, committed)
                self.reseeks += 1
                self._since[tp] = (committed, now)


class StuckWatch:
    """Notices a worker that stays in a rebalance or table recovery without progress.

    Seen in the chaos run after a broker restart: faust's recovery waited minutes for changelog
    records that its fetcher never delivered ("No event received for active tp ... since
    recovery start"), while the worker held its partitions. No in-process step was found that
    un-sticks it; a restarted worker recovers at once. So after ``timeout`` seconds in which
    neither the group generation nor the recovery's received-events clock moved, ``stuck()``
    says why, and the caller exits the worker for its supervisor to restart (no offsets are
    committed while recovering, so nothing is lost)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._since: float | None = None
        self._marker: Any = None

    def check(self, app: Any, busy: bool) -> str | None:
        """``busy``: rebalancing or recovering now. Returns why it is stuck, or None."""
        if not busy or self.timeout <= 0:
            self._since = self._marker = None
            return None
        recovery = app.tables.recovery
        received = getattr(recovery, "_active_events_received_at", {}) or {}
        marker = (app.consumer_generation_id, len(received), max(received.values(), default=0.0))
        now = time.monotonic()
        if marker != self._marker or self._since is None:
            self._marker, self._since = marker, now
            return None
        if now - self._since < self.timeout:
            return None
        state = "table recovery" if app.in_recovery else "rebalance"
        return f"{state} made no progress for {now - self._since:.0f}s (generation {marker[0]})"
