"""The per-instance Pulumi program: registers the manifests of `manifests.py` with the
options each object needs. A pure function of a frozen `Desired`; it reads nothing and
calls nothing. docs/design.md explains the policy; in short:

- Every object waits for nothing (`pulumi.com/skipAwait`): an `up` only applies, and the
  reconciler itself watches claims, pods and Jobs and says what it is waiting for. So no
  engine run holds a worker while a volume binds, an image pulls or a dump runs.
- Claims and the volumes the program makes are `retain_on_delete`: neither `destroy`
  nor a replacement can delete data. The operator releases a data claim itself, after a
  verified final backup (teardown.py).
- Every object has a fixed name, and pulumi-kubernetes 4.25 creates with a server-side
  apply (an upsert), so a replacement must delete first; `delete_before_replace` on
  everything. The upsert, forced (`pulumi.com/patchForce`), is also how a new stack
  adopts the live objects of an instance whose stack state was lost, and how a
  re-created instance takes its claims over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s

from reconciler import manifests
from reconciler.desired import Desired
from reconciler.manifests import Manifest
from reconciler.names import names_for

SKIP_AWAIT: Final = "pulumi.com/skipAwait"
# Take conflicting fields over from other field managers: a new stack that adopts live
# objects (after lost state) gets a field manager of its own.
PATCH_FORCE: Final = "pulumi.com/patchForce"
# A Job the program stops declaring (the restore Job once the restore is done, a failed
# attempt's Job) is deleted without waiting for its finished pods to go first.
DELETION_POLICY: Final = "pulumi.com/deletionPropagationPolicy"

# pulumi_kubernetes loads its API groups lazily (importlib's LazyLoader), which is not
# thread-safe on Python 3.11: two workers running their first programs at once could see a
# half-loaded module ("module 'pulumi_kubernetes.meta.v1' has no attribute
# 'ObjectMetaArgs'"). Touching one name of each group the program uses loads them here,
# on import, before any worker starts.
LOADED_EAGERLY: Final = (
    k8s.meta.v1.ObjectMetaArgs,
    k8s.core.v1.Service,
    k8s.apps.v1.Deployment,
    k8s.batch.v1.Job,
)


@dataclass(frozen=True)
class ClusterAccess:
    """How the program's Kubernetes provider reaches the cluster (operator settings)."""

    kubeconfig: str | None = None  # contents or path; None: $KUBECONFIG or in-cluster
    context: str | None = None


def build_program(desired: Desired, cluster: ClusterAccess = ClusterAccess()) -> Callable[[], None]:
    """The inline program for the Automation API; it closes over frozen values only."""

    def program() -> None:
        declare(desired, cluster)
        pulumi.export("stage", desired.stage.value)
        pulumi.export("service", names_for(desired.instance).service)

    return program


def declare(desired: Desired, cluster: ClusterAccess) -> dict[str, pulumi.Resource]:
    """Registers every object of the stage; returns them by manifest name."""
    provider = k8s.Provider(
        "kubernetes",
        kubeconfig=cluster.kubeconfig,
        context=cluster.context,
        enable_server_side_apply=True,
        # Update Secrets and ConfigMaps in place rather than replacing them.
        enable_secret_mutable=True,
        enable_config_map_mutable=True,
    )
    registry = _Registry(provider)
    credentials = registry.add("credentials", manifests.credentials_secret(desired))
    scripts = registry.add("scripts", manifests.scripts_config_map(desired))
    data_volume = registry.add("data-volume", manifests.data_volume(desired), retain=True)
    data_claim = registry.add(
        "data-claim", manifests.data_claim(desired), retain=True, after=[data_volume]
    )
    server = registry.add(
        "deployment", manifests.deployment(desired), after=[data_claim, credentials, scripts]
    )
    internal = registry.add("internal-service", manifests.internal_service(desired))
    client = registry.add("service", manifests.client_service(desired))
    backup_volume = registry.add("backup-volume", manifests.backup_volume(desired), retain=True)
    backup_claim = registry.add(
        "backup-claim", manifests.backup_claim(desired), retain=True, after=[backup_volume]
    )
    job_inputs = [server, internal, scripts, backup_claim]
    registry.add(
        "restore-job",
        manifests.restore_job(desired),
        after=job_inputs,
        logical="restore",
        ignore_spec=desired.restore_finished,
    )
    # After the client Service: clients are cut off before the final dump starts.
    registry.add(
        "backup-job", manifests.backup_job(desired), after=[*job_inputs, client], logical="backup"
    )
    return registry.declared


_KINDS: Final[dict[str, Callable[..., pulumi.CustomResource]]] = {
    "Secret": k8s.core.v1.Secret,
    "ConfigMap": k8s.core.v1.ConfigMap,
    "PersistentVolume": k8s.core.v1.PersistentVolume,
    "PersistentVolumeClaim": k8s.core.v1.PersistentVolumeClaim,
    "Service": k8s.core.v1.Service,
    "Deployment": k8s.apps.v1.Deployment,
    "Job": k8s.batch.v1.Job,
}


class _Registry:
    def __init__(self, provider: k8s.Provider) -> None:
        self.provider = provider
        self.declared: dict[str, pulumi.Resource] = {}

    def add(
        self,
        key: str,
        manifest: Manifest | None,
        *,
        retain: bool = False,
        after: Sequence[pulumi.Resource | None] = (),
        logical: str | None = None,
        ignore_spec: bool = False,
    ) -> pulumi.Resource | None:
        """Registers one manifest. The logical name is the object's own name, so stacks
        keep their URNs; Jobs use a fixed one (`logical`), so that a new attempt's Job
        (a new name) replaces the previous attempt's."""
        if manifest is None:
            return None
        metadata = dict(manifest["metadata"])
        kind = manifest["kind"]
        metadata["annotations"] = {
            **metadata.get("annotations", {}),
            SKIP_AWAIT: "true",
            PATCH_FORCE: "true",
            **({DELETION_POLICY: "background"} if kind == "Job" else {}),
        }
        args: dict[str, Any] = {"metadata": metadata}
        secret_outputs: list[str] = []
        if kind == "Secret":
            args["type"] = manifest["type"]
            args["string_data"] = {
                key: pulumi.Output.secret(value) for key, value in manifest["stringData"].items()
            }
            secret_outputs = ["data", "stringData"]
        elif kind == "ConfigMap":
            args["data"] = manifest["data"]
        else:
            args["spec"] = manifest["spec"]
        resource = _KINDS[kind](
            logical or metadata["name"],
            **args,
            opts=pulumi.ResourceOptions(
                provider=self.provider,
                delete_before_replace=True,
                retain_on_delete=retain,
                depends_on=[resource for resource in after if resource is not None],
                additional_secret_outputs=secret_outputs,
                ignore_changes=["spec"] if ignore_spec else None,
            ),
        )
        self.declared[key] = resource
        return resource
