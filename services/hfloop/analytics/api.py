"""POST /v1/analytics/query: read-only, tenant-scoped SQL (ad hoc or a named query).

    {"sql": "SELECT ...", "format": "json"}                -> {"columns", "rows", "truncated"}
    {"name": "feedback_rates", "params": {"from_ms": 0}}   -> the same, for a named query
    GET /v1/analytics/queries                              -> the named queries and their params

Refusals (writes, DDL, SETTINGS, other tenants' or system tables, file/URL functions) are 403
with the reason; ClickHouse errors are 400 with ClickHouse's message.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel, Field, model_validator

from hfloop.analytics import guard, queries
from hfloop.analytics.querying import QueryError, QueryResult, QueryService
from hfloop.config import Settings
from hfloop.httpcommon import Metrics, Tenant


class QueryRequest(BaseModel):
    sql: str | None = Field(None, description="One SELECT (or WITH ... SELECT) over the tenant's tables.")
    name: str | None = Field(None, description="A named query instead of sql (GET /v1/analytics/queries).")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Query parameters ({name:Type} in the SQL)."
    )
    format: Literal["json", "csv"] = "json"
    max_rows: int | None = Field(None, ge=1, description="Fewer rows than the server's cap.")

    @model_validator(mode="after")
    def _one_of(self) -> QueryRequest:
        if (self.sql is None) == (self.name is None):
            raise ValueError("send exactly one of 'sql' and 'name'")
        return self


def to_csv(result: QueryResult) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(result.columns)
    w.writerows(result.rows)
    return buf.getvalue()


def router_factory(settings: Settings, client: Any) -> Callable[[Callable[..., Tenant], Metrics], APIRouter]:
    """A factory for :func:`hfloop.httpcommon.create_app`, over the (shared) client."""
    service = QueryService(settings, client)

    def factory(auth: Callable[..., Tenant], _metrics: Metrics) -> APIRouter:
        router = APIRouter(prefix="/v1/analytics", tags=["analytics"])

        @router.post("/query")
        async def query(body: QueryRequest, tenant: Tenant = Depends(auth)) -> Response:
            cap = min(body.max_rows or settings.analytics_max_rows, settings.analytics_max_rows)
            try:
                if body.name is not None:
                    result = await asyncio.to_thread(service.run_named, tenant, body.name, body.params, cap)
                else:
                    assert body.sql is not None
                    result = await asyncio.to_thread(
                        service.run_sql, tenant, body.sql, body.params or None, cap
                    )
            except guard.Refused as exc:
                raise HTTPException(403, f"refused: {exc.reason}") from exc
            except (QueryError, ValueError, KeyError) as exc:
                raise HTTPException(400, str(exc).strip("'\"")) from exc
            if body.format == "csv":
                return Response(to_csv(result), media_type="text/csv",
                                headers={"X-Truncated": str(result.truncated).lower()})  # fmt: skip
            return Response(orjson.dumps(result.as_dict()), media_type="application/json")

        @router.get("/queries")
        async def named(_tenant: Tenant = Depends(auth)) -> dict[str, Any]:
            return {"queries": [q.describe() for q in queries.catalog().values()]}

        return router

    factory.service = service  # type: ignore[attr-defined]
    return factory
