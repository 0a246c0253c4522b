"""The TrainingRun record (schemas/TrainingRun.v1.avsc) and its publication on hfloop.training."""

from __future__ import annotations

import json
import math
from typing import Any

from hfloop.config import Settings

STATUSES = ("REFUSED_DATA", "REFUSED_EVAL", "PROMOTED", "FAILED", "TRAINED")


def training_run(
    *,
    run_id: str,
    tenant_id: str,
    kind: str,
    status: str,
    base_model: str,
    window_start: int,
    window_end: int,
    offsets: list[dict[str, Any]],
    gate_report: dict[str, Any],
    metrics: dict[str, Any],
    audits: list[dict[str, Any]],
    artifact_path: str | None,
    model_version: str | None,
    event_time: int,
) -> dict[str, Any]:
    """A complete TrainingRun record. Non-finite or non-numeric metrics are left out (Avro map<double>)."""
    assert status in STATUSES, status
    clean = {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
    return {
        # One record per run: the run id is the event id, so a re-publish deduplicates.
        "event_id": run_id,
        "tenant_id": tenant_id,
        "event_time": event_time,
        "run_id": run_id,
        "kind": kind,
        "status": status,
        "base_model": base_model,
        "window_start": int(window_start),
        "window_end": int(window_end),
        "offsets": [
            {
                "topic": o["topic"],
                "partition": int(o["partition"]),
                "start_offset": int(o["start_offset"]),
                "end_offset": int(o["end_offset"]),
            }  # fmt: skip
            for o in offsets
        ],
        "gate_report": json.dumps(gate_report, sort_keys=True, default=str),
        "metrics": clean,
        "audits": [
            {"name": a["name"], "passed": bool(a["passed"]), "detail": str(a["detail"])} for a in audits
        ],
        "artifact_path": artifact_path,
        "promoted": status == "PROMOTED",
        "model_version": model_version,
    }


def publish(settings: Settings, record: dict[str, Any]) -> None:
    """Send the record to hfloop.training (strictly validated against the schema) and wait for the ack."""
    from hfloop.events.kafka import RecordProducer
    from hfloop.events.serde import default_serde

    producer = RecordProducer(settings, default_serde())
    producer.send("TrainingRun", record, strict=True)
    producer.flush()
