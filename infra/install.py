"""Declares the operator's installation (CRDs, RBAC, the reconciler Deployment, its state
claim and passphrase Secret); must run inside a Pulumi program. What `pulumi destroy`
keeps, and how the passphrase is made once and kept, is in docs/design.md ("Installing").
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.admissionregistration.v1 import (
    ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding,
)
from pulumi_kubernetes.apiextensions.v1 import CustomResourceDefinition
from pulumi_kubernetes.apps.v1 import Deployment
from pulumi_kubernetes.core.v1 import (
    HostPathVolumeSourceArgs,
    Namespace,
    ObjectReferenceArgs,
    PersistentVolume,
    PersistentVolumeClaim,
    PersistentVolumeClaimSpecArgs,
    PersistentVolumeSpecArgs,
    Secret,
    ServiceAccount,
    VolumeResourceRequirementsArgs,
)
from pulumi_kubernetes.meta.v1 import ObjectMetaArgs
from pulumi_kubernetes.rbac.v1 import (
    ClusterRole,
    ClusterRoleBinding,
    Role,
    RoleBinding,
    RoleRefArgs,
    SubjectArgs,
)

from infra.config import InstallConfig
from infra.rbac import LEASE_RULES, OWN_POD_RULES, RULES, cluster_rules, namespaced_rules
from infra.resources import (
    BACKUP_CRD_FILE,
    PASSPHRASE_KEY,
    Names,
    deployment_spec,
    host_path_policy,
    labels_for,
    load_crd,
    metadata,
    names_for,
    policy_rules,
)

PASSPHRASE_BYTES: Final = 32
SECRET_PROPERTIES: Final = ["data", "stringData"]


@dataclass(frozen=True)
class Installed:
    """What one run declared; the unit tests and `__main__` read it."""

    provider: k8s.Provider
    namespace: Namespace
    crd: CustomResourceDefinition
    backup_crd: CustomResourceDefinition
    service_account: ServiceAccount
    cluster_role: ClusterRole
    cluster_role_binding: ClusterRoleBinding
    roles: tuple[Role, ...]  # one per watched namespace, when only some are watched
    own_role: Role  # in the operator's namespace: its pods, and the Lease with election
    host_path_policy: ValidatingAdmissionPolicy
    state_volume: PersistentVolume | None
    state_claim: PersistentVolumeClaim | None
    passphrase: Secret
    deployment: Deployment
    kept_on_destroy: tuple[str, ...]


def declare(
    config: InstallConfig,
    passphrase: pulumi.Input[str] | None = None,
    crd: dict[str, Any] | None = None,
) -> Installed:
    return _Installation(config, crd if crd is not None else load_crd()).declare(passphrase)


class _Installation:
    def __init__(self, config: InstallConfig, crd: dict[str, Any]) -> None:
        self.config = config
        self.crd_document = crd
        self.names: Names = names_for(config)
        self.provider = k8s.Provider(
            "kubernetes",
            kubeconfig=config.kubeconfig,
            context=config.context,
            # Create is an upsert, so a reinstall takes kept objects over (module docstring).
            enable_server_side_apply=True,
        )

    def opts(
        self,
        *,
        depends_on: Sequence[pulumi.Resource] = (),
        retain_on_delete: bool = False,
        ignore_changes: list[str] | None = None,
        secret_outputs: list[str] | None = None,
    ) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            provider=self.provider,
            depends_on=list(depends_on),
            retain_on_delete=retain_on_delete,
            ignore_changes=ignore_changes,
            additional_secret_outputs=secret_outputs,
        )

    def declare(self, passphrase: pulumi.Input[str] | None) -> Installed:
        names, config = self.names, self.config
        namespace = Namespace(
            "namespace",
            metadata=ObjectMetaArgs(name=names.namespace, labels=labels_for(config)),
            opts=self.opts(retain_on_delete=True),
        )
        in_namespace = [namespace]
        crd = CustomResourceDefinition(
            "crd",
            metadata=self.crd_document["metadata"],
            spec=self.crd_document["spec"],
            opts=self.opts(retain_on_delete=True),
        )
        # Kept like the MySQL CRD: deleting it would delete every backup record.
        backup_crd_document = load_crd(BACKUP_CRD_FILE)
        backup_crd = CustomResourceDefinition(
            "backup-crd",
            metadata=backup_crd_document["metadata"],
            spec=backup_crd_document["spec"],
            opts=self.opts(retain_on_delete=True),
        )
        service_account = ServiceAccount(
            "service-account",
            metadata=metadata(config, names.service_account),
            opts=self.opts(depends_on=in_namespace),
        )
        watched = config.watched_namespaces
        cluster_role = ClusterRole(
            "cluster-role",
            metadata=metadata(config, names.cluster_role, namespaced=False),
            # Watching some namespaces only: just what has no namespace, and only those.
            rules=policy_rules(cluster_rules(), watched) if watched else policy_rules(RULES),
            opts=self.opts(),
        )
        subjects = [
            SubjectArgs(
                kind="ServiceAccount", name=names.service_account, namespace=names.namespace
            )
        ]
        binding = ClusterRoleBinding(
            "cluster-role-binding",
            metadata=metadata(config, names.cluster_role_binding, namespaced=False),
            role_ref=RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=names.cluster_role
            ),
            subjects=subjects,
            opts=self.opts(depends_on=[cluster_role, service_account]),
        )
        roles, role_bindings = [], []
        for watched_namespace in watched:
            role_metadata = metadata(config, names.role)
            role_metadata.namespace = watched_namespace
            role = Role(
                f"role-{watched_namespace}",
                metadata=role_metadata,
                rules=policy_rules(namespaced_rules()),
                opts=self.opts(),
            )
            binding_metadata = metadata(config, names.role)
            binding_metadata.namespace = watched_namespace
            role_bindings.append(
                RoleBinding(
                    f"role-binding-{watched_namespace}",
                    metadata=binding_metadata,
                    role_ref=RoleRefArgs(
                        api_group="rbac.authorization.k8s.io", kind="Role", name=names.role
                    ),
                    subjects=subjects,
                    opts=self.opts(depends_on=[role, service_account]),
                )
            )
            roles.append(role)
        own_rules = OWN_POD_RULES + (LEASE_RULES if config.leader_election else ())
        own_role = Role(
            "own-namespace-role",
            metadata=metadata(config, names.own_role),
            rules=policy_rules(own_rules),
            opts=self.opts(depends_on=in_namespace),
        )
        role_bindings.append(
            RoleBinding(
                "own-namespace-role-binding",
                metadata=metadata(config, names.own_role),
                role_ref=RoleRefArgs(
                    api_group="rbac.authorization.k8s.io", kind="Role", name=names.own_role
                ),
                subjects=subjects,
                opts=self.opts(depends_on=[own_role, service_account]),
            )
        )
        policy_spec, binding_spec = host_path_policy(config)
        policy = ValidatingAdmissionPolicy(
            "host-path-policy",
            metadata=metadata(config, names.host_path_policy, namespaced=False),
            spec=policy_spec,
            opts=self.opts(depends_on=[crd]),
        )
        ValidatingAdmissionPolicyBinding(
            "host-path-policy-binding",
            metadata=metadata(config, names.host_path_policy, namespaced=False),
            spec={**binding_spec, "policyName": names.host_path_policy},
            opts=self.opts(depends_on=[policy]),
        )
        state_volume = self._state_volume()
        state_claim = self._state_claim(namespace, state_volume)
        secret = self._passphrase(namespace, passphrase)
        workload_needs: list[pulumi.Resource] = [crd, backup_crd, binding, *role_bindings, secret]
        if state_claim is not None:
            workload_needs.append(state_claim)
        deployment = Deployment(
            "reconciler",
            metadata=metadata(config, names.deployment),
            spec=deployment_spec(config, names),
            opts=self.opts(depends_on=workload_needs),
        )
        kept = [
            f"CustomResourceDefinition {self.crd_document['metadata']['name']}",
            f"CustomResourceDefinition {backup_crd_document['metadata']['name']}",
            f"Namespace {names.namespace}",
            f"Secret {names.namespace}/{names.passphrase_secret}",
        ]
        if state_claim is not None:
            kept.append(f"PersistentVolumeClaim {names.namespace}/{names.state_claim}")
        if state_volume is not None:
            kept.append(f"PersistentVolume {names.state_volume}")
        return Installed(
            provider=self.provider,
            namespace=namespace,
            crd=crd,
            backup_crd=backup_crd,
            service_account=service_account,
            cluster_role=cluster_role,
            cluster_role_binding=binding,
            roles=tuple(roles),
            own_role=own_role,
            host_path_policy=policy,
            state_volume=state_volume,
            state_claim=state_claim,
            passphrase=secret,
            deployment=deployment,
            kept_on_destroy=tuple(kept),
        )

    def _passphrase(self, namespace: Namespace, given: pulumi.Input[str] | None) -> Secret:
        generated = given is None
        value: pulumi.Input[str] = (
            pulumi.Output.secret(secrets.token_urlsafe(PASSPHRASE_BYTES))
            if given is None
            else pulumi.Output.secret(given)
        )
        return Secret(
            "state-passphrase",
            metadata=metadata(self.config, self.names.passphrase_secret),
            type="Opaque",
            string_data={PASSPHRASE_KEY: value},
            opts=self.opts(
                depends_on=[namespace],
                retain_on_delete=True,
                # Generated: keep the first draw forever (see the module docstring).
                ignore_changes=list(SECRET_PROPERTIES) if generated else None,
                secret_outputs=list(SECRET_PROPERTIES),
            ),
        )

    def _state_volume(self) -> PersistentVolume | None:
        config, names = self.config, self.names
        if not config.uses_state_claim or config.state_host_path is None:
            return None
        return PersistentVolume(
            "state-volume",
            metadata=metadata(config, names.state_volume, namespaced=False),
            spec=PersistentVolumeSpecArgs(
                capacity={"storage": config.state_storage_size},
                access_modes=["ReadWriteOnce"],
                storage_class_name=config.state_storage_class or "",
                # Kubernetes itself must never wipe the state.
                persistent_volume_reclaim_policy="Retain",
                claim_ref=ObjectReferenceArgs(namespace=names.namespace, name=names.state_claim),
                host_path=HostPathVolumeSourceArgs(
                    path=config.state_host_path, type="DirectoryOrCreate"
                ),
            ),
            opts=self.opts(retain_on_delete=True),
        )

    def _state_claim(
        self, namespace: Namespace, volume: PersistentVolume | None
    ) -> PersistentVolumeClaim | None:
        config, names = self.config, self.names
        if not config.uses_state_claim:
            return None
        storage_class = config.state_storage_class
        if volume is not None and storage_class is None:
            storage_class = ""  # bind to our static volume, never to a provisioned one
        needs: list[pulumi.Resource] = [namespace]
        if volume is not None:
            needs.append(volume)
        return PersistentVolumeClaim(
            "state-claim",
            metadata=metadata(config, names.state_claim),
            spec=PersistentVolumeClaimSpecArgs(
                access_modes=["ReadWriteOnce"],
                storage_class_name=storage_class,
                volume_name=names.state_volume if volume is not None else None,
                resources=VolumeResourceRequirementsArgs(
                    requests={"storage": config.state_storage_size}
                ),
            ),
            opts=self.opts(depends_on=needs, retain_on_delete=True),
        )
