"""Every named query on a hand-made history, against numbers computed by hand.

The history (analytics_dataset.py) is loaded for tenant 'acme'; tenant 'globex' gets the same
events with the same interaction ids, so any leak across tenants would double the numbers.
"""

from __future__ import annotations

import math
from collections import Counter
from itertools import combinations
from typing import Any

import analytics_dataset as ds
import numpy as np
import pytest

from hfloop.analytics import queries
from hfloop.analytics.querying import QueryService
from hfloop.analytics.tables import TABLES
from hfloop.config import Settings


@pytest.fixture
def qs(chdb_client: Any, tmp_path: Any) -> Any:
    ds.load(chdb_client, "acme")
    ds.load(chdb_client, "globex")
    service = QueryService(Settings(data_dir=tmp_path), chdb_client)
    yield service
    service.close()


def rows(qs: QueryService, name: str, **params: Any) -> list[dict[str, Any]]:
    r = qs.run_named("acme", name, params)
    assert not r.truncated
    return [dict(zip(r.columns, row, strict=True)) for row in r.rows]


def pick(rs: list[dict[str, Any]], *cols: str) -> list[tuple[Any, ...]]:
    return [tuple(r[c] for c in cols) for r in rs]


def test_every_named_query_is_documented_and_tested() -> None:
    tested = {n[len("test_q_") :] for n in globals() if n.startswith("test_q_")}
    assert set(queries.catalog()) == tested
    for q in queries.catalog().values():
        assert q.title and len(q.description) > 40 and all(p.doc for p in q.params)


def test_named_queries_count_a_replayed_event_once(chdb_client: Any, tmp_path: Any) -> None:
    """Some queries read the _raw views (no FINAL): a replay must still not change any answer."""
    ds.load(chdb_client, "acme")
    service = QueryService(Settings(data_dir=tmp_path), chdb_client)
    try:
        before = {name: service.run_named("acme", name).rows for name in queries.catalog()}
        for table in TABLES:  # keep the copies apart: only the queries may dedup them
            chdb_client.command(f"SYSTEM STOP MERGES hfloop.{table}")
        n = ds.load(chdb_client, "acme", reverse=True)
        raw = sum(int(chdb_client.query(f"SELECT count() FROM hfloop.{t}").result_rows[0][0]) for t in TABLES)
        assert raw == 2 * n  # the replay is stored, not dropped by insert deduplication
        after = {name: service.run_named("acme", name).rows for name in queries.catalog()}
        assert after == before
    finally:
        service.close()


def test_q_feedback_rates(qs: QueryService) -> None:
    cols = ("day", "agent_id", "agent_version", "route", "interactions", "feedback_events", "with_feedback",
            "feedback_rate", "ratings", "positive_rate", "corrections", "correction_rate")  # fmt: skip
    assert pick(rows(qs, "feedback_rates"), *cols) == [
        ("2026-01-01", "A", "v1", "billing", 2, 12, 2, 1.0, 11, 0.5455, 1, 0.5),
        ("2026-01-01", "B", "v1", "tech", 1, 4, 1, 1.0, 3, 1.0, 0, 0.0),
        ("2026-01-02", "A", "v2", "billing", 1, 4, 1, 1.0, 4, 0.5, 0, 0.0),
        ("2026-01-02", "B", "v1", "tech", 1, 3, 1, 1.0, 3, 0.3333, 0, 0.0),
    ]
    # The window applies to the interactions: only the second day.
    assert [r["day"] for r in rows(qs, "feedback_rates", from_ms=ds.D2)] == ["2026-01-02", "2026-01-02"]


def test_q_label_distribution(qs: QueryService) -> None:
    assert pick(
        rows(qs, "label_distribution"),
        "agent_id",
        "bucket",
        "labels",
        "share",
        "mean_score",
        "mean_confidence",
    ) == [  # fmt: skip
        ("A", "bad", 2, 0.6667, -0.75, 0.75),  # i2's latest version (-0.6) counts, not its first (0.5)
        ("A", "good", 1, 0.3333, 0.8, 0.9),
        ("B", "bad", 1, 0.5, -0.4, 0.6),
        ("B", "neutral", 1, 0.5, 0.1, 0.5),
    ]


def test_q_behaviour_rates(qs: QueryService) -> None:
    assert pick(
        rows(qs, "behaviour_rates"),
        "agent_id",
        "route",
        "interactions",
        "corrected",
        "correction_rate",
        "escalated",
        "escalation_rate",
        "rephrased",
        "rephrase_rate",
    ) == [  # fmt: skip
        ("A", "billing", 3, 1, 0.3333, 1, 0.3333, 1, 0.3333),
        ("B", "tech", 2, 0, 0.0, 1, 0.5, 1, 0.5),
    ]


def test_q_explicit_vs_implicit(qs: QueryService) -> None:
    (r,) = rows(qs, "explicit_vs_implicit")
    assert pick([r], "interactions", "agree", "agreement_rate", "pp", "pn", "np", "nn", "kappa") == [
        (5, 3, 0.6, 1, 1, 1, 2, 0.1667)  # pe = (2*2 + 3*3) / 25 = 0.52; (0.6 - 0.52) / 0.48
    ]


