"""FeedbackClient: publish interactions and feedback to Kafka from any Python service.

    from hfloop import FeedbackClient
    with FeedbackClient(tenant_id="acme") as fb:
        iid = fb.log_interaction(agent_id="support", prompt="How do I reset my password?",
                                 response="Go to Settings > Security.")
        fb.rate(iid, thumbs_up=False, annotator_id="user-42")
        fb.correct(iid, "Use the 'Forgot password' link on the sign-in page.", annotator_id="agent-7")

Producing is asynchronous and batched (idempotent, acks=all, lz4). A delivery failure is
reported to ``on_error`` when given, else raised by the next :meth:`flush` (also on exit of
the ``with`` block). ``wait=True`` on any method blocks until Kafka acknowledged.

Speed (docs/backbone.md): ``log_interaction`` is a native sender (binding, ids, the Avro body
and ``produce()`` in C; anything unusual goes to the Python method), delivery reports reach
Python for failures only, so a call costs ~1.5 us of the caller's CPU.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MethodType
from typing import Any

from confluent_kafka import KafkaError, Producer

from hfloop.config import Settings, get_settings
from hfloop.events import native
from hfloop.events.kafka import DeliveryError, RecordProducer
from hfloop.events.serde import Codec, Serde, default_serde
from hfloop.events.topics import FEEDBACK, INTERACTIONS, OUTCOMES, key_of
from hfloop.sdk import events as ev

Prompt = str | Sequence[Mapping[str, str]]


class _Base:
    def __init__(self, tenant_id: str, settings: Settings | None, serde: Serde | None) -> None:
        self.tenant_id = tenant_id
        self.settings = settings or get_settings()
        self.serde = serde or default_serde()

    # Builders shared by the sync and async clients --------------------------------------
    def _interaction(self, agent_id: str, prompt: Prompt, response: str, **kw: Any) -> dict[str, Any]:
        return ev.interaction(
            tenant_id=self.tenant_id, agent_id=agent_id, prompt=prompt, response=response, **kw
        )

    def _rating(self, interaction_id: str, annotator_id: str, *, thumbs_up: bool | None, stars: float | None,
                score: float | None, **kw: Any) -> dict[str, Any]:  # fmt: skip
        given = [x is not None for x in (thumbs_up, stars, score)]
        if sum(given) != 1:
            raise ValueError("rate() takes exactly one of thumbs_up, stars, score")
        if thumbs_up is not None:
            rating = {"scale": "THUMBS", "value": 1.0 if thumbs_up else -1.0}
        elif stars is not None:
            if not 1 <= stars <= 5:
                raise ValueError(f"stars must be within 1..5, got {stars}")
            rating = {"scale": "STARS5", "value": float(stars)}
        else:
            assert score is not None
            if not -1 <= score <= 1:
                raise ValueError(f"score must be within -1..1, got {score}")
            rating = {"scale": "SCORE", "value": float(score)}
        return ev.feedback(tenant_id=self.tenant_id, interaction_id=interaction_id, kind="RATING",
                           annotator_id=annotator_id, rating=rating, **kw)  # fmt: skip

    def _prefer(self, interaction_id: str, response_a: str, response_b: str, choice: str, annotator_id: str,
                strength: float | None, **kw: Any) -> dict[str, Any]:  # fmt: skip
        choice = choice.upper()
        if choice not in ("A", "B", "TIE"):
            raise ValueError(f"choice must be A, B or TIE, got {choice!r}")
        comp = {"response_a": response_a, "response_b": response_b, "choice": choice, "strength": strength}
        return ev.feedback(tenant_id=self.tenant_id, interaction_id=interaction_id, kind="PREFERENCE",
                           annotator_id=annotator_id, comparison=comp, **kw)  # fmt: skip


class FeedbackClient(_Base):
    """Synchronous producer of hfloop events (thread-safe)."""

    def __init__(
        self,
        tenant_id: str = "default",
        *,
        settings: Settings | None = None,
        serde: Serde | None = None,
        on_error: Callable[[str, KafkaError], None] | None = None,
        **producer_overrides: Any,
    ) -> None:
        super().__init__(tenant_id, settings, serde)
        # Producer defaults, backpressure and delivery-error bookkeeping live in RecordProducer;
        # errors_only: no Python callback per acknowledged record (failures still surface).
        self._records = RecordProducer(
            self.settings, self.serde, on_error=on_error, errors_only=True, **producer_overrides
        )
        self._encode, self._send_now = self.serde.encode, self._records.send_fast  # bound once: the hot path
        self._native_encoder, self._header = _native_interaction_encoder(self.serde)
        self._native = self._native_encoder.encode if self._native_encoder is not None else None
        self._bind_native_sender()

    def _bind_native_sender(self) -> None:
        """Make this client's ``log_interaction`` the native sender, where there is one.

        ``native.InteractionSender`` is :meth:`log_interaction` in C (same parameters and
        defaults, read from this signature; same key and bytes; produced as by ``send_fast``).
        It hands every call it cannot reproduce exactly (``wait=True``, a bad or unknown
        argument, a tuple of messages, a str subclass, ...) to the method below, unchanged, so
        what a caller sees stays the same. Not bound when a subclass overrides the method.
        Called again when the producer was replaced (tests capture records that way)."""
        self.__dict__.pop("log_interaction", None)
        sender = native.InteractionSender
        if (
            sender is None
            or self._native_encoder is None
            or type(self.tenant_id) is not str
            or type(self).log_interaction is not FeedbackClient.log_interaction
        ):
            return
        produce, poll, when_full = self._records.fast_hooks()
        fallback = MethodType(FeedbackClient.log_interaction, self)
        self.__dict__["log_interaction"] = sender(
            self._native_encoder, self._header, self.tenant_id, INTERACTIONS, produce, poll, when_full, fallback,
            ev._ids, _SENDER_DEFAULTS, RecordProducer.POLL_EVERY,
        )  # fmt: skip

    # --- events ------------------------------------------------------------------------
    def log_interaction(
        self,
        agent_id: str,
        prompt: Prompt,
        response: str,
        *,
        wait: bool = False,
        interaction_id: str | None = None,
        session_id: str | None = None,
        user_id: str = ev.ANONYMOUS,
        agent_version: str = ev.AGENT_VERSION,
        model_id: str = ev.MODEL_ID,
        route: str = ev.ROUTE,
        retrieved_doc_ids: Sequence[str] = (),
        memory_ids_used: Sequence[str] = (),
        latency_ms: float = 0.0,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        metadata: Mapping[str, str] | None = None,
        trace_id: str | None = None,
        parent_interaction_id: str | None = None,
        event_time: int | None = None,
        event_id: str | None = None,
    ) -> str:
        """Publish what the agent did; returns the interaction_id to attach feedback to.

        The fields are those of :func:`hfloop.sdk.events.interaction`, spelled out here: one
        keyword binding and a positional build is the cheapest way through Python per record.
        With the native encoder built, a client's ``log_interaction`` is the C equivalent of this
        method, which runs only for the calls that one hands back (see ``_bind_native_sender``).
        """
        encode_native = self._native
        # The caller's message dicts go to the native encoder as they are; it accepts only a list
        # of dicts of exact strs, for which messages_of's copy would encode to the same bytes.
        messages = prompt if encode_native is not None and type(prompt) is list else ev.messages_of(prompt)
        rec = ev.interaction_record(
            self.tenant_id, agent_id, messages, response, interaction_id, session_id, user_id, agent_version,
            model_id, route, retrieved_doc_ids, memory_ids_used, latency_ms, prompt_tokens, completion_tokens,
            metadata, trace_id, parent_interaction_id, event_time, event_id,
        )  # fmt: skip
        value = None
        if encode_native is not None:
            try:
                value = encode_native(self._header, rec)
            except Exception:  # noqa: S110 - declined: the serde below writes it or names the field
                if messages is prompt:
                    rec["messages"] = ev.messages_of(prompt)
        if value is None:
            value = self._encode("Interaction", rec)
        if wait:
            self._records.send_and_wait(INTERACTIONS, key_of(INTERACTIONS, rec), value)
        else:
            self._send_now(INTERACTIONS, key_of(INTERACTIONS, rec), value)
        return str(rec["interaction_id"])

    def log_interactions(self, interactions: Iterable[Mapping[str, Any]]) -> list[str]:
        """Publish many interactions with one call, all or none; returns their ids.

        Each item holds :meth:`log_interaction`'s arguments (``agent_id``, ``prompt``,
        ``response`` and any field). Every item is built and encoded before anything is
        produced, so an invalid one raises and none of the batch is sent. Built in Python: per
        record it costs more than the native ``log_interaction`` (docs/backbone.md).
        """
        tenant, encode, build = self.tenant_id, self._encode, ev.interaction
        batch: list[dict[str, Any]] = []  # produce_batch's shape
        ids: list[str] = []
        for item in interactions:
            rec = build(tenant_id=tenant, **item)
            batch.append({"key": key_of(INTERACTIONS, rec), "value": encode("Interaction", rec)})
            ids.append(rec["interaction_id"])
        self._records.produce_batch(INTERACTIONS, batch)
        return ids

    def rate(self, interaction_id: str, *, annotator_id: str, thumbs_up: bool | None = None,
             stars: float | None = None, score: float | None = None, wait: bool = False, **fields: Any) -> str:  # fmt: skip
        """A rating: thumbs (up/down), 1-5 stars, or a score in [-1, 1]."""
        rec = self._rating(
            interaction_id, annotator_id, thumbs_up=thumbs_up, stars=stars, score=score, **fields
        )
        return self._send("Feedback", FEEDBACK, rec, wait)

    def correct(self, interaction_id: str, corrected: str, *, annotator_id: str, wait: bool = False,
                **fields: Any) -> str:  # fmt: skip
        """An edited answer: a negative for the original and a positive example."""
        rec = ev.feedback(tenant_id=self.tenant_id, interaction_id=interaction_id, kind="CORRECTION",
                          annotator_id=annotator_id, correction=corrected, **fields)  # fmt: skip
        return self._send("Feedback", FEEDBACK, rec, wait)

    def prefer(self, interaction_id: str, response_a: str, response_b: str, choice: str, *, annotator_id: str,
               strength: float | None = None, wait: bool = False, **fields: Any) -> str:  # fmt: skip
        """A pairwise preference between two answers to the interaction's prompt."""
        rec = self._prefer(interaction_id, response_a, response_b, choice, annotator_id, strength, **fields)
        return self._send("Feedback", FEEDBACK, rec, wait)

    def demonstrate(self, interaction_id: str, answer: str, *, annotator_id: str, wait: bool = False,
                    **fields: Any) -> str:  # fmt: skip
        """A demonstration: the answer an expert would have given."""
        rec = ev.feedback(tenant_id=self.tenant_id, interaction_id=interaction_id, kind="DEMONSTRATION",
                          annotator_id=annotator_id, demonstration=answer, **fields)  # fmt: skip
        return self._send("Feedback", FEEDBACK, rec, wait)

    def comment(
        self, interaction_id: str, text: str, *, annotator_id: str, wait: bool = False, **fields: Any
    ) -> str:
        rec = ev.feedback(tenant_id=self.tenant_id, interaction_id=interaction_id, kind="COMMENT",
                          annotator_id=annotator_id, comment=text, **fields)  # fmt: skip
        return self._send("Feedback", FEEDBACK, rec, wait)

    def signal(self, interaction_id: str, kind: str, *, wait: bool = False, **fields: Any) -> str:
        """Implicit behaviour: accepted, copied, edited, deleted, rephrased, escalated, resolved, ..."""
        rec = ev.outcome(tenant_id=self.tenant_id, interaction_id=interaction_id, kind=kind, **fields)
        return self._send("Outcome", OUTCOMES, rec, wait)

    def send(self, record_name: str, record: dict[str, Any], *, wait: bool = False) -> str:
        """Publish a complete record (e.g. one built elsewhere) to its contract topic."""
        topic = {"Interaction": INTERACTIONS, "Feedback": FEEDBACK, "Outcome": OUTCOMES}[record_name]
        return self._send(record_name, topic, record, wait)

    # --- delivery ----------------------------------------------------------------------
    def _send(self, record_name: str, topic: str, rec: dict[str, Any], wait: bool) -> str:
        value = self._encode(record_name, rec)
        if wait:
            self._records.send_and_wait(topic, key_of(topic, rec), value)
        else:
            self._send_now(topic, key_of(topic, rec), value)
        return str(rec["event_id"])

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until everything sent so far is acknowledged; raise DeliveryError otherwise."""
        self._records.flush(timeout)

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> FeedbackClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()


# log_interaction's keyword parameters and their defaults: the native sender fills the same ones.
_SENDER_DEFAULTS = {
    name: p.default
    for name, p in inspect.signature(FeedbackClient.log_interaction).parameters.items()
    if p.kind is p.KEYWORD_ONLY
}


def _native_interaction_encoder(serde: Serde) -> tuple[native.NativeEncoder | None, bytes]:
    """The native encoder of the Interaction schema ``serde`` writes, and ``serde``'s framing
    header: ``log_interaction`` encodes with it directly, saving the serde's dispatch and the
    copy of the caller's messages. (None, b"") when there is no native encoder, or when a chat
    message is not exactly (role, content) (the caller's dicts could then carry more fields)."""
    version = serde.schemas.latest("Interaction")
    messages = next(f["type"] for f in version.raw["fields"] if f["name"] == "messages")
    if [f["name"] for f in messages["items"]["fields"]] != ["role", "content"]:
        return None, b""
    encoder = Codec.of(version, writer=True).native
    if encoder is None:
        return None, b""
    probe = ev.interaction(tenant_id="t", agent_id="a", prompt="q", response="r", interaction_id="i", event_id="e",
                           event_time=1)  # fmt: skip
    try:
        full, body = serde.encode("Interaction", probe), encoder.encode(b"", probe)
    except Exception:  # e.g. a schema registry not reachable yet: the serde's path reports it per record
        return None, b""
    if not full.endswith(body):
        return None, b""
    return encoder, full[: len(full) - len(body)]


class AsyncFeedbackClient(_Base):
    """asyncio flavour: every method is a coroutine that returns once Kafka acknowledged."""

    def __init__(self, tenant_id: str = "default", *, settings: Settings | None = None, serde: Serde | None = None,
                 **producer_overrides: Any) -> None:  # fmt: skip
        super().__init__(tenant_id, settings, serde)
        self._producer = Producer(self.settings.producer_config(**producer_overrides))
        self._closing = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="hfloop-sdk-poll", daemon=True)
        self._poller.start()

    def _poll_loop(self) -> None:
        while not self._closing.is_set():
            self._producer.poll(0.05)

    async def _send(self, record_name: str, topic: str, rec: dict[str, Any]) -> str:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def ack(err: KafkaError | None, _msg: Any) -> None:
            def settle() -> None:
                if fut.done():
                    return
                if err is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(DeliveryError([f"{topic}: {err.str()}"]))

            loop.call_soon_threadsafe(settle)

        value = self.serde.encode(record_name, rec)
        while True:
            try:
                self._producer.produce(topic, value, key_of(topic, rec), on_delivery=ack)
                break
            except BufferError:
                await asyncio.sleep(0.05)
        await fut
        return str(rec["event_id"])

    async def log_interaction(self, agent_id: str, prompt: Prompt, response: str, **fields: Any) -> str:
        rec = self._interaction(agent_id, prompt, response, **fields)
        await self._send("Interaction", INTERACTIONS, rec)
        return str(rec["interaction_id"])

    async def rate(self, interaction_id: str, *, annotator_id: str, thumbs_up: bool | None = None,
                   stars: float | None = None, score: float | None = None, **fields: Any) -> str:  # fmt: skip
        rec = self._rating(
            interaction_id, annotator_id, thumbs_up=thumbs_up, stars=stars, score=score, **fields
        )
        return await self._send("Feedback", FEEDBACK, rec)

    async def correct(self, interaction_id: str, corrected: str, *, annotator_id: str, **fields: Any) -> str:
        rec = ev.feedback(tenant_id=self.tenant_id, interaction_id=interaction_id, kind="CORRECTION",
                          annotator_id=annotator_id, correction=corrected, **fields)  # fmt: skip
        return await self._send("Feedback", FEEDBACK, rec)

    async def prefer(self, interaction_id: str, response_a: str, response_b: str, choice: str, *,
                     annotator_id: str, strength: float | None = None, **fields: Any) -> str:  # fmt: skip
        rec = self._prefer(interaction_id, response_a, response_b, choice, annotator_id, strength, **fields)
        return await self._send("Feedback", FEEDBACK, rec)

    async def demonstrate(self, interaction_id: str, answer: str, *, annotator_id: str, **fields: Any) -> str:
        rec = ev.feedback(tenant_id=self.tenant_id, interaction_id=interaction_id, kind="DEMONSTRATION",
                          annotator_id=annotator_id, demonstration=answer, **fields)  # fmt: skip
        return await self._send("Feedback", FEEDBACK, rec)

    async def signal(self, interaction_id: str, kind: str, **fields: Any) -> str:
        rec = ev.outcome(tenant_id=self.tenant_id, interaction_id=interaction_id, kind=kind, **fields)
        return await self._send("Outcome", OUTCOMES, rec)

    async def aclose(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._producer.flush, 30.0)
        self._closing.set()

    async def __aenter__(self) -> AsyncFeedbackClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
