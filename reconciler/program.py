"""The per-instance Pulumi program: a pure function of a frozen `Instance` and a `Phase`.

`build_program` returns the inline program that the Pulumi driver hands to the Automation
API. It reads nothing and calls nothing: it only declares resources.

Phases, and why deletion is an `up` followed by a `destroy`
-----------------------------------------------------------
RUNNING declares the instance: credentials, scripts, data storage, Deployment, Service,
backup storage and the one-off restore Job. TEARDOWN declares the same plus the backup
Job, and lifts the data claim's `protect` (a protected resource would fail `destroy`).
Deleting an instance is therefore two engine runs: `up` in TEARDOWN, which creates the
backup Job and waits for it to complete (pulumi-kubernetes awaits Jobs and fails the
update if the Job fails or times out), then `destroy`, which deletes everything but the
retained backup claim.

Resource hooks on `destroy(run_program=True)` could run the dump from a before-delete
hook instead. We did not choose them because:
- the backup would be a side effect inside the engine rather than a Kubernetes Job:
  users could not see it with kubectl, and its logs would end up in the operator's log;
- a hook runs in the operator's process, so the operator would need network access
  to every MySQL and a mysqldump binary matching each instance's server;
- `destroy` would already be deleting when the backup fails, whereas with two runs a
  failed backup stops before anything is deleted, leaving the stack untouched, and the
  reconciler keeps the finalizer and retries (ENGINEERING.md section 8);
- the phase is an explicit input, so the unit tests can check that TEARDOWN declares
  the backup Job and that RUNNING never does.

Taking the backup claim over again
----------------------------------
The backup claim has `retain_on_delete`, so `destroy` forgets it but leaves it in the
cluster, and its name (`<name>-backup`) does not depend on the object's uid. When an
object with the same name is created, the new stack's `up` creates a claim with that
name. pulumi-kubernetes 4.25 (our pin) creates objects with a server-side apply patch
when server-side apply is on (the default, and set explicitly below), and applying to an
existing object is an upsert: the new stack takes the existing claim over, dumps and all.
From 4.29 on (pulumi/pulumi-kubernetes#4278) create is a client-side create that fails
with AlreadyExists unless the Provider sets `upsertExistingObjects`; when the pin moves
past 4.28, set that option on the Provider here (the 4.25 SDK does not have it; a unit
test fails on the upgrade as a reminder). The alternatives were worse: `import_` fails
when the claim does not exist, so the program would have to read the cluster first and
would stop being pure; a `get` would leave the claim unmanaged by the stack.

Upsert-on-create is also why every object with a fixed name is `delete_before_replace`:
a create-before-delete replacement would upsert the live object and then delete it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.apps.v1 import (
    Deployment,
    DeploymentSpecArgs,
    DeploymentStrategyArgs,
)
from pulumi_kubernetes.batch.v1 import Job, JobSpecArgs
from pulumi_kubernetes.core.v1 import (
    ConfigMap,
    ConfigMapVolumeSourceArgs,
    ContainerArgs,
    ContainerPortArgs,
    EnvVarArgs,
    EnvVarSourceArgs,
    ExecActionArgs,
    HostPathVolumeSourceArgs,
    ObjectReferenceArgs,
    PersistentVolume,
    PersistentVolumeClaim,
    PersistentVolumeClaimSpecArgs,
    PersistentVolumeClaimVolumeSourceArgs,
    PersistentVolumeSpecArgs,
    PodSpecArgs,
    PodTemplateSpecArgs,
    ProbeArgs,
    ResourceRequirementsArgs,
    Secret,
    SecretKeySelectorArgs,
    Service,
    ServicePortArgs,
    ServiceSpecArgs,
    VolumeArgs,
    VolumeMountArgs,
    VolumeResourceRequirementsArgs,
)
from pulumi_kubernetes.meta.v1 import LabelSelectorArgs, ObjectMetaArgs, OwnerReferenceArgs

from reconciler.job_scripts import BACKUP_SCRIPT, RESTORE_SCRIPT, job_scripts
from reconciler.names import (
    MYSQL_PORT,
    PASSWORD_KEY,
    Component,
    InstanceNames,
    labels_for,
    names_for,
    selector_for,
)
from reconciler.spec import API_VERSION, KIND, DeletionPolicy, Instance, ResourceAmounts

DATA_MOUNT: Final = "/var/lib/mysql"
# MySQL 5.7 refuses to initialize a data directory holding `lost+found`, which many
# volumes have at their root; a sub-directory avoids that for every MySQL version.
DATA_SUB_PATH: Final = "mysql"
BACKUP_MOUNT: Final = "/backup"
SCRIPTS_MOUNT: Final = "/scripts"
RESTORE_DEADLINE_S: Final = 15 * 60
BACKUP_DEADLINE_S: Final = 30 * 60
JOB_RETRIES: Final = 2
SKIP_AWAIT: Final = "pulumi.com/skipAwait"  # the provider's per-object "don't await" switch


class Phase(StrEnum):
    RUNNING = "running"
    TEARDOWN = "teardown"


@dataclass(frozen=True)
class ClusterAccess:
    """How the program's Kubernetes provider reaches the cluster (operator settings)."""

    kubeconfig: str | None = None  # contents or path; None: $KUBECONFIG or in-cluster
    context: str | None = None


