"""`python -m reconciler run` as a process, against the local cluster, with the real engine.

The story of the original example, in order: the CRD is applied, objects are created
before the reconciler starts, the reconciler brings the valid one to Ready and reports
the invalid one as Stalled, an unchanged object costs no engine run across resyncs,
`reconciler preview` tells a changed manifest from an unchanged one, an image change
rolls the Deployment, and deletion runs the backup Job before anything is deleted and
keeps only the backup claim.

Storage uses static hostPath volumes (in tmp_path) because the kwok cluster has no
provisioner; see test_stack_program.py. The reconciler watches only the test's
namespace, so it never touches objects of other tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

import pytest
import yaml
from kubernetes import client, watch

from tests.integration.test_crd_admission import GROUP, PLURAL, VERSION, ensure_crd
from tests.support import delete_namespace_and_volumes, eventually, read_or_none

pytestmark = pytest.mark.integration

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
NAME: Final = "mysql-instance"
BROKEN: Final = "broken-instance"
FINALIZER: Final = "otus.homework/teardown"
PASSPHRASE: Final = f"it-{uuid.uuid4().hex}"
READY_TIMEOUT_S: Final = 240.0
GONE_TIMEOUT_S: Final = 240.0
RESYNC_S: Final = 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    if obj is None:
        return None
    for entry in (obj.get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind:
            found: dict[str, Any] = entry
            return found
    return None


@dataclass
class Recorder:
    """Watches Jobs and Deployments in a namespace, noting (resourceVersion, what) pairs.

    Both watches read one etcd, so resourceVersions order their events; that is how the
    test shows the backup Job completed before the first deletion without timing.
    """

    api_client: client.ApiClient
    namespace: str
    seen: list[tuple[int, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        batch, apps = client.BatchV1Api(self.api_client), client.AppsV1Api(self.api_client)
        for lister in (batch.list_namespaced_job, apps.list_namespaced_deployment):
            version = lister(self.namespace).metadata.resource_version
            threading.Thread(target=self._follow, args=(lister, version), daemon=True).start()

    def _follow(self, lister: Callable[..., Any], version: str) -> None:
        while not self.stop.is_set():
            for event in watch.Watch().stream(  # type: ignore[no-untyped-call]
                lister, self.namespace, resource_version=version, timeout_seconds=5
            ):
                obj = event["object"]
                version = obj.metadata.resource_version
                kind = type(obj).__name__.removeprefix("V1")
                complete = kind == "Job" and any(
                    c.type == "Complete" and c.status == "True"
                    for c in (obj.status.conditions or [])
                )
                deleting = obj.metadata.deletion_timestamp is not None
                what = f"{event['type']} {kind} {obj.metadata.name}"
                what += " complete" if complete else ""
                what += " deleting" if deleting else ""
                self.seen.append((int(version), what))

    def first(self, what: Callable[[str], bool]) -> int:
        return min(version for version, seen in self.seen if what(seen))


@dataclass
class Harness:
    api_client: client.ApiClient
    kubeconfig: Path
    namespace: str
    work_dir: Path
    process: subprocess.Popen[bytes] | None = None
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.batch = client.BatchV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)
        self.state_dir = self.work_dir / "state"
        self.log_path = self.work_dir / "reconciler.log"

    # -- the reconciler process ----------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PYTHONPATH": str(REPO_ROOT),
        }

    def common_flags(self) -> list[str]:
        return [f"--state-dir={self.state_dir}", f"--kubeconfig={self.kubeconfig}"]

    def start(self, attempts: int = 3) -> None:
        """Starts the reconciler and waits until it serves /healthz. The port was free when
        picked, but another process on the machine may take it first: then pick again."""
        for _ in range(attempts):
            self._spawn()
            process = self.process
            assert process is not None
            eventually(
                partial(self._serving_state, process),
                lambda seen: seen[0] is not None or seen[1] == 200,
                timeout_s=120,
                what="the reconciler serving /healthz, or exited",
            )
            if process.poll() is None:
                return
            if not any("Address already in use" in line for line in self.log_lines()[-5:]):
                raise AssertionError(f"the reconciler exited with {process.returncode}")
            self.port = free_port()
        raise AssertionError(f"no free port for the reconciler after {attempts} attempts")

    def _serving_state(self, process: subprocess.Popen[bytes]) -> tuple[int | None, int]:
        """The reconciler's exit code (None: running) and its /healthz status code."""
        return process.poll(), self.http_get("/healthz")[0]

    def _spawn(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "reconciler",
                    "run",
                    *self.common_flags(),
                    f"--namespace={self.namespace}",
                    f"--resync-period={RESYNC_S}",
                    f"--http-address=127.0.0.1:{self.port}",
                    "--log-level=DEBUG",
                ],
                cwd=REPO_ROOT,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_lines(self) -> list[str]:
        return self.log_path.read_text().splitlines() if self.log_path.exists() else []

    def http_get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except OSError as error:
            return -1, str(error)

    def preview(self, manifest: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "reconciler",
                "preview",
                "-f",
                str(manifest),
                "--output=json",
                *self.common_flags(),
            ],
            cwd=REPO_ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )

    # -- MySQL objects -------------------------------------------------------------------

    def spec(self) -> dict[str, Any]:
        host_root = self.work_dir / "host"
        return {
            "image": "mysql:5.7",
            "database": "otus-database",
            "password": "otuspassword",
            "storage_size": "1Gi",
            "host_path": str(host_root / "data"),
            "backup": {"host_path": str(host_root / "backup")},
        }

    def manifest(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MySQL",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec,
        }

    def create(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.manifest(name, spec)
        )

    def get(self, name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = read_or_none(
            lambda: self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, name
            )
        )
        return found

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def wait_gone(self, name: str) -> None:
        eventually(
            partial(self.get, name),
            lambda found: found is None,
            timeout_s=GONE_TIMEOUT_S,
            what=f"MySQL {name} deleted (finalizer removed)",
        )

    def wait_ready(self, name: str, generation: int) -> dict[str, Any]:
        def ready(obj: dict[str, Any] | None) -> bool:
            found = condition(obj, "Ready")
            return (
                obj is not None
                and found is not None
                and found["status"] == "True"
                and obj["status"].get("observedGeneration") == generation
            )

        found = eventually(
            partial(self.get, name),
            ready,
            timeout_s=READY_TIMEOUT_S,
            what=f"MySQL {name} Ready at generation {generation}",
        )
        assert found is not None
        return found

    # -- cleanup -------------------------------------------------------------------------

    def clean_up(self) -> None:
        """Stop the reconciler; release what it held; the namespace takes the rest."""
        self.stop()
        listed: Any = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL
        )
        for obj in listed["items"]:
            read_or_none(
                partial(
                    self.custom.patch_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    obj["metadata"]["name"],
                    {"metadata": {"finalizers": None}},
                )
            )
        delete_namespace_and_volumes(self.core, self.namespace, GONE_TIMEOUT_S)


