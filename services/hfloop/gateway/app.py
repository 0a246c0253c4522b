"""HTTP ingestion: ``POST /v1/events`` validates, produces to Kafka, answers after the ack."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import orjson
from confluent_kafka import KafkaError, Producer
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from hfloop.config import Settings, get_settings
from hfloop.events.serde import Serde, default_serde
from hfloop.gateway.ingest import BatchTooLarge, EventError, prepare_batch
from hfloop.httpcommon import Metrics, Tenant, create_app
from hfloop.httpcommon import serve as serve_http


def _resolve(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


class AckingProducer:
    """Produces and lets coroutines await the broker's acknowledgement."""

    def __init__(self, settings: Settings) -> None:
        self._producer = Producer(settings.producer_config(**{"linger.ms": 2}))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="gateway-producer-poll", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.02)

    async def send_all(self, items: list[tuple[str, bytes, bytes]]) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        pending = len(items)
        errors: list[str] = []
        lock = threading.Lock()

        def ack(err: KafkaError | None, msg: Any) -> None:
            nonlocal pending
            with lock:
                if err is not None:
                    errors.append(f"{msg.topic()}: {err.str()}")
                pending -= 1
                last = pending == 0
            if last:
                loop.call_soon_threadsafe(_resolve, done)

        for topic, key, value in items:
            while True:
                try:
                    self._producer.produce(topic, value, key, on_delivery=ack)
                    break
                except BufferError:
                    await asyncio.sleep(0.01)
        await done
        if errors:
            raise HTTPException(503, f"Kafka did not acknowledge {len(errors)} event(s): {errors[0]}")

    def close(self) -> None:
        self._producer.flush(30)
        self._stop.set()


def events_router(settings: Settings, serde: Serde, producer: AckingProducer) -> Callable[..., APIRouter]:
    def factory(auth: Callable[..., Tenant], metrics: Metrics) -> APIRouter:
        from prometheus_client import Counter

        accepted = Counter(
            "hfloop_gateway_events_total", "Events accepted", ["type"], registry=metrics.registry
        )
        rejected = Counter(
            "hfloop_gateway_rejected_total", "Requests rejected", ["reason"], registry=metrics.registry
        )
        router = APIRouter(tags=["events"])

        @router.post(
            "/v1/events",
            summary="Publish one event or a batch",
            description=(
                'Body: one event object, a JSON array of events, or {"events": [...]}. Each event has '
                "`type` (interaction | feedback | outcome) and the fields of its Avro schema. Answers after "
                "Kafka acknowledged every event; a batch is all-or-nothing."
            ),
        )
        async def post_events(request: Request, tenant: Tenant = Depends(auth)) -> JSONResponse:
            raw = await request.body()
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                rejected.labels("invalid_json").inc()
                raise HTTPException(400, f"body is not valid JSON: {exc}") from None
            try:
                encoded = prepare_batch(serde, body, tenant, settings.max_batch)
            except BatchTooLarge as exc:
                rejected.labels("batch_too_large").inc()
                raise HTTPException(413, str(exc)) from None
            except EventError as exc:
                rejected.labels("invalid_event").inc()
                return JSONResponse(
                    {
                        "detail": str(exc),
                        "errors": [{"index": exc.index, "field": exc.field, "message": exc.message}],
                    },
                    status_code=422,
                )
            await producer.send_all([(e.topic, e.key, e.value) for e in encoded])
            for e in encoded:
                accepted.labels(e.topic.rsplit(".", 1)[-1]).inc()
            return JSONResponse({"accepted": len(encoded), "event_ids": [e.event_id for e in encoded]})

        return router

    return factory


def build_app(settings: Settings | None = None, serde: Serde | None = None) -> Any:
    settings = settings or get_settings()
    producer = AckingProducer(settings)
    app = create_app(
        settings, [events_router(settings, serde or default_serde(), producer)], title="hfloop gateway"
    )
    app.router.on_shutdown.append(producer.close)
    return app


def serve(host: str | None = None, port: int | None = None) -> None:
    settings = get_settings()
    serve_http(build_app(settings), settings, host, port)
