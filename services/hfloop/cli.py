"""The ``hfloop`` command: one sub-command per service and job.

Wings register their own typer sub-apps below; heavy imports (torch, ray, qdrant) happen
inside the commands, so ``hfloop --help`` stays fast.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from hfloop.config import get_settings

app = typer.Typer(help="hfloop: agents that learn from human feedback.", no_args_is_help=True)
console = Console()

kafka_app = typer.Typer(help="The local Apache Kafka broker (KRaft, official jars).", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics of the contract.", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka")
app.add_typer(topics_app, name="topics")


def _call(target: str, *args: Any, **kwargs: Any) -> Any:
    """Import ``module:function`` late and call it (keeps start-up light)."""
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)(*args, **kwargs)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


# --- kafka -------------------------------------------------------------------------------
@kafka_app.command("start")
def kafka_start() -> None:
    """Start the local broker (resolves the jars with Maven the first time)."""
    from hfloop.kafka_local import KafkaLocalError, LocalKafka

    broker = LocalKafka.from_settings(get_settings())
    try:
        with console.status(f"starting Apache Kafka {broker.version} (KRaft)..."):
            bootstrap = broker.start()
    except KafkaLocalError as exc:
        _fail(str(exc))
    console.print(f"Kafka {broker.version} listening on [bold]{bootstrap}[/bold] (data: {broker.data})")


@kafka_app.command("stop")
def kafka_stop() -> None:
    """Stop the local broker; its data stays for the next start."""
    from hfloop.kafka_local import LocalKafka

    stopped = LocalKafka.from_settings(get_settings()).stop()
    console.print("Kafka stopped" if stopped else "Kafka was not running")


@kafka_app.command("status")
def kafka_status() -> None:
    """Print whether the local broker runs, where, and its data folder."""
    from hfloop.kafka_local import LocalKafka

    st = LocalKafka.from_settings(get_settings()).status()
    console.print_json(json.dumps(st))
    if not st["running"]:
        raise typer.Exit(3)


@kafka_app.command("fetch")
def kafka_fetch() -> None:
    """Resolve the broker jars from Maven Central into the cache (no start)."""
    from hfloop.kafka_local import KafkaLocalError, LocalKafka

    try:
        libs = LocalKafka.from_settings(get_settings()).fetch()
    except KafkaLocalError as exc:
        _fail(str(exc))
    console.print(f"Kafka jars in {libs}")


@topics_app.command("create")
def topics_create(partitions: int = typer.Option(None, help="Partitions of the event topics.")) -> None:
    """Create every topic of the contract (idempotent; works against any cluster)."""
    from hfloop.events.kafka import create_topics

    result = create_topics(get_settings(), partitions=partitions)
    table = Table("topic", "state")
    for name, state in sorted(result.items()):
        table.add_row(name, state)
    console.print(table)


# --- services ----------------------------------------------------------------------------
@app.command()
def gateway(
    host: str = typer.Option(None, help="Bind address (default HFLOOP_HTTP_HOST)."),
    port: int = typer.Option(None, help="Port (default HFLOOP_HTTP_PORT)."),
) -> None:
    """HTTP ingestion: POST /v1/events -> Kafka."""
    _call("hfloop.gateway.app:serve", host=host, port=port)


WORKER_ROLES = {
    "stream": "hfloop.stream.app:run_worker",
    "memory": "hfloop.memory.app:run_worker",
    "analytics": "hfloop.analytics.sink:run_worker",
}


@app.command()
def worker(role: str = typer.Option(..., help=f"One of: {', '.join(WORKER_ROLES)}.")) -> None:
    """Run one processing role against the configured Kafka cluster."""
    if role not in WORKER_ROLES:
        _fail(f"unknown role {role!r}; choose one of {', '.join(WORKER_ROLES)}")
    _call(WORKER_ROLES[role], get_settings())


@app.command()
def api(
    host: str = typer.Option(None, help="Bind address (default HFLOOP_HTTP_HOST)."),
    port: int = typer.Option(None, help="Port (default HFLOOP_HTTP_PORT)."),
) -> None:
    """The HTTP API agents and analysts use (memory lookup, routing, weights, analytics)."""
    _call("hfloop.memory.api:serve", host=host, port=port)


@app.command()
def dev(
    stream: bool = typer.Option(True, help="Run the stream processors."),
    memory: bool = typer.Option(True, help="Run the fast loop (memory worker + lookup API)."),
    analytics: bool = typer.Option(True, help="Run the ClickHouse sink and the query route."),
) -> None:
    """Everything in one process on embedded stores, with a live status line (Ctrl-C stops)."""
    import signal
    import threading

    from rich.live import Live

    from hfloop.dev import DevStack

    settings = get_settings()
    stack = DevStack(settings, with_stream=stream, with_memory=memory, with_analytics=analytics)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with console.status("starting hfloop dev (Kafka, topics, workers, HTTP)..."):
        stack.start()
    console.print(f"hfloop dev: HTTP on http://{settings.http_host}:{settings.http_port} (docs at /docs), "
                  f"Kafka at {settings.bootstrap}. Ctrl-C stops.")  # fmt: skip
    try:
        with Live(console=console, refresh_per_second=2, transient=False) as live:
            while not stop.is_set():
                st = stack.status()
                lag = sum(st["lag"].values())
                failed = ", ".join(st["failed"]) or "none"
                live.update(f"events {st['events']:,} ({st['events_s']:,.0f}/s) | labels {st['labels']:,} | "
                            f"pairs {st['pairs']:,} | memory {st['memory_points']} | lag {lag:,} | failed: {failed}")  # fmt: skip
                stop.wait(2)
    except KeyboardInterrupt:
        pass
    finally:
        with console.status("stopping..."):
            stack.stop()
    console.print("hfloop dev stopped")


@app.command()
def demo(
    duration: float = typer.Option(150.0, help="Seconds of simulated traffic."),
    rate: float = typer.Option(4.0, help="New conversations per second."),
    seed: int = typer.Option(7, help="World seed."),
    train: bool = typer.Option(True, help="Finish with a DPO run on the preference window."),
    out: str = typer.Option("reports/demo", help="Where the HTML report goes."),
    data_dir: str = typer.Option(".hfloop/demo", help="Fresh data folder for this run (wiped first)."),
) -> None:
    """The main job: the closed loop end to end on embedded defaults, with a report."""
    from pathlib import Path

    from hfloop.demo import main as run_demo

    raise typer.Exit(run_demo(Path(out), duration, rate, seed, train, Path(data_dir)))


def _register_simulate() -> None:
    from hfloop.simulate.cli import simulate

    app.command("simulate", help="Run the closed-loop simulated world against a running hfloop.")(simulate)


_register_simulate()


# Sub-apps of the wings (each keeps heavy imports inside its commands).
for _name, _target, _help in [
    ("train", "hfloop.training.cli:app", "Slow loop: DPO / reward model / RLHF on preference windows."),
    ("analytics", "hfloop.analytics.cli:app", "ClickHouse history: migrate, query, report."),
    ("dlq", "hfloop.stream.dlq:app", "Dead letters: list and replay."),
    ("memory", "hfloop.memory.cli:app", "Correction memory: search, retract."),
]:
    try:
        _module, _, _attr = _target.partition(":")
        app.add_typer(getattr(importlib.import_module(_module), _attr), name=_name, help=_help)
    except ModuleNotFoundError as _exc:  # a wing not built yet: say so instead of hiding it
        if not (_exc.name or "").startswith("hfloop."):
            raise

        def _missing(_n: str = _name, _t: str = _target) -> None:
            _fail(f"`hfloop {_n}` is not available in this build ({_t} is missing)")

        app.command(_name, help=f"{_help} (not built yet)")(_missing)


if __name__ == "__main__":  # pragma: no cover
    app()
