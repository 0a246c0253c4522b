"""The SDK's fast record builders write exactly what the builder before them wrote.

``log_interaction`` is the native sender (``native.InteractionSender``: the call bound, the
record written and produced in C), whose Python method binds its fields once and builds the
record positionally (``events.interaction_record``), taking lists and the metadata dict without
copying them. The reference below is the builder as it was (keyword-only, every list and dict
copied), encoded by fastavro: for the same inputs, with ids and timestamps fixed, the native
sender, the Python method and the batch API must produce the same key and bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from fastavro import schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hfloop.config import Settings
from hfloop.events import native
from hfloop.events.serde import Serde
from hfloop.events.topics import INTERACTIONS
from hfloop.kafka_local import free_port
from hfloop.sdk import FeedbackClient
from hfloop.sdk import events as ev

SERDE = Serde()
CODEC = SERDE._readers["Interaction"]


def reference_interaction(
    *, tenant_id: str, agent_id: str, prompt: str | Sequence[Mapping[str, str]], response: str,
    interaction_id: str | None = None, session_id: str | None = None, user_id: str = "anonymous",
    agent_version: str = "0", model_id: str = "unknown", route: str = "default",
    retrieved_doc_ids: Sequence[str] = (), memory_ids_used: Sequence[str] = (), latency_ms: float = 0.0,
    prompt_tokens: int = 0, completion_tokens: int = 0, metadata: Mapping[str, str] | None = None,
    trace_id: str | None = None, parent_interaction_id: str | None = None, event_time: int | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """``events.interaction`` before the fast path (ids and times are always given here)."""
    assert interaction_id and event_id and event_time
    messages = (
        [{"role": "user", "content": prompt}] if isinstance(prompt, str)
        else [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]
    )  # fmt: skip
    return {
        "event_id": event_id, "tenant_id": tenant_id, "event_time": event_time, "interaction_id": interaction_id,
        "session_id": session_id or interaction_id, "user_id": user_id, "agent_id": agent_id,
        "agent_version": agent_version, "model_id": model_id, "route": route, "messages": messages,
        "response": response, "retrieved_doc_ids": list(retrieved_doc_ids), "memory_ids_used": list(memory_ids_used),
        "latency_ms": float(latency_ms), "prompt_tokens": int(prompt_tokens),
        "completion_tokens": int(completion_tokens), "metadata": dict(metadata or {}), "trace_id": trace_id,
        "parent_interaction_id": parent_interaction_id,
    }  # fmt: skip


def fastavro_bytes(record: dict[str, Any]) -> bytes:
    header = SERDE.encode("Interaction", record)[:10]  # single-object framing: magic + fingerprint
    buf = io.BytesIO()
    buf.write(header)
    schemaless_writer(buf, CODEC.plain, record)
    return buf.getvalue()


class _Str:
    """Not a str: the builder turns message parts into str(), as it always did."""

    def __str__(self) -> str:
        return "coerced"


class _Role(str):
    """A str subclass: str() of it is what the record held before, not what fastavro would write."""

    def __str__(self) -> str:
        return "user"


class _Message(Mapping[str, Any]):
    """A message that is a Mapping but not a dict."""

    def __init__(self, **kw: Any) -> None:
        self._d = kw

    def __getitem__(self, k: str) -> Any:
        return self._d[k]

    def __iter__(self) -> Any:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)


TEXT = st.text(max_size=12)
IDS = st.lists(TEXT, max_size=3)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system"]), "content": TEXT},
    optional={"name": TEXT},  # extra keys are dropped by the builder and ignored by the encoder
)
OPTIONAL = {
    "session_id": st.one_of(st.none(), st.just(""), TEXT),
    "user_id": TEXT,
    "agent_version": TEXT,
    "model_id": TEXT,
    "route": TEXT,
    "retrieved_doc_ids": st.one_of(IDS, IDS.map(tuple)),
    "memory_ids_used": st.one_of(IDS, IDS.map(tuple)),
    "latency_ms": st.one_of(st.integers(0, 10**6), st.floats(0, 1e6)),
    "prompt_tokens": st.integers(0, 10**6),
    "completion_tokens": st.integers(0, 10**6),
    "metadata": st.one_of(st.none(), st.dictionaries(TEXT, TEXT, max_size=3)),
    "trace_id": st.one_of(st.none(), TEXT),
    "parent_interaction_id": st.one_of(st.none(), TEXT),
}
CALLS = st.fixed_dictionaries(
    {
        "agent_id": TEXT,
        "prompt": st.one_of(
            TEXT, st.lists(MESSAGE, min_size=1, max_size=3), st.lists(MESSAGE, max_size=2).map(tuple)
        ),
        "response": TEXT,
        "interaction_id": TEXT.map(lambda s: "i-" + s),
        "event_id": st.just("e" * 32),
        "event_time": st.integers(1, 2**41),
    },
    optional=OPTIONAL,
)


class CapturingProducer:
    """Stands in for confluent_kafka.Producer: keeps (topic, key, value) of what is produced."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.polls = 0

    def produce(self, topic: str, value: bytes, key: bytes | None = None, **_: Any) -> None:
        self.sent.append((topic, key, value))

    def produce_batch(self, topic: str, messages: list[dict[str, Any]], **_: Any) -> int:
        self.sent.extend((topic, m["key"], m["value"]) for m in messages)
        return len(messages)

    def poll(self, timeout: float = 0) -> int:
        self.polls += 1
        return 0

    def flush(self, timeout: float = 0) -> int:
        return 0

    def __len__(self) -> int:
        return 0