def _ratings_by_scope() -> dict[str, dict[str, dict[str, str]]]:
    """{scope: {annotator: {item: category}}}: latest explicit rating, from the dataset itself."""
    latest: dict[tuple[str, str], tuple[int, str, str]] = {}
    for name, rec in ds.build("acme"):
        if name == "Feedback" and rec["kind"] == "RATING" and rec["source"] == "EXPLICIT":
            key = (rec["annotator_id"], rec["interaction_id"])
            cat = f"{rec['rating']['scale']}:{float(rec['rating']['value'])}"
            if key not in latest or latest[key][0] < rec["event_time"]:
                latest[key] = (rec["event_time"], cat, rec["annotator_pool"] or "")
    out: dict[str, dict[str, dict[str, str]]] = {}
    for (who, item), (_t, cat, pool) in latest.items():
        for scope in (pool, "*"):
            out.setdefault(scope, {}).setdefault(who, {})[item] = cat
    return out


def _kappa(a: dict[str, str], b: dict[str, str]) -> float | None:
    items = sorted(set(a) & set(b))
    n = len(items)
    po = sum(a[i] == b[i] for i in items) / n
    ca, cb = Counter(a[i] for i in items), Counter(b[i] for i in items)
    pe = sum(ca[c] * cb[c] for c in ca) / (n * n)
    return None if pe == 1 else round((po - pe) / (1 - pe), 4)


def _alpha(by_annotator: dict[str, dict[str, str]]) -> float:
    """Krippendorff's nominal alpha, textbook form: 1 - Do/De from the coincidence matrix."""
    units: dict[str, list[str]] = {}
    for item_cats in by_annotator.values():
        for item, cat in item_cats.items():
            units.setdefault(item, []).append(cat)
    units = {u: v for u, v in units.items() if len(v) >= 2}
    o: Counter[tuple[str, str]] = Counter()
    for vals in units.values():
        m = len(vals)
        for i, j in ((i, j) for i in range(m) for j in range(m) if i != j):
            o[(vals[i], vals[j])] += 1 / (m - 1)
    n_c: Counter[str] = Counter()
    for (c, _k), v in o.items():
        n_c[c] += v
    n = sum(n_c.values())
    do = sum(v for (c, k), v in o.items() if c != k) / n
    de = sum(n_c[c] * n_c[k] for c in n_c for k in n_c if c != k) / (n * (n - 1))
    return round(1 - do / de, 4)


def test_q_annotator_kappa(qs: QueryService) -> None:
    got = {(r["pool"], r["annotator_a"], r["annotator_b"]): (r["items"], r["agreement"], r["kappa"])
           for r in rows(qs, "annotator_kappa")}  # fmt: skip
    # By hand: a1/a2 agree on i1, i3, i4 of 5 (po 0.6); both rate +1 three times and -1 twice
    # (pe = (9 + 4) / 25 = 0.52): kappa = 0.08 / 0.48. e1/e2 agree on both items: kappa 1.
    assert got[("vendor-a", "a1", "a2")] == (5, 0.6, 0.1667)
    assert got[("experts", "e1", "e2")] == (2, 1.0, 1.0)
    assert not [k for k in got if k[0] == "crowd"]  # one annotator: no pairs
    # Across pools ('*'): every pair, checked against an independent implementation.
    scope = _ratings_by_scope()["*"]
    for a, b in combinations(sorted(scope), 2):
        if set(scope[a]) & set(scope[b]):
            assert got[("*", a, b)][2] == _kappa(scope[a], scope[b]), (a, b)
    assert rows(qs, "annotator_kappa", min_items=3) and all(
        r["items"] >= 3 for r in rows(qs, "annotator_kappa", min_items=3)
    )


def test_q_annotator_alpha(qs: QueryService) -> None:
    got = {r["pool"]: (r["units"], r["ratings"], r["alpha"]) for r in rows(qs, "annotator_alpha")}
    # By hand, vendor-a: n = 10, n_+1 = 6, n_-1 = 4, D = 2 (i2) + 2 (i5):
    # alpha = 1 - 9 * 4 / (100 - 52) = 0.25. experts: perfect agreement, alpha 1.
    assert got["vendor-a"] == (5, 10, 0.25)
    assert got["experts"] == (2, 4, 1.0)
    assert "crowd" not in got  # no unit with two crowd ratings
    scopes = _ratings_by_scope()
    for pool in ("vendor-a", "experts", "*"):
        assert got[pool][2] == _alpha(scopes[pool]), pool


def test_q_fast_loop_effect(qs: QueryService) -> None:
    assert pick(rows(qs, "fast_loop_effect"), "arm", "requests", "errors", "error_rate") == [
        ("no_correction", 3, 2, 0.6667),
        ("served_correction", 2, 1, 0.5),
    ]


