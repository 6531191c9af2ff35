"""Names and labels of everything one instance owns, derived from the instance alone.

Every object carries `app=<name>`, so `kubectl get all -l app=<name>` lists the instance.
Selectors add the `component` label: the Deployment and the Service must never pick up
the restore or backup Jobs' pods, which carry `app=<name>` too.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from reconciler.spec import Instance

MANAGED_BY: Final = "mysql-operator"
MYSQL_PORT: Final = 3306
# The key in the Secret that the operator declares, not a password.
PASSWORD_KEY: Final = "password"  # noqa: S105


class Component(StrEnum):
    DATABASE = "database"
    STORAGE = "storage"
    BACKUP_STORAGE = "backup-storage"
    RESTORE = "restore"
    BACKUP = "backup"
    CREDENTIALS = "credentials"
    SCRIPTS = "scripts"


@dataclass(frozen=True)
class InstanceNames:
    deployment: str
    service: str
    credentials_secret: str
    scripts_config_map: str
    data_claim: str
    data_volume: str  # cluster-scoped, hence the namespace in it
    backup_claim: str
    backup_volume: str
    restore_job: str
    backup_job: str


def names_for(instance: Instance) -> InstanceNames:
    name = instance.name
    # Job names carry a piece of the uid: one restore per object lifetime, and a re-created
    # object never collides with the previous lifetime's Jobs awaiting garbage collection.
    lifetime = instance.uid.replace("-", "")[:8]
    cluster_prefix = f"{instance.namespace}-{name}"
    return InstanceNames(
        deployment=name,
        service=name,
        credentials_secret=f"{name}-credentials",
        scripts_config_map=f"{name}-scripts",
        data_claim=f"{name}-data",
        data_volume=f"{cluster_prefix}-data",
        # The backup claim's name must not depend on the uid: it is how a re-created
        # object with the same name finds the previous lifetime's dumps.
        backup_claim=f"{name}-backup",
        backup_volume=f"{cluster_prefix}-backup",
        restore_job=f"{name}-restore-{lifetime}",
        backup_job=f"{name}-backup-{lifetime}",
    )


def labels_for(instance: Instance, component: Component) -> dict[str, str]:
    return {
        "app": instance.name,
        "app.kubernetes.io/name": "mysql",
        "app.kubernetes.io/instance": instance.name,
        "app.kubernetes.io/component": component.value,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def selector_for(instance: Instance) -> dict[str, str]:
    """The database pods, and only them."""
    return {"app": instance.name, "app.kubernetes.io/component": Component.DATABASE.value}
