"""The Kubernetes gateway: the only module that calls the Kubernetes API.

Every effect is idempotent: a 404 on something we meant to change means it is already
gone, a finalizer that is already there (or already gone) is not patched again, and a
409 from an optimistic-concurrency patch is returned to the caller as a `Conflict` to
retry on the next pass. Objects come back as plain dicts, exactly as the API server
serialized them (reads skip the client's model classes: they are slow and not needed).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as TransportError

from reconciler.vocabulary import API_GROUP, BACKUP_PLURAL, KIND, PLURAL

log = logging.getLogger(__name__)

VERSION: Final = "v1"
REPORTING_COMPONENT: Final = "mysql-operator"
CONNECT_TIMEOUT_S: Final = 10
REQUEST_TIMEOUT_S: Final = 60
# Lists come in pages of this many objects: one response for thousands of objects
# leaves tens of MiB resident after it is freed (the parsed objects fragment the heap).
LIST_PAGE_SIZE: Final = 250
MERGE_PATCH: Final = "application/merge-patch+json"
# A Lease call that takes longer is retried: the holder's renew deadline is 10 s.
LEASE_TIMEOUT_S: Final = 4


class Conflict(Exception):
    """The object changed under a patch; read it again and retry."""


class Expired(Exception):
    """410 Gone: the watch's resourceVersion is too old; list again."""


class ApiUnavailable(Exception):
    """Any other API failure (5xx, 429, network): retry with backoff."""


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED (BOOKMARK and ERROR are handled here)
    obj: Mapping[str, Any]


@dataclass(frozen=True)
class Listing:
    items: tuple[Mapping[str, Any], ...]
    resource_version: str


class Kind:
    """The kinds the reconciler lists and watches: its own, and those whose changes
    wake an instance (its claims, pods and Jobs)."""

    MYSQL = "mysqls"
    BACKUP = "mysqlbackups"
    CLAIM = "persistentvolumeclaims"
    POD = "pods"
    JOB = "jobs"
    SECRET = "secrets"  # noqa: S105 (a kind; only the labelled password Secrets are watched)


def load_api_client(kubeconfig: str | None) -> client.ApiClient:
    """From the given kubeconfig, else $KUBECONFIG or ~/.kube/config, else in-cluster."""
    if kubeconfig is None:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
            return client.ApiClient()
        except config.ConfigException:
            pass
    api: client.ApiClient = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    return api


def key_of(obj: Mapping[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata", {})
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))


