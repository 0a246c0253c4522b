"""Fixtures of the training tests: one small local Ray, one tiny base model, pair producers."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hfloop.config import Settings
from hfloop.events.kafka import RecordProducer, create_topics
from hfloop.events.serde import default_serde
from hfloop.events.topics import PREFERENCES, TRAINING

TRAINING_DIR = Path(__file__).resolve().parents[2] / "services" / "hfloop" / "training"


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """A local Ray sized for this 2-core machine: 2 training workers + a reader fit in 3 logical CPUs."""
    import ray

    ray.init(num_cpus=3, object_store_memory=200 * 2**20, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_base() -> str:
    """The tiny pre-trained base model, cached across sessions keyed by the code that builds it."""
    from hfloop.training.tiny import ensure_tiny_base

    digest = hashlib.sha1(
        b"".join((TRAINING_DIR / n).read_bytes() for n in ("tiny.py", "synthetic.py"))
    ).hexdigest()[:10]
    return ensure_tiny_base(Settings().cache_dir / f"tiny-base-{digest}")


@pytest.fixture
def produce_pairs() -> Callable[[Settings, list[dict[str, Any]]], tuple[int, int]]:
    """Produce PreferencePair records to the real broker; returns the (start, end) ms bracketing them."""

    def produce(settings: Settings, pairs: list[dict[str, Any]]) -> tuple[int, int]:
        create_topics(settings, topics=[PREFERENCES, TRAINING])
        producer = RecordProducer(settings, default_serde())
        start = int(time.time() * 1000) - 1
        for p in pairs:
            producer.send("PreferencePair", p)
        producer.flush()
        time.sleep(0.01)
        return start, int(time.time() * 1000) + 1

    return produce


@pytest.fixture
def published_run() -> Callable[[Settings, str], dict[str, Any]]:
    """Read a TrainingRun record back from hfloop.training (what other services will see)."""

    def find(settings: Settings, run_id: str) -> dict[str, Any]:
        from confluent_kafka import Consumer

        consumer = Consumer(settings.consumer_config(f"test-training-{run_id}"))
        consumer.subscribe([TRAINING])
        serde = default_serde()
        try:
            deadline = time.time() + 30
            while time.time() < deadline:
                msg = consumer.poll(0.5)
                if msg is None or msg.error():
                    continue
                name, record = serde.decode(msg.value())
                if name == "TrainingRun" and record["run_id"] == run_id:
                    return record
        finally:
            consumer.close()
        raise AssertionError(f"TrainingRun {run_id} not found on {TRAINING}")

    return find
