"""DPO through Ray Train on windows read from the real broker, with both gates."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import torch
from transformers import AutoModelForCausalLM

from hfloop.training import registry, synthetic
from hfloop.training.dpo import DPOJobConfig, main


def test_small_window_is_refused_before_training(
    settings_factory, unique, ray_session, tiny_base, produce_pairs, published_run
):
    settings = settings_factory()
    tenant = unique("tenant")
    start, end = produce_pairs(settings, list(synthetic.preference_pairs(120, seed=1, tenant_id=tenant)))
    record = main(
        DPOJobConfig(model=tiny_base, window_start_ms=start, window_end_ms=end, tenant_id=tenant), settings
    )
    assert record["status"] == "REFUSED_DATA" and not record["promoted"] and record["artifact_path"] is None
    report = json.loads(record["gate_report"])
    assert report["input_pairs"] == 120 and any("min_pairs 500" in r for r in report["reasons"])
    assert published_run(settings, record["run_id"])["status"] == "REFUSED_DATA"


def _kill_a_worker_after_first_checkpoint(settings, run_id: str, killed: list[int]) -> None:
    """Chaos: SIGKILL a Ray Train worker process once the run has a committed checkpoint."""
    storage = settings.data_dir / "training" / "ray" / run_id
    pids = settings.data_dir / "training" / "runs" / run_id / "pids"
    deadline = time.time() + 240
    while time.time() < deadline:
        # Two checkpoints on disk: the first one is surely registered with Ray Train by now (a
        # checkpoint folder appears before its report is committed; on a loaded machine the
        # gap is long enough for a kill to land in between and resume from scratch).
        if len(list(storage.glob("checkpoint_*"))) >= 2 and list(pids.glob("rank1-*")):
            time.sleep(1.0)
            pid = int(next(pids.glob("rank1-*")).read_text())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.1)


@pytest.mark.slow
def test_dpo_learns_hidden_preference_survives_a_killed_worker_and_is_promoted(
    settings_factory, unique, ray_session, tiny_base, produce_pairs, published_run
):
    settings = settings_factory()
    tenant = unique("tenant")
    pairs = list(
        synthetic.preference_pairs(700, seed=11, tenant_id=tenant, event_time=int(time.time() * 1000))
    )
    start, end = produce_pairs(settings, pairs)
    # More, smaller steps than the default so the kill lands mid-run, after a checkpoint.
    cfg = DPOJobConfig(
        model=tiny_base, window_start_ms=start, window_end_ms=end, tenant_id=tenant, num_workers=2,
        run_id=unique("dpo"), max_steps=60, save_steps=5, learning_rate=5e-5, max_failures=2,
    )  # fmt: skip
    killed: list[int] = []
    chaos = threading.Thread(
        target=_kill_a_worker_after_first_checkpoint, args=(settings, cfg.run_id, killed), daemon=True
    )
    chaos.start()
    record = main(cfg, settings)
    chaos.join(timeout=1)

    assert killed, "the chaos thread never found a worker to kill"
    m = record["metrics"]
    # The worker group was restarted (two groups of two) and finished the run ...
    assert m["train_global_step"] == cfg.max_steps
    pid_files = list((settings.data_dir / "training" / "runs" / cfg.run_id / "pids").iterdir())
    assert len(pid_files) >= 4
    # ... from a checkpoint, not from scratch: Ray Train counts every checkpoint reported over both
    # groups; a restart from step 0 would report the early ones again (more than max/save + 1).
    snapshot = json.loads(
        (settings.data_dir / "training" / "ray" / cfg.run_id / "checkpoint_manager_snapshot.json").read_text()
    )
    assert max(snapshot["checkpoint_report_indices"]) + 1 <= cfg.max_steps // cfg.save_steps + 1, snapshot

    assert record["status"] == "PROMOTED", (record["audits"], m)
    # Chance is 0.5; the base model's own (length-normalised) preference is far below it.
    assert m["preference_accuracy"] >= 0.8 and m["preference_accuracy_ci_low"] > 0.5
    assert m["train_loss_last"] < m["train_loss_first"]
    assert m["train_world_size"] == 2
    assert sum(o["end_offset"] - o["start_offset"] for o in record["offsets"]) >= len(pairs)
    report = json.loads(record["gate_report"])
    assert report["passed"] and report["prompts_in_both"] == 0
    trained = AutoModelForCausalLM.from_pretrained(record["artifact_path"])
    base = dict(AutoModelForCausalLM.from_pretrained(tiny_base).named_parameters())
    assert any(not torch.equal(p, base[n]) for n, p in trained.named_parameters()), "DPO changed no parameter"
    entry = registry.latest(settings, "DPO")
    assert entry and entry["version"] == record["model_version"]
    assert (settings.data_dir / "models" / entry["version"] / "config.json").is_file()
    assert published_run(settings, record["run_id"]) == record


@pytest.mark.slow
def test_biased_rater_is_refused_with_length_drift_named(
    settings_factory, unique, ray_session, tiny_base, produce_pairs
):
    settings = settings_factory()
    tenant = unique("tenant")
    pairs = list(synthetic.preference_pairs(700, seed=21, rater="longer", tenant_id=tenant))
    start, end = produce_pairs(settings, pairs)
    record = main(
        DPOJobConfig(model=tiny_base, window_start_ms=start, window_end_ms=end, tenant_id=tenant), settings
    )

    assert record["status"] == "REFUSED_EVAL" and not record["promoted"] and record["model_version"] is None
    failed = {a["name"] for a in record["audits"] if not a["passed"]}
    assert "length_drift" in failed, record["audits"]
    assert record["metrics"]["gen_length_ratio"] > 1.2
    assert registry.latest(settings, "DPO") is None
