"""``hfloop analytics report --out DIR``: an HTML page with PNG plots of the analyst questions.

Every section is one named query: the plot (matplotlib, Agg) and the numbers behind it.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hfloop.analytics import queries
from hfloop.analytics.executor import Executor
from hfloop.analytics.querying import QueryResult

Plot = Callable[[Any, QueryResult], None]


def _col(r: QueryResult, name: str) -> list[Any]:
    i = r.columns.index(name)
    return [row[i] for row in r.rows]


def _series(r: QueryResult, key: str, x: str, y: str) -> dict[str, tuple[list[Any], list[float]]]:
    out: dict[str, tuple[list[Any], list[float]]] = {}
    for k, xv, yv in zip(_col(r, key), _col(r, x), _col(r, y), strict=True):
        xs, ys = out.setdefault(str(k), ([], []))
        xs.append(xv)
        ys.append(float(yv or 0))
    return out


def plot_feedback(ax: Any, r: QueryResult) -> None:
    by: dict[tuple[str, str], float] = {}
    for day, agent, n in zip(_col(r, "day"), _col(r, "agent_id"), _col(r, "feedback_events"), strict=True):
        by[(str(day), str(agent))] = by.get((str(day), str(agent)), 0) + float(n)
    agents = sorted({a for _, a in by})
    for a in agents:
        days = sorted(d for d, ag in by if ag == a)
        ax.plot(days, [by[(d, a)] for d in days], marker="o", label=a)
    ax.set_ylabel("feedback events")
    ax.legend(fontsize=7)
    ax.tick_params(axis="x", rotation=30, labelsize=7)


def plot_labels(ax: Any, r: QueryResult) -> None:
    agents = sorted(set(map(str, _col(r, "agent_id"))))
    bottom = [0.0] * len(agents)
    for bucket, color in (("bad", "#d9534f"), ("neutral", "#aaaaaa"), ("good", "#5cb85c")):
        vals = [sum(float(s) for a2, b, s in zip(_col(r, "agent_id"), _col(r, "bucket"), _col(r, "share"), strict=True)
                    if str(a2) == a and b == bucket) for a in agents]  # fmt: skip
        ax.bar(agents, vals, bottom=bottom, label=bucket, color=color)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_ylabel("share of labels")
    ax.legend(fontsize=7)


def plot_behaviour(ax: Any, r: QueryResult) -> None:
    names = [f"{a}/{b}" for a, b in zip(_col(r, "agent_id"), _col(r, "route"), strict=True)]
    w = 0.27
    for k, col in enumerate(("correction_rate", "escalation_rate", "rephrase_rate")):
        ax.bar([i + (k - 1) * w for i in range(len(names))], [float(v) for v in _col(r, col)], w, label=col)
    ax.set_xticks(range(len(names)), names, rotation=30, fontsize=7)
    ax.legend(fontsize=7)


def plot_fast_loop(ax: Any, r: QueryResult) -> None:
    ax.bar(
        [str(a) for a in _col(r, "arm")],
        [float(v) for v in _col(r, "error_rate")],
        color=["#5bc0de", "#f0ad4e"],
    )
    ax.set_ylabel("error rate (label score < 0)")


def plot_pool_bias(ax: Any, r: QueryResult) -> None:
    pools = [str(p) or "(none)" for p in _col(r, "pool")]
    w = 0.4
    ax.bar(
        [i - w / 2 for i in range(len(pools))],
        [float(v or 0) for v in _col(r, "length_effect")],
        w,
        label="long - short",
    )
    ax.bar([i + w / 2 for i in range(len(pools))], [float(v or 0) for v in _col(r, "confidence_effect")], w,
           label="confident - plain")  # fmt: skip
    labels = [f"{p}{' (FLAGGED)' if f else ''}" for p, f in zip(pools, _col(r, "flagged"), strict=True)]
    ax.set_xticks(range(len(pools)), labels, rotation=20, fontsize=7)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_ylabel("rating difference")
    ax.legend(fontsize=7)


def plot_rating_length(ax: Any, r: QueryResult) -> None:
    ax.bar([str(b) for b in _col(r, "length_bucket")], [float(v) for v in _col(r, "mean_rating")])
    ax.set_xlabel("answer length (chars)")
    ax.set_ylabel("mean rating [-1, 1]")


def plot_length_versions(ax: Any, r: QueryResult) -> None:
    names = [f"{m}@{v}" for m, v in zip(_col(r, "model_id"), _col(r, "agent_version"), strict=True)]
    ax.plot(names, [float(v) for v in _col(r, "mean_chars")], marker="o", label="mean")
    ax.plot(names, [float(v) for v in _col(r, "p90_chars")], marker="s", label="p90")
    ax.set_ylabel("answer length (chars)")
    ax.tick_params(axis="x", rotation=30, labelsize=7)
    ax.legend(fontsize=7)


def plot_pairs(ax: Any, r: QueryResult) -> None:
    xs = [str(w)[:16] for w in _col(r, "window_start")]
    ax.bar(xs, [float(v) for v in _col(r, "unique_pairs")], label="unique pairs")
    if r.rows:
        ax.axhline(float(_col(r, "min_pairs")[0]), color="red", linestyle="--", label="training minimum")
    ax.tick_params(axis="x", rotation=30, labelsize=7)
    ax.legend(fontsize=7)


def plot_routing(ax: Any, r: QueryResult) -> None:
    by: dict[str, list[float]] = {}
    for day, h, f, d in zip(
        _col(r, "day"), _col(r, "to_human"), _col(r, "to_fallback"), _col(r, "to_default"), strict=True
    ):
        acc = by.setdefault(str(day), [0.0, 0.0, 0.0])
        acc[0] += h
        acc[1] += f
        acc[2] += d
    days = sorted(by)
    bottom = [0.0] * len(days)
    for k, name in enumerate(("to human", "to fallback", "to default")):
        vals = [by[d][k] for d in days]
        ax.bar(days, vals, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.tick_params(axis="x", rotation=30, labelsize=7)
    ax.legend(fontsize=7)


def plot_alpha(ax: Any, r: QueryResult) -> None:
    ax.bar([str(p) or "(none)" for p in _col(r, "pool")], [float(v or 0) for v in _col(r, "alpha")])
    ax.set_ylabel("Krippendorff's alpha")
    ax.axhline(0.667, color="red", linestyle="--", linewidth=0.8)


@dataclass(frozen=True)
class Section:
    query: str
    plot: Plot | None


SECTIONS = [
    Section("feedback_rates", plot_feedback),
    Section("label_distribution", plot_labels),
    Section("behaviour_rates", plot_behaviour),
    Section("explicit_vs_implicit", None),
    Section("annotator_alpha", plot_alpha),
    Section("annotator_kappa", None),
    Section("fast_loop_effect", plot_fast_loop),
    Section("routing_changes", plot_routing),
    Section("weight_changes", None),
    Section("preference_windows", plot_pairs),
    Section("training_readiness", None),
    Section("rating_vs_length", plot_rating_length),
    Section("rating_vs_confidence", None),
    Section("length_by_version", plot_length_versions),
    Section("pool_bias", plot_pool_bias),
    Section("annotator_bias", None),
]


def _table(r: QueryResult, limit: int = 30) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in r.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in r.rows[:limit]
    )
    more = f"<p class='more'>{len(r.rows) - limit} more rows</p>" if len(r.rows) > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
section{margin-bottom:2.5em}img{max-width:100%;border:1px solid #ddd}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}
th{background:#f4f4f4}.desc{color:#555;font-size:14px}.err{color:#b00}"""


