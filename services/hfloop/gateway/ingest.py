"""Turn untrusted JSON into validated, encoded input events (pure; no Kafka, no HTTP).

Each event names its ``type`` (interaction | feedback | outcome). The tenant comes from the
caller's API key; ``event_id``, ``event_time`` and the schema's defaults are filled in when
absent; timestamps may be epoch milliseconds or ISO-8601 strings. Validation is strict:
unknown fields, missing required fields and wrong types are errors naming the field.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hfloop.events.kafka import now_ms
from hfloop.events.schemas import event_time_problem
from hfloop.events.serde import EncodeError, Serde
from hfloop.events.topics import FEEDBACK, INTERACTIONS, OUTCOMES, key_of

TYPES = {"interaction": ("Interaction", INTERACTIONS), "feedback": ("Feedback", FEEDBACK),
         "outcome": ("Outcome", OUTCOMES)}  # fmt: skip
MAX_STRING = 200_000  # characters in any one text field
MAX_DEPTH = 8


class EventError(ValueError):
    def __init__(self, index: int | None, field: str, message: str) -> None:
        where = f"events[{index}]" if index is not None else "event"
        super().__init__(f"{where}.{field}: {message}" if field else f"{where}: {message}")
        self.index = index
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Encoded:
    topic: str
    key: bytes
    value: bytes
    event_id: str


def _ts(value: Any, field: str, index: int | None) -> int:
    if isinstance(value, bool):
        raise EventError(index, field, "expected epoch milliseconds or an ISO-8601 string")
    if isinstance(value, int):
        if value < 0:
            raise EventError(index, field, "timestamp must not be negative")
        if problem := event_time_problem(value):
            raise EventError(index, field, f"timestamp {problem}")
        return value
    if isinstance(value, str):
        try:
            ms = int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            raise EventError(index, field, f"not an ISO-8601 timestamp: {value[:40]!r}") from None
        if problem := event_time_problem(ms):
            raise EventError(index, field, f"timestamp {problem}")
        return ms
    raise EventError(index, field, "expected epoch milliseconds or an ISO-8601 string")


def _check_depth_and_size(value: Any, path: str, index: int | None, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise EventError(index, path, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise EventError(index, path, f"text longer than {MAX_STRING} characters")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_depth_and_size(v, f"{path}.{k}" if path else str(k), index, depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_depth_and_size(v, f"{path}[{i}]", index, depth + 1)


def prepare(serde: Serde, raw: Any, tenant: str, index: int | None = None) -> Encoded:
    """Validate and encode one JSON event for ``tenant``; raises EventError naming the field."""
    if not isinstance(raw, dict):
        raise EventError(index, "", f"expected a JSON object, got {type(raw).__name__}")
    _check_depth_and_size(raw, "", index)
    data = dict(raw)
    kind = data.pop("type", None)
    if kind not in TYPES:
        raise EventError(index, "type", f"must be one of {', '.join(TYPES)}, got {kind!r}")
    record_name, topic = TYPES[kind]
    given_tenant = data.get("tenant_id")
    if given_tenant is not None and given_tenant != tenant:
        raise EventError(index, "tenant_id", "does not match the tenant of your API key")
    data["tenant_id"] = tenant
    data.setdefault("event_id", uuid.uuid4().hex)
    data["event_time"] = _ts(data.get("event_time", now_ms()), "event_time", index)
    schema = serde.schemas.latest(record_name).raw
    for f in schema["fields"]:
        if f["name"] not in data and "default" in f:
            data[f["name"]] = f["default"]
    if (
        record_name == "Interaction"
        and "session_id" not in data
        and isinstance(data.get("interaction_id"), str)
    ):
        data["session_id"] = data["interaction_id"]
    if record_name == "DeadLetter":  # pragma: no cover - not an input type
        data["payload"] = base64.b64decode(data["payload"])
    for name in ("event_id", "interaction_id"):
        if name in data and (not isinstance(data[name], str) or not data[name].strip()):
            raise EventError(index, name, "must be a non-empty string")
    try:
        value = serde.encode(record_name, data, strict=True)
    except EncodeError as exc:
        raise EventError(index, exc.field, exc.message) from None
    return Encoded(topic, key_of(topic, data), value, data["event_id"])


def prepare_batch(serde: Serde, body: Any, tenant: str, max_batch: int) -> list[Encoded]:
    """A body is one event object, a JSON array of events, or {"events": [...]}."""
    if isinstance(body, dict) and "events" in body and "type" not in body:
        extra = sorted(set(body) - {"events"})
        if extra:
            raise EventError(None, extra[0], 'unknown top-level field (a batch is {"events": [...]})')
        body = body["events"]
    if isinstance(body, list):
        if not body:
            raise EventError(None, "events", "batch is empty")
        if len(body) > max_batch:
            raise BatchTooLarge(len(body), max_batch)
        return [prepare(serde, item, tenant, i) for i, item in enumerate(body)]
    return [prepare(serde, body, tenant)]


class BatchTooLarge(ValueError):
    def __init__(self, n: int, limit: int) -> None:
        super().__init__(f"batch of {n} events exceeds the limit of {limit}")
