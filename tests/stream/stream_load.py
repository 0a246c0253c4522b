"""Generated workloads for the crash, garbage and benchmark runs, with their expected outputs."""

from __future__ import annotations

import random
from typing import Any

from hfloop.events.serde import Serde
from hfloop.sdk import events as ev
from hfloop.stream.logic import derived_id

T0 = 1_700_000_000_000
Event = tuple[str, dict[str, Any]]


def sessions(tenant: str, n_interactions: int, agent_id: str = "bench",
             rate_every: int = 0) -> tuple[list[Event], dict[str, set[str]]]:  # fmt: skip
    """Sessions of two interactions with two outcomes each: the first rephrased and abandoned,
    the second accepted and copied; with ``rate_every`` N, every Nth session's second answer also
    gets a thumbs-down rating. Expected (docs/stream.md, ids from the inputs): the final label of
    every interaction and one IMPLICIT_REPHRASE pair per session."""
    events: list[Event] = []
    labels: set[str] = set()
    pairs: set[str] = set()
    for k in range(n_interactions // 2):
        sid = f"{tenant}-s{k}"
        pair_eids = []
        for j, (kinds, resp) in enumerate([(("REPHRASED", "ABANDONED"), "first answer"),
                                           (("ACCEPTED", "COPIED"), "second answer")]):  # fmt: skip
            iid = f"{tenant}-{k}-{j}"
            t = T0 + k * 1000 + j * 100
            inter = ev.interaction(tenant_id=tenant, agent_id=agent_id, prompt=f"question {k}/{j}", response=f"{resp} {k}",
                                   interaction_id=iid, event_id=f"e-{iid}", session_id=sid, event_time=t)  # fmt: skip
            events.append(("Interaction", inter))
            ids = [inter["event_id"]]
            for n, kind in enumerate(kinds):
                o = ev.outcome(tenant_id=tenant, interaction_id=iid, kind=kind, session_id=sid, event_time=t + 10 + n,
                               event_id=f"o{n}-{iid}")  # fmt: skip
                events.append(("Outcome", o))
                ids.append(o["event_id"])
            if j == 1 and rate_every and k % rate_every == 0:
                f = ev.feedback(tenant_id=tenant, interaction_id=iid, kind="RATING", annotator_id=f"u{k}",
                                rating={"scale": "THUMBS", "value": -1.0}, event_time=t + 20,
                                event_id=f"f-{iid}")  # fmt: skip
                events.append(("Feedback", f))
                ids.append(f["event_id"])
            labels.add(derived_id("label", tenant, iid, *sorted(ids)))
            pair_eids.append(inter["event_id"])
        pairs.add(derived_id("pair", "IMPLICIT_REPHRASE", *pair_eids))
    return events, {"labels": labels, "pairs": pairs}


def garbage(tenant: str, n: int, serde: Serde, seed: int = 5) -> list[tuple[str, bytes | None, bytes, str]]:
    """``n`` bad records as (topic field, key, value, expected reason)."""
    rnd = random.Random(seed)
    good = serde.encode("Interaction", ev.interaction(tenant_id=tenant, agent_id="a", prompt="p", response="r",
                                                      interaction_id="g", event_id="g"))  # fmt: skip
    out: list[tuple[str, bytes | None, bytes, str]] = []
    for i in range(n):
        kind = i % 7
        key = f"{tenant}-garbage-{i}".encode()
        if kind == 0:
            out.append(("interactions", key, rnd.randbytes(rnd.randint(1, 200)), "undecodable"))
        elif kind == 1:
            out.append(("outcomes", key, good[: rnd.randint(10, len(good) - 1)], "undecodable"))
        elif kind == 2:
            out.append(("feedback", key, b"", "undecodable"))
        elif kind == 3:  # a valid Interaction on the feedback topic
            rec = ev.interaction(
                tenant_id=tenant, agent_id="a", prompt="p", response="r", interaction_id=key.decode()
            )
            out.append(("feedback", key, serde.encode("Interaction", rec), "invalid"))
        elif kind == 4:  # schema-valid, semantically invalid
            rec = ev.feedback(tenant_id=tenant, interaction_id=key.decode(), kind="RATING", annotator_id="x",
                              rating={"scale": "THUMBS", "value": 0.5})  # fmt: skip
            out.append(("feedback", key, serde.encode("Feedback", rec), "invalid"))
        elif kind == 5:  # key is not the interaction id
            rec = ev.outcome(tenant_id=tenant, interaction_id="someone-else", kind="ACCEPTED")
            out.append(("outcomes", key, serde.encode("Outcome", rec), "invalid"))
        else:  # unknown writer schema fingerprint
            out.append(("interactions", key, b"\xc3\x01" + rnd.randbytes(8) + b"\x02ab", "undecodable"))
    return out
