"""The join and group state machines: pure functions from (state, input, now) to
(new state, effects). The faust app stores the states in tables and sends the effects.

Join state (one per interaction_id, JSON-serialisable, stored in the ``joins`` table)::

    {"p": partition, "i": interaction or None, "sig": [signal], "seen": [event ids joined],
     "oc": {outcome event id: kind}, "pend": [pending signal], "due": label window end or None,
     "lab": id of the last label emitted or None, "last": wall time of the last input}

* A feedback/outcome that arrives before its interaction waits in ``pend`` (with its raw
  bytes and origin) until the interaction arrives or ``join_grace_s`` passes; then it
  becomes a dead letter with reason ``orphan``.
* Every joined signal (re)opens the label window: the label is emitted ``label_window_s``
  after the last signal, at once on a strong explicit signal, and again (a revision, higher
  version) when late signals change it. A label equal to the last one is not re-emitted.
* An input already joined (same event id) changes nothing: replays are no-ops.
* State untouched for ``state_ttl_s`` is deleted; a signal for it afterwards is an orphan.

Group state (one per session and one per prompt, ``groups`` table)::

    {"p": partition, "m": {interaction_id: member}, "sent": [pair ids], "due": ..., "last": ...}

Session groups decide rephrase pairs when the session has been quiet for
``label_window_s`` (so the successor of an interaction is known even when events arrive
shuffled); prompt groups emit accepted > rejected pairs at once (a set that does not
depend on order).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from hfloop.events.kafka import dead_letter
from hfloop.stream import pairs as pr
from hfloop.stream.logic import LabelPolicy, Record, build_label, is_strong, polarity, signal_of

State = dict[str, Any]
INTERACTION_FIELDS = ("event_id", "tenant_id", "event_time", "interaction_id", "session_id", "user_id", "agent_id",
                      "agent_version", "model_id", "route", "messages", "response", "retrieved_doc_ids",
                      "memory_ids_used", "parent_interaction_id")  # fmt: skip
SENT_MAX = 1024  # pair ids a group remembers having sent


@dataclass(frozen=True)
class Origin:
    """Where an input record came from (for dead letters)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    payload: bytes


@dataclass(frozen=True)
class Ctx:
    labels: LabelPolicy
    pairs: pr.PairPolicy
    window_s: float
    grace_s: float
    ttl_s: float
    processor: str = "hfloop-stream"


@dataclass
class Effects:
    labels: list[Record] = field(default_factory=list)
    pairs: list[Record] = field(default_factory=list)
    memory: list[Record] = field(default_factory=list)
    dead: list[Record] = field(default_factory=list)
    facts: list[tuple[str, pr.Member]] = field(default_factory=list)  # (group key, member)

    def extend(self, other: Effects) -> None:
        for name in ("labels", "pairs", "memory", "dead", "facts"):
            getattr(self, name).extend(getattr(other, name))

    def __len__(self) -> int:
        return len(self.labels) + len(self.pairs) + len(self.memory) + len(self.dead) + len(self.facts)


def dead(ctx: Ctx, origin: Origin, reason: str, error: str, tenant: str = "unknown") -> Record:
    return dead_letter(reason=reason, error=error, payload=origin.payload, key=origin.key, origin_topic=origin.topic,
                       origin_partition=origin.partition, origin_offset=origin.offset, processor=ctx.processor,
                       tenant_id=tenant)  # fmt: skip


# --- join --------------------------------------------------------------------------------
def new_join(partition: int, now: float) -> State:
    return {"p": partition, "i": None, "sig": [], "seen": [], "oc": {}, "pend": [], "due": None, "lab": None,
            "last": now}  # fmt: skip


def on_input(
    st: State | None, name: str, rec: Record, origin: Origin, now: float, ctx: Ctx
) -> tuple[State, Effects]:
    """Apply one validated input record (Interaction, Feedback or Outcome) to its join state."""
    st = st if st is not None else new_join(origin.partition, now)
    fx = Effects()
    eid = rec["event_id"]
    inter = st["i"]
    if name == "Interaction":
        if inter is not None:
            if inter["event_id"] != eid:
                fx.dead.append(dead(ctx, origin, "duplicate", f"interaction_id {rec['interaction_id']} is already "
                                    f"joined to interaction event {inter['event_id']}", rec["tenant_id"]))  # fmt: skip
            return st, fx
        st["i"] = inter = {f: rec.get(f) for f in INTERACTION_FIELDS}
        st["last"] = now
        strong = False
        for p in sorted(st["pend"], key=lambda p: (p["r"]["event_time"], p["r"]["event_id"])):
            strong |= _join(st, p["n"], p["r"], _origin_of(p), now, ctx, fx)
        st["pend"] = []
        _after_join(st, strong, now, ctx, fx)
        return st, fx
    if eid in st["seen"] or any(p["r"]["event_id"] == eid for p in st["pend"]):
        return st, fx
    st["last"] = now
    if inter is None:
        st["pend"].append({"n": name, "r": rec, "at": now, "o": [origin.topic, origin.partition, origin.offset],
                           "k": _b64(origin.key), "raw": _b64(origin.payload)})  # fmt: skip
        return st, fx
    strong = _join(st, name, rec, origin, now, ctx, fx)
    _after_join(st, strong, now, ctx, fx)
    return st, fx