@contextlib.contextmanager
def harness_in_new_namespace(
    api_client: client.ApiClient,
    kubeconfig: Path,
    namespace: str,
    work_dir: Path,
    *,
    clean_up: bool = True,
) -> Iterator[Harness]:
    """A Harness on a namespace it creates, with the CRD installed. On exit it prints the
    reconciler's log tail and cleans up; `clean_up=False` only stops the reconciler, for a
    cluster that goes whole."""
    ensure_crd(api_client)
    harness = Harness(api_client, kubeconfig, namespace, work_dir)
    harness.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    try:
        yield harness
    finally:
        if harness.log_path.exists():
            print("--- reconciler log (tail) ---")
            print("\n".join(harness.log_lines()[-80:]))
        if clean_up:
            harness.clean_up()
        else:
            harness.stop()


@pytest.fixture
def harness(
    api_client: client.ApiClient, kubeconfig: Path, namespace_name: str, tmp_path: Path
) -> Iterator[Harness]:
    with harness_in_new_namespace(api_client, kubeconfig, namespace_name, tmp_path) as harness:
        yield harness


def test_the_reconciler_drives_the_original_example_from_creation_to_deletion(
    harness: Harness, tmp_path: Path
) -> None:
    ns = harness.namespace
    # 1. Objects exist before the reconciler starts: the original example, and one that
    # passes admission but refers to a Secret that does not exist.
    harness.create(NAME, harness.spec())
    broken_spec = {k: v for k, v in harness.spec().items() if k != "password"}
    broken_spec["passwordSecretRef"] = {"name": "no-such-secret"}
    broken_spec["host_path"] = str(tmp_path / "host" / "broken")
    harness.create(BROKEN, broken_spec)
    harness.start()

    # 2. The valid object becomes Ready, with the status the issue asks for.
    obj = harness.wait_ready(NAME, generation=1)
    status = obj["status"]
    assert FINALIZER in obj["metadata"]["finalizers"]
    assert status["endpoint"] == {"host": f"{NAME}.{ns}.svc.cluster.local", "port": 3306}
    assert status["lastUpdate"]["result"] == "succeeded"
    assert status["lastUpdate"]["resourceChanges"] == {"create": 11}
    assert status["inputsFingerprint"].startswith("sha256:")
    assert set(status["toolchain"]) == {"pulumiCli", "pulumiSdk", "kubernetesProvider"}
    assert {c["type"] for c in status["conditions"]} == {"Ready"}
    ready = condition(obj, "Ready")
    assert ready is not None
    assert (ready["reason"], ready["observedGeneration"]) == ("UpToDate", 1)
    assert harness.apps.read_namespaced_deployment(NAME, ns).status.ready_replicas == 1
    assert harness.core.read_namespaced_service(NAME, ns) is not None
    assert harness.core.read_namespaced_persistent_volume_claim(f"{NAME}-data", ns) is not None

    # 3. The broken one is Stalled with a message naming the field and the Secret, and
    # nothing was deployed for it.
    def stalled(found: dict[str, Any] | None) -> bool:
        entry = condition(found, "Stalled")
        return entry is not None and entry["status"] == "True"

    broken = eventually(
        partial(harness.get, BROKEN), stalled, timeout_s=60, what=f"{BROKEN} Stalled"
    )
    stall = condition(broken, "Stalled")
    assert stall is not None
    assert stall["reason"] == "StalledSecretMissing"
    assert "spec.passwordSecretRef" in stall["message"]
    assert "no-such-secret" in stall["message"]
    broken_ready = condition(broken, "Ready")
    assert broken_ready is not None
    assert broken_ready["status"] == "False"
    assert read_or_none(lambda: harness.apps.read_namespaced_deployment(BROKEN, ns)) is None

    # 4. Unchanged: resyncs reconcile it again, but without an engine run.
    first_update = status["lastUpdate"]["id"]
    in_sync_marker = f"instance={ns}/{NAME} phase=in-sync"

    def in_sync_passes() -> int:
        return sum(in_sync_marker in line for line in harness.log_lines())

    seen = in_sync_passes()
    eventually(
        in_sync_passes,
        lambda count: count >= seen + 2,
        timeout_s=60,
        what="two more in-sync passes (resyncs)",
    )
    unchanged = harness.get(NAME)
    assert unchanged is not None
    assert unchanged["status"]["lastUpdate"]["id"] == first_update
    deploys = [line for line in harness.log_lines() if f"instance={ns}/{NAME} phase=deploy" in line]
    assert len(deploys) == 1, deploys

    # 5. preview: exit 0 for the unchanged manifest, 2 for a changed one; nothing applied.
    same = tmp_path / "same.yml"
    same.write_text(yaml.safe_dump(harness.manifest(NAME, harness.spec())))
    unchanged_preview = harness.preview(same)
    assert unchanged_preview.returncode == 0, unchanged_preview.stderr
    assert json.loads(unchanged_preview.stdout)["hasChanges"] is False
    changed = tmp_path / "changed.yml"
    changed.write_text(
        yaml.safe_dump(harness.manifest(NAME, {**harness.spec(), "image": "mysql:8.0"}))
    )
    changed_preview = harness.preview(changed)
    assert changed_preview.returncode == 2, changed_preview.stderr
    plan = json.loads(changed_preview.stdout)
    assert plan["steps"] == [
        {"op": "update", "type": "kubernetes:apps/v1:Deployment", "name": NAME}
    ]
    deployment = harness.apps.read_namespaced_deployment(NAME, ns)
    assert [c.image for c in deployment.spec.template.spec.containers] == ["mysql:5.7"]

    # 6. An image change rolls the Deployment, and status follows the generation.
    harness.custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, NAME, {"spec": {"image": "mysql:8.0"}}
    )
    rolled = harness.wait_ready(NAME, generation=2)
    assert rolled["status"]["lastUpdate"]["id"] != first_update
    assert rolled["status"]["lastUpdate"]["resourceChanges"].get("update") == 1
    deployment = harness.apps.read_namespaced_deployment(NAME, ns)
    assert [c.image for c in deployment.spec.template.spec.containers] == ["mysql:8.0"]

    # 7. /healthz and /metrics.
    assert harness.http_get("/healthz") == (200, "ok\n")
    code, metrics = harness.http_get("/metrics")
    assert code == 200
    assert 'mysql_operator_reconciles_total{action="deploy",outcome="done"}' in metrics
    assert 'mysql_operator_instances{ready="False",reason="StalledSecretMissing"} 1.0' in metrics

    # 8. Deleting the broken object: nothing was deployed, so nothing to back up; it goes.
    harness.delete(BROKEN)
    harness.wait_gone(BROKEN)

    # 9. Deleting the instance: the backup Job completes before anything is deleted, then
    # everything but the backup claim is gone, and the finalizer is removed.
    recorder = Recorder(harness.api_client, ns)
    recorder.start()
    uid = rolled["metadata"]["uid"]
    backup_job = f"{NAME}-backup-{uid.replace('-', '')[:8]}"
    harness.delete(NAME)
    harness.wait_gone(NAME)
    eventually(
        lambda: list(recorder.seen),
        lambda seen: any(what.startswith("DELETED Deployment") for _, what in seen),
        timeout_s=30,
        what="the Deployment's deletion observed",
    )
    recorder.stop.set()
    backup_done = recorder.first(lambda what: what == f"MODIFIED Job {backup_job} complete")
    first_deletion = recorder.first(
        lambda what: what.startswith("DELETED") or what.endswith(" deleting")
    )
    assert backup_done < first_deletion, recorder.seen

    gone: dict[str, Callable[[], Any]] = {
        "deployment": lambda: harness.apps.read_namespaced_deployment(NAME, ns),
        "service": lambda: harness.core.read_namespaced_service(NAME, ns),
        "secret": lambda: harness.core.read_namespaced_secret(f"{NAME}-credentials", ns),
        "scripts": lambda: harness.core.read_namespaced_config_map(f"{NAME}-scripts", ns),
        "data claim": lambda: harness.core.read_namespaced_persistent_volume_claim(
            f"{NAME}-data", ns
        ),
        "data volume": lambda: harness.core.read_persistent_volume(f"{ns}-{NAME}-data"),
        "backup job": lambda: harness.batch.read_namespaced_job(backup_job, ns),
    }
    for what, read in gone.items():
        eventually(
            partial(read_or_none, read),
            lambda found: found is None,
            timeout_s=GONE_TIMEOUT_S,
            what=f"{what} deleted",
        )
    kept = harness.core.read_namespaced_persistent_volume_claim(f"{NAME}-backup", ns)
    assert kept.metadata.deletion_timestamp is None
    reasons = [
        e.reason
        for e in sorted(
            harness.core.list_namespaced_event(
                ns, field_selector=f"involvedObject.name={NAME}"
            ).items,
            key=lambda e: (e.first_timestamp, int(e.metadata.resource_version or 0)),
        )
    ]
    assert reasons.index("BackupSucceeded") < reasons.index("Destroyed")
    # The stack is gone from the backend too (only its .bak remains, as Pulumi keeps it).
    stacks = harness.state_dir / ".pulumi" / "stacks"
    assert [p.name for p in stacks.rglob("*.json")] == []


