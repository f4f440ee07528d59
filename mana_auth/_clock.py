"""The package's clocks, read at call time.

A default argument ``clock=time.time`` binds the function object when the module is imported, so a test
clock that replaces ``time.time`` afterwards (freezegun, ``monkeypatch.setattr(time, "time", ...)``) never
reaches it. These look the function up on every call instead.
"""

from __future__ import annotations

import time


def wall() -> float:
    """``time.time()`` as it is when called."""
    return time.time()


def monotonic() -> float:
    """``time.monotonic()`` as it is when called."""
    return time.monotonic()
