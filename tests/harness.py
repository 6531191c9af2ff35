"""A reconciler process on a namespace of its own, and the MySQL objects a test makes
there: shared by the integration tier (kwok) and the end-to-end tier (the real node).

Every object the harness creates carries the label `mysql-operator.dev/test-session`, and
its reconciler watches only the harness's namespace: on a cluster that someone else's
reconciler also watches (the one `hack/up` starts selects `!mysql-operator.dev/test-session`),
each object has exactly one reconciler.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.support import delete_namespace_and_volumes, eventually, read_or_none

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
CRD_PATH: Final = REPO_ROOT / "crd" / "mysql.yaml"
BACKUP_CRD_PATH: Final = REPO_ROOT / "crd" / "mysqlbackup.yaml"
GROUP: Final = "otus.homework"
VERSION: Final = "v1"
PLURAL: Final = "mysqls"
CRD_NAME: Final = f"{PLURAL}.{GROUP}"
BACKUP_PLURAL: Final = "mysqlbackups"
BACKUP_CRD_NAME: Final = f"{BACKUP_PLURAL}.{GROUP}"
FINALIZER: Final = "otus.homework/teardown"
CLAIM_FINALIZER: Final = "otus.homework/data-protection"
TEST_SESSION_LABEL: Final = "mysql-operator.dev/test-session"
SESSION: Final = uuid.uuid4().hex[:12]
PASSPHRASE: Final = f"it-{uuid.uuid4().hex}"
READY_TIMEOUT_S: Final = 240.0
GONE_TIMEOUT_S: Final = 240.0
ESTABLISH_TIMEOUT_S: Final = 60.0
RESYNC_S: Final = 3


def ensure_crd(api_client: client.ApiClient) -> None:
    """Creates crd/mysql.yaml and crd/mysqlbackup.yaml, or replaces the CRDs with them, and
    waits until they are served.

    The CRDs are cluster-scoped and shared by every test that needs MySQL objects, so this
    is idempotent and never deletes them: deleting a CRD deletes every object of its kind
    in every namespace, which would pull objects out from under other tests.
    """
    for path, name in ((CRD_PATH, CRD_NAME), (BACKUP_CRD_PATH, BACKUP_CRD_NAME)):
        _ensure_one_crd(api_client, path, name)


def _ensure_one_crd(api_client: client.ApiClient, path: Path, name: str) -> None:
    extensions = client.ApiextensionsV1Api(api_client)
    manifest = yaml.safe_load(path.read_text())
    assert manifest["metadata"]["name"] == name
    try:
        extensions.create_custom_resource_definition(manifest)
    except ApiException as error:
        if error.status != 409:
            raise
        current = extensions.read_custom_resource_definition(name)
        manifest["metadata"]["resourceVersion"] = current.metadata.resource_version
        extensions.replace_custom_resource_definition(name, manifest)

    def established(crd: client.V1CustomResourceDefinition) -> bool:
        conditions = crd.status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    eventually(
        lambda: extensions.read_custom_resource_definition(name),
        established,
        timeout_s=ESTABLISH_TIMEOUT_S,
        what=f"CRD {name} Established",
    )


DIED_TIMEOUT_S: Final = 30.0


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.extend(int(child) for child in children.read_text().split())
        except OSError:
            continue  # the task ended while we looked
    return found


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, parents before their children."""
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in children_of(pending.pop(0)):
            if child not in found:
                found.append(child)
                pending.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has died already


