"""Names and labels of everything one instance owns, derived from the instance alone.

Every object carries `app=<name>`, so `kubectl get all -l app=<name>` lists the instance,
and `app.kubernetes.io/component` tells the parts apart. Only the MySQL pod matches
`app=<name>` together with the database component: Job pods carry the restore or backup
component and no `app` label, so `kubectl get pods -l app=<name>` finds the server alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.spec import Instance
from reconciler.vocabulary import (
    LABEL_APP,
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_VOLUME_INSTANCE,
    LABEL_VOLUME_NAMESPACE,
    LABEL_VOLUME_ROLE,
    MANAGED_BY,
    Component,
    VolumeRole,
)


@dataclass(frozen=True)
class InstanceNames:
    deployment: str
    service: str  # what clients connect to
    internal_service: str  # what the operator's Jobs connect to, whoever else is cut off
    credentials_secret: str
    scripts_config_map: str
    data_claim: str
    data_volume: str  # cluster-scoped, hence the namespace in it
    backup_claim: str
    backup_volume: str
    lifetime: str  # a piece of the uid: tells this object's Jobs from an earlier one's

    def restore_job(self, attempt: int) -> str:
        return f"{self.deployment}-restore-{self.lifetime}-{attempt}"

    def backup_job(self, attempt: int) -> str:
        return f"{self.deployment}-backup-{self.lifetime}-{attempt}"

    def password_job(self, attempt: int) -> str:
        """A password rotation's Job, and its Secret."""
        return f"{self.deployment}-password-{self.lifetime}-{attempt}"


def names_for(instance: Instance) -> InstanceNames:
    name = instance.name
    cluster_prefix = f"{instance.namespace}-{name}"
    return InstanceNames(
        deployment=name,
        service=name,
        internal_service=f"{name}-internal",
        credentials_secret=f"{name}-credentials",
        scripts_config_map=f"{name}-scripts",
        # Claim names do not depend on the uid: a re-created object with the same name
        # finds the claims (or, after a namespace deletion, the volumes) it left.
        data_claim=data_claim_name(name),
        data_volume=f"{cluster_prefix}-data",
        backup_claim=backup_claim_name(name),
        backup_volume=f"{cluster_prefix}-backup",
        lifetime=instance.uid.replace("-", "")[:8],
    )


def data_claim_name(name: str) -> str:
    return f"{name}-data"


def backup_claim_name(name: str) -> str:
    return f"{name}-backup"


def labels_for(instance: Instance, component: Component) -> dict[str, str]:
    labels = {
        LABEL_NAME: "mysql",
        LABEL_INSTANCE: instance.name,
        LABEL_COMPONENT: component.value,
        LABEL_MANAGED_BY: MANAGED_BY,
    }
    if component not in (Component.RESTORE, Component.BACKUP, Component.PASSWORD):
        labels[LABEL_APP] = instance.name
    return labels


def selector_for(instance: Instance) -> dict[str, str]:
    """The database pod, and only it."""
    return server_selector(instance.name)


def server_selector(name: str) -> dict[str, str]:
    return {LABEL_APP: name, LABEL_COMPONENT: Component.DATABASE.value}


def label_selector(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in labels.items())


def instance_selector(name: str) -> str:
    """A label selector for every object of one instance (in its namespace)."""
    return f"{LABEL_INSTANCE}={name},{LABEL_MANAGED_BY}={MANAGED_BY}"


def volume_labels(namespace: str, name: str, role: VolumeRole) -> dict[str, str]:
    """Whose data a PersistentVolume holds; volumes outlive namespaces, so both are named."""
    return {
        LABEL_VOLUME_NAMESPACE: namespace,
        LABEL_VOLUME_INSTANCE: name,
        LABEL_VOLUME_ROLE: role.value,
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def volume_selector(namespace: str, name: str, role: VolumeRole) -> str:
    return label_selector(volume_labels(namespace, name, role))
