"""Slow loop: the same DPO job through Ray Train (1 worker) vs plain TRL in one process, on the
same gated pairs read from the broker; samples/s on 1 vs 2 Ray Train workers.

Reported separately: Ray start-up (``ray.init``), the window read through Ray Data, and the
worker-group start-up of each Ray Train run (fit wall time minus what the worker measured).
The ratio "once Ray is up" compares the worker's own time (trainer construction + loop)
with the same steps in-process; the end-to-end ratio includes the worker-group start.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import BenchContext


def _plain_trl(cfg: Any, base: str, train: list[dict[str, Any]], threads: int) -> dict[str, float]:
    import torch
    from trl import DPOConfig, DPOTrainer  # noqa: F401  # warm imports, as the Ray worker's are before its clock

    from hfloop.training.dpo import build_dpo_trainer

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        trainer = build_dpo_trainer(cfg, base, train, out, [])
        t1 = time.perf_counter()
        trainer.train()
        t2 = time.perf_counter()
    return {"wall_s": t2 - t0, "setup_s": t1 - t0, "loop_s": t2 - t1}


def _ray_train(
    cfg: Any, base: str, train: list[dict[str, Any]], workdir: Path, name: str
) -> dict[str, float]:
    from hfloop.training.common import fit
    from hfloop.training.dpo import dpo_train_loop

    run_dir = workdir / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    loop_config = {"job": cfg.to_dict(), "run_id": name, "run_dir": str(run_dir), "base_model": base,
                   "artifact_dir": str(run_dir / "model"), "train": train}  # fmt: skip
    t0 = time.perf_counter()
    result = fit(dpo_train_loop, loop_config, cfg, workdir / "ray", name)
    wall = time.perf_counter() - t0
    if result.error is not None:
        raise RuntimeError(str(result.error))
    rv = result.return_value
    return {"wall_s": wall, "setup_s": rv["worker_setup_s"], "loop_s": rv["worker_loop_s"],
            "group_start_s": wall - rv["worker_setup_s"] - rv["worker_loop_s"]}  # fmt: skip


def run(ctx: BenchContext) -> dict[str, Any]:
    import ray

    from hfloop.events.kafka import RecordProducer, create_topics
    from hfloop.events.serde import default_serde
    from hfloop.events.topics import PREFERENCES, TRAINING
    from hfloop.training import synthetic
    from hfloop.training.dpo import DPOJobConfig
    from hfloop.training.gate import GateConfig, run_gate, weighted_resample
    from hfloop.training.tiny import ensure_tiny_base
    from hfloop.training.windows import read_window

    settings = ctx.settings()
    steps = 40 if ctx.quick else 200
    threads = min(2, os.cpu_count() or 1)
    base = ensure_tiny_base(settings.cache_dir / "tiny-base-bench")

    create_topics(settings, topics=[PREFERENCES, TRAINING])
    producer = RecordProducer(settings, default_serde())
    start = datetime.now(UTC)
    for rec in synthetic.preference_pairs(1500, seed=5, tenant_id="bench"):
        producer.send("PreferencePair", rec)
    producer.flush()
    time.sleep(0.01)
    end = datetime.now(UTC)

    t0 = time.perf_counter()
    ray.init(
        num_cpus=threads + 1, object_store_memory=200 * 2**20, include_dashboard=False, log_to_driver=False
    )
    ray_init_s = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        window = read_window(settings, start, end, tenant_id="bench")
        read_s = time.perf_counter() - t0
        gate = run_gate(window.pairs, GateConfig())
        train = weighted_resample(gate.train, 0)
        # One checkpoint (at the end) in both paths, so both write the same state.
        cfg = DPOJobConfig(model=base, max_steps=steps, save_steps=steps, logging_steps=steps, num_workers=1,
                           cpus_per_worker=threads, max_failures=0)  # fmt: skip
        # Interleaved repeats, best of each: other processes share these cores, and a slow
        # neighbour should not decide which path looks faster.
        plains, ray1s = [], []
        for i in range(1 if ctx.quick else 2):
            plains.append(_plain_trl(cfg, base, train, threads))
            ray1s.append(_ray_train(cfg, base, train, ctx.workdir, f"bench-1w-{i}-{int(time.time())}"))
        plain = min(plains, key=lambda r: r["wall_s"])
        ray1 = min(ray1s, key=lambda r: r["setup_s"] + r["loop_s"])
        cfg2 = DPOJobConfig(**{**cfg.to_dict(), "num_workers": 2, "cpus_per_worker": max(1, threads // 2),
                               "gate": cfg.gate, "eval": cfg.eval})  # fmt: skip
        ray2 = _ray_train(cfg2, base, train, ctx.workdir, f"bench-2w-{int(time.time())}")
    finally:
        ray.shutdown()

    b = cfg.per_device_batch_size
    rows = [
        {"path": "plain TRL, 1 process", "workers": 1, "threads": threads, "wall_s": round(plain["wall_s"], 2),
         "trainer_setup_s": round(plain["setup_s"], 2), "loop_s": round(plain["loop_s"], 2),
         "group_start_s": 0.0, "samples_s": round(steps * b / plain["loop_s"], 1)},
        {"path": "Ray Train TorchTrainer", "workers": 1, "threads": threads, "wall_s": round(ray1["wall_s"], 2),
         "trainer_setup_s": round(ray1["setup_s"], 2), "loop_s": round(ray1["loop_s"], 2),
         "group_start_s": round(ray1["group_start_s"], 2), "samples_s": round(steps * b / ray1["loop_s"], 1)},
        {"path": "Ray Train TorchTrainer", "workers": 2, "threads": max(1, threads // 2), "wall_s": round(ray2["wall_s"], 2),
         "trainer_setup_s": round(ray2["setup_s"], 2), "loop_s": round(ray2["loop_s"], 2),
         "group_start_s": round(ray2["group_start_s"], 2), "samples_s": round(steps * 2 * b / ray2["loop_s"], 1)},
    ]  # fmt: skip
    up_ratio = (ray1["setup_s"] + ray1["loop_s"]) / plain["wall_s"]
    e2e_ratio = ray1["wall_s"] / plain["wall_s"]
    scale = rows[2]["samples_s"] / rows[1]["samples_s"]
    summary = (
        f"DPO, tiny Llama, {steps} steps x {b} pairs, {len(train)} gated pairs from a {len(window.pairs)}-pair window. "
        f"Ray Train (1 worker) / plain TRL once Ray is up: **{up_ratio:.2f}x** (target <= 1.10); end to end incl. the "
        f"worker-group start ({ray1['group_start_s']:.1f}s): {e2e_ratio:.2f}x. Ray start-up (ray.init) {ray_init_s:.1f}s; "
        f"window read via Ray Data {read_s:.1f}s. 2 workers vs 1: {scale:.2f}x samples/s."
    )
    notes = (
        "Same DPOTrainer construction (hfloop.training.dpo.build_dpo_trainer) and the same resampled pairs in both "
        "paths; each writes one checkpoint at the end (the Ray path also reports it to Ray Train storage). "
        "'once Ray is up' = the worker's trainer construction + loop vs the plain process's; the worker-group start "
        "(actor processes, torch.distributed set-up, imports) is a fixed cost per run, paid once whatever the run's "
        "length. On this shared 2-core machine the 2-worker run splits the same 2 cores (1 thread each), so samples/s "
        "measures data-parallel overhead (gloo all-reduce), not a speed-up; on real nodes each worker has its own "
        "GPU. Timings are noisy: other test suites share the cores."
    )
    return {"summary": summary, "table": rows, "notes": notes, "ratio_once_up": up_ratio, "ratio_end_to_end": e2e_ratio,
            "ray_init_s": ray_init_s, "window_read_s": read_s}  # fmt: skip
