"""Polling helpers every test folder shares (tests/ is on sys.path through its conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def eventually(check: Callable[[], Any], timeout: float = 30.0, every: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


def wait_until(check: Callable[[], bool], timeout: float, every: float = 0.5) -> bool:
    """Poll ``check`` until it is true or ``timeout`` passes; returns its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return check()
