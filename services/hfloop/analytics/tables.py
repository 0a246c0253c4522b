"""Which ClickHouse table holds which topic (one table per topic)."""

from __future__ import annotations

from hfloop.events import topics as t

TOPIC_TABLE: dict[str, str] = {
    t.INTERACTIONS: "interactions",
    t.FEEDBACK: "feedback",
    t.OUTCOMES: "outcomes",
    t.LABELS: "labels",
    t.PREFERENCES: "preferences",
    t.MEMORY: "memory",
    t.ROUTING: "routing",
    t.DOC_WEIGHTS: "doc_weights",
    t.TRAINING: "training_runs",
    t.DLQ: "dead_letters",
}
TABLES: tuple[str, ...] = tuple(TOPIC_TABLE.values())
# Avro record name carried by each topic -> its table.
RECORD_TABLE: dict[str, str] = {t.TOPICS[topic].record: table for topic, table in TOPIC_TABLE.items()}