class Gateway:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        # The same API on MySQLBackup objects: a separate attribute so that the RBAC check
        # (tests/unit/test_infra_rbac.py) can tell the two resources apart.
        self.backup_records = client.CustomObjectsApi(api_client)
        self.discovery = client.DiscoveryV1Api(api_client)
        self.storage = client.StorageV1Api(api_client)
        self.coordination = client.CoordinationV1Api(api_client)

    # -- lists and watches -----------------------------------------------------------------

    def _listers(
        self, kind: str, namespace: str | None
    ) -> tuple[Callable[..., Any], tuple[str, ...]]:
        if kind == Kind.MYSQL:
            if namespace is None:
                return self.custom.list_cluster_custom_object, (API_GROUP, VERSION, PLURAL)
            return self.custom.list_namespaced_custom_object, (
                API_GROUP,
                VERSION,
                namespace,
                PLURAL,
            )
        if kind == Kind.BACKUP:
            if namespace is None:
                return self.backup_records.list_cluster_custom_object, (
                    API_GROUP,
                    VERSION,
                    BACKUP_PLURAL,
                )
            return self.backup_records.list_namespaced_custom_object, (
                API_GROUP,
                VERSION,
                namespace,
                BACKUP_PLURAL,
            )
        namespaced: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
            Kind.CLAIM: (
                self.core.list_namespaced_persistent_volume_claim,
                self.core.list_persistent_volume_claim_for_all_namespaces,
            ),
            Kind.POD: (self.core.list_namespaced_pod, self.core.list_pod_for_all_namespaces),
            Kind.JOB: (self.batch.list_namespaced_job, self.batch.list_job_for_all_namespaces),
            Kind.SECRET: (
                self.core.list_namespaced_secret,
                self.core.list_secret_for_all_namespaces,
            ),
        }
        in_namespace, everywhere = namespaced[kind]
        return (everywhere, ()) if namespace is None else (in_namespace, (namespace,))

    def list(
        self,
        kind: str,
        namespace: str | None,
        label_selector: str = "",
        keep: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    ) -> Listing:
        """Every object, page by page; `keep` picks from each object what the caller
        reads, so that a page's objects are freed before the next page comes."""
        lister, args = self._listers(kind, namespace)
        items: list[Mapping[str, Any]] = []
        token = ""
        while True:
            page = self._list_page(lister, args, label_selector, token)
            found = page.get("items") or []
            items.extend(found if keep is None else map(keep, found))
            token = str(page["metadata"].get("continue") or "")
            if not token:
                return Listing(tuple(items), str(page["metadata"]["resourceVersion"]))

    def _list_page(
        self, lister: Callable[..., Any], args: tuple[str, ...], label_selector: str, token: str
    ) -> dict[str, Any]:
        """One page; a continue token that expired meanwhile (410) fails the whole list,
        which the caller then starts again."""
        options = {"_continue": token} if token else {}
        return self._raw(
            lambda: lister(
                *args,
                label_selector=label_selector,
                limit=LIST_PAGE_SIZE,
                _request_timeout=REQUEST_TIMEOUT_S,
                _preload_content=False,
                **options,
            )
        )

    def watch(
        self,
        kind: str,
        namespace: str | None,
        resource_version: str,
        timeout_s: int,
        label_selector: str = "",
    ) -> Iterator[WatchEvent]:
        """Events after `resource_version` until the server ends the watch; raises `Expired`."""
        lister, args = self._listers(kind, namespace)
        # return_type=object: events stay the API server's JSON. A typed model (V1Pod,
        # say) costs about 2 ms per event to build and nothing here reads it.
        watcher = watch.Watch(return_type=object)  # type: ignore[no-untyped-call]
        try:
            for event in watcher.stream(  # type: ignore[no-untyped-call]
                lister,
                *args,
                resource_version=resource_version,
                timeout_seconds=timeout_s,
                label_selector=label_selector,
                allow_watch_bookmarks=True,
                # A read timeout beyond the server's, so a dead connection cannot hang us.
                _request_timeout=(CONNECT_TIMEOUT_S, timeout_s + 30),
            ):
                kind_of_event, obj = event["type"], event.get("raw_object", event["object"])
                if kind_of_event == "ERROR":
                    if isinstance(obj, Mapping) and obj.get("code") == 410:
                        raise Expired()
                    raise ApiUnavailable(f"watch error: {obj}")
                if kind_of_event == "BOOKMARK":
                    continue
                yield WatchEvent(kind_of_event, obj)
        except ApiException as error:
            if error.status == 410:
                raise Expired() from None
            raise _unavailable(error) from None
        except TransportError as error:
            raise ApiUnavailable(f"watch connection lost: {error}") from None
        finally:
            watcher.stop()  # type: ignore[no-untyped-call]

    # -- MySQL objects ---------------------------------------------------------------------

    def get_mysql(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self._get(
            lambda: self.custom.get_namespaced_custom_object(
                API_GROUP, VERSION, namespace, PLURAL, name, _preload_content=False
            )
        )

    def set_finalizer(self, obj: Mapping[str, Any], finalizer: str, *, present: bool) -> None:
        """Adds or removes one finalizer; a no-op if it is already so or the object is gone.

        The patch carries the resourceVersion that was read, so a concurrent change to the
        finalizer list is a 409 (`Conflict`) rather than a lost update.
        """
        namespace, name = key_of(obj)
        body = _finalizer_patch(obj, finalizer, present=present)
        if body is None:
            return
        self._patch(
            lambda: self.custom.patch_namespaced_custom_object(
                API_GROUP, VERSION, namespace, PLURAL, name, body, _content_type=MERGE_PATCH
            ),
            f"{namespace}/{name}",
        )

    def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        """A merge patch on the status subresource; an object already gone is fine."""
        self._patch(
            lambda: self.custom.patch_namespaced_custom_object_status(
                API_GROUP, VERSION, namespace, PLURAL, name, dict(patch), _content_type=MERGE_PATCH
            ),
            f"{namespace}/{name}",
        )

    # -- MySQLBackup records -----------------------------------------------------------------

    def get_backup_object(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self._get(
            lambda: self.backup_records.get_namespaced_custom_object(
                API_GROUP, VERSION, namespace, BACKUP_PLURAL, name, _preload_content=False
            )
        )

    def create_backup_object(self, namespace: str, manifest: Mapping[str, Any]) -> None:
        """Creates the record; one that already exists is left as it is."""
        self._create(
            lambda: self.backup_records.create_namespaced_custom_object(
                API_GROUP, VERSION, namespace, BACKUP_PLURAL, dict(manifest)
            )
        )

    def list_backup_objects(
        self, namespace: str, label_selector: str
    ) -> Sequence[Mapping[str, Any]]:
        return self.list(Kind.BACKUP, namespace, label_selector).items

    def delete_backup_object(self, namespace: str, name: str) -> None:
        self._delete(
            lambda: self.backup_records.delete_namespaced_custom_object(
                API_GROUP, VERSION, namespace, BACKUP_PLURAL, name
            )
        )

    def patch_backup_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self._patch(
            lambda: self.backup_records.patch_namespaced_custom_object_status(
                API_GROUP,
                VERSION,
                namespace,
                BACKUP_PLURAL,
                name,
                {"status": dict(status)},
                _content_type=MERGE_PATCH,
            ),
            f"MySQLBackup {namespace}/{name}",
        )

    # -- events ----------------------------------------------------------------------------

    def post_event(
        self, obj: Mapping[str, Any], *, warning: bool, reason: str, message: str
    ) -> None:
        """Best effort: an event that cannot be posted is logged, never raised."""
        metadata = obj.get("metadata", {})
        namespace, name = key_of(obj)
        now = datetime.now(UTC)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{name}.", namespace=namespace),
            involved_object=client.V1ObjectReference(
                api_version=f"{API_GROUP}/{VERSION}",
                kind=KIND,
                name=name,
                namespace=namespace,
                uid=metadata.get("uid"),
                resource_version=metadata.get("resourceVersion"),
            ),
            reason=reason,
            message=message[:1024],
            type="Warning" if warning else "Normal",
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component=REPORTING_COMPONENT),
            reporting_component=REPORTING_COMPONENT,
        )
        try:
            self.core.create_namespaced_event(namespace, event)
        except (ApiException, TransportError) as error:
            status = getattr(error, "status", "unreachable")
            log.warning("event %s on %s/%s not posted: %s", reason, namespace, name, status)

    def events_for(self, namespace: str, kind: str, name: str) -> Sequence[Mapping[str, Any]]:
        raw = self._raw(
            lambda: self.core.list_namespaced_event(
                namespace,
                field_selector=f"involvedObject.kind={kind},involvedObject.name={name}",
                _request_timeout=REQUEST_TIMEOUT_S,
                _preload_content=False,
            )
        )
        return tuple(raw.get("items", []))

    # -- the instance's objects ------------------------------------------------------------

    def volume_expansion(self, storage_class: str) -> bool | None:
        """Whether the StorageClass allows its claims to grow; None when it does not exist."""
        found = self._get(
            lambda: self.storage.read_storage_class(storage_class, _preload_content=False)
        )
        return None if found is None else found.get("allowVolumeExpansion") is True

    def get_claim(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self._get(
            lambda: self.core.read_namespaced_persistent_volume_claim(
                name, namespace, _preload_content=False
            )
        )

    def set_claim_finalizer(
        self, claim: Mapping[str, Any], finalizer: str, *, present: bool
    ) -> None:
        namespace, name = key_of(claim)
        body = _finalizer_patch(claim, finalizer, present=present)
        if body is None:
            return
        self._patch(
            lambda: self.core.patch_namespaced_persistent_volume_claim(
                name, namespace, body, _content_type=MERGE_PATCH, _preload_content=False
            ),
            f"claim {namespace}/{name}",
        )

    def delete_claim(self, namespace: str, name: str) -> None:
        self._delete(lambda: self.core.delete_namespaced_persistent_volume_claim(name, namespace))

    def get_volume(self, name: str) -> Mapping[str, Any] | None:
        return self._get(lambda: self.core.read_persistent_volume(name, _preload_content=False))

    def list_volumes(self, label_selector: str) -> Sequence[Mapping[str, Any]]:
        raw = self._raw(
            lambda: self.core.list_persistent_volume(
                label_selector=label_selector,
                _request_timeout=REQUEST_TIMEOUT_S,
                _preload_content=False,
            )
        )
        return tuple(raw.get("items", []))

    def patch_volume(self, name: str, patch: Mapping[str, Any]) -> None:
        """A JSON merge patch (None deletes a field, e.g. a claim reference's uid)."""
        self._patch(
            lambda: self.core.patch_persistent_volume(
                name, dict(patch), _content_type=MERGE_PATCH, _preload_content=False
            ),
            f"volume {name}",
        )

    def delete_volume(self, name: str) -> None:
        self._delete(lambda: self.core.delete_persistent_volume(name))

    def get_workload_object(self, namespace: str, kind: str, name: str) -> Mapping[str, Any] | None:
        """The instance's Deployment or a Service, as it is."""
        if kind == "Deployment":
            return self._get(
                lambda: self.apps.read_namespaced_deployment(
                    name, namespace, _preload_content=False
                )
            )
        return self._get(
            lambda: self.core.read_namespaced_service(name, namespace, _preload_content=False)
        )

    def deployment_exists(self, namespace: str, name: str) -> bool:
        return self.get_workload_object(namespace, "Deployment", name) is not None

    def workload(self, namespace: str, label_selector: str) -> tuple[tuple[str, str, bool], ...]:
        """The Deployments, Services and Jobs with these labels, as (kind, name, whether it
        is being deleted)."""
        found: list[tuple[str, str, bool]] = []
        listers = (
            ("Deployment", self.apps.list_namespaced_deployment),
            ("Service", self.core.list_namespaced_service),
            ("Job", self.batch.list_namespaced_job),
        )
        for kind, lister in listers:
            raw = self._raw(
                lambda lister=lister: lister(  # type: ignore[misc]
                    namespace,
                    label_selector=label_selector,
                    _request_timeout=REQUEST_TIMEOUT_S,
                    _preload_content=False,
                )
            )
            for item in raw.get("items", []):
                metadata = item.get("metadata") or {}
                found.append(
                    (kind, str(metadata.get("name", "")), bool(metadata.get("deletionTimestamp")))
                )
        return tuple(found)

    def service_routes(self, namespace: str, service: str) -> bool:
        """Whether the Service has a ready endpoint (its EndpointSlices say so)."""
        raw = self._raw(
            lambda: self.discovery.list_namespaced_endpoint_slice(
                namespace,
                label_selector=f"kubernetes.io/service-name={service}",
                _request_timeout=REQUEST_TIMEOUT_S,
                _preload_content=False,
            )
        )
        return any(
            (endpoint.get("conditions") or {}).get("ready") is True
            for item in raw.get("items", [])
            for endpoint in item.get("endpoints") or []
        )

    def list_pods(self, namespace: str, label_selector: str) -> Sequence[Mapping[str, Any]]:
        return self.list(Kind.POD, namespace, label_selector).items

    def create_job(self, namespace: str, manifest: Mapping[str, Any]) -> None:
        """Creates a Job; one that already exists under the name is left as it is."""
        # The client serialises a dict body as it is.
        self._create(
            lambda: self.batch.create_namespaced_job(namespace, dict(manifest))  # type: ignore[arg-type]
        )

    def get_job(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self._get(
            lambda: self.batch.read_namespaced_job(name, namespace, _preload_content=False)
        )

    # -- other objects ----------------------------------------------------------------------

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """The decoded value, or None if the Secret or the key is missing; a value that is
        not UTF-8 text raises UnicodeDecodeError."""
        secret = self._get(
            lambda: self.core.read_namespaced_secret(name, namespace, _preload_content=False)
        )
        encoded = ((secret or {}).get("data") or {}).get(key)
        return None if encoded is None else base64.b64decode(encoded).decode()

    def create_secret(self, namespace: str, manifest: Mapping[str, Any]) -> None:
        """Creates a Secret; one that already exists under the name is left as it is."""
        self._create(
            lambda: self.core.create_namespaced_secret(namespace, dict(manifest))  # type: ignore[arg-type]
        )

    def delete_secret(self, namespace: str, name: str) -> None:
        self._delete(lambda: self.core.delete_namespaced_secret(name, namespace))

    def secret_metadata(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """A Secret with its values replaced by empty strings (only its keys are kept), or
        None if it does not exist."""
        secret = self._get(
            lambda: self.core.read_namespaced_secret(name, namespace, _preload_content=False)
        )
        if secret is None:
            return None
        secret["data"] = dict.fromkeys(secret.get("data") or {}, "")
        secret.pop("stringData", None)
        return secret

    def namespace_terminating(self, namespace: str) -> bool:
        found = self._get(lambda: self.core.read_namespace(namespace, _preload_content=False))
        if found is None:
            return True  # gone is as terminating as it gets
        return (found.get("status") or {}).get("phase") == "Terminating"

    def get_pod(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """A pod of the operator's own (the holder of a stack lock)."""
        return self._get(
            lambda: self.core.read_namespaced_pod(name, namespace, _preload_content=False)
        )

    # -- the leader election's Lease ----------------------------------------------------

    def get_lease(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self._get(
            lambda: self.coordination.read_namespaced_lease(name, namespace, _preload_content=False)
        )

    def create_lease(self, namespace: str, manifest: Mapping[str, Any]) -> bool:
        """Creates the Lease; False when another candidate created it first."""
        return self._create(
            lambda: self.coordination.create_namespaced_lease(
                namespace,
                dict(manifest),  # type: ignore[arg-type]
                _request_timeout=LEASE_TIMEOUT_S,
            )
        )

    def replace_lease(self, namespace: str, name: str, manifest: Mapping[str, Any]) -> None:
        """Replaces the Lease at the resourceVersion in `manifest`; raises Conflict when it
        changed since (another candidate wrote it) or is gone."""
        try:
            self.coordination.replace_namespaced_lease(
                name,
                namespace,
                dict(manifest),  # type: ignore[arg-type]
                _request_timeout=LEASE_TIMEOUT_S,
            )
        except ApiException as error:
            if error.status in (404, 409):
                raise Conflict(f"Lease {namespace}/{name} changed") from None
            raise _unavailable(error) from None
        except TransportError as error:
            raise ApiUnavailable(f"Kubernetes API unreachable: {error}") from None

    # -- the calls -------------------------------------------------------------------------

    def _get(self, call: Callable[[], Any]) -> dict[str, Any] | None:
        """A read that returns the response's JSON as a dict, or None where it is 404."""
        try:
            response = call()
        except ApiException as error:
            if error.status == 404:
                return None
            raise _unavailable(error) from None
        except TransportError as error:
            raise ApiUnavailable(f"Kubernetes API unreachable: {error}") from None
        decoded: dict[str, Any] = json.loads(response.data)
        return decoded

    def _raw(self, call: Callable[[], Any]) -> dict[str, Any]:
        """A read that must find something (a list)."""
        found = self._get(call)
        if found is None:
            raise ApiUnavailable("Kubernetes API: 404 Not Found (is the CRD installed?)")
        return found

    def _patch(self, call: Callable[[], Any], what: str) -> None:
        try:
            call()
        except ApiException as error:
            if error.status == 404:
                return
            if error.status == 409:
                raise Conflict(f"{what} changed while patching") from None
            raise _unavailable(error) from None
        except TransportError as error:
            raise ApiUnavailable(f"Kubernetes API unreachable: {error}") from None

    def _create(self, call: Callable[[], Any]) -> bool:
        """A create that is done when the object exists already (409): repeatable. False
        when it existed."""
        try:
            call()
        except ApiException as error:
            if error.status != 409:
                raise _unavailable(error) from None
            return False
        except TransportError as error:
            raise ApiUnavailable(f"Kubernetes API unreachable: {error}") from None
        return True

    def _delete(self, call: Callable[[], Any]) -> None:
        try:
            call()
        except ApiException as error:
            if error.status == 404:
                return
            raise _unavailable(error) from None
        except TransportError as error:
            raise ApiUnavailable(f"Kubernetes API unreachable: {error}") from None


def _finalizer_patch(
    obj: Mapping[str, Any], finalizer: str, *, present: bool
) -> dict[str, Any] | None:
    metadata = obj.get("metadata", {})
    current = list(metadata.get("finalizers") or [])
    if (finalizer in current) == present:
        return None
    wanted = [*current, finalizer] if present else [f for f in current if f != finalizer]
    return {"metadata": {"finalizers": wanted, "resourceVersion": metadata["resourceVersion"]}}


def _unavailable(error: ApiException) -> ApiUnavailable:
    return ApiUnavailable(f"Kubernetes API: {error.status} {error.reason}")
