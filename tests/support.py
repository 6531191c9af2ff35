"""Helpers shared by the test tiers: polling with explicit deadlines."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    probe: Callable[[], T],
    until: Callable[[T], bool],
    *,
    timeout_s: float,
    interval_s: float = 0.5,
    what: str,
) -> T:
    """Calls `probe` until `until(result)` holds, or fails naming `what` and the last result."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if until(result):
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not true after {timeout_s:.0f}s; last seen {result!r}")
        time.sleep(interval_s)