@dataclass(frozen=True)
class DeclaredResources:
    """What one run of the program declared; the unit tests inspect it."""

    provider: k8s.Provider
    credentials: Secret | None  # None when the password comes from the user's Secret
    scripts: ConfigMap
    data_volume: PersistentVolume | None  # only for a static hostPath volume
    data_claim: PersistentVolumeClaim
    deployment: Deployment
    service: Service
    backup_volume: PersistentVolume | None
    backup_claim: PersistentVolumeClaim
    restore_job: Job
    backup_job: Job | None  # only in TEARDOWN, and only if the policy backs up


def build_program(
    instance: Instance, phase: Phase, cluster: ClusterAccess = ClusterAccess()
) -> Callable[[], None]:
    """The inline program for the Automation API; it closes over frozen values only."""

    def program() -> None:
        declared = declare_instance(instance, phase, cluster)
        pulumi.export("phase", phase.value)
        pulumi.export("service", declared.service.metadata.name)
        pulumi.export("restoreJob", declared.restore_job.metadata.name)
        if declared.backup_job is not None:
            pulumi.export("backupJob", declared.backup_job.metadata.name)

    return program


def declare_instance(instance: Instance, phase: Phase, cluster: ClusterAccess) -> DeclaredResources:
    """Declares every resource of the instance; must run inside a Pulumi program."""
    return _Declaration(instance, phase, cluster).declare()


