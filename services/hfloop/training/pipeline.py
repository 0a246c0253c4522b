"""One slow-loop run, whatever the method: window -> quality gate -> train (Ray Train) ->
evaluation gate -> promotion -> TrainingRun record on hfloop.training.

The method-specific parts (how to train, how to evaluate) are passed in as two callables,
so DPO, reward-model and RLHF runs share every step around them and produce records of the
same shape.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hfloop.config import Settings
from hfloop.training import records, registry
from hfloop.training.common import TrainJobConfig, ensure_ray
from hfloop.training.gate import GateResult, run_gate
from hfloop.training.windows import WindowData, parse_duration, read_offsets, resolve_offsets

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    settings: Settings
    cfg: TrainJobConfig
    kind: str
    run_id: str
    run_dir: Path
    base_model: str
    window: WindowData
    gate: GateResult


@dataclass
class TrainOutput:
    artifact_path: str
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the reward model's path for RLHF


@dataclass
class EvalOutput:
    audits: list[dict[str, Any]]
    metrics: dict[str, Any] = field(default_factory=dict)


def new_run_id(kind: str) -> str:
    return f"{kind.lower()}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"


def resolve_base_model(settings: Settings, model: str) -> str:
    """``model`` as given, or the tiny local base model (built once under <data_dir>/models/tiny-base)."""
    if model:
        return model
    from hfloop.training.tiny import ensure_tiny_base

    return ensure_tiny_base(settings.data_dir / "models" / "tiny-base")


def window_of(settings: Settings, cfg: TrainJobConfig) -> WindowData:
    """Read the configured window (or replay recorded offsets) through Ray Data."""
    end_ms = cfg.window_end_ms if cfg.window_end_ms is not None else int(time.time() * 1000)
    start_ms = (
        cfg.window_start_ms
        if cfg.window_start_ms is not None
        else end_ms - int(parse_duration(cfg.window).total_seconds() * 1000)
    )
    offsets = cfg.offsets
    if offsets is None:
        start, end = (datetime.fromtimestamp(x / 1000, tz=UTC) for x in (start_ms, end_ms))
        offsets = resolve_offsets(settings, start, end)
    data = read_offsets(settings, offsets, cfg.tenant_id)
    data.start_ms, data.end_ms = start_ms, end_ms
    return data


def run_job(
    settings: Settings,
    kind: str,
    cfg: TrainJobConfig,
    train: Callable[[RunContext], TrainOutput],
    evaluate: Callable[[RunContext, TrainOutput], EvalOutput],
) -> dict[str, Any]:
    """Run every step and return the TrainingRun record (also published unless ``cfg.publish`` is False)."""
    run_id = cfg.run_id or new_run_id(kind)
    cfg.run_id = run_id
    run_dir = settings.data_dir / "training" / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    started_ray = ensure_ray(cfg.ray_address, num_cpus=max(2, cfg.num_workers * cfg.cpus_per_worker + 1))
    t0 = time.time()
    base = resolve_base_model(settings, cfg.model)
    window = window_of(settings, cfg)
    t_read = time.time() - t0
    extra = {
        "window": {
            "start_ms": window.start_ms,
            "end_ms": window.end_ms,
            "records_in_range": window.records_in_range,
        },
        "undecodable_records": window.undecodable,
        "other_tenant_records": window.other_tenant,
    }
    gate = run_gate(window.pairs, cfg.gate, extra)
    (run_dir / "gate_report.json").write_text(json.dumps(gate.report, indent=2, default=str))
    ctx = RunContext(settings, cfg, kind, run_id, run_dir, base, window, gate)
    metrics: dict[str, Any] = {
        "window_pairs": len(window.pairs),
        "train_pairs": len(gate.train),
        "eval_pairs": len(gate.eval),
        "window_read_s": t_read,
    }
    audits: list[dict[str, Any]] = []
    artifact: str | None = None
    version: str | None = None
    try:
        if not gate.passed:
            status = "REFUSED_DATA"
        else:
            t1 = time.time()
            out = train(ctx)
            metrics["train_s"] = time.time() - t1
            artifact = out.artifact_path
            metrics.update(out.metrics)
            t1 = time.time()
            ev = evaluate(ctx, out)
            metrics["eval_s"] = time.time() - t1
            audits, status = ev.audits, "TRAINED"
            metrics.update(ev.metrics)
            if not all(a["passed"] for a in audits):
                status = "REFUSED_EVAL"
            elif cfg.promote:
                version, _path = registry.promote(settings, kind, run_id, Path(artifact), metrics)
                status = "PROMOTED"
    except Exception as exc:  # the record says the run failed, and why; then the caller sees the error
        log.exception("training run %s failed", run_id)
        audits.append(
            {
                "name": "run",
                "passed": False,
                "detail": "".join(traceback.format_exception_only(exc)).strip()[:2000],
            }
        )
        status = "FAILED"
        _finish(settings, ctx, status, metrics, audits, artifact, version, t0, started_ray)
        raise
    return _finish(settings, ctx, status, metrics, audits, artifact, version, t0, started_ray)


def _finish(
    settings: Settings,
    ctx: RunContext,
    status: str,
    metrics: dict[str, Any],
    audits: list[dict[str, Any]],
    artifact: str | None,
    version: str | None,
    t0: float,
    started_ray: bool,
) -> dict[str, Any]:
    metrics["wall_s"] = time.time() - t0
    record = records.training_run(
        run_id=ctx.run_id,
        tenant_id=ctx.cfg.tenant_id or "all",
        kind=ctx.kind,
        status=status,
        base_model=ctx.base_model,
        window_start=ctx.window.start_ms,
        window_end=ctx.window.end_ms,
        offsets=ctx.window.offsets,
        gate_report=ctx.gate.report,
        metrics=metrics,
        audits=audits,
        artifact_path=artifact,
        model_version=version,
        event_time=int(time.time() * 1000),
    )
    (ctx.run_dir / "training_run.json").write_text(json.dumps(record, indent=2))
    if ctx.cfg.publish:
        records.publish(settings, record)
    if started_ray:
        import ray

        ray.shutdown()
    return record


def pair_rows(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """PreferencePair records -> TRL's conversational preference format."""
    return [
        {
            "prompt": [{"role": m["role"], "content": m["content"]} for m in p["prompt"]],
            "chosen": [{"role": "assistant", "content": p["chosen"]}],
            "rejected": [{"role": "assistant", "content": p["rejected"]}],
        }
        for p in pairs
    ]
