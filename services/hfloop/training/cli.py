"""``hfloop train ...``: one slow-loop job per command, the scheduler, and helpers.

Heavy imports (torch, ray, trl) stay inside the commands so ``hfloop --help`` stays fast.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

import typer

app = typer.Typer(help="Slow loop: DPO / reward model / RLHF on preference windows.", no_args_is_help=True)

# Options every job command takes; built once so the three commands cannot drift apart.
WINDOW = typer.Option("7d", help="Window length ending at --end (e.g. 7d, 12h).")
END = typer.Option(None, help="Window end, ISO 8601 (UTC if no zone); default now.")
ADDRESS = typer.Option(None, help="Ray cluster address (e.g. ray://head:10001 or auto); default a local Ray.")
WORKERS = typer.Option(2, help="Ray Train workers.")
GPU = typer.Option(False, help="One GPU per worker (and bf16).")
MODEL = typer.Option("", help="Base model: HF path or name; default the tiny local model.")
TENANT = typer.Option(None, help="Only this tenant's pairs.")
STEPS = typer.Option(None, help="Optimizer steps (default: the job's).")
LORA = typer.Option(False, help="Train a LoRA adapter instead of all weights.")
MIN_PAIRS = typer.Option(500, help="Refuse below this many pairs after the gate's filters.")
RUN_ID = typer.Option(None, help="Run id; reuse one to resume its checkpoints.")
PUBLISH = typer.Option(True, help="Send the TrainingRun record to hfloop.training.")


def _configure(cfg: Any, window: str, end: str | None, address: str | None, workers: int, gpu: bool, model: str,
               tenant: str | None, steps: int | None, lora: bool, min_pairs: int, run_id: str | None,
               publish: bool) -> Any:  # fmt: skip
    cfg.window, cfg.ray_address, cfg.num_workers, cfg.use_gpu, cfg.bf16 = window, address, workers, gpu, gpu
    cfg.model, cfg.tenant_id, cfg.lora, cfg.run_id, cfg.publish = model, tenant, lora, run_id, publish
    cfg.gate.min_pairs = min_pairs
    if end:
        dt = datetime.fromisoformat(end)
        cfg.window_end_ms = int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp() * 1000)
    if steps is not None:
        cfg.max_steps = steps
    return cfg


def _report(record: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console()
    colour = (
        "green"
        if record["promoted"]
        else "red"
        if record["status"].startswith(("REFUSED", "FAILED"))
        else "yellow"
    )
    console.print(
        f"[bold]{record['kind']} run {record['run_id']}[/bold]: [{colour}]{record['status']}[/{colour}]"
    )
    gate = json.loads(record["gate_report"])
    console.print(f"  window pairs {gate.get('input_pairs')} -> kept {gate.get('kept_pairs')} "
                  f"(train {gate.get('train_pairs')}, eval {gate.get('eval_pairs')})")  # fmt: skip
    for reason in gate.get("reasons", []):
        console.print(f"  gate: {reason}")
    for a in record["audits"]:
        console.print(f"  {'PASS' if a['passed'] else 'FAIL'} {a['name']}: {a['detail']}")
    if record["model_version"]:
        console.print(f"  model version {record['model_version']} at {record['artifact_path']}")
    if record["status"] in ("REFUSED_DATA", "REFUSED_EVAL", "FAILED"):
        raise typer.Exit(code=2)


@app.command()
def dpo(
    window: str = WINDOW, end: str | None = END, address: str | None = ADDRESS, workers: int = WORKERS, gpu: bool = GPU,
    model: str = MODEL, tenant: str | None = TENANT, steps: int | None = STEPS, lora: bool = LORA, min_pairs: int = MIN_PAIRS,
    run_id: str | None = RUN_ID, publish: bool = PUBLISH,
    beta: float | None = typer.Option(None, help="DPO beta (default the job's)."),
) -> None:  # fmt: skip
    """DPO (TRL DPOTrainer in Ray Train) on a window of hfloop.preferences, with both gates."""
    from hfloop.config import get_settings
    from hfloop.training.dpo import DPOJobConfig, main

    cfg = _configure(DPOJobConfig(), window, end, address, workers, gpu, model, tenant, steps, lora, min_pairs,
                     run_id, publish)  # fmt: skip
    if beta is not None:
        cfg.beta = beta
    _report(main(cfg, get_settings()))


@app.command()
def reward(
    window: str = WINDOW, end: str | None = END, address: str | None = ADDRESS, workers: int = WORKERS, gpu: bool = GPU,
    model: str = MODEL, tenant: str | None = TENANT, steps: int | None = STEPS, lora: bool = LORA, min_pairs: int = MIN_PAIRS,
    run_id: str | None = RUN_ID, publish: bool = PUBLISH,
) -> None:  # fmt: skip
    """Reward model (TRL RewardTrainer in Ray Train); reports held-out reward accuracy."""
    from hfloop.config import get_settings
    from hfloop.training.reward import RewardJobConfig, main

    cfg = _configure(RewardJobConfig(), window, end, address, workers, gpu, model, tenant, None, lora, min_pairs,
                     run_id, publish)  # fmt: skip
    if steps is not None:
        cfg.reward_steps = steps
    _report(main(cfg, get_settings()))


@app.command()
def rlhf(
    window: str = WINDOW, end: str | None = END, address: str | None = ADDRESS, workers: int = WORKERS, gpu: bool = GPU,
    model: str = MODEL, tenant: str | None = TENANT, steps: int | None = STEPS, lora: bool = LORA, min_pairs: int = MIN_PAIRS,
    run_id: str | None = RUN_ID, publish: bool = PUBLISH,
    algorithm: str = typer.Option("grpo", help="grpo | rloo."),
    kl_beta: float | None = typer.Option(None, help="KL coefficient to the reference (default the job's)."),
) -> None:  # fmt: skip
    """Reward model, then GRPO/RLOO against it with a KL penalty, in one Ray Train job."""
    from hfloop.config import get_settings
    from hfloop.training.rlhf import RLHFJobConfig, main

    cfg = _configure(RLHFJobConfig(), window, end, address, workers, gpu, model, tenant, None, lora, min_pairs,
                     run_id, publish)  # fmt: skip
    cfg.algorithm = algorithm
    if steps is not None:
        cfg.policy_steps = steps
    if kl_beta is not None:
        cfg.kl_beta = kl_beta
    _report(main(cfg, get_settings()))


@app.command()
def schedule(
    kind: str = typer.Option("dpo", help="Job to trigger: dpo | reward | rlhf."),
    min_new_pairs: int = typer.Option(500, help="Trigger when this many new pairs passed the gate's filters."),
    cron: str | None = typer.Option(None, help="Also trigger at these times: 5-field cron, UTC (e.g. '0 3 * * 0')."),
    once: bool = typer.Option(False, help="Check once and exit (what the Kubernetes CronJob runs)."),
    interval: float = typer.Option(60.0, help="Seconds between checks (loop mode)."),
    window: str = WINDOW, address: str | None = ADDRESS, workers: int = WORKERS, gpu: bool = GPU, model: str = MODEL,
    tenant: str | None = TENANT, min_pairs: int = MIN_PAIRS, publish: bool = PUBLISH,
) -> None:  # fmt: skip
    """Trigger a job when enough new gated pairs arrived since the last run, or at a cron time."""
    import signal

    from hfloop.config import get_settings
    from hfloop.training.schedule import ScheduleConfig, Scheduler

    jobs = {"dpo": ("hfloop.training.dpo", "DPOJobConfig"), "reward": ("hfloop.training.reward", "RewardJobConfig"),
            "rlhf": ("hfloop.training.rlhf", "RLHFJobConfig")}  # fmt: skip
    if kind not in jobs:
        raise typer.BadParameter(f"kind must be one of {', '.join(jobs)}")
    import importlib

    module = importlib.import_module(jobs[kind][0])
    settings = get_settings()
    sched_cfg = ScheduleConfig(
        kind=kind, min_new_pairs=min_new_pairs, cron=cron, interval_s=interval, tenant_id=tenant
    )

    def run_job() -> dict[str, Any]:
        cfg = _configure(getattr(module, jobs[kind][1])(), window, None, address, workers, gpu, model, tenant, None,
                         False, min_pairs, None, publish)  # fmt: skip
        record: dict[str, Any] = module.main(cfg, settings)
        return record

    scheduler = Scheduler(settings, sched_cfg, run_job, getattr(module, jobs[kind][1])().gate)
    if once:
        result = scheduler.check_once()
        typer.echo(json.dumps({k: v for k, v in result.items() if k != "record"}))
        if "record" in result:
            _report(result["record"])
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        scheduler.run(stop)
    except KeyboardInterrupt:
        stop.set()


@app.command()
def models() -> None:
    """Promoted model versions (the registry agents route by)."""
    from hfloop.config import get_settings
    from hfloop.training.registry import load_registry

    typer.echo(json.dumps(load_registry(get_settings()), indent=2))


@app.command()
def synth(
    pairs: int = typer.Option(1000, help="How many PreferencePair records."),
    rater: str = typer.Option("honest", help="honest | longer (the biased rater)."),
    tenant: str = typer.Option("demo", help="Tenant id of the records."),
    seed: int = typer.Option(0, help="World seed."),
) -> None:
    """Produce synthetic PreferencePair records to hfloop.preferences (demos, smoke tests)."""
    import time

    from hfloop.config import get_settings
    from hfloop.events.kafka import RecordProducer, create_topics
    from hfloop.events.serde import default_serde
    from hfloop.events.topics import PREFERENCES, TRAINING
    from hfloop.training.synthetic import Rater, preference_pairs

    if rater not in ("honest", "longer"):
        raise typer.BadParameter("rater must be honest or longer")
    settings = get_settings()
    create_topics(settings, topics=[PREFERENCES, TRAINING])
    producer = RecordProducer(settings, default_serde())
    which: Rater = "longer" if rater == "longer" else "honest"
    for rec in preference_pairs(
        pairs, seed=seed, rater=which, tenant_id=tenant, event_time=int(time.time() * 1000)
    ):
        producer.send("PreferencePair", rec)
    producer.flush()
    typer.echo(f"produced {pairs} {rater} pairs for tenant {tenant} to {PREFERENCES}")
