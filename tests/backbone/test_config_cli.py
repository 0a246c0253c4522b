"""Settings (prefix, unknown keys, secrets, Kafka security passthrough) and the kafka/topics CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from hfloop.config import Settings
from hfloop.kafka_local import free_port


def test_unknown_hfloop_variable_is_rejected(monkeypatch):
    monkeypatch.setenv("HFLOOP_KAFKA_BOOTSTRAPP", "x:1")
    with pytest.raises(ValidationError, match="HFLOOP_KAFKA_BOOTSTRAPP"):
        Settings()


def test_env_prefix_and_types(monkeypatch):
    monkeypatch.setenv("HFLOOP_KAFKA_BOOTSTRAP", "broker:9093")
    monkeypatch.setenv("HFLOOP_HTTP_PORT", "9999")
    s = Settings()
    assert s.bootstrap == "broker:9093" and s.http_port == 9999
    monkeypatch.setenv("HFLOOP_HTTP_PORT", "not-a-port")
    with pytest.raises(ValidationError, match="http_port"):
        Settings()


def test_secrets_are_masked_when_printed():
    s = Settings(api_keys="sekrit:acme", kafka_sasl_password="hunter2")
    shown = repr(s) + str(s) + s.model_dump_json()
    assert "sekrit" not in shown and "hunter2" not in shown
    assert s.tenants_by_key() == {"sekrit": "acme"}


def test_malformed_api_keys_are_an_error():
    with pytest.raises(ValueError, match="key:tenant"):
        Settings(api_keys="justakey").tenants_by_key()


def test_kafka_security_settings_reach_every_client_config(tmp_path):
    ca = tmp_path / "ca.pem"
    s = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="svc",
                 kafka_sasl_password="pw", kafka_ssl_cafile=ca)  # fmt: skip
    for conf in (s.kafka_client_config(), s.producer_config(), s.consumer_config("g")):
        assert conf["security.protocol"] == "SASL_SSL"
        assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
        assert conf["sasl.username"] == "svc" and conf["sasl.password"] == "pw"
        assert conf["ssl.ca.location"] == str(ca)
    p = s.producer_config()
    assert p["enable.idempotence"] is True and p["acks"] == "all"
    assert s.consumer_config("g")["enable.auto.commit"] is False


def _hfloop(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hfloop.cli", *args], env=env, capture_output=True, text=True,
                          timeout=180)  # fmt: skip


def test_cli_kafka_start_status_topics_stop(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("HFLOOP_")}
    env.update(HFLOOP_DATA_DIR=str(tmp_path / "d"), HFLOOP_KAFKA_PORT=str(free_port()), COLUMNS="200")
    try:
        r = _hfloop(env, "kafka", "start")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "listening on 127.0.0.1:" in r.stdout
        r = _hfloop(env, "kafka", "status")
        assert r.returncode == 0 and '"running": true' in r.stdout
        r = _hfloop(env, "topics", "create")
        assert r.returncode == 0 and "hfloop.preferences" in r.stdout and "created" in r.stdout
        r = _hfloop(env, "topics", "create")
        assert "created" not in r.stdout and "exists" in r.stdout
    finally:
        r = _hfloop(env, "kafka", "stop")
    assert "Kafka stopped" in r.stdout
    assert _hfloop(env, "kafka", "status").returncode == 3
