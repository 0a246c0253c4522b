"""HfloopClient: the HTTP side agents use — lookups before answering, events from anywhere.

client = HfloopClient("http://127.0.0.1:8787", api_key="k1")
hits = client.memory.search("how do I reset my password", agent_id="support", k=3)
rules = client.routing("support")
weights = client.retrieval_weights(["doc-1", "doc-2"])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from hfloop.config import get_settings


class ApiError(RuntimeError):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class _Memory:
    def __init__(self, client: HfloopClient) -> None:
        self._c = client

    def search(self, text: str | None = None, *, agent_id: str, k: int = 5, threshold: float = 0.5,
               vector: Sequence[float] | None = None, user_id: str | None = None,
               route: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
        """Corrections relevant to a new request, best first, each with score and memory_id."""
        body: dict[str, Any] = {"agent_id": agent_id, "k": k, "threshold": threshold}
        if text is not None:
            body["text"] = text
        if vector is not None:
            body["vector"] = list(vector)
        if user_id is not None:
            body["user_id"] = user_id
        if route is not None:
            body["route"] = route
        return list(self._c._post("/v1/memory/search", body)["results"])

    def retract(self, *, event_id: str | None = None, annotator_id: str | None = None) -> dict[str, Any]:
        body = {k: v for k, v in {"event_id": event_id, "annotator_id": annotator_id}.items() if v}
        return dict(self._c._post("/v1/memory/retract", body))


class HfloopClient:
    def __init__(
        self, base_url: str | None = None, api_key: str | None = None, timeout: float = 10.0
    ) -> None:
        settings = get_settings()
        key = api_key or (settings.api_key.get_secret_value() if settings.api_key else None)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=base_url or settings.api_url, headers=headers, timeout=timeout)
        self.memory = _Memory(self)

    def _check(self, r: httpx.Response) -> Any:
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise ApiError(r.status_code, detail)
        return r.json()

    def _post(self, path: str, body: Any) -> Any:
        return self._check(self._http.post(path, json=body))

    def _get(self, path: str, **params: Any) -> Any:
        return self._check(self._http.get(path, params=params))

    def send_events(self, events: Sequence[dict[str, Any]]) -> list[str]:
        """POST /v1/events; returns the event ids once Kafka acknowledged them."""
        return list(self._post("/v1/events", {"events": list(events)})["event_ids"])

    def routing(self, agent_id: str) -> dict[str, Any]:
        return dict(self._get(f"/v1/routing/{agent_id}"))

    def retrieval_weights(self, doc_ids: Sequence[str]) -> dict[str, float]:
        return dict(self._get("/v1/retrieval/weights", doc_ids=",".join(doc_ids))["weights"])

    def query(self, sql: str) -> dict[str, Any]:
        return dict(self._post("/v1/analytics/query", {"sql": sql}))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HfloopClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
