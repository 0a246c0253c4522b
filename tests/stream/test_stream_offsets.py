"""The guards on faust's offset bookkeeping (stream/offsets.py), on faust's own Consumer code
paths but without a broker: the commit never passes an unprocessed record, and a partition
whose head record stays unprocessed is re-read from it."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from types import SimpleNamespace

from faust.transport.consumer import Consumer
from faust.types import TP

from hfloop.stream import offsets

offsets.install()


def _consumer(committed: dict[TP, int], acked: dict[TP, list[int]]) -> SimpleNamespace:
    seeks: list[tuple[TP, int]] = []

    async def seek(tp: TP, offset: int) -> None:
        seeks.append((tp, offset))

    return SimpleNamespace(
        _committed_offset=defaultdict(lambda: None, committed),
        _acked=defaultdict(list, {tp: list(v) for tp, v in acked.items()}),
        _acked_index=defaultdict(set, {tp: set(v) for tp, v in acked.items()}),
        assignment=lambda: set(committed),
        seek=seek,
        seeks=seeks,
    )


TPA = TP("hfloop.interactions", 1)


def test_commit_never_passes_a_record_that_was_not_processed():
    # committed = next record to process (169); 170, 171 done, 169 not: faust 0.15.3 commits 172.
    c = _consumer({TPA: 169}, {TPA: [170, 171]})
    assert Consumer._new_offset(c, TPA) is None
    assert c._acked[TPA] == [170, 171]  # kept until 169 is done
    c._acked[TPA].append(169)
    assert Consumer._new_offset(c, TPA) == 172


def test_commit_stops_before_the_first_hole():
    c = _consumer({TPA: 10}, {TPA: [10, 11, 13, 14]})
    assert Consumer._new_offset(c, TPA) == 12
    assert c._acked[TPA] == [13, 14]


def test_fetch_loop_keeps_records_below_the_last_one_read():
    # faust drops a record whose offset is below its "last read" mark; the guard reads None.
    reads = offsets._NeverRead()
    reads[TPA] = 500
    assert reads[TPA] is None and TPA in reads


def test_a_stuck_head_record_is_read_again_after_the_timeout():
    watch = offsets.HoleWatch(timeout=0.0)
    c = _consumer({TPA: 169}, {TPA: [170, 171]})
    asyncio.run(watch.check(c))  # first sight of the hole: remembered, not yet acted on
    assert c.seeks == []
    asyncio.run(watch.check(c))
    assert c.seeks == [(TPA, 169)] and watch.reseeks == 1


def test_no_reseek_when_the_head_is_processed():
    watch = offsets.HoleWatch(timeout=0.0)
    c = _consumer({TPA: 169}, {TPA: [169, 170]})
    for _ in range(3):
        asyncio.run(watch.check(c))
    assert c.seeks == []


def test_a_frozen_consumer_commits_nothing():
    async def go() -> bool:
        c = SimpleNamespace(_hfloop_frozen=False)
        offsets.freeze(c, "test")
        return await Consumer._commit_offsets(c, {TPA: 5})  # type: ignore[arg-type]

    assert asyncio.run(go()) is False


def _app(generation: int, received: dict, in_recovery: bool = True) -> SimpleNamespace:
    recovery = SimpleNamespace(_active_events_received_at=received)
    return SimpleNamespace(consumer_generation_id=generation, in_recovery=in_recovery,
                           tables=SimpleNamespace(recovery=recovery))  # fmt: skip


def test_a_recovery_without_progress_is_reported_stuck():
    watch = offsets.StuckWatch(timeout=0.001)
    app = _app(3, {})
    assert watch.check(app, busy=True) is None  # first sight
    time.sleep(0.005)
    why = watch.check(app, busy=True)
    assert why is not None and "table recovery made no progress" in why and "generation 3" in why


def test_progress_or_a_new_generation_resets_the_clock():
    watch = offsets.StuckWatch(timeout=0.001)
    received: dict = {}
    app = _app(3, received)
    watch.check(app, busy=True)
    time.sleep(0.005)
    received[TPA] = 1.0  # a changelog record arrived
    assert watch.check(app, busy=True) is None
    app.consumer_generation_id = 4  # another rebalance
    assert watch.check(app, busy=True) is None
    assert watch.check(app, busy=False) is None  # done: forgotten
    assert watch.check(app, busy=True) is None


def test_a_long_timeout_waits():
    watch = offsets.StuckWatch(timeout=3600.0)
    app = _app(1, {}, in_recovery=False)
    assert watch.check(app, busy=True) is None and watch.check(app, busy=True) is None
