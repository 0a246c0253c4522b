"""HTTP routes of the fast loop, as router factories for ``httpcommon.create_app``.

    POST /v1/memory/search   {text | vector, agent_id, k, threshold, user_id?, route?}
    POST /v1/memory/retract  {event_id | annotator_id}
    GET  /v1/routing/{agent_id}
    GET  /v1/retrieval/weights?doc_ids=a,b

The tenant always comes from the API key, never from the body. The routes are plain ``def``
so FastAPI runs them in its thread pool: embedding a query is CPU work.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hfloop.config import Settings
from hfloop.httpcommon import Metrics, RouterFactory, Tenant
from hfloop.memory import logic
from hfloop.memory.service import MemoryService

MAX_TEXT = 20_000
MAX_DOC_IDS = 1000
RESULT_FIELDS = ("memory_id", "situation", "corrected_answer", "original_answer", "agent_id", "route",
                 "annotator_id", "trust", "visibility", "source_event_ids")  # fmt: skip


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, min_length=1, max_length=MAX_TEXT, description="The new request's text.")
    vector: list[float] | None = Field(
        None, description="Or the caller's own embedding (same space, 384 floats)."
    )
    agent_id: str = Field(..., min_length=1, max_length=200)
    k: int = Field(5, ge=1, le=1000)
    threshold: float = Field(0.5, ge=-1.0, le=1.0, description="Smallest cosine similarity returned.")
    user_id: str | None = Field(
        None, min_length=1, max_length=200, description="Also return this user's private entries."
    )
    route: str | None = Field(None, min_length=1, max_length=200, description="Only entries of this route.")

    @model_validator(mode="after")
    def _text_or_vector(self) -> SearchRequest:
        if self.text is None and self.vector is None:
            raise ValueError("send text or vector")
        if self.vector is not None and not all(math.isfinite(x) for x in self.vector):
            raise ValueError("vector must hold finite numbers")
        return self


class RetractRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str | None = Field(None, min_length=1, max_length=200)
    annotator_id: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one(self) -> RetractRequest:
        if not (self.event_id or self.annotator_id):
            raise ValueError("send event_id or annotator_id")
        return self


def _bad(field: str, message: str) -> HTTPException:
    return HTTPException(422, f"{field}: {message}")


def memory_router(service: MemoryService) -> RouterFactory:
    settings = service.settings

    def factory(auth: Callable[..., Tenant], _metrics: Metrics) -> APIRouter:
        r = APIRouter(tags=["memory"])

        @r.post("/v1/memory/search")
        def search(req: SearchRequest, tenant: Tenant = Depends(auth)) -> dict[str, Any]:
            if req.k > settings.memory_max_k:
                raise _bad("k", f"at most {settings.memory_max_k}")
            if req.vector is not None:
                if len(req.vector) != service.embedder.dim:
                    raise _bad("vector", f"needs {service.embedder.dim} numbers, got {len(req.vector)}")
                vec = req.vector
            else:
                assert req.text is not None
                vec = service.embedder.embed([req.text])[0].tolist()
            hits = service.store.search(
                str(tenant), req.agent_id, vec, req.k, req.threshold, req.user_id, req.route
            )
            return {"results": [{**{f: h.payload.get(f) for f in RESULT_FIELDS}, "score": round(h.score, 6)}
                                for h in hits]}  # fmt: skip

        @r.post("/v1/memory/retract")
        def retract(req: RetractRequest, tenant: Tenant = Depends(auth)) -> dict[str, Any]:
            return service.retract(str(tenant), event_id=req.event_id, annotator_id=req.annotator_id)

        return r

    return factory


def routing_router(service: MemoryService) -> RouterFactory:
    def factory(auth: Callable[..., Tenant], _metrics: Metrics) -> APIRouter:
        r = APIRouter(tags=["routing"])

        @r.get("/v1/routing/{agent_id}")
        def routing(agent_id: str, tenant: Tenant = Depends(auth)) -> dict[str, Any]:
            if not 0 < len(agent_id) <= 200:
                raise _bad("agent_id", "1 to 200 characters")
            routes = {}
            for _, s in service.store.find("routing", str(tenant), agent_id=agent_id):
                if s.get("agent_id") != agent_id:
                    continue
                routes[s["route"]] = {"action": s["action"], "target": s.get("target"),
                                      "bad_rate": round(float(s["bad_rate"]), 6),
                                      "evidence": round(float(s["evidence"]), 6), "updated_at": s.get("updated_at")}  # fmt: skip
            return {"agent_id": agent_id, "routes": routes}

        @r.get("/v1/retrieval/weights")
        def weights(doc_ids: str = Query(..., max_length=200_000, description="Comma-separated document ids."),
                    tenant: Tenant = Depends(auth)) -> dict[str, Any]:  # fmt: skip
            ids = [d.strip() for d in doc_ids.split(",") if d.strip()]
            if not ids:
                raise _bad("doc_ids", "no document id")
            if len(ids) > MAX_DOC_IDS:
                raise _bad("doc_ids", f"at most {MAX_DOC_IDS} ids")
            pids = {logic.point_id("doc", str(tenant), d): d for d in ids}
            found = service.store.get("docweights", list(pids))
            out = {d: 1.0 for d in ids}
            for pid, s in found.items():
                if s.get("tenant_id") == str(tenant):
                    out[pids[pid]] = round(float(s["weight"]), 6)
            return {"weights": out}

        return r

    return factory


def routers(service: MemoryService) -> list[RouterFactory]:
    """Every router of this wing, bound to one service (the lead's app adds analytics)."""
    return [memory_router(service), routing_router(service)]


def create_memory_app(settings: Settings, service: MemoryService) -> Any:
    from hfloop.httpcommon import create_app

    async def health() -> dict[str, Any]:
        return {"memory_points": service.store.count_entries(), "memory_worker_error": repr(service.error)
                if service.error else None}  # fmt: skip

    return create_app(settings, routers(service), health=health)


def serve(host: str | None = None, port: int | None = None) -> None:
    """`hfloop api`. With an embedded Qdrant folder (no HFLOOP_QDRANT_URL) this process is the
    folder's only user, so it also runs the memory worker; with a server it serves only."""
    from hfloop.config import get_settings
    from hfloop.httpcommon import serve as run

    settings = get_settings()
    service = MemoryService(settings)
    embedded = settings.qdrant_url is None
    if embedded:
        service.start()
    try:
        run(create_memory_app(settings, service), settings, host=host, port=port)
    finally:
        service.stop()
