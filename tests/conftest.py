"""Shared fixtures: one real Apache Kafka broker for the whole session, on free ports."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Tests must not read a developer's HFLOOP_* environment.
for _k in [k for k in os.environ if k.startswith("HFLOOP_")]:
    del os.environ[_k]
# Clients left open by a test keep reconnecting once its directory's broker is stopped; their
# "connection refused" chatter is not a failure (failures raise), so keep librdkafka quiet.
os.environ["HFLOOP_KAFKA_CLIENT_LOG_LEVEL"] = "0"

from hfloop.config import Settings  # noqa: E402
from hfloop.kafka_local import LocalKafka, free_port  # noqa: E402


class _BrokerPool:
    """One real broker per test directory (wing), started when the first module of a directory
    asks for it and stopped when the run moves on to the next directory.

    Wings test with deliberately bad records (dead-letter tests) and large backlogs on the
    contract's fixed topic names; a broker per directory keeps one wing's leftovers out of
    another wing's consumers, while modules of one wing share a broker (start-up ~3 s)."""

    def __init__(self) -> None:
        self.key: Path | None = None
        self.broker: LocalKafka | None = None
        self.home: Path | None = None

    def get(self, key: Path) -> LocalKafka:
        if key != self.key or self.broker is None:
            self.close()
            self.home = Path(tempfile.mkdtemp(prefix="hfloop-kafka-"))
            base = Settings()
            self.broker = LocalKafka(home=self.home, port=free_port(), version=base.kafka_version,
                                     cache_dir=base.cache_dir, heap="1g")  # fmt: skip
            self.broker.start()
            self.key = key
        return self.broker

    def close(self) -> None:
        if self.broker is not None:
            self.broker.stop()
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)
        self.broker = self.home = self.key = None


@pytest.fixture(scope="session")
def _broker_pool() -> Iterator[_BrokerPool]:
    pool = _BrokerPool()
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def kafka_broker(request: pytest.FixtureRequest, _broker_pool: _BrokerPool) -> LocalKafka:
    """A real single-node Kafka 4 broker (KRaft), shared by the modules of one test directory."""
    return _broker_pool.get(Path(request.path).parent)


@pytest.fixture(scope="module")
def kafka_bootstrap(kafka_broker: LocalKafka) -> str:
    return kafka_broker.bootstrap


@pytest.fixture
def settings_factory(kafka_bootstrap: str, tmp_path: Path) -> Callable[..., Settings]:
    """Settings pointing at the session broker and a per-test data folder."""

    def make(**overrides: object) -> Settings:
        base: dict[str, object] = {"kafka_bootstrap": kafka_bootstrap, "data_dir": tmp_path / "data"}
        base.update(overrides)
        return Settings(**base)  # type: ignore[arg-type]

    return make


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Unique names (consumer groups, tenants) so tests sharing the broker never collide."""

    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture(scope="session")
def chromium() -> str | None:
    """Path of a headless-capable Chromium (installed from Debian's packages when root), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return str(shutil.which(name))
    if shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, timeout=600)
        if shutil.which("chromium"):
            return str(shutil.which("chromium"))
    return None