class _Declaration:
    def __init__(self, instance: Instance, phase: Phase, cluster: ClusterAccess) -> None:
        self.instance = instance
        self.spec = instance.spec
        self.phase = phase
        self.names: InstanceNames = names_for(instance)
        self.provider = k8s.Provider(
            "kubernetes",
            kubeconfig=cluster.kubeconfig,
            context=cluster.context,
            # The backup claim takeover relies on it (see the module docstring).
            enable_server_side_apply=True,
            # Update Secrets and ConfigMaps in place rather than replacing them.
            enable_secret_mutable=True,
            enable_config_map_mutable=True,
        )

    def declare(self) -> DeclaredResources:
        credentials = self._credentials()
        scripts = self._scripts()
        data_volume = self._data_volume()
        data_claim = self._data_claim(data_volume)
        deployment = self._deployment(credentials, data_claim)
        service = self._service()
        backup_volume = self._backup_volume()
        backup_claim = self._backup_claim(backup_volume)
        ready: list[pulumi.Resource] = [deployment, service, scripts, backup_claim]
        restore_job = self._restore_job(ready)
        backup_job = (
            self._backup_job(ready)
            if self.phase is Phase.TEARDOWN and self.spec.backs_up_on_delete
            else None
        )
        return DeclaredResources(
            provider=self.provider,
            credentials=credentials,
            scripts=scripts,
            data_volume=data_volume,
            data_claim=data_claim,
            deployment=deployment,
            service=service,
            backup_volume=backup_volume,
            backup_claim=backup_claim,
            restore_job=restore_job,
            backup_job=backup_job,
        )

    # -- options and metadata -------------------------------------------------------------

    def _options(
        self,
        *,
        depends_on: Sequence[pulumi.Resource] = (),
        protect: bool = False,
        retain_on_delete: bool = False,
        ignore_changes: Sequence[str] = (),
        create_timeout_s: int | None = None,
        additional_secret_outputs: Sequence[str] = (),
    ) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            provider=self.provider,
            # Every object here has a fixed name; see the module docstring for why that
            # requires delete-before-replace.
            delete_before_replace=True,
            depends_on=list(depends_on),
            protect=protect,
            retain_on_delete=retain_on_delete,
            ignore_changes=list(ignore_changes),
            custom_timeouts=pulumi.CustomTimeouts(create=f"{create_timeout_s}s")
            if create_timeout_s is not None
            else None,
            additional_secret_outputs=list(additional_secret_outputs),
        )

    def _metadata(
        self, name: str, component: Component, *, owned: bool = True, namespaced: bool = True
    ) -> ObjectMetaArgs:
        return ObjectMetaArgs(
            name=name,
            namespace=self.instance.namespace if namespaced else None,
            labels=labels_for(self.instance, component),
            owner_references=[self._owner()] if owned else None,
        )

    def _owner(self) -> OwnerReferenceArgs:
        # A safety net: the finalizer keeps the MySQL object until teardown is done, so
        # the garbage collector acts only if the operator is gone or bypassed.
        return OwnerReferenceArgs(
            api_version=API_VERSION,
            kind=KIND,
            name=self.instance.name,
            uid=self.instance.uid,
            controller=True,
            block_owner_deletion=False,
        )

    # -- credentials and scripts --------------------------------------------------------

    def _credentials(self) -> Secret | None:
        if self.spec.password is None:
            return None
        return Secret(
            self.names.credentials_secret,
            metadata=self._metadata(self.names.credentials_secret, Component.CREDENTIALS),
            type="Opaque",
            string_data={PASSWORD_KEY: pulumi.Output.secret(self.spec.password)},
            opts=self._options(additional_secret_outputs=["data", "stringData"]),
        )

    def _password_env(self, variable: str) -> EnvVarArgs:
        ref = self.spec.password_secret_ref
        secret_name, key = (
            (ref.name, ref.key)
            if ref is not None
            else (self.names.credentials_secret, PASSWORD_KEY)
        )
        return EnvVarArgs(
            name=variable,
            value_from=EnvVarSourceArgs(
                secret_key_ref=SecretKeySelectorArgs(name=secret_name, key=key)
            ),
        )

    def _scripts(self) -> ConfigMap:
        return ConfigMap(
            self.names.scripts_config_map,
            metadata=self._metadata(self.names.scripts_config_map, Component.SCRIPTS),
            data=dict(job_scripts()),
            opts=self._options(),
        )

    # -- storage --------------------------------------------------------------------------

    def _data_volume(self) -> PersistentVolume | None:
        if self.spec.host_path is None:
            return None
        return self._static_volume(
            self.names.data_volume,
            self.names.data_claim,
            host_path=self.spec.host_path,
            size=self.spec.storage_size,
            storage_class=self.spec.storage_class,
            component=Component.STORAGE,
            opts=self._data_options(),
        )

    def _data_claim(self, volume: PersistentVolume | None) -> PersistentVolumeClaim:
        # Retained data must not be garbage-collected with the MySQL object either.
        owned = self.spec.deletion_policy is not DeletionPolicy.RETAIN
        return PersistentVolumeClaim(
            self.names.data_claim,
            metadata=self._metadata(self.names.data_claim, Component.STORAGE, owned=owned),
            spec=self._claim_spec(
                size=self.spec.storage_size,
                storage_class=self.spec.storage_class,
                volume=self.names.data_volume if volume is not None else None,
            ),
            opts=self._data_options(depends_on=[volume] if volume is not None else []),
        )

    def _data_options(self, depends_on: Sequence[pulumi.Resource] = ()) -> pulumi.ResourceOptions:
        # protect: no plan may replace or delete the data while the instance lives. In
        # TEARDOWN the protection is lifted so that `destroy` can proceed, unless the
        # policy retains the data, in which case `destroy` only forgets it.
        return self._options(
            protect=self.phase is Phase.RUNNING,
            retain_on_delete=self.spec.deletion_policy is DeletionPolicy.RETAIN,
            depends_on=depends_on,
        )

    def _backup_volume(self) -> PersistentVolume | None:
        backup = self.spec.backup
        if backup.host_path is None:
            return None
        return self._static_volume(
            self.names.backup_volume,
            self.names.backup_claim,
            host_path=backup.host_path,
            size=backup.storage_size,
            storage_class=backup.storage_class,
            component=Component.BACKUP_STORAGE,
            opts=self._options(retain_on_delete=True),
        )

    def _backup_claim(self, volume: PersistentVolume | None) -> PersistentVolumeClaim:
        backup = self.spec.backup
        return PersistentVolumeClaim(
            self.names.backup_claim,
            # No owner reference: the dumps must outlive the MySQL object.
            metadata=self._metadata(self.names.backup_claim, Component.BACKUP_STORAGE, owned=False),
            spec=self._claim_spec(
                size=backup.storage_size,
                storage_class=backup.storage_class,
                volume=self.names.backup_volume if volume is not None else None,
            ),
            opts=self._options(
                retain_on_delete=True, depends_on=[volume] if volume is not None else []
            ),
        )

    def _claim_spec(
        self, *, size: str, storage_class: str | None, volume: str | None
    ) -> PersistentVolumeClaimSpecArgs:
        if volume is not None and storage_class is None:
            storage_class = ""  # bind to our static volume, never to a provisioned one
        return PersistentVolumeClaimSpecArgs(
            access_modes=["ReadWriteOnce"],
            storage_class_name=storage_class,
            volume_name=volume,
            resources=VolumeResourceRequirementsArgs(requests={"storage": size}),
        )

    def _static_volume(
        self,
        name: str,
        claim: str,
        *,
        host_path: str,
        size: str,
        storage_class: str | None,
        component: Component,
        opts: pulumi.ResourceOptions,
    ) -> PersistentVolume:
        # Cluster-scoped, so no owner reference: a namespaced owner is not valid for it.
        return PersistentVolume(
            name,
            metadata=self._metadata(name, component, owned=False, namespaced=False),
            spec=PersistentVolumeSpecArgs(
                capacity={"storage": size},
                access_modes=["ReadWriteOnce"],
                storage_class_name=storage_class or "",
                # Kubernetes itself must never wipe a host directory.
                persistent_volume_reclaim_policy="Retain",
                # Reserved for our claim, so no other claim can bind it first.
                claim_ref=ObjectReferenceArgs(namespace=self.instance.namespace, name=claim),
                host_path=HostPathVolumeSourceArgs(path=host_path, type="DirectoryOrCreate"),
            ),
            opts=opts,
        )

    # -- workload -------------------------------------------------------------------------

    def _deployment(
        self, credentials: Secret | None, data_claim: PersistentVolumeClaim
    ) -> Deployment:
        labels = labels_for(self.instance, Component.DATABASE)
        container = ContainerArgs(
            name="mysql",
            image=self.spec.image,
            env=[
                self._password_env("MYSQL_ROOT_PASSWORD"),
                EnvVarArgs(name="MYSQL_DATABASE", value=self.spec.database),
            ],
            ports=[ContainerPortArgs(name="mysql", container_port=MYSQL_PORT)],
            volume_mounts=[
                VolumeMountArgs(name="data", mount_path=DATA_MOUNT, sub_path=DATA_SUB_PATH)
            ],
            # Ready means "answers a query over TCP": the image's first-start
            # initialization runs a server without networking, which this ignores. The
            # password goes through the environment, never the command line.
            readiness_probe=ProbeArgs(
                exec_=ExecActionArgs(
                    command=[
                        "sh",
                        "-c",
                        "client=$(command -v mysql || command -v mariadb) && "
                        'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec "$client" --protocol=TCP '
                        '--host=127.0.0.1 --user=root --execute="SELECT 1"',
                    ]
                ),
                initial_delay_seconds=5,
                period_seconds=5,
                timeout_seconds=5,
                failure_threshold=3,
            ),
            resources=self._resources(),
        )
        depends_on: list[pulumi.Resource] = [data_claim]
        if credentials is not None:
            depends_on.append(credentials)
        return Deployment(
            self.names.deployment,
            metadata=self._metadata(self.names.deployment, Component.DATABASE),
            spec=DeploymentSpecArgs(
                replicas=1,
                # Two pods must never share one data directory.
                strategy=DeploymentStrategyArgs(type="Recreate"),
                selector=LabelSelectorArgs(match_labels=selector_for(self.instance)),
                template=PodTemplateSpecArgs(
                    metadata=ObjectMetaArgs(labels=labels),
                    spec=PodSpecArgs(
                        containers=[container],
                        volumes=[
                            VolumeArgs(
                                name="data",
                                persistent_volume_claim=PersistentVolumeClaimVolumeSourceArgs(
                                    claim_name=self.names.data_claim
                                ),
                            )
                        ],
                    ),
                ),
            ),
            opts=self._options(depends_on=depends_on),
        )

    def _resources(self) -> ResourceRequirementsArgs | None:
        resources = self.spec.resources

        def amounts(given: ResourceAmounts) -> dict[str, str] | None:
            present = {"cpu": given.cpu, "memory": given.memory}
            chosen = {key: value for key, value in present.items() if value is not None}
            return chosen or None

        requests, limits = amounts(resources.requests), amounts(resources.limits)
        if requests is None and limits is None:
            return None
        return ResourceRequirementsArgs(requests=requests, limits=limits)

    def _service(self) -> Service:
        metadata = self._metadata(self.names.service, Component.DATABASE)
        # The provider's Service await sleeps 10 s after each Endpoints event before it
        # calls the Service settled, which held the restore Job back ~8 s per `up`
        # (bench/README.md). Nothing waits on the Service alone: the Deployment await
        # still requires the pod ready, and the Jobs retry until MySQL answers through it.
        metadata.annotations = {SKIP_AWAIT: "true"}
        return Service(
            self.names.service,
            metadata=metadata,
            spec=ServiceSpecArgs(
                type="ClusterIP",
                selector=selector_for(self.instance),
                ports=[ServicePortArgs(name="mysql", port=MYSQL_PORT, target_port=MYSQL_PORT)],
            ),
            opts=self._options(),
        )

    # -- jobs -----------------------------------------------------------------------------

    def _restore_job(self, ready: Sequence[pulumi.Resource]) -> Job:
        # ignore_changes on spec: the Job runs once per object lifetime. A later spec
        # change (a new image, say) must not replace it and restore again.
        return self._job(
            self.names.restore_job,
            Component.RESTORE,
            script=RESTORE_SCRIPT,
            deadline_s=RESTORE_DEADLINE_S,
            opts=self._options(
                depends_on=ready,
                ignore_changes=["spec"],
                create_timeout_s=RESTORE_DEADLINE_S + 60,
            ),
        )

    def _backup_job(self, ready: Sequence[pulumi.Resource]) -> Job:
        return self._job(
            self.names.backup_job,
            Component.BACKUP,
            script=BACKUP_SCRIPT,
            deadline_s=BACKUP_DEADLINE_S,
            extra_env=[EnvVarArgs(name="BACKUP_KEEP", value=str(self.spec.backup.keep))],
            opts=self._options(
                depends_on=ready,
                create_timeout_s=BACKUP_DEADLINE_S + 60,
            ),
        )

    def _job(
        self,
        name: str,
        component: Component,
        *,
        script: str,
        deadline_s: int,
        opts: pulumi.ResourceOptions,
        extra_env: Sequence[EnvVarArgs] = (),
    ) -> Job:
        env = [
            EnvVarArgs(name="MYSQL_HOST", value=self.names.service),
            EnvVarArgs(name="MYSQL_PORT", value=str(MYSQL_PORT)),
            EnvVarArgs(name="MYSQL_USER", value="root"),
            # The mysql clients read the password from MYSQL_PWD themselves.
            self._password_env("MYSQL_PWD"),
            EnvVarArgs(name="MYSQL_DATABASE", value=self.spec.database),
            EnvVarArgs(name="BACKUP_DIR", value=BACKUP_MOUNT),
            *extra_env,
        ]
        return Job(
            name,
            metadata=self._metadata(name, component),
            spec=JobSpecArgs(
                backoff_limit=JOB_RETRIES,
                # The Job's own timeout, so a hung dump cannot block deletion forever.
                active_deadline_seconds=deadline_s,
                template=PodTemplateSpecArgs(
                    metadata=ObjectMetaArgs(labels=labels_for(self.instance, component)),
                    spec=PodSpecArgs(
                        restart_policy="Never",
                        containers=[
                            ContainerArgs(
                                name=component.value,
                                # The instance's image has mysql and mysqldump matching
                                # the server.
                                image=self.spec.image,
                                command=["sh", f"{SCRIPTS_MOUNT}/{script}"],
                                env=env,
                                volume_mounts=[
                                    VolumeMountArgs(
                                        name="scripts", mount_path=SCRIPTS_MOUNT, read_only=True
                                    ),
                                    VolumeMountArgs(name="backup", mount_path=BACKUP_MOUNT),
                                ],
                            )
                        ],
                        volumes=[
                            VolumeArgs(
                                name="scripts",
                                config_map=ConfigMapVolumeSourceArgs(
                                    name=self.names.scripts_config_map, default_mode=0o555
                                ),
                            ),
                            VolumeArgs(
                                name="backup",
                                persistent_volume_claim=PersistentVolumeClaimVolumeSourceArgs(
                                    claim_name=self.names.backup_claim
                                ),
                            ),
                        ],
                    ),
                ),
            ),
            opts=opts,
        )
