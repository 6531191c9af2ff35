"""The baseline: a minimal direct-apply reconciler for MySQL objects (bench only).

`python -m bench.baseline --namespace NS --kubeconfig PATH` watches MySQL objects in one
namespace. For each object that is not Ready at its generation it renders the objects the
stack program declares (`bench.render`, identical manifests) and server-side applies them
in the program's dependency order, awaiting what the engine awaits before dependents:
storage, Secret, ConfigMap and Service first (then the claims Bound), the Deployment
(then available), the restore Job (then complete); last it sets the Ready condition.
Ready therefore means what it means for the reconciler: Deployment available and restore
Job complete. (Applying everything at once and waiting is slower on kwok: the pod is
scheduled before its claim binds and waits out the scheduler's backoff.)

No state, no finalizer, no teardown, no fingerprint: a lower bound for any operator that
simply applies its manifests. It prints one JSON line per reconcile with its timestamps.
Waiting polls every POLL_S seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

from kubernetes import client, config, dynamic, watch
from kubernetes.client.exceptions import ApiException

from bench.render import Manifest, render_manifests
from reconciler.spec import API_GROUP, parse_instance

VERSION: Final = "v1"
PLURAL: Final = "mysqls"
FIELD_MANAGER: Final = "bench-baseline"
POLL_S: Final = 0.2
WAIT_TIMEOUT_S: Final = 600.0
# The stack program's dependency order: storage and configuration, then the Deployment
# (which depends on the data claim), then the restore Job (which depends on the
# Deployment, Service, scripts and backup claim). Each stage is applied, then awaited.
STAGES: Final = (
    frozenset({"Secret", "ConfigMap", "Service", "PersistentVolume", "PersistentVolumeClaim"}),
    frozenset({"Deployment"}),
    frozenset({"Job"}),
)


def _ready_at(obj: dict[str, Any], generation: int) -> bool:
    status = obj.get("status") or {}
    return status.get("observedGeneration") == generation and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _wait(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(POLL_S)


class Baseline:
    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.dynamic = dynamic.DynamicClient(api_client)  # type: ignore[no-untyped-call]

    def apply(self, manifest: Manifest) -> None:
        resource = self.dynamic.resources.get(
            api_version=manifest.body["apiVersion"], kind=manifest.kind
        )
        resource.server_side_apply(
            body=manifest.body,
            name=manifest.name,
            namespace=manifest.namespace,
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )

    def await_ready(self, manifest: Manifest) -> None:
        """What the reconciler's engine awaits before its dependents (pulumi-kubernetes)."""
        if manifest.kind == "PersistentVolumeClaim":
            _wait(f"claim {manifest.name}", partial(self.claim_bound, manifest.name))
        elif manifest.kind == "Deployment":
            _wait(f"Deployment {manifest.name}", partial(self.deployment_available, manifest.name))
        elif manifest.kind == "Job":
            _wait(f"Job {manifest.name}", partial(self.job_complete, manifest.name))

    def claim_bound(self, name: str) -> bool:
        status = self.core.read_namespaced_persistent_volume_claim_status(
            name, self.namespace
        ).status
        return status is not None and status.phase == "Bound"

    def deployment_available(self, name: str) -> bool:
        found = self.apps.read_namespaced_deployment_status(name, self.namespace)
        status = found.status
        return bool(
            status is not None
            and (status.observed_generation or 0)
            >= ((found.metadata and found.metadata.generation) or 0)
            and (status.available_replicas or 0) >= 1
            and any(c.type == "Available" and c.status == "True" for c in status.conditions or [])
        )

    def job_complete(self, name: str) -> bool:
        status = self.batch.read_namespaced_job_status(name, self.namespace).status
        conditions = (status.conditions if status is not None else None) or []
        return any(c.type == "Complete" and c.status == "True" for c in conditions)

    def reconcile(self, obj: dict[str, Any]) -> dict[str, Any]:
        picked_up = time.time()
        generation = int(obj["metadata"]["generation"])
        manifests = render_manifests(parse_instance(obj))
        rendered = time.time()
        waited = 0.0
        for stage in STAGES:
            for manifest in manifests:
                if manifest.kind in stage:
                    self.apply(manifest)
            started = time.monotonic()
            for manifest in manifests:
                if manifest.kind in stage:
                    self.await_ready(manifest)
            waited += time.monotonic() - started
        ready = time.time()
        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        condition = {
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
            self.namespace,
            PLURAL,
            obj["metadata"]["name"],
            {"status": {"observedGeneration": generation, "conditions": [condition]}},
        )
        return {
            "event": "reconciled",
            "name": obj["metadata"]["name"],
            "picked_up": picked_up,
            "rendered": rendered,
            "apply_s": ready - rendered - waited,  # the server-side apply calls
            "readiness_wait_s": waited,  # the awaits between the stages
            "ready": ready,
            "status_written": time.time(),
        }

    def run(self) -> None:
        version = ""
        while True:
            stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                self.custom.list_namespaced_custom_object,
                API_GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                resource_version=version or None,
                timeout_seconds=60,
            )
            try:
                for event in stream:
                    obj = event["object"]
                    version = obj["metadata"]["resourceVersion"]
                    if event["type"] == "DELETED" or obj["metadata"].get("deletionTimestamp"):
                        continue
                    if not _ready_at(obj, int(obj["metadata"]["generation"])):
                        print(json.dumps(self.reconcile(obj)), flush=True)
            except ApiException as error:
                if error.status != 410:
                    raise
                version = ""  # expired: list again


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--kubeconfig", required=True)
    args = parser.parse_args(argv)
    api_client = config.new_client_from_config(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
    print(json.dumps({"event": "started", "at": time.time()}), flush=True)
    Baseline(api_client, args.namespace).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
