"""Where CLI queries run: through the running API (embedded chDB) or straight to ClickHouse.

chDB locks its folder to one process, so while ``hfloop dev`` runs, other processes reach the
data only through its HTTP API (settings.api_url + settings.api_key). With a server DSN the
CLI may open its own client; it still goes through the tenant views and checks.
"""

from __future__ import annotations

from typing import Any, Protocol

from hfloop.analytics import store
from hfloop.analytics.querying import QueryResult, QueryService
from hfloop.config import Settings


class Executor(Protocol):
    def sql(self, sql: str, params: dict[str, Any] | None = None) -> QueryResult: ...
    def named(self, name: str, params: dict[str, Any] | None = None) -> QueryResult: ...
    def close(self) -> None: ...


class RemoteExecutor:
    """POST /v1/analytics/query on the running API; the key decides the tenant."""

    def __init__(self, api_url: str, api_key: str | None, timeout: float = 120.0) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=api_url, headers=headers, timeout=timeout)

    def _post(self, body: dict[str, Any]) -> QueryResult:
        r = self._http.post("/v1/analytics/query", json=body)
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise RuntimeError(f"HTTP {r.status_code}: {detail}")
        d = r.json()
        return QueryResult(d["columns"], d["rows"], d["truncated"])

    def sql(self, sql: str, params: dict[str, Any] | None = None) -> QueryResult:
        return self._post({"sql": sql, "params": params or {}})

    def named(self, name: str, params: dict[str, Any] | None = None) -> QueryResult:
        return self._post({"name": name, "params": params or {}})

    def close(self) -> None:
        self._http.close()


class DirectExecutor:
    """A client of our own (server DSN, or chDB when nothing else holds the folder)."""

    def __init__(self, settings: Settings, tenant: str, client: Any | None = None) -> None:
        self._own = client is None
        self.client = client if client is not None else store.connect(settings)
        self.service = QueryService(settings, self.client)
        self.tenant = tenant

    def sql(self, sql: str, params: dict[str, Any] | None = None) -> QueryResult:
        return self.service.run_sql(self.tenant, sql, params)

    def named(self, name: str, params: dict[str, Any] | None = None) -> QueryResult:
        return self.service.run_named(self.tenant, name, params)

    def close(self) -> None:
        self.service.close()
        if self._own:
            self.client.close()


def default_tenant(settings: Settings) -> str | None:
    key = settings.api_key.get_secret_value() if settings.api_key else None
    return settings.tenants_by_key().get(key) if key else None


def executor_for(settings: Settings, tenant: str | None = None) -> Executor:
    """Embedded store: the running API. Server DSN: directly, as ``tenant`` (or the key's)."""
    if store.is_embedded(settings):
        if tenant is not None:
            raise ValueError("--tenant needs a ClickHouse server DSN; with embedded chDB the API key decides")
        return RemoteExecutor(
            settings.api_url, settings.api_key.get_secret_value() if settings.api_key else None
        )
    who = tenant or default_tenant(settings)
    if not who:
        raise ValueError("say which tenant: --tenant, or HFLOOP_API_KEY with a key listed in HFLOOP_API_KEYS")
    return DirectExecutor(settings, who)
