"""hfloop: agents that learn from human feedback, through a fast loop and a slow loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["FeedbackClient", "AsyncFeedbackClient", "HfloopClient", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from hfloop.sdk import AsyncFeedbackClient, FeedbackClient, HfloopClient


def __getattr__(name: str) -> Any:
    # Lazy so that `import hfloop` stays cheap (the SDK pulls in confluent-kafka).
    if name in ("FeedbackClient", "AsyncFeedbackClient", "HfloopClient"):
        from hfloop import sdk

        return getattr(sdk, name)
    raise AttributeError(name)
