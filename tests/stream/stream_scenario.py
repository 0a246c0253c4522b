"""The scripted session of the acceptance test, with its expected labels and pairs written out."""

from __future__ import annotations

from typing import Any

from hfloop.sdk import events as ev
from hfloop.stream.logic import derived_id

Event = tuple[str, dict[str, Any]]
T0 = 1_700_000_000_000

Q1 = "How do I reset my password?"
A1 = "Open Settings > Profile and click Reset."
Q2 = "I mean the admin password of the workspace"
A2 = "Admins reset it in the Admin console under Security > Credentials."
A3 = "Contact support."
FIX = "Use the 'Forgot password' link on the sign-in page."
DEMO = "Click 'Forgot password' on the sign-in page and follow the e-mail."
OTHER = "Reinstall the app."


def scripted_session(tenant: str) -> tuple[list[Event], dict[str, Any]]:
    """Interaction, rephrase, second interaction, accept, rating, correction, comparison,
    demonstration, escalation; plus a third interaction (other session, same prompt as the
    second) that the user deleted, for the same-prompt pair."""
    sid = f"{tenant}-s1"
    i1 = ev.interaction(tenant_id=tenant, agent_id="support", prompt=Q1, response=A1, interaction_id=f"{tenant}-i1",
                        session_id=sid, user_id="u1", event_time=T0, event_id=f"{tenant}-e-i1",
                        retrieved_doc_ids=["kb-12"], memory_ids_used=["m-1"])  # fmt: skip
    o1 = ev.outcome(tenant_id=tenant, interaction_id=i1["interaction_id"], kind="REPHRASED", session_id=sid, text=Q2,
                    event_time=T0 + 10_000, event_id=f"{tenant}-e-o1")  # fmt: skip
    i2 = ev.interaction(tenant_id=tenant, agent_id="support", prompt=Q2, response=A2, interaction_id=f"{tenant}-i2",
                        session_id=sid, user_id="u1", event_time=T0 + 11_000, event_id=f"{tenant}-e-i2")  # fmt: skip
    o2 = ev.outcome(tenant_id=tenant, interaction_id=i2["interaction_id"], kind="ACCEPTED", session_id=sid,
                    event_time=T0 + 20_000, event_id=f"{tenant}-e-o2")  # fmt: skip
    f1 = ev.feedback(tenant_id=tenant, interaction_id=i2["interaction_id"], kind="RATING", annotator_id="u1",
                     rating={"scale": "THUMBS", "value": 1.0}, event_time=T0 + 21_000, event_id=f"{tenant}-e-f1")  # fmt: skip
    f2 = ev.feedback(tenant_id=tenant, interaction_id=i1["interaction_id"], kind="CORRECTION", annotator_id="agent-7",
                     correction=FIX, event_time=T0 + 30_000, event_id=f"{tenant}-e-f2")  # fmt: skip
    f3 = ev.feedback(tenant_id=tenant, interaction_id=i2["interaction_id"], kind="PREFERENCE", annotator_id="rater-3",
                     comparison={"response_a": A2, "response_b": OTHER, "choice": "A", "strength": 0.8},
                     event_time=T0 + 31_000, event_id=f"{tenant}-e-f3")  # fmt: skip
    f4 = ev.feedback(tenant_id=tenant, interaction_id=i1["interaction_id"], kind="DEMONSTRATION",
                     annotator_id="expert-1", demonstration=DEMO, event_time=T0 + 32_000, event_id=f"{tenant}-e-f4")  # fmt: skip
    o3 = ev.outcome(tenant_id=tenant, interaction_id=i1["interaction_id"], kind="ESCALATED", session_id=sid,
                    event_time=T0 + 33_000, event_id=f"{tenant}-e-o3")  # fmt: skip
    i3 = ev.interaction(tenant_id=tenant, agent_id="support", prompt=Q2, response=A3, interaction_id=f"{tenant}-i3",
                        session_id=f"{tenant}-s2", user_id="u2", event_time=T0 + 40_000, event_id=f"{tenant}-e-i3")  # fmt: skip
    o4 = ev.outcome(tenant_id=tenant, interaction_id=i3["interaction_id"], kind="DELETED",
                    event_time=T0 + 41_000, event_id=f"{tenant}-e-o4")  # fmt: skip
    events: list[Event] = [("Interaction", i1), ("Outcome", o1), ("Interaction", i2), ("Outcome", o2),
                           ("Feedback", f1), ("Feedback", f2), ("Feedback", f3), ("Feedback", f4), ("Outcome", o3),
                           ("Interaction", i3), ("Outcome", o4)]  # fmt: skip
    e = {k: v["event_id"] for k, v in dict(i1=i1, i2=i2, i3=i3, o1=o1, o2=o2, o3=o3, o4=o4, f1=f1, f2=f2, f3=f3,
                                           f4=f4).items()}  # fmt: skip
    expected = {
        # interaction -> (sign of the final score, contributing ids, annotators, version)
        "labels": {
            i1["interaction_id"]: (
                -1,
                sorted([e["i1"], e["o1"], e["f2"], e["f4"], e["o3"]]),
                ["agent-7", "expert-1"],
                4,
            ),
            i2["interaction_id"]: (1, sorted([e["i2"], e["o2"], e["f1"], e["f3"]]), ["rater-3", "u1"], 3),
            i3["interaction_id"]: (-1, sorted([e["i3"], e["o4"]]), [], 1),
        },
        # pair id -> (source, chosen, rejected, prompt text)
        "pairs": {
            derived_id("pair", "CORRECTION", e["f2"]): ("CORRECTION", FIX, A1, Q1),
            derived_id("pair", "COMPARISON", e["f3"]): ("COMPARISON", A2, OTHER, Q2),
            derived_id("pair", "DEMONSTRATION", e["f4"]): ("DEMONSTRATION", DEMO, A1, Q1),
            derived_id("pair", "IMPLICIT_REPHRASE", e["i1"], e["i2"]): ("IMPLICIT_REPHRASE", A2, A1, Q1),
            derived_id("pair", "IMPLICIT_OUTCOME", e["i2"], e["i3"]): ("IMPLICIT_OUTCOME", A2, A3, Q2),
        },
        "memory": {derived_id("memory", e["f2"]): FIX, derived_id("memory", e["f4"]): DEMO},
    }
    return events, expected
