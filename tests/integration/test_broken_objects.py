"""One broken object never slows the others: ten objects that cannot become Ready, of every
kind users meet, and one valid object, with the default two workers.

The kwok node plays the failures (hack/kwok-stages.yaml): an image that cannot be pulled,
a container that keeps crashing, a Job whose pod fails. Claims of a class that does not
exist never bind, and a password Secret that does not exist needs no engine at all. Each
broken object must say why, with its own reason, and the valid one must become Ready
while they are all still broken; no reconcile of theirs may hold a worker while it waits.
How long the valid one takes beside them, against alone, is measured by `python -m bench
--broken-mix` (a ratio, in bench/), not asserted here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from kubernetes import client

from tests.harness import Harness, condition, harness_in_new_namespace, has_condition

pytestmark = pytest.mark.integration

VALID: Final = "valid"
# name -> (what the spec changes, the reason Ready=False must carry, a fragment of its message)
BROKEN: Final[dict[str, tuple[dict[str, Any], str, str]]] = {
    "no-class-1": ({"storage_class": "no-such-class"}, "VolumePending", "claim no-class-1-data"),
    "no-class-2": ({"storage_class": "no-such-class"}, "VolumePending", "claim no-class-2-data"),
    "no-class-3": ({"storage_class": "no-such-class"}, "VolumePending", "claim no-class-3-data"),
    "no-image-1": (
        {"image": "kwok.invalid/image-pull-fails:1"},
        "ImagePullFailed",
        "spec.image 'kwok.invalid/image-pull-fails:1'",
    ),
    "no-image-2": (
        {"image": "kwok.invalid/image-pull-fails:1"},
        "ImagePullFailed",
        "ErrImagePull",
    ),
    "crashing-1": ({"image": "kwok.invalid/crash-loops:1"}, "CrashLooping", "restarted 5 times"),
    "crashing-2": ({"image": "kwok.invalid/crash-loops:1"}, "CrashLooping", "Can't create/write"),
    "no-secret-1": ({"passwordSecretRef": {"name": "missing-1"}}, "SecretMissing", "missing-1"),
    "no-secret-2": ({"passwordSecretRef": {"name": "missing-2"}}, "SecretMissing", "missing-2"),
    "failing-job": (
        {"image": "kwok.invalid/job-fails:1"},
        "RestoreRetrying",
        "did not answer in 900s",
    ),
}


@pytest.fixture
def harness(
    api_client: client.ApiClient, kubeconfig: Path, namespace_name: str, tmp_path: Path
) -> Iterator[Harness]:
    with harness_in_new_namespace(
        api_client, kubeconfig, namespace_name, tmp_path, extra_flags=("--workers=2",)
    ) as harness:
        yield harness


def spec_for(harness: Harness, name: str, change: dict[str, Any]) -> dict[str, Any]:
    spec = harness.host_path_spec()
    spec["host_path"] = str(harness.work_dir / "host" / name / "data")
    spec["backup"] = {"host_path": str(harness.work_dir / "host" / name / "backup")}
    if "storage_class" in change:
        spec.pop("host_path")
        spec.pop("backup")
    if "passwordSecretRef" in change:
        spec.pop("password")
    return {**spec, **change}


def test_ten_broken_objects_say_why_and_do_not_hold_back_a_valid_one(harness: Harness) -> None:
    for name, (change, _, _) in BROKEN.items():
        harness.create(name, spec_for(harness, name, change))
    harness.start()

    # Each broken one reports its own reason, naming the field or object.
    for name, (_, reason, fragment) in BROKEN.items():
        found = harness.wait_for(
            name, has_condition("Ready", "False", reason), f"{name}: Ready=False {reason}", 90
        )
        message = (condition(found, "Ready") or {})["message"]
        assert fragment in message, (name, message)

    # The valid one, created now, becomes Ready while every broken one is still broken.
    harness.create(VALID, spec_for(harness, VALID, {}))
    harness.wait_ready(VALID, generation=1)
    for name in BROKEN:
        assert not has_condition("Ready", "True")(harness.get(name)), name

    # Waiting is not work: a broken object costs at most its stage's engine runs, and one
    # that needs none (a missing Secret) never had one.
    for name in ("no-secret-1", "no-secret-2"):
        assert harness.engine_runs(name) == 0
    for name in BROKEN:
        assert harness.engine_runs(name) <= 3, (name, harness.engine_runs(name))
    failing = harness.get("failing-job")
    assert failing is not None
    # The failure is recorded: Restored=False between attempts, or the next attempt running
    # (Unknown) once the 10 s backoff has passed, which a slow valid object can outlast.
    restored = condition(failing, "Restored")
    assert restored is not None
    assert "failing-job-restore-" in restored["message"]
    if restored["status"] == "Unknown":
        assert restored["reason"] == "RestoreRunning", restored
        attempt = int(restored["message"].rsplit("attempt ", 1)[1])
        assert attempt >= 2, restored
    else:
        assert restored["status"] == "False", restored
        assert "failed" in restored["message"], restored

    # /metrics counts the not-Ready objects by reason, and shows the queue.
    code, metrics = harness.http_get("/metrics")
    assert code == 200
    assert 'mysql_operator_instances{ready="False",reason="VolumePending"} 3.0' in metrics
    assert 'mysql_operator_instances{ready="False",reason="SecretMissing"} 2.0' in metrics
    assert 'mysql_operator_instances{ready="True",reason="UpToDate"} 1.0' in metrics
    assert "mysql_operator_queue_oldest_wait_seconds" in metrics
    assert harness.http_get("/healthz") == (200, "ok\n")
