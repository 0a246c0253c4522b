"""The SDK's fast path (errors-only delivery reports, produce_batch, cheap ids) loses nothing:
records arrive intact, delivery failures still surface, ids stay unique."""

from __future__ import annotations

import os
import threading

import pytest
from kafkautil import consume_all

from hfloop.events.kafka import DeliveryError, RecordProducer, create_topics
from hfloop.events.serde import EncodeError, Serde
from hfloop.kafka_local import free_port
from hfloop.sdk import FeedbackClient
from hfloop.sdk import events as ev


@pytest.fixture
def ready_settings(settings_factory):
    settings = settings_factory()
    create_topics(settings)
    return settings


def test_log_interactions_and_the_per_call_path_round_trip(ready_settings, unique):
    tenant = unique("t")
    with FeedbackClient(tenant, settings=ready_settings) as fb:
        one = fb.log_interaction("a", "q0", "r0", latency_ms=3, metadata={"k": "v"})
        many = fb.log_interactions(
            [
                {"agent_id": "a", "prompt": f"q{i}", "response": f"r{i}", "prompt_tokens": i}
                for i in range(1, 300)
            ]
        )
        fb.log_interaction("a", "q-wait", "r", wait=True)  # acknowledged on return
    got = consume_all(ready_settings, ["hfloop.interactions"], Serde(), expect=301, group=unique("g"),
                      predicate=lambda r: r["tenant_id"] == tenant)  # fmt: skip
    by_id = {r["interaction_id"]: r for _, r in got}
    assert len(got) == 301 and set(by_id) >= {one, *many}
    assert by_id[one]["latency_ms"] == 3.0 and by_id[one]["metadata"] == {"k": "v"}
    assert [by_id[i]["prompt_tokens"] for i in many] == list(range(1, 300))
    assert by_id[many[7]]["messages"] == [{"role": "user", "content": "q8"}]


def test_a_bad_item_sends_none_of_the_batch(ready_settings):
    fb = FeedbackClient("t", settings=ready_settings)
    with pytest.raises(EncodeError, match="response"):
        fb.log_interactions([{"agent_id": "a", "prompt": "q", "response": "r"},
                             {"agent_id": "a", "prompt": "q", "response": 42}])  # fmt: skip
    assert len(fb._records) == 0
    fb.flush()


@pytest.mark.parametrize("path", ["per_call", "batch", "wait"])
def test_delivery_failure_surfaces_on_the_fast_path(settings_factory, path):
    """No broker at all: every record times out; flush (or the waiting call) raises, on_error hears each."""
    settings = settings_factory(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    fb = FeedbackClient("t", settings=settings, **{"message.timeout.ms": 1500})
    assert fb._records.errors_only
    if path == "wait":
        with pytest.raises(DeliveryError):
            fb.log_interaction("a", "q", "r", wait=True)
        return
    if path == "per_call":
        for _ in range(RecordProducer.POLL_EVERY + 3):  # more than one bulk poll
            fb.log_interaction("a", "q", "r")
    else:
        fb.log_interactions([{"agent_id": "a", "prompt": "q", "response": "r"}] * 40)
    with pytest.raises(DeliveryError) as err:
        fb.flush(timeout=15)
    assert len(err.value.errors) == (RecordProducer.POLL_EVERY + 3 if path == "per_call" else 40)


def test_on_error_hears_every_failed_record(settings_factory):
    seen: list[str] = []
    settings = settings_factory(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    fb = FeedbackClient("t", settings=settings, on_error=lambda desc, _err: seen.append(desc),
                        **{"message.timeout.ms": 1500})  # fmt: skip
    fb.log_interactions([{"agent_id": "a", "prompt": "q", "response": "r"}] * 5)
    fb.log_interaction("a", "q", "r")
    fb.flush(timeout=15)  # reported to on_error instead of raised
    assert len(seen) == 6 and all("hfloop.interactions" in d for d in seen)


def test_ids_are_unique_across_threads_and_forks():
    ids: list[str] = []
    lock = threading.Lock()

    def make() -> None:
        mine = [ev._id() for _ in range(20_000)]
        with lock:
            ids.extend(mine)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child draws a fresh random half: no id repeats the parent's
        os.write(w, "".join(ev._id() for _ in range(100)).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    os.close(w)
    child = os.read(r, 1 << 16).decode()
    ids += [child[i : i + 32] for i in range(0, len(child), 32)]
    assert len(ids) == 80_100 and len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
