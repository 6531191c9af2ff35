"""The reconciler pins glibc's mmap threshold at start (the memory it saves is measured in
bench/, not here: tests assert no figures)."""

from __future__ import annotations

import platform

import pytest

from reconciler.memory import pin_mmap_threshold

pytestmark = pytest.mark.unit


def test_glibc_takes_the_fixed_threshold_every_time() -> None:
    on_glibc = platform.libc_ver()[0] == "glibc"
    assert pin_mmap_threshold() is on_glibc
    assert pin_mmap_threshold() is on_glibc, "idempotent: the reconciler may call it again"
