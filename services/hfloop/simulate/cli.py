"""``hfloop simulate``: run the world against a live hfloop and print what really happened.

The lead's ``hfloop/cli.py`` registers :func:`simulate` with ``app.command("simulate")(simulate)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def print_summary(summary: dict[str, Any], out: Console | None = None) -> None:
    """The ground-truth summary as a few small tables."""
    out = out or console
    re_ = summary["repeat_error"]
    out.print(
        f"[bold]{summary['conversations']}[/bold] conversations, [bold]{summary['interactions']}[/bold] answers, "
        f"{summary['events_total']} events in {summary.get('elapsed_s', 0):.0f}s; "
        f"error rate {_pct(summary['error_rate']['rate'])}; "
        f"answers from memory {summary['memory']['answers_with_memory']} "
        f"({summary['memory']['wrong']} of them wrong)"
    )
    out.print(
        f"repeat-error rate on recurring questions ({re_['intents_corrected']} intents corrected): "
        f"before {_pct(re_['before']['rate'])} -> after {_pct(re_['after']['rate'])}; "
        f"reduction {_pct(re_['reduction'])} (vs. the model alone: {_pct(re_['counterfactual']['reduction'])})"
    )
    routes = Table("route", "answers", "error rate", "by model", "error rate over time", title="routes")
    for name, r in summary["routes"].items():
        models = ", ".join(f"{m} {_pct(v['rate'])} ({v['n']})" for m, v in r["models"].items())
        routes.add_row(
            name, str(r["n"]), _pct(r["rate"]), models, " ".join(_pct(b["rate"]) for b in r["timeline"])
        )
    out.print(routes)
    pools = Table(
        "pool",
        "ratings",
        "rating accuracy",
        "comparisons",
        "comparison accuracy",
        "biased (truth)",
        title="annotator pools",
    )
    for name, p in summary["pools"].items():
        pools.add_row(
            name,
            str(p["ratings"]),
            _pct(p["rating_accuracy"]),
            str(p["preferences"]),
            _pct(p["preference_accuracy"]),
            "yes" if p["biased"] else "",
        )
    out.print(pools)
    planted = summary["planted"]
    out.print(
        f"planted: stale docs {', '.join(planted['stale_docs'])}; wrong policy "
        f"{', '.join(planted['wrong_policy_intents'])}; bad route {planted['bad_route']['route']} on "
        f"{planted['bad_route']['model']}; biased pools {', '.join(planted['biased_pools'])}"
    )
    lookups = summary.get("lookups") or {}
    if lookups.get("errors"):
        out.print(f"[yellow]{lookups['errors']} lookups failed[/yellow] (last: {lookups['last_error']})")


def simulate(
    seed: int = typer.Option(7, help="World seed: same seed, same world and same draws."),
    rate: float = typer.Option(5.0, help="New conversations per second."),
    duration: float = typer.Option(
        None, help="Seconds to start conversations for (default 60 without --requests)."
    ),
    requests: int = typer.Option(None, help="Number of conversations to start (rephrases add answers)."),
    via: str = typer.Option("sdk", help="Publish events through 'sdk' (Kafka) or 'http' (POST /v1/events)."),
    api_url: str = typer.Option(None, help="hfloop API for lookups (default HFLOOP_API_URL)."),
    api_key: str = typer.Option(
        None, help="API key (default HFLOOP_API_KEY); it decides the tenant over HTTP."
    ),
    gateway_url: str = typer.Option(
        None, help="Where events are posted with --via http (default --api-url)."
    ),
    tenant: str = typer.Option("demo", help="Tenant of the events published through the SDK."),
    lookups: bool = typer.Option(
        True, help="Look up memory/routing/weights before answering (--no-lookups: open loop)."
    ),
    correctors: float = typer.Option(0.3, help="Share of users who write a correction after a wrong answer."),
    drain: float = typer.Option(
        15.0, help="Seconds to wait for pending reactions after the last conversation."
    ),
    json_out: Path = typer.Option(None, "--json", help="Also write the summary to this JSON file."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Simulated support agents, users and annotators against a live hfloop (the closed loop)."""
    from hfloop.config import get_settings
    from hfloop.simulate.driver import SimulationConfig, run_simulation
    from hfloop.simulate.world import WorldConfig

    if via not in ("sdk", "http"):
        raise typer.BadParameter("--via must be 'sdk' or 'http'")
    if duration is None and requests is None:
        duration = 60.0
    config = SimulationConfig(
        seed=seed,
        rate=rate,
        duration_s=duration,
        requests=requests,
        via=via,  # type: ignore[arg-type]
        tenant=tenant,
        api_url=api_url,
        api_key=api_key,
        gateway_url=gateway_url,
        lookups=lookups,
        drain_s=drain,
        progress=progress,
        world=WorldConfig(seed=seed, corrector_share=correctors),
    )
    result = run_simulation(get_settings(), config)
    print_summary(result.summary)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.summary, indent=2))
        console.print(f"summary written to {json_out}")