def _join(st: State, name: str, rec: Record, origin: Origin, now: float, ctx: Ctx, fx: Effects) -> bool:
    """Join one signal to the present interaction; returns whether it is a strong signal."""
    inter = st["i"]
    if rec["tenant_id"] != inter["tenant_id"]:
        fx.dead.append(dead(ctx, origin, "invalid", f"{name}.tenant_id {rec['tenant_id']!r} differs from the "
                            f"interaction's tenant", rec["tenant_id"]))  # fmt: skip
        return False
    st["seen"].append(rec["event_id"])
    if name == "Outcome":
        st["oc"][rec["event_id"]] = rec["kind"]
    else:
        pair = pr.explicit_pair(inter, rec, ctx.pairs)
        if pair is not None:
            fx.pairs.append(pair)
        mem = pr.memory_update(inter, rec)
        if mem is not None:
            fx.memory.append(mem)
    sig = signal_of(name, rec, inter["response"], ctx.labels)
    if sig is None:
        return False
    st["sig"].append(sig)
    return is_strong(sig, ctx.labels)


def _after_join(st: State, strong: bool, now: float, ctx: Ctx, fx: Effects) -> None:
    if not st["sig"]:
        return
    if strong:
        emit_label(st, "strong_signal", ctx, fx)
    st["due"] = now + ctx.window_s


def emit_label(st: State, trigger: str, ctx: Ctx, fx: Effects) -> None:
    """Emit the label of the current signals unless it equals the last one emitted."""
    label = build_label(st["i"], st["sig"], ctx.labels, trigger)
    if label is None or label["event_id"] == st["lab"]:
        return
    if st["lab"] is not None and trigger == "window_closed":
        label["trigger"] = "revision"
    st["lab"] = label["event_id"]
    fx.labels.append(label)
    inter = st["i"]
    member = pr.member_of(inter, st["oc"])
    fx.facts.append((pr.session_key(inter["tenant_id"], inter["session_id"]), member))
    if polarity(st["oc"].values()) != 0:
        fx.facts.append((pr.prompt_key(inter["tenant_id"], inter["agent_id"], inter["messages"]), member))


def on_tick(st: State, now: float, ctx: Ctx) -> tuple[State | None, Effects]:
    """Close a due label window, dead-letter expired orphans, expire idle state."""
    fx = Effects()
    if st["due"] is not None and now >= st["due"]:
        st["due"] = None
        if st["i"] is not None:
            emit_label(st, "window_closed", ctx, fx)
    keep = []
    for p in st["pend"]:
        if now >= p["at"] + ctx.grace_s:
            fx.dead.append(dead(ctx, _origin_of(p), "orphan", f"no interaction {p['r']['interaction_id']} within "
                                f"{ctx.grace_s:g}s grace", p["r"]["tenant_id"]))  # fmt: skip
        else:
            keep.append(p)
    st["pend"] = keep
    if st["due"] is None and not keep and now >= st["last"] + ctx.ttl_s:
        return None, fx
    if st["i"] is None and not keep:
        return None, fx  # only orphans were waiting here
    return st, fx


def next_due(st: State, ctx: Ctx) -> float:
    times = [st["last"] + ctx.ttl_s, *(p["at"] + ctx.grace_s for p in st["pend"])]
    if st["due"] is not None:
        times.append(st["due"])
    return min(times)


def _b64(b: bytes | None) -> str | None:
    return None if b is None else base64.b64encode(b).decode()


def _origin_of(p: dict[str, Any]) -> Origin:
    topic, partition, offset = p["o"]
    return Origin(topic, partition, offset, None if p["k"] is None else base64.b64decode(p["k"]),
                  base64.b64decode(p["raw"]))  # fmt: skip


# --- groups ------------------------------------------------------------------------------
def new_group(partition: int, now: float) -> State:
    return {"p": partition, "m": {}, "sent": [], "due": None, "last": now}


def on_fact(st: State | None, key: str, member: pr.Member, partition: int, now: float,
            ctx: Ctx) -> tuple[State, list[Record]]:  # fmt: skip
    """Add what is known about one interaction to its session or prompt group."""
    st = st if st is not None else new_group(partition, now)
    members = st["m"]
    members[member["iid"]] = pr.merge_member(members.get(member["iid"]), member)
    st["last"] = now
    if key.startswith("s/"):
        st["m"] = pr.trim_members(members, ctx.pairs.session_max)
        st["due"] = now + ctx.window_s
        return st, []
    polar = {iid: polarity(m["outcomes"].values()) for iid, m in members.items()}
    good = pr.trim_members({i: m for i, m in members.items() if polar[i] > 0}, ctx.pairs.prompt_max)
    bad = pr.trim_members({i: m for i, m in members.items() if polar[i] < 0}, ctx.pairs.prompt_max)
    st["m"] = {**good, **bad}
    return st, _unsent(st, pr.outcome_pairs(list(st["m"].values()), ctx.pairs))


def on_group_tick(st: State, now: float, ctx: Ctx) -> tuple[State | None, list[Record]]:
    out: list[Record] = []
    if st["due"] is not None and now >= st["due"]:
        st["due"] = None
        out = _unsent(st, pr.rephrase_pairs(list(st["m"].values()), ctx.pairs))
    if st["due"] is None and now >= st["last"] + ctx.ttl_s:
        return None, out
    return st, out


def group_due(st: State, ctx: Ctx) -> float:
    return st["due"] if st["due"] is not None else st["last"] + ctx.ttl_s


def _unsent(st: State, pairs: list[Record]) -> list[Record]:
    sent = set(st["sent"])
    new = [p for p in pairs if p["event_id"] not in sent]
    if new:
        st["sent"] = (st["sent"] + [p["event_id"] for p in new])[-SENT_MAX:]
    return new
