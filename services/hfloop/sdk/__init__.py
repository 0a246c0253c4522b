"""Client side of hfloop: publish events (Kafka) and look things up (HTTP)."""

from hfloop.sdk.client import AsyncFeedbackClient, FeedbackClient
from hfloop.sdk.http import HfloopClient

__all__ = ["AsyncFeedbackClient", "FeedbackClient", "HfloopClient"]