def capturing_client(producer: Any = None) -> FeedbackClient:
    """A client whose records reach ``producer`` (a CapturingProducer by default), no broker."""
    fb = FeedbackClient("tenant-a", settings=Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}"))
    fb._records._producer = CapturingProducer() if producer is None else producer
    fb._bind_native_sender()  # the native sender binds the producer's methods: bind the stand-in's
    return fb


@pytest.fixture(scope="module")
def captured() -> tuple[FeedbackClient, list[tuple[str, bytes | None, bytes]]]:
    """A client whose records are captured instead of produced (no broker involved)."""
    fb = capturing_client()
    return fb, fb._records._producer.sent


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(call=CALLS)
def test_per_call_and_batch_bytes_equal_the_old_builder_with_fastavro(captured, call: dict[str, Any]) -> None:
    fb, sent = captured
    sent.clear()
    want = reference_interaction(tenant_id="tenant-a", **call)
    expected = (INTERACTIONS, want["interaction_id"].encode(), fastavro_bytes(want))
    agent_id, prompt, response = call["agent_id"], call["prompt"], call["response"]
    fields = {k: v for k, v in call.items() if k not in ("agent_id", "prompt", "response")}
    fallbacks = fb.log_interaction.fallbacks
    assert fb.log_interaction(agent_id, prompt, response, **fields) == want["interaction_id"]
    # The native sender wrote it, except for a tuple of messages (handed to the Python method).
    assert fb.log_interaction.fallbacks - fallbacks == (type(prompt) is tuple)
    assert fb.log_interaction.__wrapped__(agent_id, prompt, response, **fields) == want["interaction_id"]
    assert fb.log_interactions([call]) == [want["interaction_id"]]
    assert sent == [expected, expected, expected]
    # The public builder returns the same record, sharing no list or dict with its arguments.
    rec = ev.interaction(tenant_id="tenant-a", **call)
    assert rec == want
    for name in ("retrieved_doc_ids", "memory_ids_used", "metadata"):
        if name in call and call[name] is not None:
            assert rec[name] is not call[name]


def test_the_native_fast_path_is_active(captured) -> None:
    """log_interaction is the native sender, and its Python method encodes with the native encoder
    directly (else the test above proves little)."""
    fb, _ = captured
    assert type(fb.log_interaction) is native.InteractionSender
    assert fb._native is not None and fb._header == SERDE.encode("Interaction", _probe())[:10]


def _probe() -> dict[str, Any]:
    return reference_interaction(tenant_id="t", agent_id="a", prompt="q", response="r", interaction_id="i",
                                 event_id="e", event_time=1)  # fmt: skip


@pytest.mark.parametrize(
    "prompt",
    [
        [{"role": "user", "content": _Str()}],  # the native encoder declines; str() as before
        [{"role": _Role("x"), "content": "q"}],  # str subclass: its str(), not its value
        [_Message(role="user", content="q", extra="dropped")],  # a Mapping, not a dict
        ({"role": "user", "content": "q"},),  # a tuple of messages
        [{"role": "user", "content": "q", "-type": "x"}],  # fastavro's type hint key: declined
    ],
)
def test_messages_the_native_encoder_declines_are_built_as_before(captured, prompt: Any) -> None:
    fb, sent = captured
    sent.clear()
    iid = fb.log_interaction("a", prompt, "r", event_id="e1", event_time=5, metadata={"k": "v"})
    want = reference_interaction(tenant_id="tenant-a", agent_id="a", prompt=prompt, response="r",
                                 interaction_id=iid, event_id="e1", event_time=5, metadata={"k": "v"})  # fmt: skip
    assert sent == [(INTERACTIONS, iid.encode(), fastavro_bytes(want))]
    assert len(iid) == 32 and int(iid, 16) >= 0


def test_a_message_without_content_raises_as_before(captured) -> None:
    fb, sent = captured
    sent.clear()
    with pytest.raises(KeyError, match="content"):
        fb.log_interaction("a", [{"role": "user"}], "r")
    assert sent == []


def test_unknown_field_is_refused_as_before(captured) -> None:
    fb, sent = captured
    sent.clear()
    with pytest.raises(TypeError, match="colour"):
        fb.log_interaction("a", "q", "r", colour="red")  # type: ignore[call-arg]
    assert sent == []
