"""The Kubernetes gateway: the only module that calls the Kubernetes API.

Every effect is idempotent in the crate-operator way (ENGINEERING.md section 6): a 404
on something we meant to change means it is already gone, a finalizer that is already
there (or already gone) is not patched again, and a 409 from an optimistic-concurrency
patch is returned to the caller as a `Conflict` to retry on the next pass.
Objects come back as plain dicts, exactly as the API server serialized them.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as TransportError

from reconciler.spec import API_GROUP, KIND

log = logging.getLogger(__name__)

VERSION: Final = "v1"
PLURAL: Final = "mysqls"
REPORTING_COMPONENT: Final = "mysql-operator"
CONNECT_TIMEOUT_S: Final = 10
REQUEST_TIMEOUT_S: Final = 60


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
        self.custom = client.CustomObjectsApi(api_client)

    # -- MySQL objects ---------------------------------------------------------------------

    def list_mysqls(self, namespace: str | None) -> Listing:
        try:
            if namespace is None:
                raw = self.custom.list_cluster_custom_object(
                    API_GROUP, VERSION, PLURAL, _request_timeout=REQUEST_TIMEOUT_S
                )
            else:
                raw = self.custom.list_namespaced_custom_object(
                    API_GROUP, VERSION, namespace, PLURAL, _request_timeout=REQUEST_TIMEOUT_S
                )
        except ApiException as error:
            raise _unavailable(error) from None
        except TransportError as error:
            raise ApiUnavailable(f"Kubernetes API unreachable: {error}") from None
        listing: dict[str, Any] = raw  # type: ignore[assignment]
        return Listing(tuple(listing.get("items", [])), str(listing["metadata"]["resourceVersion"]))

    def watch_mysqls(
        self, namespace: str | None, resource_version: str, timeout_s: int
    ) -> Iterator[WatchEvent]:
        """Events after `resource_version` until the server ends the watch; raises `Expired`."""
        watcher = watch.Watch()  # type: ignore[no-untyped-call]
        if namespace is None:
            call: Any = self.custom.list_cluster_custom_object
            args: tuple[str, ...] = (API_GROUP, VERSION, PLURAL)
        else:
            call = self.custom.list_namespaced_custom_object
            args = (API_GROUP, VERSION, namespace, PLURAL)
        try:
            for event in watcher.stream(  # type: ignore[no-untyped-call]
                call,
                *args,
                resource_version=resource_version,
                timeout_seconds=timeout_s,
                allow_watch_bookmarks=True,
                # A read timeout beyond the server's, so a dead connection cannot hang us.
                _request_timeout=(CONNECT_TIMEOUT_S, timeout_s + 30),
            ):
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    if isinstance(obj, Mapping) and obj.get("code") == 410:
                        raise Expired()
                    raise ApiUnavailable(f"watch error: {obj}")
                if kind == "BOOKMARK":
                    continue
                yield WatchEvent(kind, obj)
        except ApiException as error:
            if error.status == 410:
                raise Expired() from None
            raise _unavailable(error) from None
        except TransportError as error:
            raise ApiUnavailable(f"watch connection lost: {error}") from None
        finally:
            watcher.stop()  # type: ignore[no-untyped-call]

    def get_mysql(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(  # type: ignore[assignment]
                API_GROUP, VERSION, namespace, PLURAL, name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise _unavailable(error) from None
        return found

    def set_finalizer(self, obj: Mapping[str, Any], finalizer: str, *, present: bool) -> None:
        """Adds or removes one finalizer; a no-op if it is already so or the object is gone.

        The patch carries the resourceVersion that was read, so a concurrent change to the
        finalizer list is a 409 (`Conflict`) rather than a lost update.
        """
        metadata = obj.get("metadata", {})
        current = list(metadata.get("finalizers") or [])
        if (finalizer in current) == present:
            return
        wanted = [*current, finalizer] if present else [f for f in current if f != finalizer]
        body = {"metadata": {"finalizers": wanted, "resourceVersion": metadata["resourceVersion"]}}
        namespace, name = key_of(obj)
        try:
            self.custom.patch_namespaced_custom_object(
                API_GROUP, VERSION, namespace, PLURAL, name, body
            )
        except ApiException as error:
            if error.status == 404:
                return
            if error.status == 409:
                raise Conflict(f"{namespace}/{name} changed while patching finalizers") from None
            raise _unavailable(error) from None

    def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        """A merge patch on the status subresource; an object already gone is fine."""
        try:
            self.custom.patch_namespaced_custom_object_status(
                API_GROUP, VERSION, namespace, PLURAL, name, dict(patch)
            )
        except ApiException as error:
            if error.status == 404:
                return
            raise _unavailable(error) from None

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
        except ApiException as error:
            log.warning("event %s on %s/%s not posted: %s", reason, namespace, name, error.status)

    # -- other objects ----------------------------------------------------------------------

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        """The decoded value, or None if the Secret or the key is missing."""
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise _unavailable(error) from None
        encoded = (secret.data or {}).get(key)
        return None if encoded is None else base64.b64decode(encoded).decode()

    def secret_problem(self, namespace: str, name: str, key: str) -> str | None:
        """Why a password Secret reference cannot be used, or None if it can."""
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as error:
            if error.status == 404:
                return f"spec.passwordSecretRef: Secret {name!r} not found in namespace {namespace}"
            raise _unavailable(error) from None
        if key not in (secret.data or {}):
            return f"spec.passwordSecretRef: Secret {name!r} has no key {key!r}"
        return None

    def namespace_terminating(self, namespace: str) -> bool:
        try:
            found = self.core.read_namespace(namespace)
        except ApiException as error:
            if error.status == 404:
                return True  # gone is as terminating as it gets
            raise _unavailable(error) from None
        return found.status is not None and found.status.phase == "Terminating"


def _unavailable(error: ApiException) -> ApiUnavailable:
    return ApiUnavailable(f"Kubernetes API: {error.status} {error.reason}")
