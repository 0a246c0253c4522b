"""RLHF through Ray Train: the reward model learns the hidden preference, the policy raises reward within the KL bound."""

from __future__ import annotations

import pytest

from hfloop.training import synthetic
from hfloop.training.rlhf import RLHFJobConfig, main


@pytest.mark.slow
def test_rlhf_reward_model_and_policy(settings_factory, unique, ray_session, tiny_base, produce_pairs):
    settings = settings_factory()
    tenant = unique("tenant")
    start, end = produce_pairs(settings, list(synthetic.preference_pairs(700, seed=31, tenant_id=tenant)))
    cfg = RLHFJobConfig(
        model=tiny_base, window_start_ms=start, window_end_ms=end, tenant_id=tenant, num_workers=2
    )
    record = main(cfg, settings)

    audits = {a["name"]: a for a in record["audits"]}
    m = record["metrics"]
    assert m["reward_accuracy"] >= 0.8 and audits["reward_accuracy"]["passed"], audits
    assert m["reward_trained"] > m["reward_base"] and m["reward_gain_ci_low"] > 0, audits[
        "reward_improvement"
    ]
    assert audits["kl_to_reference"]["passed"] and m["kl_to_reference"] <= cfg.eval.max_kl
    assert m["policy_train_reward_last"] > m["policy_train_reward_first"]
    assert record["status"] == "PROMOTED", record["audits"]
