"""The Pulumi driver against the real engine: recovery of what a crashed run leaves, and
the CLI runs each `up` costs.

A reconciler killed in the middle of an `up` leaves the DIY backend's lock file, and the
checkpoint may hold pending operations. The driver must clear both before its next run
instead of failing forever (pulumi-kubernetes-operator #368, #736). The crash itself is
simulated by writing exactly what it leaves behind.

A kill can also land while the CLI rewrites a file's metadata sidecar, which fileblob
truncates in place: the empty sidecar makes every later read of the checkpoint fail.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import pytest
from kubernetes import client
from pulumi import automation as auto

from reconciler.desired import Desired
from reconciler.driver import Driver, DriverConfig, _workspace_kwargs
from reconciler.observation import StackState
from reconciler.program import ClusterAccess
from reconciler.runs import FailureKind, StackError
from reconciler.spec import parse_instance
from reconciler.vocabulary import Stage
from tests.harness import GROUP, PLURAL, VERSION, harness_in_new_namespace

pytestmark = pytest.mark.integration

PROJECT: Final = "mysql-operator"
NAME: Final = "mysql-instance"


def new_driver(kubeconfig: Path, tmp_path: Path) -> Driver:
    return Driver(
        DriverConfig(
            project_name=PROJECT,
            backend_url=f"file://{tmp_path / 'state'}",
            work_dir=tmp_path / "workspace",
            cluster=ClusterAccess(kubeconfig=str(kubeconfig)),
            passphrase=f"it-{uuid.uuid4().hex}",
        )
    )


def test_a_stale_lock_and_pending_operations_are_recovered(
    api_client: client.ApiClient, kubeconfig: Path, namespace_name: str, tmp_path: Path
) -> None:
    with harness_in_new_namespace(api_client, kubeconfig, namespace_name, tmp_path) as harness:
        harness.create(NAME, harness.host_path_spec())
        stored: Any = harness.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace_name, PLURAL, NAME
        )
        instance = parse_instance(stored)
        backend = tmp_path / "state"
        driver = new_driver(kubeconfig, tmp_path)
        first = driver.up(Desired(instance, Stage.SERVING))
        assert first.result == "succeeded"
        stack = f"{namespace_name}.{NAME}"

        # What a kill -9 in the middle of an update leaves: a lock file, and a pending
        # create in the checkpoint.
        lock_dir = backend / ".pulumi" / "locks" / "organization" / PROJECT / stack
        assert lock_dir.is_dir(), "the DIY backend's lock layout changed"
        lock = lock_dir / f"{uuid.uuid4()}.json"
        lock.write_text(lock_content(socket.gethostname(), ended_pid()))
        checkpoint = next((backend / ".pulumi" / "stacks" / PROJECT).glob(f"{stack}.json"))
        state = json.loads(checkpoint.read_text())
        urn = state["checkpoint"]["latest"]["resources"][-1]["urn"]
        state["checkpoint"]["latest"]["pending_operations"] = [
            {
                "resource": {"urn": urn, "type": "kubernetes:core/v1:Service", "custom": True},
                "type": "creating",
            }
        ]
        checkpoint.write_text(json.dumps(state))

        second = driver.up(Desired(instance, Stage.SERVING))
        assert second.result == "succeeded"
        assert not any(lock_dir.iterdir()), "the stale lock was cleared"
        state = json.loads(checkpoint.read_text())
        assert not state["checkpoint"]["latest"].get("pending_operations")
        state = driver.stack_state(namespace_name, NAME, definite=True)
        assert state is not None
        assert state.deployed

        # A lock whose holder may still run (here: another machine's) stays, and the run
        # stops naming it; the stack is not touched.
        foreign = lock_dir / f"{uuid.uuid4()}.json"
        foreign.write_text(lock_content("ci-runner-7", 4242))
        with pytest.raises(StackError) as stopped:
            driver.up(Desired(instance, Stage.SERVING))
        assert stopped.value.kind is FailureKind.STUCK
        assert "the stack is locked by someone@ci-runner-7 (pid 4242" in str(stopped.value)
        assert foreign.exists()
        foreign.unlink()
        assert driver.up(Desired(instance, Stage.SERVING)).result == "succeeded"


def lock_content(hostname: str, pid: int) -> str:
    """A lock file as the CLI writes it."""
    return json.dumps(
        {
            "pid": pid,
            "username": "someone",
            "hostname": hostname,
            "timestamp": "2026-01-01T00:00:00Z",
        }
    )


def ended_pid() -> int:
    """The pid of a process that has ended (and been reaped) on this host."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_an_emptied_metadata_sidecar_no_longer_blocks_the_stack(tmp_path: Path) -> None:
    driver = new_driver(tmp_path / "no-cluster-needed", tmp_path)
    stack_id = "ns.sidecar"
    stack = auto.create_stack(
        stack_id,
        project_name=PROJECT,
        program=lambda: None,
        opts=driver._options(),
    )
    assert stack.up(on_output=lambda _: None).summary.result == "succeeded"
    checkpoint = tmp_path / "state" / ".pulumi" / "stacks" / PROJECT / f"{stack_id}.json"
    sidecar = Path(f"{checkpoint}.attrs")
    assert sidecar.is_file(), "fileblob no longer writes sidecars: this recovery is moot"

    # What a kill between fileblob's truncation of the sidecar and its rewrite leaves.
    sidecar.write_bytes(b"")
    with pytest.raises(auto.CommandError, match="EOF"):
        stack.export_stack()

    driver.repair_backend()
    assert driver.check_passphrase() is None  # the stack decrypts again
    assert not sidecar.exists()
    assert stack.export_stack().deployment["resources"]
    assert stack.up(on_output=lambda _: None).summary.result == "succeeded"
    assert json.loads(sidecar.read_text())  # the next write wrote a whole one


