"""The simulator publishing for real: SDK into the session's Kafka broker, and HTTP through the gateway.

Lookups are switched off here (``lookups=False``: the agent asks nothing, the open loop);
the lookup API and the closed loop are covered by the end-to-end test of the whole stack.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer

from hfloop.config import Settings
from hfloop.events.kafka import create_topics
from hfloop.events.serde import default_serde
from hfloop.events.topics import FEEDBACK, INTERACTIONS, OUTCOMES
from hfloop.kafka_local import free_port
from hfloop.simulate import SimulationConfig, World, WorldConfig, run_simulation

pytestmark = pytest.mark.timeout(300)


def _consume(
    settings: Settings, tenant: str, expect: int, group: str, timeout: float = 60.0
) -> list[tuple[str, dict]]:
    consumer = Consumer(settings.consumer_config(group))
    consumer.subscribe([INTERACTIONS, FEEDBACK, OUTCOMES])
    serde = default_serde()
    got: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < expect and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            name, rec = serde.decode(msg.value())
            if rec["tenant_id"] == tenant:
                got.append((name, rec))
    finally:
        consumer.close()
    return got


def _check(got: list[tuple[str, dict]], summary: dict[str, Any]) -> None:
    kinds: Counter[str] = Counter()
    for name, rec in got:
        kinds["interaction" if name == "Interaction" else f"{name.lower()}.{rec['kind']}"] += 1
    assert dict(kinds) == summary["events"]  # every event the world produced, once
    interactions = {rec["interaction_id"]: rec for name, rec in got if name == "Interaction"}
    assert len(interactions) == summary["interactions"]
    assert all(rec["interaction_id"] in interactions for name, rec in got if name != "Interaction")
    world = World()
    routes = {i.route for i in world.intents}
    docs = {d.id for i in world.intents for d in i.docs}
    for rec in interactions.values():
        assert rec["route"] in routes and rec["model_id"] == "small-model" and rec["agent_version"] == "1.4.0"
        assert set(rec["retrieved_doc_ids"]) <= docs and rec["memory_ids_used"] == []
        assert rec["messages"][0]["role"] == "system" and rec["messages"][-1]["role"] == "user"
        assert rec["user_id"].startswith("user-") and rec["session_id"]
    followups = [r for r in interactions.values() if r["parent_interaction_id"]]
    assert all(interactions[r["parent_interaction_id"]]["session_id"] == r["session_id"] for r in followups)
    pools = {rec["annotator_pool"] for name, rec in got if name == "Feedback" and rec["kind"] == "RATING"}
    assert {"experts", "vendor-a", "vendor-b"} & pools


def _config(**kw: Any) -> SimulationConfig:
    # delay_scale compresses the world's seconds of reaction time into a short test
    return SimulationConfig(seed=5, rate=40, duration_s=None, requests=60, lookups=False, drain_s=10,
                            progress=False, world=WorldConfig(seed=5, delay_scale=0.05), **kw)  # fmt: skip


def test_sdk_run_lands_on_the_topics(settings_factory, unique):
    settings = settings_factory()
    create_topics(settings)
    tenant = unique("sim")
    result = run_simulation(settings, _config(tenant=tenant, via="sdk"))
    summary = result.summary
    assert summary["conversations"] == 60 and summary["events"]["feedback.RATING"] > 0
    got = _consume(settings, tenant, summary["events_total"], unique("sim-read"))
    _check(got, summary)


@pytest.fixture
def gateway(settings_factory, unique) -> Iterator[tuple[Settings, str, str]]:
    """The real gateway app served by uvicorn on a free port (it answers after Kafka acknowledged)."""
    import uvicorn

    from hfloop.gateway.app import build_app

    tenant = unique("simhttp")
    settings = settings_factory(api_keys=f"sim-key:{tenant}")
    create_topics(settings)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(build_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "gateway did not start"
    yield settings, f"http://127.0.0.1:{port}", tenant
    server.should_exit = True
    thread.join(15)


def test_http_run_lands_on_the_topics(gateway, unique):
    settings, url, tenant = gateway
    result = run_simulation(settings, _config(via="http", api_url=url, api_key="sim-key", tenant="ignored"))
    summary = result.summary
    got = _consume(settings, tenant, summary["events_total"], unique("sim-read"))
    _check(got, summary)  # and the tenant came from the API key
