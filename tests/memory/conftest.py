"""Fixtures of the memory wing: real MiniLM embedders (loaded once), a MemoryService on the
session broker with its own embedded Qdrant folder, an HTTP client, record builders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hfloop.config import Settings
from hfloop.events.kafka import RecordProducer, create_topics
from hfloop.events.serde import default_serde
from hfloop.events.topics import DLQ, DOC_WEIGHTS, LABELS, MEMORY, ROUTING
from hfloop.memory.embed import Embedder, HashEmbedder, TorchMiniLM
from hfloop.memory.service import MemoryService

KEYS = "key-a:{a},key-b:{b}"


@pytest.fixture(scope="session")
def minilm() -> Embedder:
    """The real all-MiniLM-L6-v2 (PyTorch reference), loaded once."""
    return TorchMiniLM()


@pytest.fixture(scope="session")
def hash_embedder() -> Embedder:
    return HashEmbedder()


@pytest.fixture
def tenants(unique: Callable[[str], str]) -> tuple[str, str]:
    return unique("ta"), unique("tb")


@pytest.fixture
def memory_settings(settings_factory: Callable[..., Settings], unique: Callable[[str], str],
                    tenants: tuple[str, str]) -> Callable[..., Settings]:  # fmt: skip
    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "memory_group_id": unique("mem"),
            "api_keys": KEYS.format(a=tenants[0], b=tenants[1]),
            "memory_rate_per_min": 0.0,
            "routing_half_life_s": 0.0,  # no decay: the tests count labels exactly
            "weights_half_life_s": 0.0,
        }
        base.update(overrides)
        return settings_factory(**base)

    return make


@pytest.fixture
def service_factory(memory_settings: Callable[..., Settings]) -> Iterator[Callable[..., MemoryService]]:
    started: list[MemoryService] = []

    def make(
        embedder: Embedder, settings: Settings | None = None, start: bool = True, **kw: Any
    ) -> MemoryService:
        s = settings or memory_settings()
        svc = MemoryService(s, embedder=embedder, **kw)
        if start:
            svc.start()
        started.append(svc)
        return svc

    yield make
    for svc in reversed(started):
        svc.stop()


@pytest.fixture
def producer(memory_settings: Callable[..., Settings]) -> Iterator[RecordProducer]:
    s = memory_settings()
    create_topics(s, topics=[MEMORY, LABELS, ROUTING, DOC_WEIGHTS, DLQ])
    p = RecordProducer(s, default_serde())
    yield p
    p.flush()
