"""Secrets never reach a log: real worker processes at DEBUG (Python logging and librdkafka's
log level 7) with a SASL password and API keys in their environment, and the settings errors
a typo produces."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from security_helpers import PASSWORD, USER

from hfloop.events.kafka import create_topics
from hfloop.kafka_local import LocalKafka, free_port

API_KEYS = {"k-acme-5b1d9e": "acme", "k-globex-77c2aa": "globex"}
DEBUG = "import logging, sys; logging.basicConfig(level=logging.DEBUG); from hfloop.cli import app; app(sys.argv[1:])"


def _env(
    broker: LocalKafka, protocol: str, mechanism: str, tmp: Path, ca: Path, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HFLOOP_")}
    env.update(
        HFLOOP_KAFKA_BOOTSTRAP=broker.bootstrap_of(protocol), HFLOOP_KAFKA_SECURITY_PROTOCOL=protocol,
        HFLOOP_KAFKA_SASL_MECHANISM=mechanism, HFLOOP_KAFKA_SASL_USERNAME=USER, HFLOOP_KAFKA_SASL_PASSWORD=PASSWORD,
        HFLOOP_API_KEYS=",".join(f"{k}:{t}" for k, t in API_KEYS.items()), HFLOOP_KAFKA_CLIENT_LOG_LEVEL="7",
        HFLOOP_DATA_DIR=str(tmp), **extra,
    )  # fmt: skip
    if protocol.endswith("SSL"):
        env["HFLOOP_KAFKA_SSL_CAFILE"] = str(ca)
    return env


def _spawn(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-c", DEBUG, *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip


def _wait_for(log: Path, needle: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in log.read_text(errors="replace"):
            return
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)
    raise AssertionError(
        f"{needle!r} not logged within {timeout}s:\n{log.read_text(errors='replace')[-3000:]}"
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_stream_worker_and_gateway_at_debug_never_log_the_password_or_keys(
    secured_broker, secure_settings, pki, tmp_path
) -> None:
    """The stream worker authenticates with SASL/PLAIN (the mechanism whose handshake carries
    the password itself) and the gateway with SCRAM over TLS, both logging at DEBUG."""
    create_topics(secure_settings("SASL_SSL"))
    port = free_port()
    stream_log, gateway_log = tmp_path / "stream.log", tmp_path / "gateway.log"
    stream = _spawn(_env(secured_broker, "SASL_PLAINTEXT", "PLAIN", tmp_path / "s", pki.ca,
                         HFLOOP_STREAM_APP_ID="secrets-stream"), stream_log, "worker", "--role", "stream")  # fmt: skip
    gateway = _spawn(_env(secured_broker, "SASL_SSL", "SCRAM-SHA-512", tmp_path / "g", pki.ca, HFLOOP_HTTP_PORT=str(port)),
                     gateway_log, "gateway")  # fmt: skip
    try:
        _wait_for(gateway_log, "Uvicorn running", gateway)
        key = next(iter(API_KEYS))
        event = {"type": "interaction", "interaction_id": "i-secret", "agent_id": "support", "user_id": "u1",
                 "messages": [{"role": "user", "content": "hi"}], "response": "hello", "route": "r",
                 "model_id": "m", "agent_version": "1"}  # fmt: skip
        url = f"http://127.0.0.1:{port}/v1/events"
        ok = httpx.post(url, json=event, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert ok.status_code == 200, ok.text  # produced through SCRAM over TLS
        assert (
            httpx.post(url, json=event, headers={"Authorization": f"Bearer {key}x"}, timeout=30).status_code
            == 401
        )
        _wait_for(stream_log, f"Authenticated as {USER} via PLAIN", stream)
        _wait_for(stream_log, "SaslAuthenticateRequest(<redacted>)", stream)  # the DEBUG request log ran
    finally:
        _stop(stream)
        _stop(gateway)
    for log in (stream_log, gateway_log):
        text = log.read_text(errors="replace")
        assert "DEBUG" in text
        assert PASSWORD not in text, log.name
        for k in API_KEYS:
            assert k not in text, (log.name, k)


def test_a_settings_error_does_not_print_the_other_settings(tmp_path) -> None:
    """A typo in one variable is reported by name, without echoing every HFLOOP_* value."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HFLOOP_")}
    env.update(HFLOOP_KAFKA_SASL_PASSWORD=PASSWORD, HFLOOP_API_KEYS="k-acme-5b1d9e:acme",
               HFLOOP_API_KEY="k-acme-5b1d9e", HFLOOP_KAFKA_SASL_USERNAM="typo", HFLOOP_DATA_DIR=str(tmp_path))  # fmt: skip
    for args in (["worker", "--role", "analytics"], ["kafka", "status"]):
        r = subprocess.run([sys.executable, "-m", "hfloop.cli", *args], env=env, capture_output=True, text=True,
                           timeout=60)  # fmt: skip
        out = r.stdout + r.stderr
        assert r.returncode != 0 and "HFLOOP_KAFKA_SASL_USERNAM" in out, out[-2000:]
        assert PASSWORD not in out and "k-acme-5b1d9e" not in out, out[-2000:]