def build(
    executor: Executor, out: Path, params: dict[str, Any] | None = None, title: str = "hfloop analytics"
) -> Path:
    """Run every section's query, write ``out/index.html`` and ``out/<query>.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]  # fmt: skip
    for sec in SECTIONS:
        q = queries.get(sec.query)
        qparams = {k: v for k, v in (params or {}).items() if k in {p.name for p in q.params}}
        parts.append(
            f"<section id='{q.name}'><h2>{html.escape(q.title)}</h2><p class='desc'>{html.escape(q.description)}</p>"
        )
        try:
            r = executor.named(q.name, qparams)
        except Exception as exc:  # one failing section must not hide the others
            parts.append(f"<p class='err'>query failed: {html.escape(str(exc))}</p></section>")
            continue
        if sec.plot is not None:
            fig, ax = plt.subplots(figsize=(8, 3.6))
            if r.rows:
                sec.plot(ax, r)
            else:
                ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(q.title, fontsize=10)
            fig.tight_layout()
            fig.savefig(out / f"{q.name}.png", dpi=90)
            plt.close(fig)
            parts.append(f"<img src='{q.name}.png' alt='{html.escape(q.title)}'>")
        parts.append(_table(r) + "</section>")
    parts.append("</body></html>")
    index = out / "index.html"
    index.write_text("\n".join(parts))
    return index
