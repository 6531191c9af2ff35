"""The driver's fast check for a crash's leftovers: the DIY backend's checkpoint file."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from reconciler.driver import Driver, DriverConfig
from reconciler.program import ClusterAccess

pytestmark = pytest.mark.unit

PROJECT = "mysql-operator"
STACK = "ns.db"


def driver(backend_url: str, tmp_path: Path) -> Driver:
    return Driver(
        DriverConfig(
            project_name=PROJECT,
            backend_url=backend_url,
            work_dir=tmp_path / "work",
            cluster=ClusterAccess(),
            passphrase="unused",  # nothing is encrypted here
        )
    )


def write_checkpoint(backend: Path, latest: dict[str, Any], *, project: str = PROJECT) -> None:
    path = backend / ".pulumi" / "stacks" / project / f"{STACK}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 3, "checkpoint": {"stack": STACK, "latest": latest}}))


def is_clean(subject: Driver) -> bool:
    stack: Any = SimpleNamespace(name=STACK)
    return subject._checkpoint_is_clean(stack)


def test_a_checkpoint_without_pending_operations_is_clean(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, {"resources": [{"urn": "u"}]})
    assert is_clean(driver(f"file://{tmp_path}", tmp_path))


def test_pending_operations_or_an_unreadable_checkpoint_need_the_export(tmp_path: Path) -> None:
    pending = tmp_path / "pending"
    write_checkpoint(pending, {"pending_operations": [{"type": "creating"}]})
    assert not is_clean(driver(f"file://{pending}", tmp_path))

    broken = tmp_path / "broken"
    write_checkpoint(broken, {})
    (broken / ".pulumi" / "stacks" / PROJECT / f"{STACK}.json").write_text("{not json")
    assert not is_clean(driver(f"file://{broken}", tmp_path))

    other_project = tmp_path / "other"
    write_checkpoint(other_project, {}, project="someone-else")
    assert not is_clean(driver(f"file://{other_project}", tmp_path))

    assert not is_clean(driver(f"file://{tmp_path / 'empty'}", tmp_path))
    assert not is_clean(driver("s3://bucket/state", tmp_path))
