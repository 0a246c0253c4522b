"""docker-compose.yml is checked for structure here (no Docker engine on this machine to run it)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from hfloop.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
HFLOOP = [n for n, s in SERVICES.items() if s.get("image") == "hfloop:latest"]


def _env(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v)) for k, v in env.items()}


def test_every_service_has_an_image_or_a_build():
    for name, svc in SERVICES.items():
        assert svc.get("image") or svc.get("build"), name
    assert (ROOT / "deploy" / "Dockerfile").is_file()


def test_the_production_stack_is_complete():
    images = " ".join(str(s.get("image", "")) for s in SERVICES.values())
    for needle in [
        "apache/kafka:4",
        "schema-registry",
        "qdrant/qdrant",
        "clickhouse/clickhouse-server",
        "rayproject/ray",
    ]:
        assert needle in images, needle
    commands = {" ".join(SERVICES[n].get("command", [])) for n in HFLOOP}
    for role in ["gateway", "worker --role stream", "worker --role memory", "worker --role analytics", "api"]:
        assert role in commands, role


def test_hfloop_env_is_valid_settings_and_points_at_defined_services():
    for name in HFLOOP:
        env = _env(SERVICES[name])
        kwargs = {k.removeprefix("HFLOOP_").lower(): v for k, v in env.items()}
        s = Settings(**kwargs)  # unknown keys or bad values raise
        host = s.bootstrap.split(":")[0]
        assert host in SERVICES, (name, host)
        for url in (s.qdrant_url, s.clickhouse_dsn, s.schema_registry_url, s.api_url):
            assert url and re.match(r"https?://(?:[^@/]*@)?([\w-]+)", url)[1] in SERVICES, (name, url)
        assert s.tenants_by_key()


def test_http_ports_match_the_settings():
    for name in ("gateway", "api"):
        svc = SERVICES[name]
        port = Settings(**{k.removeprefix("HFLOOP_").lower(): v for k, v in _env(svc).items()}).http_port
        container_ports = [int(str(p).split(":")[-1]) for p in svc["ports"]]
        assert port in container_ports, (name, port, svc["ports"])
    host_ports = [str(p).split(":")[0] for s in SERVICES.values() for p in s.get("ports", [])]
    assert len(host_ports) == len(set(host_ports)), "two services publish the same host port"


def test_depends_on_names_exist():
    for name, svc in SERVICES.items():
        deps = svc.get("depends_on") or []
        for dep in deps if isinstance(deps, list) else deps.keys():
            assert dep in SERVICES, (name, dep)