def test_q_routing_changes(qs: QueryService) -> None:
    assert pick(
        rows(qs, "routing_changes"),
        "day",
        "agent_id",
        "route",
        "changes",
        "to_human",
        "to_fallback",
        "to_default",
        "last_action",
        "last_bad_rate",
    ) == [  # fmt: skip
        ("2026-01-01", "A", "billing", 2, 1, 0, 1, "DEFAULT", 0.1),
        ("2026-01-02", "A", "billing", 1, 0, 1, 0, "FALLBACK_MODEL", 0.35),
    ]


def test_q_weight_changes(qs: QueryService) -> None:
    assert pick(
        rows(qs, "weight_changes"), "day", "changes", "docs", "down_weighted", "mean_weight", "min_weight"
    ) == [  # fmt: skip
        ("2026-01-01", 3, 2, 2, 0.5833, 0.25),
        ("2026-01-02", 1, 1, 1, 0.8, 0.8),
    ]


def test_q_preference_windows(qs: QueryService) -> None:
    rs = rows(qs, "preference_windows", min_pairs=2)
    assert pick(
        rs,
        "window_start",
        "pairs",
        "unique_pairs",
        "explicit_pairs",
        "mean_confidence",
        "mean_weight",
        "confident_share",
        "min_pairs",
        "progress",
        "ready",
    ) == [  # fmt: skip
        ("2026-01-01T00:00:00", 3, 2, 2, 0.7667, 0.8333, 0.6667, 2, 1.0, True),
        ("2026-01-02T00:00:00", 1, 1, 1, 0.8, 1.0, 1.0, 2, 0.5, False),
    ]
    assert [r["pairs"] for r in rows(qs, "preference_windows", window_hours=2)] == [1, 2, 1]


def test_q_training_readiness(qs: QueryService) -> None:
    assert pick(rows(qs, "training_readiness", min_pairs=2), "last_window_end", "pairs", "unique_pairs", "progress",
                "ready") == [("2026-01-01T12:00:00", 1, 1, 0.5, False)]  # fmt: skip


def _rated() -> list[tuple[int, float]]:
    """(answer chars, normalised rating) of every rating in the dataset."""
    out = []
    for name, rec in ds.build("acme"):
        if name == "Feedback" and rec["kind"] == "RATING":
            v = rec["rating"]["value"]
            norm = (v - 3) / 2 if rec["rating"]["scale"] == "STARS5" else v
            out.append((len(ds.RESPONSES[rec["interaction_id"]]), float(norm)))
    return out


def test_q_rating_vs_length(qs: QueryService) -> None:
    rs = rows(qs, "rating_vs_length")
    assert pick(rs, "length_bucket", "min_chars", "ratings", "mean_rating") == [
        ("0-199", 2, 8, 0.75),
        ("200-499", 250, 3, -0.3333),
        ("500-999", 500, 10, -0.1),
    ]
    chars, ratings = zip(*_rated(), strict=True)
    assert rs[0]["corr_all"] == round(float(np.corrcoef(chars, ratings)[0, 1]), 4)


def test_q_rating_vs_confidence(qs: QueryService) -> None:
    assert pick(rows(qs, "rating_vs_confidence"), "phrasing", "ratings", "mean_rating") == [
        ("confident", 7, 0.4286),
        ("plain", 14, 0.0714),
    ]


def test_q_length_by_version(qs: QueryService) -> None:
    assert pick(
        rows(qs, "length_by_version"),
        "model_id",
        "agent_version",
        "interactions",
        "mean_chars",
        "p50_chars",
        "p90_chars",
        "confident_share",
    ) == [  # fmt: skip
        ("m-1", "v1", 4, 216.5, 250, 600, 0.25),
        ("m-2", "v2", 1, 500.0, 500, 500, 1.0),
    ]


def test_q_pool_bias(qs: QueryService) -> None:
    rs = rows(qs, "pool_bias", min_ratings=5, min_group=1)
    assert pick(
        rs,
        "pool",
        "annotators",
        "ratings",
        "mean_rating",
        "length_effect",
        "confidence_effect",
        "prefers",
        "flagged",
    ) == [  # fmt: skip
        ("crowd", 1, 5, 0.2, 1.3333, 1.3333, "long+confident", True),
        ("experts", 2, 4, 0.25, -1.5, None, "", False),  # no confident answer rated: effect undefined
        ("vendor-a", 2, 11, 0.0909, -1.2667, -0.1429, "", False),
    ]
    # Too few ratings are never flagged.
    assert not any(r["flagged"] for r in rows(qs, "pool_bias", min_ratings=6, min_group=1))
    # An effect measured on too few ratings on one side is never flagged either.
    assert not any(r["flagged"] for r in rows(qs, "pool_bias", min_ratings=5, min_group=3))


def test_q_annotator_bias(qs: QueryService) -> None:
    rs = rows(qs, "annotator_bias", min_ratings=5)
    assert [(r["pool"], r["annotator_id"]) for r in rs if r["flagged"]] == [("crowd", "c1")]
    a1 = next(r for r in rs if r["annotator_id"] == "a1")
    assert (a1["ratings"], a1["mean_rating"], a1["length_effect"]) == (6, 0.0, -0.6667)
    assert not math.isnan(a1["confidence_effect"])
