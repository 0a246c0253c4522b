"""Shared fixtures: one real Apache Kafka broker for the whole session, on free ports."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Tests must not read a developer's HFLOOP_* environment.
for _k in [k for k in os.environ if k.startswith("HFLOOP_")]:
    del os.environ[_k]

from hfloop.config import Settings  # noqa: E402
from hfloop.kafka_local import LocalKafka, free_port  # noqa: E402


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[LocalKafka]:
    """A real single-node Kafka 4 broker (KRaft), started once, stopped at the end."""
    home = Path(tempfile.mkdtemp(prefix="hfloop-kafka-"))
    broker = LocalKafka(
        home=home,
        port=free_port(),
        version=Settings().kafka_version,
        cache_dir=Settings().cache_dir,
        heap="1g",
    )
    broker.start()
    yield broker
    broker.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
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
