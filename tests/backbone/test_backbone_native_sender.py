"""The native sender (``FeedbackClient.log_interaction`` in C) changes nothing a caller sees.

Bytes for the same inputs are proven in test_backbone_sdk_record.py (Hypothesis against the old
builder + fastavro). Here: the ids and the timestamp it makes itself, the calls it hands to the
Python method (which then raises or sends exactly as before), the backpressure and producer
errors, bulk polling, and that a client holding it is still garbage-collected.
"""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest
from test_backbone_sdk_record import (
    SERDE,
    CapturingProducer,
    capturing_client,
    fastavro_bytes,
    reference_interaction,
)

from hfloop.events import native
from hfloop.events.kafka import RecordProducer
from hfloop.events.topics import INTERACTIONS
from hfloop.sdk import FeedbackClient
from hfloop.sdk import events as ev


def _sent(fb: FeedbackClient) -> list[tuple[str, bytes | None, bytes]]:
    sent: list[tuple[str, bytes | None, bytes]] = fb._records._producer.sent
    return sent


def test_ids_and_time_are_made_as_the_python_builder_makes_them() -> None:
    fb = capturing_client()
    before = time.time_ns() // 1_000_000
    iid = fb.log_interaction("a", "q", "r")
    after = time.time_ns() // 1_000_000
    following = ev._id()
    assert fb.log_interaction.fallbacks == 0
    [(topic, key, value)] = _sent(fb)
    rec = SERDE.decode(value)[1]
    # One counter with the Python builder: interaction id, event id, then the next id drawn.
    prefix, n = iid[:16], int(iid[16:], 16)
    assert len(iid) == 32 and prefix == ev._ids.prefix
    assert rec["event_id"] == f"{prefix}{n + 1:016x}" and following == f"{prefix}{n + 2:016x}"
    assert before <= rec["event_time"] <= after
    want = reference_interaction(tenant_id="tenant-a", agent_id="a", prompt="q", response="r", interaction_id=iid,
                                 event_id=rec["event_id"], event_time=rec["event_time"])  # fmt: skip
    assert (topic, key, value) == (INTERACTIONS, iid.encode(), fastavro_bytes(want))


@pytest.mark.parametrize(("no_id", "no_time"), [(None, None), ("", 0)])
def test_falsy_ids_session_and_time_are_replaced_as_before(no_id: Any, no_time: Any) -> None:
    fb = capturing_client()
    iid = fb.log_interaction("a", "q", "r", interaction_id=no_id, event_id=no_id, session_id=no_id,
                             event_time=no_time)  # fmt: skip
    rec = SERDE.decode(_sent(fb)[0][2])[1]
    assert fb.log_interaction.fallbacks == 0
    assert rec["session_id"] == iid and rec["event_time"] > 1_700_000_000_000 and len(rec["event_id"]) == 32


class _Text(str):
    pass


class _Meta(Mapping[str, str]):
    def __getitem__(self, k: str) -> str:
        return {"k": "v"}[k]

    def __iter__(self) -> Any:
        return iter(["k"])

    def __len__(self) -> int:
        return 1


# Calls the native sender hands to the Python method, which writes them as it always did.
HANDED_BACK: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    (("a", "q", "r"), {"wait": True}),
    (("a", ({"role": "user", "content": "q"},), "r"), {}),  # a tuple of messages
    (("a", _Text("q"), "r"), {}),  # a str subclass prompt
    ((_Text("a"), "q", "r"), {}),  # ... agent_id
    (("a", "q", "r"), {"interaction_id": _Text("i")}),
    (("a", "q", "r"), {"event_time": True}),  # a bool is not an int to the encoder
    (("a", "q", "r"), {"latency_ms": Decimal("1.5")}),
    (("a", "q", "r"), {"prompt_tokens": 3.0}),
    (("a", "q", "r"), {"prompt_tokens": 2**40}),  # beyond an Avro int: fastavro writes it anyway
    (("a", "q", "r"), {"session_id": 0}),  # falsy: the interaction id, as `session_id or iid` gives
    (("a", "q", "r"), {"metadata": MappingProxyType({"k": "v"})}),
    (("a", "q", "r"), {"metadata": _Meta()}),
    (("a", "q", "r"), {"retrieved_doc_ids": iter(["d1", "d2"])}),
    (("a", "q", "r"), {"memory_ids_used": {"m1": 1}}),
    (("a", [{"role": "user", "content": "q", "-type": "x"}], "r"), {}),  # declined by the encoder
]


