"""The baseline: a minimal direct-apply reconciler for MySQL objects (bench only).

`python -m bench.baseline --namespace NS --kubeconfig PATH [--workers W]` watches MySQL
objects in one namespace. The watch feeds a deduplicating queue (the reconciler's own
`WorkQueue`: a key is never handled by two workers at once) and W worker threads, as in
the reconciler. For each object that is not Ready at its generation a worker renders the
objects the stack program declares (`bench.render`, identical manifests; one render at a
time, since Pulumi's mocks are process-global: ~0.05 s each) and server-side applies them
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
import asyncio
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final

from kubernetes import client, config, dynamic, watch
from kubernetes.client.exceptions import ApiException

from bench.render import Manifest, render_manifests
from reconciler.queue import ShutDown, WorkQueue
from reconciler.spec import parse_instance
from reconciler.vocabulary import API_GROUP

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
# Pulumi's mocks are process-global settings: one render at a time.
_RENDER_LOCK: Final = threading.Lock()


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
        with _RENDER_LOCK:
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

    def work(self, queue: WorkQueue[str]) -> None:
        """One worker: reads each queued object fresh; reconciles it unless Ready."""
        # The mocks run the program on the thread's event loop; worker threads have none.
        asyncio.set_event_loop(asyncio.new_event_loop())
        while True:
            try:
                name = queue.get()
            except ShutDown:
                return
            if name is None:
                continue
            try:
                obj = self.get(name)
                if (
                    obj is not None
                    and not obj["metadata"].get("deletionTimestamp")
                    and not _ready_at(obj, int(obj["metadata"]["generation"]))
                ):
                    print(json.dumps(self.reconcile(obj)), flush=True)
            except Exception as error:  # a failure is printed; the bench sees no Ready
                print(
                    json.dumps({"event": "failed", "name": name, "error": str(error)}), flush=True
                )
            finally:
                queue.done(name)

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            found: Any = self.custom.get_namespaced_custom_object(
                API_GROUP, VERSION, self.namespace, PLURAL, name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return dict(found)

    def run(self, workers: int) -> None:
        queue: WorkQueue[str] = WorkQueue()
        for index in range(workers):
            threading.Thread(
                target=self.work, args=(queue,), name=f"worker-{index}", daemon=True
            ).start()
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
                    if event["type"] != "DELETED":
                        queue.add(obj["metadata"]["name"])
            except ApiException as error:
                if error.status != 410:
                    raise
                version = ""  # expired: list again


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--workers", type=int, default=1, help="parallel reconciles")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers: at least 1")
    configuration = client.Configuration()
    config.load_kube_config(config_file=args.kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    # One connection per worker, plus the watch, without "pool is full" churn.
    configuration.connection_pool_maxsize = args.workers + 4
    api_client = client.ApiClient(configuration)
    # SIGTERM is how the bench stops it: exit 0 (in-flight work is simply abandoned).
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    print(json.dumps({"event": "started", "at": time.time(), "workers": args.workers}), flush=True)
    Baseline(api_client, args.namespace).run(args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
