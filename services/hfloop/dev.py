"""Composition root: every hfloop wing in one process on embedded stores (``hfloop dev``).

qdrant-client local mode and chDB lock their folders, so the memory worker and the lookup
API share one MemoryService, and the analytics sink and the query route share one chDB
client. Kafka is the configured cluster, or a local broker started here when
``HFLOOP_KAFKA_BOOTSTRAP`` is unset. The HTTP app (gateway + lookup + analytics) runs in a
uvicorn server thread; the stream processors run in their own thread and event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from hfloop.config import Settings
from hfloop.events.kafka import create_topics
from hfloop.events.serde import default_serde
from hfloop.events.topics import INPUT_TOPICS, LABELS, PREFERENCES
from hfloop.kafka_local import LocalKafka, port_open

log = logging.getLogger(__name__)


@dataclass
class DevStack:
    settings: Settings
    with_stream: bool = True
    with_memory: bool = True
    with_analytics: bool = True
    broker: LocalKafka | None = None
    services: dict[str, Any] = field(default_factory=dict)
    _server: Any = None
    _server_thread: threading.Thread | None = None
    _last: tuple[float, int] | None = None
    _clickhouse: Any = None

    # --- lifecycle -----------------------------------------------------------------------
    def start(self, http: bool = True) -> DevStack:
        s = self.settings
        if s.kafka_bootstrap is None:
            self.broker = LocalKafka.from_settings(s)
            self.broker.start()
        create_topics(s)
        serde = default_serde()
        routers: list[Any] = []
        from hfloop.gateway.app import AckingProducer, events_router

        self.services["gateway"] = producer = AckingProducer(s)
        routers.append(events_router(s, serde, producer))
        if self.with_memory:
            from hfloop.memory.api import routers as memory_routers
            from hfloop.memory.service import MemoryService

            memory = MemoryService(s, serde=serde)
            memory.start()
            self.services["memory"] = memory
            routers.extend(memory_routers(memory))
        if self.with_analytics:
            from hfloop.analytics import store
            from hfloop.analytics.api import router_factory
            from hfloop.analytics.sink import AnalyticsService

            client = store.connect(s)  # one chDB engine for the sink and the query route
            self._clickhouse = client
            store.migrate(client, s.analytics_database)
            analytics = AnalyticsService(s, client=client, serde=serde)
            analytics.start()
            self.services["analytics"] = analytics
            query_factory = router_factory(s, client)
            self.services["analytics-queries"] = query_factory.service  # type: ignore[attr-defined]
            routers.append(query_factory)
        if self.with_stream:
            from hfloop.stream.app import StreamService

            stream = StreamService(s)
            stream.start()
            self.services["stream"] = stream
        if http:
            self._serve(routers)
        return self

    def _serve(self, routers: list[Any]) -> None:
        import uvicorn

        from hfloop.httpcommon import create_app

        app = create_app(self.settings, routers, title="hfloop dev", health=self._health)
        config = uvicorn.Config(app, host=self.settings.http_host, port=self.settings.http_port, log_level="warning",
                                access_log=False, lifespan="off")  # fmt: skip
        self._server = uvicorn.Server(config)
        self._server_thread = threading.Thread(target=self._server.run, name="hfloop-http", daemon=True)
        self._server_thread.start()
        deadline = time.monotonic() + 30
        while not port_open(self.settings.http_port, "127.0.0.1"):
            if time.monotonic() > deadline or not self._server_thread.is_alive():
                raise RuntimeError(f"HTTP server did not start on port {self.settings.http_port}")
            time.sleep(0.1)

    async def _health(self) -> dict[str, Any]:
        return {"services": {name: _alive(svc) for name, svc in self.services.items()}}

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            if self._server_thread:
                self._server_thread.join(10)
        for name in ("stream", "memory", "analytics", "analytics-queries", "gateway"):
            svc = self.services.pop(name, None)
            if svc is None:
                continue
            try:
                (svc.stop if hasattr(svc, "stop") else svc.close)()
            except Exception:  # keep stopping the others; report what failed
                log.exception("stopping %s failed", name)
        if self._clickhouse is not None:
            # chDB holds one folder per process until its last client closes: close ours, so the
            # process (a test run, a notebook) can open another folder after this stack.
            self._clickhouse.close()
            self._clickhouse = None
        if self.broker is not None:
            self.broker.stop()

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- observation ---------------------------------------------------------------------
    def failures(self) -> dict[str, str]:
        """Services whose background loop died, with the error: never hidden."""
        out = {}
        for name, svc in self.services.items():
            err = getattr(svc, "error", None)
            if err is not None:
                out[name] = repr(err)
        return out

    def status(self) -> dict[str, Any]:
        s = self.settings
        ends = _end_offsets(s, [*INPUT_TOPICS, LABELS, PREFERENCES])
        inputs = sum(v for (t, _), v in ends.items() if t in INPUT_TOPICS)
        now = time.monotonic()
        rate = 0.0
        if self._last is not None and now > self._last[0]:
            rate = (inputs - self._last[1]) / (now - self._last[0])
        self._last = (now, inputs)
        memory = self.services.get("memory")
        points = memory.store.count() if memory is not None and hasattr(memory.store, "count") else None
        return {
            "events": inputs,
            "events_s": round(rate, 1),
            "labels": sum(v for (t, _), v in ends.items() if t == LABELS),
            "pairs": sum(v for (t, _), v in ends.items() if t == PREFERENCES),
            "memory_points": points,
            "lag": consumer_lag(s),
            "failed": self.failures(),
        }


def _alive(svc: Any) -> str:
    return "failed" if getattr(svc, "error", None) is not None else "ok"


def _end_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    c = Consumer(settings.consumer_config("hfloop-dev-status"))
    try:
        md = c.list_topics(timeout=10).topics
        out = {}
        for t in topics:
            for p in md.get(t).partitions if t in md else []:
                out[(t, p)] = c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
        return out
    finally:
        c.close()


def consumer_lag(settings: Settings) -> dict[str, int]:
    """Records not yet committed, per consumer group (all groups of the cluster)."""
    admin = AdminClient(settings.kafka_client_config())
    groups = [g.group_id for g in admin.list_consumer_groups().result(10).valid]
    out: dict[str, int] = {}
    if not groups:
        return out
    from confluent_kafka import ConsumerGroupTopicPartitions

    ends_cache: dict[tuple[str, int], int] = {}
    probe = Consumer(settings.consumer_config("hfloop-dev-status"))
    try:
        for g in groups:
            if g.startswith("hfloop-dev-status") or g == "offsets-probe":
                continue
            futs = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)])
            lag = 0
            for tp in futs[g].result(10).topic_partitions:
                if tp.offset < 0:
                    continue
                key = (tp.topic, tp.partition)
                if key not in ends_cache:
                    ends_cache[key] = probe.get_watermark_offsets(TopicPartition(*key), timeout=10)[1]
                lag += max(0, ends_cache[key] - tp.offset)
            out[g] = lag
    finally:
        probe.close()
    return out
