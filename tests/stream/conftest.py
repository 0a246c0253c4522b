"""Fixtures of the stream tests: short windows, unique app ids, per-test topics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from stream_helpers import create_stream_topics

from hfloop.config import Settings
from hfloop.stream.app import TopicNames


@pytest.fixture
def stream_settings(
    settings_factory: Callable[..., Settings], unique: Callable[[str], str]
) -> Callable[..., Settings]:
    """Settings with short windows and a unique app id (consumer group, internal topics)."""

    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {"stream_app_id": unique("stream"), "label_window_s": 1.0, "join_grace_s": 4.0,
                                "stream_tick_s": 0.2, "stream_commit_interval_s": 0.2}  # fmt: skip
        base.update(overrides)
        return settings_factory(**base)

    return make


@pytest.fixture
def stream_topics(unique: Callable[[str], str]) -> Iterator[Callable[[Settings], TopicNames]]:
    def make(settings: Settings, partitions: int = 3) -> TopicNames:
        names = TopicNames.suffixed(unique("t"))
        create_stream_topics(settings, names, partitions)
        return names

    yield make
