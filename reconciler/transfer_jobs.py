"""Backup and restore Jobs whose dumps live in S3 (pure): the Job of manifests.py, with
the backup volume replaced by an empty staging directory and a second container, in the
operator's image (transfer.py), that moves the dump between that directory and the bucket.

- A backup runs backup.sh as an init container into the staging directory, unchanged:
  the same dump, checks and .meta record as on a volume. The upload container then puts
  the dump under its key, signing its SHA-256 so that the store refuses a damaged body,
  checks the stored size, and writes the result line the operator records. It also keeps
  `backup.keep` scheduled dumps under the instance's prefix, as backup.sh does on a volume.
- The final backup, before a delete, is the exception: its dump stays on the backup claim
  too (restores of a re-created instance read it there first), and the upload copies
  that instance's newest final dump from the claim.
- A restore downloads first, in an init container that checks the size and SHA-256 that
  the MySQLBackup recorded, and writes the .meta that restore.sh checks again; a dump
  that does not match exits 4, which the operator reads as a corrupt dump (never retried).
- The store's credentials reach the transfer container only, from the user's Secret,
  through secretKeyRef: never in the Job's spec, a command line or a log. The instance's
  image never sees them.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from reconciler.spec import S3Store
from reconciler.status import RestoreSource

Manifest = dict[str, Any]

TRANSFER_COMMAND: Final = ("python3", "-m", "reconciler.transfer")
ACCESS_KEY_ID: Final = "access_key_id"
SECRET_ACCESS_KEY: Final = "secret_access_key"  # noqa: S105 (a key name)
CREDENTIAL_KEYS: Final = (ACCESS_KEY_ID, SECRET_ACCESS_KEY)
CA_MOUNT: Final = "/etc/mysql-operator/s3-ca"
STAGING_VOLUME: Final = "backup"  # the name manifests.py gives the backup volume


def instance_prefix(s3: S3Store, namespace: str, instance: str) -> str:
    """The key prefix under which one instance's dumps are, ending in '/'."""
    return s3.key_for(namespace, instance, "x").rpartition("/")[0] + "/"


def uploading(
    job: Manifest,
    *,
    s3: S3Store,
    key: str,
    image: str,
    trigger: str,
    keep: int,
    prefix: str,
    staging_mount: str,
    final_of_instance: str | None = None,
) -> Manifest:
    """`job` (one container running backup.sh into `staging_mount`) with the dump put
    into the bucket after it. The final backup (`final_of_instance`: the instance's uid)
    keeps its dump on the backup claim as well: the upload reads it from there."""
    job = copy.deepcopy(job)
    pod: Manifest = job["spec"]["template"]["spec"] if final_of_instance else _staged(job)
    (dump,) = pod.pop("containers")
    pod["initContainers"] = [dump]
    env = [
        *_store_env(s3),
        {"name": "S3_KEY", "value": key},
        {"name": "S3_ROTATE_PREFIX", "value": prefix},
        {"name": "STAGING_DIR", "value": staging_mount},
        {"name": "BACKUP_TRIGGER", "value": trigger},
        {"name": "BACKUP_KEEP", "value": str(keep)},
    ]
    if final_of_instance:
        env.append({"name": "FINAL_OF_INSTANCE", "value": final_of_instance})
    pod["containers"] = [_transfer_container("upload", image, env, s3, dump, staging_mount)]
    _add_ca_volume(pod, s3)
    return job


def downloading(job: Manifest, *, source: RestoreSource, staging_mount: str) -> Manifest:
    """`job` (one container running restore.sh) with the named backup's dump downloaded
    into `staging_mount` before it, through the store recorded with the source."""
    s3 = source.store
    assert source.url is not None
    assert source.transfer_image is not None
    assert s3 is not None
    job = copy.deepcopy(job)
    pod = _staged(job)
    (restore,) = pod["containers"]
    bucket_and_key = source.url.removeprefix("s3://")
    bucket, _, key = bucket_and_key.partition("/")
    env = [
        *_store_env(s3),
        {"name": "S3_BUCKET", "value": bucket},
        {"name": "S3_KEY", "value": key},
        {"name": "STAGING_DIR", "value": staging_mount},
        {"name": "RESTORE_SOURCE", "value": source.dump},
        {"name": "RESTORE_BACKUP", "value": source.backup},
        {"name": "EXPECTED_SIZE", "value": str(source.size)},
        {"name": "EXPECTED_SHA256", "value": str(source.sha256)},
    ]
    pod["initContainers"] = [
        _transfer_container(
            "download", source.transfer_image, env, s3, restore, staging_mount, read_only=False
        )
    ]
    # The download decompressed the dump to its trailer and wrote that into the .meta.
    restore.setdefault("env", []).append({"name": "RESTORE_STREAM_CHECKED", "value": "true"})
    _add_ca_volume(pod, s3)
    return job


def _staged(job: Manifest) -> Manifest:
    """The pod spec, its backup volume replaced by an empty directory that lives as long
    as the pod."""
    pod: Manifest = job["spec"]["template"]["spec"]
    for volume in pod["volumes"]:
        if volume["name"] == STAGING_VOLUME:
            volume.clear()
            volume.update(name=STAGING_VOLUME, emptyDir={})
    for container in pod["containers"]:
        for mount in container.get("volumeMounts", []):
            if mount["name"] == STAGING_VOLUME:
                mount.pop("readOnly", None)
    return pod


def _store_env(s3: S3Store) -> list[Manifest]:
    env: list[Manifest] = [
        {"name": "S3_ENDPOINT", "value": s3.endpoint},
        {"name": "S3_BUCKET", "value": s3.bucket},
        {"name": "S3_REGION", "value": s3.region},
    ]
    for variable, key in (
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
    ):
        env.append(
            {
                "name": variable,
                "valueFrom": {"secretKeyRef": {"name": s3.credentials_secret, "key": key}},
            }
        )
    if s3.ca_secret_ref is not None:
        env.append({"name": "S3_CA_FILE", "value": f"{CA_MOUNT}/{s3.ca_secret_ref.key}"})
    return env


def _transfer_container(
    verb: str,
    image: str,
    env: list[Manifest],
    s3: S3Store,
    beside: Manifest,
    staging_mount: str,
    *,
    read_only: bool = True,
) -> Manifest:
    """A container of the operator's image running `transfer <verb>`, with the
    security context and resources of the container it works beside."""
    # Later entries win: the bucket of a named backup replaces the instance's own.
    merged = list({item["name"]: item for item in env}.values())
    mounts: list[Manifest] = [
        {"name": STAGING_VOLUME, "mountPath": staging_mount, "readOnly": read_only}
    ]
    if s3.ca_secret_ref is not None:
        mounts.append({"name": "s3-ca", "mountPath": CA_MOUNT, "readOnly": True})
    return {
        "name": verb,
        "image": image,
        "command": [*TRANSFER_COMMAND, verb],
        "env": merged,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": copy.deepcopy(beside["securityContext"]),
        "resources": copy.deepcopy(beside["resources"]),
        "volumeMounts": mounts,
    }


def _add_ca_volume(pod: Manifest, s3: S3Store) -> None:
    if s3.ca_secret_ref is not None:
        pod["volumes"].append(
            {
                "name": "s3-ca",
                "secret": {
                    "secretName": s3.ca_secret_ref.name,
                    "items": [{"key": s3.ca_secret_ref.key, "path": s3.ca_secret_ref.key}],
                },
            }
        )
