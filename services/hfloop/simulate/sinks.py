"""Where the world's events go: Kafka through the SDK, or the HTTP gateway.

An emission is a ``FeedbackClient`` call (method name + keyword arguments). The SDK sink
makes exactly that call; the HTTP sink builds the same record with ``hfloop.sdk.events`` and
posts it as JSON to ``POST /v1/events`` in batches, so both paths publish identical events.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from hfloop.sdk import events as ev


class EventSink(Protocol):
    def emit(self, method: str, kwargs: Mapping[str, Any]) -> None: ...

    def tick(self) -> None:
        """Called often by the driver: a chance to send what is buffered."""

    def flush(self) -> None: ...

    def close(self) -> None: ...


class SdkSink:
    """Publishes through ``FeedbackClient`` (Kafka, idempotent producer)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def emit(self, method: str, kwargs: Mapping[str, Any]) -> None:
        getattr(self.client, method)(**kwargs)

    def tick(self) -> None:
        pass

    def flush(self) -> None:
        self.client.flush()

    def close(self) -> None:
        self.client.flush()


def _rating(kw: dict[str, Any]) -> dict[str, Any]:
    if kw.get("thumbs_up") is not None:
        return {"scale": "THUMBS", "value": 1.0 if kw.pop("thumbs_up") else -1.0}
    if kw.get("stars") is not None:
        return {"scale": "STARS5", "value": float(kw.pop("stars"))}
    return {"scale": "SCORE", "value": float(kw.pop("score"))}


def to_event_json(method: str, kwargs: Mapping[str, Any], tenant_id: str = "") -> dict[str, Any]:
    """The gateway JSON of a ``FeedbackClient`` call (``type`` + the record's fields).

    ``tenant_id`` is left out: the gateway takes it from the API key."""
    kw = dict(kwargs)
    t = tenant_id or "_"
    if method == "log_interaction":
        rec, kind = ev.interaction(tenant_id=t, **kw), "interaction"
    elif method == "signal":
        rec, kind = ev.outcome(tenant_id=t, **kw), "outcome"
    else:
        iid, who = kw.pop("interaction_id"), kw.pop("annotator_id")
        if method == "rate":
            rec = ev.feedback(
                tenant_id=t, interaction_id=iid, kind="RATING", annotator_id=who, rating=_rating(kw), **kw
            )
        elif method == "correct":
            rec = ev.feedback(
                tenant_id=t,
                interaction_id=iid,
                kind="CORRECTION",
                annotator_id=who,
                correction=kw.pop("corrected"),
                **kw,
            )
        elif method == "demonstrate":
            rec = ev.feedback(
                tenant_id=t,
                interaction_id=iid,
                kind="DEMONSTRATION",
                annotator_id=who,
                demonstration=kw.pop("answer"),
                **kw,
            )
        elif method == "prefer":
            comp = {
                "response_a": kw.pop("response_a"),
                "response_b": kw.pop("response_b"),
                "choice": str(kw.pop("choice")).upper(),
                "strength": kw.pop("strength", None),
            }
            rec = ev.feedback(
                tenant_id=t, interaction_id=iid, kind="PREFERENCE", annotator_id=who, comparison=comp, **kw
            )
        else:
            raise ValueError(f"unknown emission {method!r}")
        kind = "feedback"
    if not tenant_id:
        rec.pop("tenant_id")
    return {"type": kind, **rec}


class HttpSink:
    """Posts JSON events to the gateway in batches (it answers after Kafka acknowledged)."""

    def __init__(self, client: Any, *, batch: int = 200, max_wait_s: float = 0.2) -> None:
        self.client = client
        self.batch = batch
        self.max_wait_s = max_wait_s
        self.sent = 0
        self._buf: list[dict[str, Any]] = []
        self._since = time.monotonic()

    def emit(self, method: str, kwargs: Mapping[str, Any]) -> None:
        if not self._buf:
            self._since = time.monotonic()
        self._buf.append(to_event_json(method, kwargs))
        if len(self._buf) >= self.batch:
            self._post()

    def tick(self) -> None:
        if self._buf and time.monotonic() - self._since >= self.max_wait_s:
            self._post()

    def _post(self) -> None:
        buf, self._buf = self._buf, []
        self.sent += len(self.client.send_events(buf))

    def flush(self) -> None:
        if self._buf:
            self._post()

    def close(self) -> None:
        self.flush()


class ListSink:
    """Keeps emissions in memory (tests, dry runs)."""

    def __init__(self) -> None:
        self.emitted: list[tuple[str, dict[str, Any]]] = []
        self.flushes = 0

    def emit(self, method: str, kwargs: Mapping[str, Any]) -> None:
        self.emitted.append((method, dict(kwargs)))

    def tick(self) -> None:
        pass

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        self.flush()
