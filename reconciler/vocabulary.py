"""Words every layer shares: the API's identity, the operator's finalizers, labels and
annotations, and the stages of an instance's stack. Dependency-free on purpose, so that
the pure modules can use them without importing an SDK."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

API_GROUP: Final = "otus.homework"
API_VERSION: Final = f"{API_GROUP}/v1"
KIND: Final = "MySQL"
PLURAL: Final = "mysqls"
# The record of one dump (crd/mysqlbackup.yaml).
BACKUP_KIND: Final = "MySQLBackup"
BACKUP_PLURAL: Final = "mysqlbackups"

MANAGED_BY: Final = "mysql-operator"
MYSQL_PORT: Final = 3306
# The key in the Secret that the operator declares, not a password.
PASSWORD_KEY: Final = "password"  # noqa: S105

# On the MySQL object: the teardown (final backup, destroy, volume release) runs first.
FINALIZER: Final = f"{API_GROUP}/teardown"
# On the instance's claims: only the operator lets them go, after it has made sure their
# volumes outlive the claim (or after a verified final backup).
CLAIM_FINALIZER: Final = f"{API_GROUP}/data-protection"

# Labels every object of an instance carries.
LABEL_APP: Final = "app"
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
# Never on a pod: the client Service selects it while clients are cut off.
LABEL_CUT_OFF: Final = f"{API_GROUP}/clients-cut-off"
# On a MySQLBackup: what took it (manual, schedule, delete).
LABEL_TRIGGER: Final = f"{API_GROUP}/backup-trigger"
# On the Job of a requested backup: the MySQLBackup it serves.
ANNOTATION_BACKUP: Final = f"{API_GROUP}/backup"

# Labels on the instance's PersistentVolumes, which are cluster-scoped and outlive the
# namespace: they say whose data a volume holds, so a re-created instance finds it.
LABEL_VOLUME_NAMESPACE: Final = f"{API_GROUP}/instance-namespace"
LABEL_VOLUME_INSTANCE: Final = f"{API_GROUP}/instance-name"
LABEL_VOLUME_ROLE: Final = f"{API_GROUP}/volume-role"

# Annotations on those volumes.
ANNOTATION_INSTANCE_UID: Final = f"{API_GROUP}/instance-uid"
ANNOTATION_ORIGINAL_RECLAIM: Final = f"{API_GROUP}/original-reclaim-policy"
ANNOTATION_RETAINED_AT: Final = f"{API_GROUP}/retained-at"
ANNOTATION_RETAINED_REASON: Final = f"{API_GROUP}/retained-reason"
# Set when the operator let the volume go on purpose (its data is in a verified dump, or
# the policy said so): such a volume is never adopted again.
ANNOTATION_RELEASED: Final = f"{API_GROUP}/released"
ANNOTATION_ADOPTED_BY: Final = f"{API_GROUP}/adopted-by"

# On a Secret: its owner lets MySQL objects of the namespace use it as passwordSecretRef.
# Without it the operator refuses the reference: a user who may create MySQL objects must
# not read, through a server of theirs, a Secret they cannot read themselves.
LABEL_PASSWORD_SECRET: Final = f"{API_GROUP}/mysql-password"
# On a Secret: its owner lets MySQL objects of the namespace use it as
# spec.backup.s3.credentials_secret_ref, for the same reason.
LABEL_S3_CREDENTIALS: Final = f"{API_GROUP}/s3-credentials"

# Annotations a person sets on the MySQL object.
# Any new value retries a failed backup or restore Job at once.
ANNOTATION_RETRY: Final = f"{API_GROUP}/retry"
# On the server's pod template: the password rotations applied (the pod restarts for each).
ANNOTATION_PASSWORD_ROTATIONS: Final = f"{API_GROUP}/password-rotations"
# The keys of a rotation Job's Secret: the password the server has and the new one.
ROTATION_OLD_KEY: Final = "old"
ROTATION_NEW_KEY: Final = "new"
# Set to the object's uid: delete without the final backup; the data volume is retained.
ANNOTATION_SKIP_FINAL_BACKUP: Final = f"{API_GROUP}/skip-final-backup"


class Component(StrEnum):
    DATABASE = "database"
    INTERNAL = "internal"
    STORAGE = "storage"
    BACKUP_STORAGE = "backup-storage"
    RESTORE = "restore"
    BACKUP = "backup"
    CREDENTIALS = "credentials"
    PASSWORD = "password-rotation"  # noqa: S105 (a component name)
    SCRIPTS = "scripts"


class VolumeRole(StrEnum):
    DATA = "data"
    BACKUP = "backup"


class Stage(StrEnum):
    """What the instance's stack declares.

    SERVING: storage, the server, the client Service, and (gated, see Desired) the restore
    Job, whose end is what makes the server ready. RESTORING: the same without the client
    Service, for instances whose restore was recorded before the readiness gate.
    FINAL_BACKUP: clients cut off and the backup Job that must succeed before anything is
    deleted. RELEASING: clients cut off and no Job; declared only to adopt live objects
    (after lost state) before a destroy that needs no backup.
    """

    RESTORING = "restoring"
    SERVING = "serving"
    FINAL_BACKUP = "final-backup"
    RELEASING = "releasing"
