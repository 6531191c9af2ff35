"""The baseline: the same manifests applied directly, in the bench's own process, one
object at a time; a lower bound for any operator that applies them. The `restoring`
stage's manifests come from the reconciler's pure builders (`reconciler.manifests`) and
are server-side applied in three awaited steps (storage, configuration and the internal
Service, then claims Bound; the Deployment, then available; the restore Job, then
complete); then the client Service, the Job deleted, and Ready written. No queue, state,
finalizer, fingerprint, volume retention or teardown (bench/README.md).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

from kubernetes import client, dynamic

from bench.runner import PLURAL, VERSION, eventually
from reconciler import manifests
from reconciler.desired import Desired
from reconciler.names import names_for
from reconciler.spec import parse_instance
from reconciler.vocabulary import API_GROUP, Stage

FIELD_MANAGER: Final = "bench-baseline"
POLL_S: Final = 0.1
STEPS: Final = (
    (
        "claims_s",
        frozenset({"Secret", "ConfigMap", "Service", "PersistentVolume", "PersistentVolumeClaim"}),
    ),
    ("deployment_s", frozenset({"Deployment"})),
    ("job_s", frozenset({"Job"})),
)


class DirectApply:
    def __init__(self, api_client: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.dynamic = dynamic.DynamicClient(api_client)  # type: ignore[no-untyped-call]

    def apply(self, body: dict[str, Any]) -> None:
        resource = self.dynamic.resources.get(api_version=body["apiVersion"], kind=body["kind"])
        resource.server_side_apply(
            body=body,
            name=body["metadata"]["name"],
            namespace=body["metadata"].get("namespace"),
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )

    def ready(self, body: dict[str, Any]) -> bool:
        """What the step's dependents wait for."""
        kind, name, namespace = (
            body["kind"],
            body["metadata"]["name"],
            body["metadata"].get("namespace"),
        )
        if kind == "PersistentVolumeClaim":
            claim = self.core.read_namespaced_persistent_volume_claim_status(name, namespace)
            return claim.status is not None and claim.status.phase == "Bound"
        if kind == "Deployment":
            found = self.apps.read_namespaced_deployment_status(name, namespace).status
            return bool(found and (found.available_replicas or 0) >= 1)
        if kind == "Job":
            status = self.batch.read_namespaced_job_status(name, namespace).status
            conditions = (status.conditions if status is not None else None) or []
            return any(c.type == "Complete" and c.status == "True" for c in conditions)
        return True

    def deploy(self, obj: dict[str, Any]) -> dict[str, float]:
        """Deploys one created object and marks it Ready; the time of each part."""
        started = time.monotonic()
        instance = parse_instance(obj)
        bodies = manifests.rendered(Desired(instance, Stage.RESTORING))
        parts: dict[str, float] = {}
        for key, kinds in STEPS:
            step = [body for body in bodies if body["kind"] in kinds]
            for body in step:
                self.apply(body)
            applied = time.monotonic()
            for body in step:
                eventually(partial(self.ready, body), bool, 600, body["kind"], POLL_S)
            parts[key] = round(time.monotonic() - applied, 3)
        serving = time.monotonic()
        service = manifests.client_service(Desired(instance, Stage.SERVING))
        assert service is not None
        self.apply(service)
        self.batch.delete_namespaced_job(
            names_for(instance).restore_job(1), instance.namespace, propagation_policy="Background"
        )
        generation = int(obj["metadata"]["generation"])
        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "UpToDate",
            "message": "baseline: applied and ready",
            "observedGeneration": generation,
            "lastTransitionTime": now,
        }
        self.custom.patch_namespaced_custom_object_status(
            API_GROUP,
            VERSION,
            instance.namespace,
            PLURAL,
            instance.name,
            {"status": {"observedGeneration": generation, "conditions": [ready]}},
        )
        parts["serving_s"] = round(time.monotonic() - serving, 3)
        waits = sum(parts[key] for key, _ in STEPS)
        parts["apply_s"] = round(time.monotonic() - started - waits - parts["serving_s"], 3)
        return parts
