"""What every hfloop HTTP surface shares: bearer-key auth (a key belongs to one tenant),
body-size limits, Prometheus metrics, health, and the app factory that mounts the wings'
routers into one FastAPI app.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from hfloop.config import Settings


class Tenant(str):
    """The tenant a request's key belongs to."""


class Auth:
    """Bearer-key authentication. Keys are compared in constant time."""

    def __init__(self, settings: Settings) -> None:
        self.keys = settings.tenants_by_key()

    def __call__(self, request: Request) -> Tenant:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key:
            raise HTTPException(401, "missing bearer key: send 'Authorization: Bearer <key>'",
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        for known, tenant in self.keys.items():
            if hmac.compare_digest(known.encode(), key.strip().encode()):
                return Tenant(tenant)
        raise HTTPException(401, "unknown API key", headers={"WWW-Authenticate": "Bearer"})


class BodyLimit:
    """Answers 413 before reading a body larger than ``max_bytes`` (also when chunked)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = f'{{"detail":"request body larger than {self.max_bytes} bytes"}}'.encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("hfloop_http_requests_total", "HTTP requests", ["route", "status"],
                                registry=self.registry)  # fmt: skip
        self.latency = Histogram("hfloop_http_request_seconds", "HTTP latency", ["route"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))  # fmt: skip


RouterFactory = Callable[[Callable[..., Tenant], Metrics], APIRouter]


def create_app(settings: Settings, routers: Iterable[RouterFactory], title: str = "hfloop",
               health: Callable[[], Awaitable[dict[str, Any]]] | None = None) -> FastAPI:  # fmt: skip
    """One FastAPI app: /healthz, /metrics (auth) and the given wings' routers."""
    auth = Auth(settings)
    metrics = Metrics()
    app = FastAPI(title=title, version="0.1.0", docs_url="/docs", openapi_url="/openapi.json")
    app.state.metrics = metrics
    app.state.settings = settings

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        metrics.requests.labels(name, str(response.status_code)).inc()
        metrics.latency.labels(name).observe(time.perf_counter() - start)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors[:10])
        return JSONResponse({"detail": summary, "errors": errors[:50]}, status_code=422)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, Any]:
        extra = await health() if health else {}
        return {"status": "ok", **extra}

    @app.get("/metrics", tags=["ops"])
    async def prometheus(_tenant: Tenant = Depends(auth)) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    for factory in routers:
        app.include_router(factory(auth, metrics))
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app


def serve(app: Any, settings: Settings, host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    uvicorn.run(app, host=host or settings.http_host, port=port or settings.http_port, log_level="info",
                access_log=False)  # fmt: skip
