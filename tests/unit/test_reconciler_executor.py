"""The executor with a fake gateway and a fake driver: the order of effects, and that the
finalizer goes only after a successful backup and destroy (ENGINEERING.md section 8)."""

# The fakes keep the real signatures and ignore most arguments.
# ruff: noqa: ARG002

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

import pytest

from reconciler.driver import Driver, FailureKind, RunResult, StackError
from reconciler.engine_events import RunTimings
from reconciler.executor import Executor, Outcome
from reconciler.kube import Gateway
from reconciler.metrics import Metrics
from reconciler.program import Phase
from reconciler.reconcile import FINALIZER
from reconciler.spec import Instance
from reconciler.status import ToolchainVersions
from tests.unit.test_reconcile import mysql

pytestmark = pytest.mark.unit

TOOLCHAIN = ToolchainVersions("3.274.1", "3.272.0", "4.25.0")
KEY = ("ns", "mysql-instance")


class FakeGateway(Gateway):
    def __init__(self, obj: dict[str, Any] | None) -> None:
        self.obj = obj
        self.log: list[str] = []
        self.events: list[str] = []

    def get_mysql(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return copy.deepcopy(self.obj)

    def set_finalizer(self, obj: Mapping[str, Any], finalizer: str, *, present: bool) -> None:
        assert self.obj is not None
        finalizers = set(self.obj["metadata"].get("finalizers") or [])
        self.log.append(f"finalizer {'+' if present else '-'}")
        if present:
            finalizers.add(finalizer)
        else:
            finalizers.discard(finalizer)
        self.obj["metadata"]["finalizers"] = sorted(finalizers)

    def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        assert self.obj is not None
        self.obj["status"] = copy.deepcopy(patch["status"])
        self.log.append("status")

    def post_event(
        self, obj: Mapping[str, Any], *, warning: bool, reason: str, message: str
    ) -> None:
        self.events.append(reason)

    def secret_problem(self, namespace: str, name: str, key: str) -> str | None:
        return None

    def namespace_terminating(self, namespace: str) -> bool:
        return False


class FakeDriver(Driver):
    def __init__(self, fail: dict[str, StackError] | None = None) -> None:
        self.fail = fail or {}
        self.calls: list[str] = []

    def _run(self, step: str) -> RunResult:
        self.calls.append(step)
        if step in self.fail:
            raise self.fail[step]
        return RunResult(
            f"{step}-{len(self.calls)}",
            "update",
            "succeeded",
            {"create": 1},
            RunTimings(total_s=3.0, resources_s=2.25),
        )

    def up(self, instance: Instance, phase: Phase) -> RunResult:
        return self._run(f"up:{phase.value}")

    def destroy(self, namespace: str, name: str) -> RunResult | None:
        return self._run("destroy")

    def remove_stack(self, namespace: str, name: str) -> None:
        self._run("remove")

    def deployed_objects(self, namespace: str, name: str) -> int:
        return 5


def executor(gateway: FakeGateway, driver: FakeDriver) -> Executor:
    return Executor(gateway, driver, TOOLCHAIN, Metrics(), cluster_domain="cluster.local")


def conditions(gateway: FakeGateway) -> dict[str, tuple[str, str]]:
    assert gateway.obj is not None
    return {c["type"]: (c["status"], c["reason"]) for c in gateway.obj["status"]["conditions"]}


def test_a_new_object_gets_the_finalizer_then_one_up_then_ready() -> None:
    gateway, driver = FakeGateway(mysql(finalizer=False)), FakeDriver()
    result = executor(gateway, driver).reconcile(KEY)
    assert result.outcome is Outcome.DONE
    assert driver.calls == ["up:running"]
    assert gateway.log[0] == "finalizer +"
    assert conditions(gateway) == {"Ready": ("True", "UpToDate")}
    assert gateway.obj is not None
    status = gateway.obj["status"]
    assert status["observedGeneration"] == 1
    assert status["endpoint"] == {"host": "mysql-instance.ns.svc.cluster.local", "port": 3306}
    assert status["lastUpdate"]["id"] == "up:running-1"
    assert gateway.events == ["Updating", "Updated"]

    # A second pass over the unchanged object: no engine run, no status write.
    writes = len(gateway.log)
    assert executor(gateway, driver).reconcile(KEY).outcome is Outcome.DONE
    assert driver.calls == ["up:running"]
    assert len(gateway.log) == writes


def test_a_deploy_logs_the_engine_runs_split(caplog: pytest.LogCaptureFixture) -> None:
    gateway, driver = FakeGateway(mysql()), FakeDriver()
    with caplog.at_level(logging.INFO, logger="reconciler.executor"):
        executor(gateway, driver).reconcile(KEY)
    (line,) = [record for record in caplog.records if record.getMessage() == "reconciled"]
    assert (line.__dict__["engine_s"], line.__dict__["resources_s"]) == (0.75, 2.25)


def test_a_transient_failure_retries_and_reports_reconciling() -> None:
    gateway = FakeGateway(mysql())
    driver = FakeDriver({"up:running": StackError(FailureKind.TRANSIENT, "connection refused")})
    result = executor(gateway, driver).reconcile(KEY)
    assert result.outcome is Outcome.RETRY
    assert conditions(gateway) == {
        "Ready": ("False", "ReconcilingRetry"),
        "Reconciling": ("True", "ReconcilingRetry"),
    }


def test_deletion_backs_up_then_destroys_then_removes_the_finalizer() -> None:
    gateway, driver = FakeGateway(mysql(deleting=True)), FakeDriver()
    result = executor(gateway, driver).reconcile(KEY)
    assert result.outcome is Outcome.DONE
    assert driver.calls == ["up:teardown", "destroy", "remove"]
    assert gateway.log[-1] == "finalizer -"
    assert gateway.events == ["BackupStarted", "BackupSucceeded", "Destroyed"]


@pytest.mark.parametrize("failing", ["up:teardown", "destroy", "remove"])
def test_the_finalizer_stays_when_any_teardown_step_fails(failing: str) -> None:
    gateway = FakeGateway(mysql(deleting=True))
    driver = FakeDriver({failing: StackError(FailureKind.FAILED, "Job has failed")})
    result = executor(gateway, driver).reconcile(KEY)
    assert result.outcome is Outcome.RETRY
    assert "finalizer -" not in gateway.log
    assert gateway.obj is not None
    assert FINALIZER in gateway.obj["metadata"]["finalizers"]
    if failing == "up:teardown":
        assert driver.calls == ["up:teardown"], "nothing is destroyed after a failed backup"
        assert conditions(gateway)["Stalled"] == ("True", "StalledBackupFailed")
        assert conditions(gateway)["BackupReady"] == ("False", "StalledBackupFailed")


def test_a_retried_teardown_does_not_back_up_again() -> None:
    gateway = FakeGateway(mysql(deleting=True))
    failing = FakeDriver({"destroy": StackError(FailureKind.TRANSIENT, "i/o timeout")})
    executor(gateway, failing).reconcile(KEY)
    assert failing.calls == ["up:teardown", "destroy"]
    driver = FakeDriver()
    assert executor(gateway, driver).reconcile(KEY).outcome is Outcome.DONE
    assert driver.calls == ["destroy", "remove"]


def test_a_gone_object_is_nothing_to_do() -> None:
    gateway, driver = FakeGateway(None), FakeDriver()
    assert executor(gateway, driver).reconcile(KEY).outcome is Outcome.GONE
    assert driver.calls == []