def test_a_failed_backup_keeps_the_data_and_the_finalizer_and_is_retried(
    harness: Harness,
) -> None:
    ns = harness.namespace
    harness.create(NAME, harness.spec())
    harness.start()
    harness.wait_ready(NAME, generation=1)

    # A quota of one Job (the restore Job has it) makes creating the backup Job fail.
    quota = client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="one-job"),
        spec=client.V1ResourceQuotaSpec(hard={"count/jobs.batch": "1"}),
    )
    harness.core.create_namespaced_resource_quota(ns, quota)
    eventually(
        lambda: harness.core.read_namespaced_resource_quota("one-job", ns).status.used,
        lambda used: (used or {}).get("count/jobs.batch") == "1",
        timeout_s=60,
        what="the quota counts the restore Job",
    )
    harness.delete(NAME)

    def backup_failed(found: dict[str, Any] | None) -> bool:
        entry = condition(found, "Stalled")
        return entry is not None and entry["reason"] == "StalledBackupFailed"

    stalled = eventually(
        partial(harness.get, NAME), backup_failed, timeout_s=READY_TIMEOUT_S, what="backup failed"
    )
    assert stalled is not None
    assert FINALIZER in stalled["metadata"]["finalizers"]
    stall = condition(stalled, "Stalled")
    assert stall is not None
    assert "nothing was deleted" in stall["message"]
    backup = condition(stalled, "BackupReady")
    assert backup is not None
    assert backup["status"] == "False"
    # Nothing was deleted: the instance still runs on its data.
    deployment = harness.apps.read_namespaced_deployment(NAME, ns)
    assert deployment.metadata.deletion_timestamp is None
    assert deployment.status.ready_replicas == 1
    claim = harness.core.read_namespaced_persistent_volume_claim(f"{NAME}-data", ns)
    assert claim.metadata.deletion_timestamp is None

    # The reconciler keeps retrying with backoff; once the quota goes, the backup runs
    # and the deletion completes.
    harness.core.delete_namespaced_resource_quota("one-job", ns)
    harness.wait_gone(NAME)
    assert read_or_none(lambda: harness.apps.read_namespaced_deployment(NAME, ns)) is None
    assert harness.core.read_namespaced_persistent_volume_claim(f"{NAME}-backup", ns)
    assert any(
        f"instance={ns}/{NAME} phase=backup outcome=retry" in line for line in harness.log_lines()
    )


def test_a_terminating_namespace_is_reported_instead_of_hanging(harness: Harness) -> None:
    ns = harness.namespace
    harness.create(NAME, harness.spec())
    harness.start()
    harness.wait_ready(NAME, generation=1)

    harness.core.delete_namespace(ns)

    def reported(found: dict[str, Any] | None) -> bool:
        entry = condition(found, "Stalled")
        return entry is not None and entry["reason"] == "StalledNamespaceTerminating"

    stalled = eventually(
        partial(harness.get, NAME), reported, timeout_s=120, what="namespace terminating reported"
    )
    assert stalled is not None
    assert FINALIZER in stalled["metadata"]["finalizers"]
    stall = condition(stalled, "Stalled")
    assert stall is not None
    assert ns in stall["message"]
    # Reported once and waited on by nobody: no engine run was started for it.
    assert not any(f"instance={ns}/{NAME} phase=backup" in line for line in harness.log_lines())
