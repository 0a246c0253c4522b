"""Scheduling: the pure decision, cron matching, and one scheduler check against the real broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from hfloop.config import reset_settings_cache
from hfloop.training import synthetic
from hfloop.training.gate import GateConfig
from hfloop.training.schedule import (
    ScheduleConfig,
    Scheduler,
    ScheduleState,
    cron_due,
    cron_matches,
    decide,
    load_state,
)


def _ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def test_cron_matches_standard_fields():
    sunday_3am = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)  # a Sunday
    assert cron_matches("0 3 * * 0", sunday_3am)
    assert cron_matches("*/15 3 * * *", sunday_3am.replace(minute=45))
    assert not cron_matches("0 3 * * 1-5", sunday_3am)
    assert cron_matches("0 3 1 * 0", sunday_3am)  # either restricted day field may match
    with pytest.raises(ValueError):
        cron_matches("61 * * * *", sunday_3am)


def test_cron_due_between_checks():
    assert cron_due("0 3 * * *", _ms(2026, 11, 29, 2, 59), _ms(2026, 11, 29, 3, 1))
    assert not cron_due("0 3 * * *", _ms(2026, 11, 29, 3, 1), _ms(2026, 11, 29, 3, 30))


def test_decide_by_pairs_or_cron():
    cfg = ScheduleConfig(min_new_pairs=500, cron="0 3 * * *")
    state = ScheduleState(last_check_ms=_ms(2026, 11, 29, 1, 0))
    assert decide(state, 499, _ms(2026, 11, 29, 2, 0), cfg)[0] is False
    go, why = decide(state, 500, _ms(2026, 11, 29, 2, 0), cfg)
    assert go and "500 new gated pairs" in why
    go, why = decide(state, 10, _ms(2026, 11, 29, 3, 5), cfg)
    assert go and "cron" in why


def test_scheduler_counts_new_gated_pairs_since_the_last_run(settings_factory, unique, produce_pairs):
    settings = settings_factory()
    tenant = unique("tenant")
    pairs = list(synthetic.preference_pairs(40, seed=7, tenant_id=tenant))
    produce_pairs(settings, pairs + pairs[:10])  # 10 exact duplicates do not count
    runs: list[dict] = []

    def run_job() -> dict:
        # A recording stand-in for the training job (tested on its own): it "reads" up to the watermarks.
        from hfloop.training.schedule import new_offsets

        record = {
            "run_id": f"run{len(runs)}",
            "status": "REFUSED_DATA",
            "offsets": new_offsets(settings, ScheduleState()),
        }
        runs.append(record)
        return record

    sched = Scheduler(settings, ScheduleConfig(min_new_pairs=40, tenant_id=tenant), run_job, GateConfig())
    first = sched.check_once()
    assert first["triggered"] and first["new_gated_pairs"] == 40 and len(runs) == 1
    second = sched.check_once()  # nothing new since the run's end offsets
    assert not second["triggered"] and second["new_gated_pairs"] == 0
    assert load_state(settings, "dpo").last_run_id == "run0"


def test_cli_dpo_refuses_a_small_window(
    settings_factory, unique, ray_session, tiny_base, produce_pairs, monkeypatch
):
    from hfloop.training.cli import app

    settings = settings_factory()
    tenant = unique("tenant")
    produce_pairs(settings, list(synthetic.preference_pairs(50, seed=9, tenant_id=tenant)))
    monkeypatch.setenv("HFLOOP_KAFKA_BOOTSTRAP", settings.bootstrap)
    monkeypatch.setenv("HFLOOP_DATA_DIR", str(settings.data_dir))
    reset_settings_cache()
    try:
        result = CliRunner().invoke(app, ["dpo", "--window", "1h", "--tenant", tenant, "--model", tiny_base])
    finally:
        reset_settings_cache()
    assert result.exit_code == 2, result.output
    assert "REFUSED_DATA" in result.output and "min_pairs 500" in result.output
    runs = list((settings.data_dir / "training" / "runs").glob("*/training_run.json"))
    assert len(runs) == 1 and json.loads(runs[0].read_text())["status"] == "REFUSED_DATA"
