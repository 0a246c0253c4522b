"""``hfloop dlq list|replay``: read the dead-letter topic and send dead letters back.

``list`` reads hfloop.dlq from the beginning up to its current end (a bounded read, no
consumer group). ``replay`` produces each selected dead letter's original bytes, with its
original key, to its origin topic, with a header naming the dead letter, e.g. orphans after
their interaction finally arrived, or records rejected by a bug that has since been fixed.
A replayed record that fails again becomes a new dead letter (its new origin offset gives it
a new id).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Dead letters: list and replay.", no_args_is_help=True)
console = Console()


def read_dead_letters(settings: Any, topic: str, timeout: float = 30.0) -> Iterator[dict[str, Any]]:
    """Every DeadLetter now in ``topic`` (undecodable entries are skipped)."""
    from confluent_kafka import Consumer, TopicPartition

    from hfloop.events.serde import DecodeError, default_serde

    serde = default_serde()
    c = Consumer(settings.consumer_config(f"hfloop-dlq-cli-{uuid.uuid4().hex[:8]}"))
    try:
        md = c.list_topics(topic, timeout=timeout).topics.get(topic)
        if md is None or md.error is not None:
            raise typer.BadParameter(f"topic {topic} does not exist")
        ends = {
            p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1] for p in md.partitions
        }
        todo = {p for p, e in ends.items() if e > 0}
        c.assign([TopicPartition(topic, p, 0) for p in todo])
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            for m in c.consume(1000, timeout=0.5):
                if m.error():
                    continue
                if (m.offset() or 0) + 1 >= ends[m.partition()]:
                    todo.discard(m.partition())
                try:
                    yield serde.decode_as(m.value(), "DeadLetter")
                except DecodeError:
                    continue
    finally:
        c.close()


def _select(settings: Any, topic: str, reason: str | None, origin: str | None, tenant: str | None,
            event_id: list[str] | None) -> list[dict[str, Any]]:  # fmt: skip
    out = []
    for d in read_dead_letters(settings, topic):
        if reason and d["reason"] != reason:
            continue
        if origin and d["origin_topic"] != origin:
            continue
        if tenant and d["tenant_id"] != tenant:
            continue
        if event_id and d["event_id"] not in event_id:
            continue
        out.append(d)
    return out


@app.command("list")
def list_(
    reason: str = typer.Option(
        None, help="Only this reason (undecodable, invalid, orphan, duplicate, processing_error)."
    ),
    origin: str = typer.Option(None, help="Only dead letters from this origin topic."),
    tenant: str = typer.Option(None, help="Only this tenant."),
    limit: int = typer.Option(50, help="Rows to print (the counts cover all)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of a table."),
    topic: str = typer.Option(None, help="Dead-letter topic (default hfloop.dlq)."),
) -> None:
    """List dead letters with their reason and origin."""
    from hfloop.config import get_settings
    from hfloop.events.topics import DLQ

    rows = _select(get_settings(), topic or DLQ, reason, origin, tenant, None)
    if as_json:
        # Plain echo, not console.print_json: that indents each object over several lines (and
        # styles it on a terminal), which breaks the one-object-per-line contract scripts parse.
        for d in rows[:limit]:
            typer.echo(json.dumps({k: v for k, v in d.items() if k not in ("payload", "key")}
                                  | {"payload_bytes": len(d["payload"])}))  # fmt: skip
        return
    counts: dict[str, int] = {}
    for d in rows:
        counts[d["reason"]] = counts.get(d["reason"], 0) + 1
    table = Table("event_id", "reason", "origin", "processor", "tenant", "error")
    for d in rows[:limit]:
        table.add_row(d["event_id"][:12], d["reason"], f"{d['origin_topic']}[{d['origin_partition']}]@{d['origin_offset']}",
                      d["processor"], d["tenant_id"], d["error"][:80])  # fmt: skip
    console.print(table)
    console.print(f"{len(rows)} dead letter(s): " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))


@app.command("replay")
def replay(
    reason: str = typer.Option(None, help="Only this reason."),
    origin: str = typer.Option(None, help="Only dead letters from this origin topic."),
    tenant: str = typer.Option(None, help="Only this tenant."),
    event_id: list[str] = typer.Option(None, help="Only these dead-letter ids (repeatable)."),
    dry_run: bool = typer.Option(False, help="Print what would be replayed, send nothing."),
    topic: str = typer.Option(None, help="Dead-letter topic (default hfloop.dlq)."),
) -> None:
    """Send dead letters' original bytes back to their origin topics."""
    from confluent_kafka import Producer

    from hfloop.config import get_settings
    from hfloop.events.topics import DLQ

    settings = get_settings()
    rows = [
        d
        for d in _select(settings, topic or DLQ, reason, origin, tenant, event_id)
        if d["origin_partition"] >= 0
    ]
    if dry_run:
        for d in rows:
            console.print(f"{d['event_id']} {d['reason']} -> {d['origin_topic']} ({len(d['payload'])} bytes)")
        console.print(f"{len(rows)} dead letter(s) would be replayed")
        return
    producer = Producer(settings.producer_config())
    errors: list[str] = []

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(f"{msg.topic()}: {err}")

    for d in rows:
        producer.produce(d["origin_topic"], d["payload"], d["key"], on_delivery=delivered,
                         headers=[("hfloop-replayed-from", d["event_id"].encode())])  # fmt: skip
        producer.poll(0)
    producer.flush(60)
    if errors:
        console.print(f"[red]{len(errors)} not delivered[/red]: {errors[:3]}")
        raise typer.Exit(1)
    console.print(f"replayed {len(rows)} dead letter(s)")