def record_cli_runs(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    """The CLI runs from now on (their first two words that are not flags), and the CLI
    handles made (each checks the CLI's version)."""
    runs: list[str] = []
    versions: list[str] = []
    real_run, real_init = auto.PulumiCommand.run, auto.PulumiCommand.__init__

    def recording_run(command: auto.PulumiCommand, args: list[str], *rest: Any, **kw: Any) -> Any:
        runs.append(" ".join(arg for arg in args[:2] if not arg.startswith("-")))
        return real_run(command, args, *rest, **kw)

    def recording_init(command: auto.PulumiCommand, *args: Any, **kw: Any) -> None:
        versions.append("pulumi version")
        real_init(command, *args, **kw)

    monkeypatch.setattr(auto.PulumiCommand, "run", recording_run)
    monkeypatch.setattr(auto.PulumiCommand, "__init__", recording_init)
    return runs, versions


def test_an_up_runs_the_engine_and_nothing_else(
    api_client: client.ApiClient,
    kubeconfig: Path,
    namespace_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each CLI run costs a process start, and most a passphrase key derivation: an `up`
    must not select a stack it knows, read outputs the program does not export, ask the
    history for a summary the engine's events gave, or check the CLI's version again."""
    runs, versions = record_cli_runs(monkeypatch)
    with harness_in_new_namespace(api_client, kubeconfig, namespace_name, tmp_path) as harness:
        harness.create(NAME, harness.host_path_spec())
        stored: Any = harness.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace_name, PLURAL, NAME
        )
        instance = parse_instance(stored)
        driver = new_driver(kubeconfig, tmp_path)

        created = driver.up(Desired(instance, Stage.SERVING))
        assert created.resource_changes.get("create", 0) > 0
        assert runs == ["stack init", "up"]
        assert created.timings is not None
        assert 0 < created.timings.resources_s <= created.timings.total_s

        runs.clear()
        unchanged = driver.up(Desired(instance, Stage.SERVING))
        assert unchanged.result == "succeeded"
        assert set(unchanged.resource_changes) == {"same"}
        assert unchanged.update_id != created.update_id
        assert runs == ["up"]
        assert versions == ["pulumi version"], "one version check per driver, not per run"


def test_new_stacks_after_the_first_are_written_without_a_cli_run(
    api_client: client.ApiClient,
    kubeconfig: Path,
    namespace_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second new stack's files are copies of the first's (backend_files.StackTemplate):
    no `stack init` and its key derivation, and the CLI reads the stack as its own: it
    lists it, encrypts its secrets with the passphrase, and destroys and removes it."""
    runs, _ = record_cli_runs(monkeypatch)
    with harness_in_new_namespace(api_client, kubeconfig, namespace_name, tmp_path) as harness:
        instances = []
        for name in ("first", "second"):
            harness.create(name, harness.host_path_spec())
            stored: Any = harness.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace_name, PLURAL, name
            )
            instances.append(parse_instance(stored))
        driver = new_driver(kubeconfig, tmp_path)
        first, second = (f"{namespace_name}.{instance.name}" for instance in instances)

        assert driver.up(Desired(instances[0], Stage.SERVING)).result == "succeeded"
        assert runs == ["stack init", "up"]
        runs.clear()
        written = driver.up(Desired(instances[1], Stage.SERVING))
        assert written.result == "succeeded"
        assert written.resource_changes.get("create", 0) > 0
        assert runs == ["up"], "the second stack was created by the CLI"

        work_dir = tmp_path / "workspace"
        assert (work_dir / f"Pulumi.{second}.yaml").read_text() == (
            work_dir / f"Pulumi.{first}.yaml"
        ).read_text()
        checkpoint = tmp_path / "state" / ".pulumi" / "stacks" / PROJECT / f"{second}.json"
        state_text = checkpoint.read_text()
        assert "otuspassword" not in state_text
        assert "ciphertext" in state_text

        workspace = auto.LocalWorkspace(**_workspace_kwargs(driver._options()))
        assert {first, second} <= {summary.name for summary in workspace.list_stacks()}
        decrypted = json.dumps(workspace.export_stack(second).deployment)
        assert "otuspassword" in decrypted or "b3R1c3Bhc3N3b3Jk" in decrypted

        # A work directory without the stack's configuration (a restarted pod): the salt
        # comes from the checkpoint, and only the right passphrase opens the stack.
        fresh = Driver(replace(driver.config, work_dir=tmp_path / "fresh"))
        assert set(fresh.up(Desired(instances[1], Stage.SERVING)).resource_changes) == {"same"}
        wrong = Driver(
            replace(driver.config, work_dir=tmp_path / "wrong", passphrase=uuid.uuid4().hex)
        )
        with pytest.raises(StackError, match="passphrase"):
            wrong.up(Desired(instances[1], Stage.SERVING))

        destroyed = driver.destroy(namespace_name, instances[1].name)
        assert destroyed is not None
        assert destroyed.resource_changes.get("delete", 0) > 0
        driver.forget_stack(namespace_name, instances[1].name)
        assert not checkpoint.exists()
        assert driver.stack_state(namespace_name, instances[1].name, definite=True) == (
            StackState(False, 0)
        )