def command_of(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""
    return Path(argv[0].decode()).name if argv and argv[0] else ""


def send(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


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


def has_condition(kind: str, status: str, reason: str | None = None) -> Callable[[Any], bool]:
    def check(obj: dict[str, Any] | None) -> bool:
        entry = condition(obj, kind)
        return (
            entry is not None
            and entry["status"] == status
            and (reason is None or entry["reason"] == reason)
        )

    return check


@dataclass
class Recorder:
    """Watches Jobs, Deployments, Services, EndpointSlices and claims in a namespace,
    noting (resourceVersion, what), and when each was received.

    The watches read one etcd, so resourceVersions order their events; that is how a test
    shows, without timing, that a Job completed before anything was deleted. An
    EndpointSlice with a ready endpoint is noted as `... EndpointSlice <service> ready`.
    """

    api_client: client.ApiClient
    namespace: str
    seen: list[tuple[int, str]] = field(default_factory=list)
    received: dict[int, float] = field(default_factory=dict)  # resourceVersion: epoch s
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        batch = client.BatchV1Api(self.api_client)
        apps = client.AppsV1Api(self.api_client)
        core = client.CoreV1Api(self.api_client)
        discovery = client.DiscoveryV1Api(self.api_client)
        for lister in (
            batch.list_namespaced_job,
            apps.list_namespaced_deployment,
            core.list_namespaced_service,
            core.list_namespaced_persistent_volume_claim,
            discovery.list_namespaced_endpoint_slice,
        ):
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
                name = obj.metadata.name
                ready = False
                if kind == "EndpointSlice":
                    name = (obj.metadata.labels or {}).get("kubernetes.io/service-name", name)
                    ready = any(
                        endpoint.conditions is not None and endpoint.conditions.ready
                        for endpoint in obj.endpoints or []
                    )
                what = f"{event['type']} {kind} {name}"
                what += " complete" if complete else ""
                what += " ready" if ready else ""
                what += " deleting" if deleting else ""
                self.received[int(version)] = time.time()
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
    extra_flags: tuple[str, ...] = ()
    # The reconciler's source tree: this checkout, or an earlier release's.
    source: Path = REPO_ROOT

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
            "PYTHONPATH": str(self.source),
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
                    f"--label-selector={TEST_SESSION_LABEL}={SESSION}",
                    # The tests' static volumes live under the harness's own directory.
                    f"--host-path-root={self.work_dir}",
                    f"--resync-period={RESYNC_S}",
                    f"--http-address=127.0.0.1:{self.port}",
                    "--log-level=DEBUG",
                    *self.extra_flags,
                ],
                cwd=self.source,
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

    def kill(self) -> list[str]:
        """SIGKILLs the reconciler and every descendant (the pulumi CLI, the provider);
        returns their commands, root first.

        The tree is frozen top-down with SIGSTOP until no new process appears (a stopped
        process cannot fork, and its children stay its children), then killed as a whole,
        so nothing gets to release a lock or finish an operation.
        """
        process = self.process
        assert process is not None
        tree: list[int] = []
        while True:
            new = [pid for pid in [process.pid, *descendants(process.pid)] if pid not in tree]
            if not new:
                break
            for pid in new:
                send(pid, signal.SIGSTOP)
            tree.extend(new)
        commands = [command_of(pid) for pid in tree]
        for pid in tree:
            send(pid, signal.SIGKILL)
        process.wait(timeout=DIED_TIMEOUT_S)
        deadline = time.monotonic() + DIED_TIMEOUT_S
        while any(alive(pid) for pid in tree):
            assert time.monotonic() < deadline, "the killed process tree did not die"
            time.sleep(0.05)
        return commands

    def engine_running(self) -> bool:
        """A pulumi CLI runs below the reconciler."""
        process = self.process
        assert process is not None
        assert process.poll() is None, "the reconciler exited on its own"
        return any(command_of(pid) == "pulumi" for pid in descendants(process.pid))

    def lock_files(self) -> list[Path]:
        locks = self.state_dir / ".pulumi" / "locks"
        return sorted(path for path in locks.rglob("*") if path.is_file())

    def log_lines(self) -> list[str]:
        return self.log_path.read_text().splitlines() if self.log_path.exists() else []

    def in_sync_passes(self, name: str) -> int:
        """Passes that found the instance in sync (Ready, no engine run)."""
        marker = f"instance={self.namespace}/{name} phase=ready outcome=done"
        return sum(marker in line for line in self.log_lines())

    def engine_runs(self, name: str | None = None) -> int:
        """Engine runs the reconciler's log reports, for one instance or for all."""
        marker = f"instance={self.namespace}/{name} " if name is not None else ""
        return sum(
            int(line.split("engine_runs=")[1].split()[0])
            for line in self.log_lines()
            if marker in line and "engine_runs=" in line
        )

    def http_get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError as error:
            return -1, str(error)

    def preview(self, manifest: Path) -> subprocess.CompletedProcess[str]:
        return self.command("preview", "-f", str(manifest), "--output=json")

    def history(self, name: str) -> subprocess.CompletedProcess[str]:
        return self.command("history", f"{self.namespace}/{name}", "--output=json")

    def command(self, *words: str) -> subprocess.CompletedProcess[str]:
        """`reconciler WORDS...` with this harness's state directory and kubeconfig."""
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *words, *self.common_flags()],
            cwd=self.source,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )

    # -- MySQL objects -------------------------------------------------------------------

    def host_path_spec(self) -> dict[str, Any]:
        """The original example on static hostPath volumes (for clusters without a
        provisioner)."""
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
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {TEST_SESSION_LABEL: SESSION},
            },
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

    def patch(self, name: str, body: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, body
        )

    def delete(self, name: str, propagation: str | None = None) -> None:
        self.custom.delete_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, propagation_policy=propagation
        )

    def wait_gone(self, name: str, timeout_s: float = GONE_TIMEOUT_S) -> None:
        eventually(
            partial(self.get, name),
            lambda found: found is None,
            timeout_s=timeout_s,
            what=f"MySQL {name} deleted (finalizer removed)",
        )

    def wait_for(
        self, name: str, check: Callable[[Any], bool], what: str, timeout_s: float = READY_TIMEOUT_S
    ) -> dict[str, Any]:
        found: dict[str, Any] | None = eventually(
            partial(self.get, name), check, timeout_s=timeout_s, what=what
        )
        assert found is not None
        return found

    def wait_ready(self, name: str, generation: int) -> dict[str, Any]:
        def ready(obj: dict[str, Any] | None) -> bool:
            return (
                has_condition("Ready", "True")(obj)
                and (obj or {}).get("status", {}).get("observedGeneration") == generation
            )

        return self.wait_for(name, ready, f"MySQL {name} Ready at generation {generation}")

    def events(self, name: str) -> list[client.CoreV1Event]:
        found = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        ).items
        # Events from the events.k8s.io API carry eventTime instead of firstTimestamp.
        return sorted(
            found,
            key=lambda e: (
                str(e.first_timestamp or e.event_time or ""),
                int(e.metadata.resource_version or 0),
            ),
        )

    def request_backup(self, name: str, instance: str) -> None:
        """Creates a MySQLBackup, as a person who wants a backup now does."""
        self.custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            BACKUP_PLURAL,
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "MySQLBackup",
                "metadata": {"name": name},
                "spec": {"instance": instance},
            },
        )

    def backup(self, name: str) -> dict[str, Any] | None:
        return read_or_none(
            lambda: self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, BACKUP_PLURAL, name
            )
        )

    def wait_for_backup(
        self, name: str, check: Callable[[Any], bool], what: str, timeout_s: float = 120
    ) -> dict[str, Any]:
        found: dict[str, Any] | None = eventually(
            partial(self.backup, name), check, timeout_s=timeout_s, what=what
        )
        assert found is not None
        return found

    def backup_now(self, name: str, instance: str, timeout_s: float = 180) -> dict[str, Any]:
        """Asks for a backup of `instance` and waits until it ends; its status, Succeeded."""
        self.request_backup(name, instance)
        done = self.wait_for_backup(
            name,
            lambda found: (found.get("status") or {}).get("phase") in ("Succeeded", "Failed"),
            f"the backup {name} ends",
            timeout_s=timeout_s,
        )
        status: dict[str, Any] = done["status"]
        assert status["phase"] == "Succeeded", status
        return status

    def backups(self) -> list[dict[str, Any]]:
        """The MySQLBackup objects of the namespace."""
        listed: Any = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, BACKUP_PLURAL
        )
        return list(listed["items"])

    # -- cleanup -------------------------------------------------------------------------

    def release_everything(self) -> None:
        """Takes the operator's finalizers off everything in the namespace (the test is
        over; nobody will reconcile it again)."""
        listed: Any = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL
        )
        for obj in listed["items"]:
            read_or_none(
                partial(self.patch, obj["metadata"]["name"], {"metadata": {"finalizers": None}})
            )
        for claim in self.core.list_namespaced_persistent_volume_claim(self.namespace).items:
            read_or_none(
                partial(
                    self.core.patch_namespaced_persistent_volume_claim,
                    str(claim.metadata.name),
                    self.namespace,
                    {"metadata": {"finalizers": None}},
                )
            )

    def clean_up(self) -> None:
        """Stop the reconciler; release what it held; the namespace takes the rest, and
        the volumes it left go too."""
        self.stop()
        if read_or_none(lambda: self.core.read_namespace(self.namespace)) is not None:
            self.release_everything()
        delete_namespace_and_volumes(self.core, self.namespace, GONE_TIMEOUT_S)


@contextlib.contextmanager
def harness_in_new_namespace(
    api_client: client.ApiClient,
    kubeconfig: Path,
    namespace: str,
    work_dir: Path,
    *,
    clean_up: bool = True,
    extra_flags: tuple[str, ...] = (),
    namespace_labels: Mapping[str, str] | None = None,
) -> Iterator[Harness]:
    """A Harness on a namespace it creates (with `namespace_labels`), with the CRD
    installed. On exit it prints the reconciler's log tail and cleans up; `clean_up=False`
    only stops the reconciler, for a cluster that goes whole."""
    ensure_crd(api_client)
    harness = Harness(api_client, kubeconfig, namespace, work_dir, extra_flags=extra_flags)
    labels = {**(namespace_labels or {}), TEST_SESSION_LABEL: SESSION}
    harness.core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace, labels=labels))
    )
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
