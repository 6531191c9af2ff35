"""What one engine run should make of an instance: a frozen value, the only input of the
manifest builders and of the stack program, and what the inputs fingerprint hashes."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.spec import Instance, S3Store
from reconciler.status import RestoreSource
from reconciler.vocabulary import Stage


@dataclass(frozen=True)
class ClaimBinding:
    """How a claim finds its volume. The default: a static volume when the spec names a
    host path, else whatever the claim's StorageClass provisions. An adopted volume (one
    that an earlier lifetime of the instance left behind) is bound by name, with its own
    class and size, because a claim binds only to a volume that matches both."""

    volume_name: str | None = None
    storage_class: str | None = None
    size: str | None = None

    @property
    def adopted(self) -> bool:
        return self.volume_name is not None


@dataclass(frozen=True)
class FinalUpload:
    """Where the final backup's dump goes besides the backup claim: spec.backup.s3, under
    the key of the MySQLBackup that records it, moved by the operator's image."""

    store: S3Store
    key: str
    transfer_image: str


@dataclass(frozen=True)
class Desired:
    instance: Instance
    stage: Stage
    # Each attempt of a Job is a new Job with a new name: a failed Job never runs again.
    restore_attempt: int = 1
    backup_attempt: int = 1
    data_binding: ClaimBinding = ClaimBinding()
    backup_binding: ClaimBinding = ClaimBinding()
    # The server's readiness probe passes only once this lifetime's restore has recorded
    # its end in the server (mysql_operator.lifecycle). Clients reach only ready servers,
    # so the client Service and the restore Job are declared together, in one `up`.
    readiness_gated: bool = False
    # The restore has succeeded: its Job, still declared when gated, keeps the spec it ran
    # with (a Job is immutable, and replacing it would run the restore again). This
    # changes how later changes apply, not what is declared, so the inputs fingerprint
    # leaves it out and its change costs no `up`.
    restore_finished: bool = False
    # The named backup the restore applies (spec.restore_from), resolved once; None: the
    # newest dump on the instance's own backup claim.
    restore_source: RestoreSource | None = None
    # The final backup's copy into S3 (spec.backup.s3); None: the backup claim only.
    final_upload: FinalUpload | None = None
    # The root password the server has (passwords.py): what the operator's credentials
    # Secret holds and the Jobs use. It differs from the spec's only while a rotation is
    # under way. None: the spec's own (spec.password; nothing for a passwordSecretRef).
    password: str | None = field(default=None, repr=False)
    # Rotations applied to the running server: the pod restarts for each (its template
    # carries the count) to take the new password; None before the first.
    password_rotations: int | None = None

    @property
    def applied_password(self) -> str | None:
        return self.password if self.password is not None else self.instance.spec.password
