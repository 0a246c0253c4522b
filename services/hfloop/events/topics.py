"""Topic names of the contract, what each carries, how it is keyed and configured."""

from __future__ import annotations

from dataclasses import dataclass, field

INTERACTIONS = "hfloop.interactions"
FEEDBACK = "hfloop.feedback"
OUTCOMES = "hfloop.outcomes"
LABELS = "hfloop.labels"
PREFERENCES = "hfloop.preferences"
MEMORY = "hfloop.memory"
ROUTING = "hfloop.routing"
DOC_WEIGHTS = "hfloop.doc-weights"
TRAINING = "hfloop.training"
DLQ = "hfloop.dlq"

DAY_MS = 86_400_000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    record: str  # Avro record name (schemas/<record>.v<N>.avsc)
    key_field: str  # record field whose value is the Kafka key
    compacted: bool = False  # state topics keep the latest value per key
    retention_ms: int = 30 * DAY_MS
    partitions: int | None = None  # None: settings.kafka_partitions
    extra: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        conf = {
            "cleanup.policy": "compact" if self.compacted else "delete",
            "retention.ms": str(-1 if self.compacted else self.retention_ms),
            "min.insync.replicas": "1",
        }
        conf.update(self.extra)
        return conf


# Interactions, feedback and outcomes are keyed by interaction_id and share a partition count,
# so the join sees all events of an interaction in the same partition (co-partitioned).
TOPICS: dict[str, TopicSpec] = {
    t.name: t
    for t in [
        TopicSpec(INTERACTIONS, "Interaction", "interaction_id"),
        TopicSpec(FEEDBACK, "Feedback", "interaction_id"),
        TopicSpec(OUTCOMES, "Outcome", "interaction_id"),
        TopicSpec(LABELS, "Label", "interaction_id", retention_ms=90 * DAY_MS),
        # Training windows are read by time from this topic: keep it long.
        TopicSpec(PREFERENCES, "PreferencePair", "event_id", retention_ms=365 * DAY_MS),
        TopicSpec(MEMORY, "MemoryUpdate", "memory_id", compacted=True),
        TopicSpec(ROUTING, "RoutingUpdate", "route", compacted=True, partitions=1),
        TopicSpec(DOC_WEIGHTS, "DocWeightUpdate", "doc_id", compacted=True),
        TopicSpec(TRAINING, "TrainingRun", "run_id", retention_ms=-1, partitions=1),
        TopicSpec(DLQ, "DeadLetter", "event_id", retention_ms=90 * DAY_MS),
    ]
}

INPUT_TOPICS = (INTERACTIONS, FEEDBACK, OUTCOMES)
RECORD_TOPIC = {spec.record: name for name, spec in TOPICS.items()}


def key_of(topic: str, record: dict[str, object]) -> bytes:
    """Kafka key of a record on ``topic`` (tenant-qualified for state topics)."""
    spec = TOPICS[topic]
    value = str(record[spec.key_field])
    if spec.compacted:
        # Compaction keeps one value per key: keys must not collide across tenants.
        value = f"{record['tenant_id']}/{record.get('agent_id', '')}/{value}"
    return value.encode()
