"""MySQL objects and namespaces on the bench's cluster: create, wait for Ready, clean up."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final, TypeVar

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from reconciler.vocabulary import API_GROUP, FINALIZER

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
CRD_PATH: Final = REPO_ROOT / "crd" / "mysql.yaml"
VERSION: Final = "v1"
PLURAL: Final = "mysqls"
POLL_S: Final = 0.2
T = TypeVar("T")


def eventually(
    read: Callable[[], T],
    done: Callable[[T], bool],
    timeout_s: float,
    what: str,
    poll_s: float = POLL_S,
) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(poll_s)


def ready_at(obj: dict[str, Any] | None, generation: int) -> bool:
    if obj is None:
        return False
    status = obj.get("status") or {}
    return status.get("observedGeneration") == generation and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def condition_of(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The object's condition of type `kind` (Ready, Stalled, BackupReady...), if any."""
    for found in (obj.get("status") or {}).get("conditions") or []:
        if found.get("type") == kind:
            return dict(found)
    return None


def ready_timeout_s(objects: int) -> float:
    """How long `objects` applied at once may take to be Ready before the bench gives up."""
    return 600.0 + 30.0 * objects


def _unless_gone(delete: Callable[[str], object], name: str) -> None:
    try:
        delete(name)
    except ApiException as error:
        if error.status != 404:
            raise


def manifest(
    namespace: str,
    name: str,
    host_root: Path,
    *,
    data_dir: str = "data",
    storage_size: str = "1Gi",
) -> dict[str, Any]:
    """The one MySQL object every scenario applies; its hostPath volumes under host_root
    (`data_dir` names the data's: a re-created object gets a fresh, empty one)."""
    host = host_root / namespace / name
    return {
        "apiVersion": f"{API_GROUP}/{VERSION}",
        "kind": "MySQL",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "image": "mysql:5.7",
            "database": "bench",
            "password": "benchpassword",
            "storage_size": storage_size,
            "host_path": str(host / data_dir),
            "backup": {"host_path": str(host / "backup")},
        },
    }


class Objects:
    def __init__(self, api_client: client.ApiClient, host_root: Path) -> None:
        self.host_root = host_root
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.extensions = client.ApiextensionsV1Api(api_client)

    def apply_crd(self) -> None:
        crd = yaml.safe_load(CRD_PATH.read_text())
        try:
            self.extensions.create_custom_resource_definition(crd)
        except ApiException as error:
            if error.status != 409:
                raise
        eventually(
            lambda: self.extensions.read_custom_resource_definition(crd["metadata"]["name"]),
            lambda found: any(
                c.type == "Established" and c.status == "True"
                for c in ((found.status and found.status.conditions) or [])
            ),
            60,
            "the CRD established",
        )

    def create_namespace(self, namespace: str) -> None:
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))

    def create(
        self, namespace: str, name: str, *, data_dir: str = "data", storage_size: str = "1Gi"
    ) -> float:
        """Creates one object; returns when the request was sent (epoch seconds)."""
        body = manifest(
            namespace, name, self.host_root, data_dir=data_dir, storage_size=storage_size
        )
        sent = time.time()
        self.custom.create_namespaced_custom_object(API_GROUP, VERSION, namespace, PLURAL, body)
        return sent

    def delete(self, namespace: str, name: str) -> float:
        """Deletes one object (its finalizer runs the teardown); returns when the request
        was sent (epoch seconds)."""
        sent = time.time()
        self.custom.delete_namespaced_custom_object(API_GROUP, VERSION, namespace, PLURAL, name)
        return sent

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found: Any = self.custom.get_namespaced_custom_object(
                API_GROUP, VERSION, namespace, PLURAL, name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return dict(found)

    def list_mysqls(self, namespace: str) -> list[dict[str, Any]]:
        listed: Any = self.custom.list_namespaced_custom_object(
            API_GROUP, VERSION, namespace, PLURAL
        )
        return list(listed["items"])

    def last_update_ids(self, namespace: str) -> dict[str, str]:
        return {
            item["metadata"]["name"]: str(
                (item.get("status") or {}).get("lastUpdate", {}).get("id")
            )
            for item in self.list_mysqls(namespace)
        }

    def wait_all_ready(
        self,
        namespace: str,
        names: Iterable[str],
        timeout_s: float,
        alive: Callable[[], None],
        poll_s: float = 0.5,
    ) -> dict[str, float]:
        """Lists the namespace every poll_s until every name is Ready at generation 1;
        returns when each was first seen Ready (epoch seconds, poll_s resolution).
        `alive` raises if the process under test died."""
        waiting, seen = set(names), {}
        deadline = time.monotonic() + timeout_s
        while waiting:
            alive()
            now = time.time()
            for item in self.list_mysqls(namespace):
                name = item["metadata"]["name"]
                if name in waiting and ready_at(item, 1):
                    seen[name] = now
                    waiting.discard(name)
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(
                    f"{len(waiting)} of {len(seen) + len(waiting)} objects in {namespace} not"
                    f" Ready after {timeout_s:.0f}s"
                )
            if waiting:
                time.sleep(poll_s)
        return seen

    def remove(self, namespaces: Iterable[str], timeout_s: float = 600) -> float:
        """Deletes the namespaces and the volumes of their claims without the reconciler's
        teardown (its finalizer is dropped first, with the reconciler stopped), and waits
        until they are gone; returns how long that took."""
        started = time.monotonic()
        doomed = list(namespaces)
        for namespace in doomed:
            for item in self.list_mysqls(namespace):
                if FINALIZER in (item["metadata"].get("finalizers") or []):
                    self.custom.patch_namespaced_custom_object(
                        API_GROUP,
                        VERSION,
                        namespace,
                        PLURAL,
                        item["metadata"]["name"],
                        {"metadata": {"finalizers": None}},
                    )
            _unless_gone(self.core.delete_namespace, namespace)
        for volume in self._volumes_of(doomed):
            _unless_gone(self.core.delete_persistent_volume, volume)

        def left() -> int:
            names = {
                str(item.metadata.name)
                for item in self.core.list_namespace().items
                if item.metadata is not None
            }
            return len(set(doomed) & names) + len(self._volumes_of(doomed))

        eventually(left, lambda count: count == 0, timeout_s, f"{doomed} deleted", poll_s=1.0)
        return round(time.monotonic() - started, 1)

    def _volumes_of(self, namespaces: list[str]) -> list[str]:
        return [
            str(volume.metadata.name)
            for volume in self.core.list_persistent_volume().items
            if volume.metadata is not None
            and volume.spec is not None
            and volume.spec.claim_ref is not None
            and volume.spec.claim_ref.namespace in namespaces
        ]


def api_client_for(kubeconfig: Path, connections: int = 8) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), client_configuration=configuration
    )
    configuration.connection_pool_maxsize = connections
    return client.ApiClient(configuration)
