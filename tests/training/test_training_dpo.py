"""DPO through Ray Train on a window read from the real broker: it learns the hidden preference."""

from __future__ import annotations

import json
import time

import pytest
import torch
from transformers import AutoModelForCausalLM

from hfloop.training import synthetic
from hfloop.training.dpo import DPOJobConfig, main


@pytest.mark.slow
def test_dpo_learns_hidden_preference_and_is_promoted(
    settings_factory, unique, ray_session, tiny_base, produce_pairs
):
    settings = settings_factory()
    tenant = unique("tenant")
    pairs = list(
        synthetic.preference_pairs(700, seed=11, tenant_id=tenant, event_time=int(time.time() * 1000))
    )
    start, end = produce_pairs(settings, pairs)
    cfg = DPOJobConfig(
        model=tiny_base, window_start_ms=start, window_end_ms=end, tenant_id=tenant, num_workers=2
    )
    record = main(cfg, settings)

    assert record["status"] == "PROMOTED", record["audits"]
    m = record["metrics"]
    assert m["preference_accuracy"] >= 0.8 and m["preference_accuracy_ci_low"] > 0.5
    assert m["train_loss_last"] < m["train_loss_first"]
    assert m["train_world_size"] == 2
    assert sum(o["end_offset"] - o["start_offset"] for o in record["offsets"]) >= len(pairs)
    report = json.loads(record["gate_report"])
    assert report["passed"] and report["prompts_in_both"] == 0
    trained = AutoModelForCausalLM.from_pretrained(record["artifact_path"])
    base = AutoModelForCausalLM.from_pretrained(tiny_base)
    changed = [
        n for n, p in trained.named_parameters() if not torch.equal(p, dict(base.named_parameters())[n])
    ]
    assert changed, "DPO did not change any parameter"
    assert record["model_version"] and (settings.data_dir / "models" / record["model_version"]).is_dir()
