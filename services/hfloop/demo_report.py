"""The demo's HTML report: what the closed loop did, as plots and tables (reports/demo/)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from hfloop.demo import Demo

CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
section{margin-bottom:2.2em}img{max-width:100%;border:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f4f4f4}.pass{color:#080;font-weight:600}.fail{color:#b00;font-weight:600}
code,pre{background:#f6f6f6;padding:2px 4px}pre{padding:8px;overflow-x:auto}"""


def _e(v: Any) -> str:
    return html.escape(str(v))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _plots(demo: Demo, out: Path) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[tuple[str, str]] = []
    sim = demo.facts.get("sim")

    def save(fig: Any, name: str, caption: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        made.append((name, caption))

    if sim:
        per = sim["repeat_error"]["per_intent"]
        names = sorted(per)
        if names:
            fig, ax = plt.subplots(figsize=(10, 3.8))
            x = range(len(names))
            before = [per[n]["before"]["rate"] or 0 for n in names]
            after = [per[n]["after"]["rate"] or 0 for n in names]
            ax.bar([i - 0.2 for i in x], before, 0.4, label="before first correction", color="#d62728")
            ax.bar([i + 0.2 for i in x], after, 0.4, label="after", color="#2ca02c")
            ax.set_xticks(list(x), names, rotation=45, ha="right", fontsize=8)
            ax.set_ylabel("error rate")
            ax.legend()
            ax.set_title("Repeat errors on paraphrased recurring questions, per intent")
            save(
                fig,
                "repeat_error.png",
                "Error rate per intent before vs after its first correction (fast loop).",
            )
        tl = sim["timeline"]
        bad = sim["planted"]["bad_route"]["route"]
        rtl = sim["routes"].get(bad, {}).get("timeline", [])
        if tl:
            fig, ax = plt.subplots(figsize=(10, 3.4))
            ax.plot(
                [b["t1"] for b in tl],
                [b["rate"] or 0 for b in tl],
                marker="o",
                label="error rate, all routes",
            )
            if rtl:
                ax.plot(
                    [b["t1"] for b in rtl],
                    [b["rate"] or 0 for b in rtl],
                    marker="s",
                    label=f"error rate, route {bad}",
                )
                ax.plot([b["t1"] for b in rtl], [b["fallback_share"] or 0 for b in rtl], ls="--",
                        label=f"share of {bad} on the fallback model")  # fmt: skip
            ax.set_xlabel("simulated seconds")
            ax.set_ylim(0, 1)
            ax.legend(fontsize=8)
            ax.set_title("The loop closing over time")
            save(fig, "timeline.png", "Error rate over time, and when the system rerouted the bad route.")
        pools = sim.get("pools", {})
        if pools:
            fig, ax = plt.subplots(figsize=(8, 3.2))
            names = sorted(pools)
            ax.bar(names, [pools[n]["rating_accuracy"] or 0 for n in names],
                   color=["#d62728" if pools[n]["biased"] else "#1f77b4" for n in names])  # fmt: skip
            ax.set_ylim(0, 1)
            ax.set_ylabel("rating agrees with truth")
            ax.set_title("Annotator pools (red: planted bias; ground truth)")
            save(fig, "pools.png", "Rating accuracy per annotator pool against the simulator's ground truth.")
    weights = demo.facts.get("weights")
    if weights:
        fig, ax = plt.subplots(figsize=(10, 3.4))
        docs = sorted(weights)
        stale = set(sim["planted"]["stale_docs"]) if sim else set()
        ax.bar(docs, [weights[d] for d in docs], color=["#d62728" if d in stale else "#7f7f7f" for d in docs])
        ax.set_xticks(range(len(docs)), docs, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("retrieval multiplier")
        ax.set_title("Retrieval weights learned from labels (red: the planted stale document)")
        save(fig, "doc_weights.png", "Document weights served by GET /v1/retrieval/weights.")
    an = demo.facts.get("analytics", {})
    bias = an.get("pool_bias")
    if bias and bias["rows"]:
        col = {c: i for i, c in enumerate(bias["columns"])}
        rows = bias["rows"]
        fig, ax = plt.subplots(figsize=(8, 3.2))
        names = [r[col["pool"]] or "(none)" for r in rows]
        x = range(len(rows))
        ax.bar([i - 0.2 for i in x], [r[col["length_effect"]] or 0 for r in rows], 0.4, label="length effect")
        ax.bar(
            [i + 0.2 for i in x],
            [r[col["confidence_effect"]] or 0 for r in rows],
            0.4,
            label="confidence effect",
        )
        ax.set_xticks(list(x), names)
        ax.axhline(0, color="#000", lw=0.5)
        ax.legend(fontsize=8)
        ax.set_title(
            "Rater bias from ClickHouse: rating(long) - rating(short), rating(confident) - rating(plain)"
        )
        save(
            fig,
            "pool_bias.png",
            "The biased pool found by the analytics query pool_bias (no ground truth used).",
        )
    labels = an.get("label_distribution")
    if labels and labels["rows"]:
        col = {c: i for i, c in enumerate(labels["columns"])}
        xs = [str(r[0]) for r in labels["rows"]]
        ys = [r[col["labels"]] if "labels" in col else r[-1] for r in labels["rows"]]
        fig, ax = plt.subplots(figsize=(8, 3.2))
        ax.bar(xs, ys)
        ax.set_xticks(range(len(xs)), xs, rotation=45, ha="right", fontsize=7)
        ax.set_title("Label distribution")
        save(fig, "labels.png", "Labels derived by the stream processors.")
    return made


def write_report(demo: Demo) -> Path:
    out = demo.out
    out.mkdir(parents=True, exist_ok=True)
    plots = _plots(demo, out)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>hfloop demo</title><style>{CSS}</style>"
             "</head><body><h1>hfloop demo: agents learning from feedback</h1>"]  # fmt: skip
    parts.append("<section><h2>Checks</h2>" + _table(
        ["check", "result", "detail"],
        [[n, "PASS" if ok else "FAIL", d] for n, ok, d in demo.checks]).replace(
        "<td>PASS</td>", "<td class='pass'>PASS</td>").replace("<td>FAIL</td>", "<td class='fail'>FAIL</td>") + "</section>")  # fmt: skip
    parts.append("<section><h2>Stages</h2>" + _table(
        ["stage", "ok", "seconds", "detail"],
        [[s.name, "yes" if s.ok else ("writing this page" if s.name == "report" and not s.error else "NO"),
          s.seconds, s.error or s.detail] for s in demo.stages]) + "</section>")  # fmt: skip
    sim = demo.facts.get("sim")
    if sim:
        rep = sim["repeat_error"]
        parts.append(
            "<section><h2>Fast loop</h2>"
            f"<p>Repeat-error reduction after the first correction of each intent: <b>{_e(rep['reduction'])}</b> "
            f"(errors before {rep['before']['errors']}/{rep['before']['n']}, after {rep['after']['errors']}/"
            f"{rep['after']['n']}; {rep['intents_corrected']} intents corrected).</p>"
            f"<p>Routes rerouted by the system: {_e([(a, r, v['action'], v.get('target')) for a, r, v in demo.facts.get('rerouted', [])])}. "
            f"Documents down-weighted: {_e(demo.facts.get('down', {}))}.</p></section>"
        )  # fmt: skip
        parts.append("<section><h2>What the simulator produced</h2>" + _table(
            ["event", "count"], [[k, v] for k, v in sim["events"].items()]) + "</section>")  # fmt: skip
    for name, caption in plots:
        parts.append(f"<section><img src='{_e(name)}' alt='{_e(caption)}'><p>{_e(caption)}</p></section>")
    tr = demo.facts.get("training")
    if tr:
        parts.append("<section><h2>Slow loop: DPO on the preference window</h2>"
                     f"<p>Status: <b>{_e(tr['status'])}</b>, promoted: {_e(tr['promoted'])}, "
                     f"model version: {_e(tr.get('model_version'))}.</p>"
                     + _table(["audit", "passed", "detail"], [[a["name"], a["passed"], a["detail"]] for a in tr.get("audits", [])])
                     + _table(["metric", "value"], [[k, round(v, 4)] for k, v in sorted(tr.get("metrics", {}).items())])
                     + f"<h3>Quality gate report</h3><pre>{_e(json.dumps(json.loads(tr['gate_report'] or '{}'), indent=2)[:6000])}</pre>"
                     + f"<p>Offsets read: {_e(tr.get('offsets'))}</p></section>")  # fmt: skip
    an = demo.facts.get("analytics", {})
    for name, res in an.items():
        parts.append(
            f"<section><h2>Query <code>{_e(name)}</code></h2>"
            + _table(res["columns"], res["rows"][:30])
            + "</section>"
        )
    s = demo.settings
    parts.append(
        "<section><h2>Query the history yourself</h2><pre>"
        f"HFLOOP_DATA_DIR={_e(s.data_dir)} HFLOOP_API_KEYS=demo-key:demo hfloop dev &amp;\n"
        f'HFLOOP_API_KEY=demo-key hfloop analytics query "SELECT kind, count() FROM feedback GROUP BY kind"\n'
        "HFLOOP_API_KEY=demo-key hfloop analytics report --out reports/analytics</pre></section>"
    )
    parts.append("</body></html>")
    index = out / "index.html"
    index.write_text("\n".join(parts))
    return index


def write_results(demo: Demo) -> Path:
    """Machine-readable results (after every stage, the report included, has finished)."""
    facts = {"checks": [{"check": n, "passed": ok, "detail": d} for n, ok, d in demo.checks],
             "stages": [vars(st) for st in demo.stages], **demo.facts}  # fmt: skip
    demo.out.mkdir(parents=True, exist_ok=True)
    path = demo.out / "results.json"
    path.write_text(json.dumps(facts, indent=2, default=str))
    return path