@pytest.mark.parametrize(("args", "kw"), HANDED_BACK)
def test_what_the_sender_does_not_reproduce_goes_to_the_python_method(
    args: tuple[Any, ...], kw: dict[str, Any]
):
    fb = capturing_client()
    fixed = {"event_id": "e", "event_time": 7, **kw} if "event_time" not in kw else {"event_id": "e", **kw}
    iid = fb.log_interaction(*args, **fixed)
    assert fb.log_interaction.fallbacks == 1
    ref_kw = {k: v for k, v in fixed.items() if k != "wait"}
    if isinstance(ref_kw.get("retrieved_doc_ids"), type(iter([]))):
        ref_kw["retrieved_doc_ids"] = ["d1", "d2"]
    want = reference_interaction(tenant_id="tenant-a", agent_id=args[0], prompt=args[1], response=args[2],
                                 **{"interaction_id": iid, **ref_kw})  # fmt: skip
    assert _sent(fb) == [(INTERACTIONS, iid.encode(), fastavro_bytes(want))]


BAD_CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    (("a", "q", 42), {}),  # EncodeError naming response
    (("a", "q", "r"), {"metadata": {"k": 1}}),  # EncodeError naming metadata
    (("a", "q", "r"), {"retrieved_doc_ids": ["d", 2]}),
    (("a", "q", "r"), {"prompt_tokens": "x"}),  # int("x"): ValueError
    (("a", "q", "r"), {"latency_ms": 10**400}),  # float(): OverflowError
    (("a", "q", "r"), {"trace_id": 5}),
    (("a", "q", "r"), {"event_time": -(2**70)}),
    (("a", "q", "r\ud800"), {}),  # a lone surrogate
    (("a", [{"role": "user"}], "r"), {}),  # KeyError: content
    (("a", "q"), {}),  # missing response
    (("a", "q", "r", "x"), {}),  # too many positional arguments
    (("a", "q", "r"), {"agent_id": "b"}),  # given twice
    (("a", "q", "r"), {"colour": "red"}),  # unknown
]


@pytest.mark.parametrize(("args", "kw"), BAD_CALLS)
def test_bad_calls_raise_exactly_what_the_python_method_raises(
    args: tuple[Any, ...], kw: dict[str, Any]
) -> None:
    fb = capturing_client()
    errors = []
    for call in (fb.log_interaction, fb.log_interaction.__wrapped__):
        with pytest.raises(Exception) as err:
            call(*args, **kw)
        errors.append((type(err.value), str(err.value)))
    assert errors[0] == errors[1]
    assert _sent(fb) == [] and fb.log_interaction.sends == 0


class _FullQueue(CapturingProducer):
    """produce() raises BufferError (librdkafka's local queue is full) ``full`` times."""

    def __init__(self, full: int) -> None:
        super().__init__()
        self.full = full

    def produce(self, topic: str, value: bytes, key: bytes | None = None, **kw: Any) -> None:
        if self.full:
            self.full -= 1
            raise BufferError("Local: Queue full")
        super().produce(topic, value, key, **kw)


def test_a_full_queue_is_waited_out_as_by_send_fast() -> None:
    producer = _FullQueue(full=3)
    fb = capturing_client(producer)
    iid = fb.log_interaction("a", "q", "r", event_id="e", event_time=9)
    want = reference_interaction(tenant_id="tenant-a", agent_id="a", prompt="q", response="r", interaction_id=iid,
                                 event_id="e", event_time=9)  # fmt: skip
    assert producer.sent == [(INTERACTIONS, iid.encode(), fastavro_bytes(want))]
    assert producer.polls >= 2 and producer.full == 0 and fb.log_interaction.fallbacks == 0


class _Refusing(CapturingProducer):
    def produce(self, topic: str, value: bytes, key: bytes | None = None, **kw: Any) -> None:
        raise ValueError("Broker: Message size too large")


def test_a_producer_error_propagates_and_is_not_retried_by_python() -> None:
    fb = capturing_client(_Refusing())
    with pytest.raises(ValueError, match="too large"):
        fb.log_interaction("a", "q", "r")
    assert fb.log_interaction.fallbacks == 0 and fb.log_interaction.sends == 0


def test_delivery_reports_are_served_every_poll_every_sends() -> None:
    fb = capturing_client()
    producer = fb._records._producer
    for _ in range(RecordProducer.POLL_EVERY * 3 - 1):
        fb.log_interaction("a", "q", "r")
    assert producer.polls == 2 and fb.log_interaction.sends == RecordProducer.POLL_EVERY * 3 - 1


def test_the_sender_keeps_the_method_signature_and_name() -> None:
    import inspect

    fb = capturing_client()
    assert inspect.signature(fb.log_interaction) == inspect.signature(
        FeedbackClient.log_interaction.__get__(fb)
    )
    assert fb.log_interaction.__name__ == "log_interaction" and "interaction_id" in fb.log_interaction.__doc__


def test_a_subclass_override_is_kept() -> None:
    class Mine(FeedbackClient):
        def log_interaction(self, *a: Any, **kw: Any) -> str:
            return "mine"

    fb = Mine("t")
    assert fb.log_interaction("a", "q", "r") == "mine"


def test_a_client_holding_the_sender_is_garbage_collected() -> None:
    fb = capturing_client()
    fb.log_interaction("a", "q", "r")
    assert type(fb.log_interaction) is native.InteractionSender
    ref = weakref.ref(fb)
    del fb
    gc.collect()
    assert ref() is None
