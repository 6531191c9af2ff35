"""A DIY backend's stack locks where they are kept: files under a directory backend, or
objects in an S3 bucket. Listing, reading and removing one lock at a time; which lock may
be removed is `stale_locks`' decision. Of a bucket, also its checkpoints, which the driver
reads without a CLI run as it reads a directory's files.

Also the local facts about a lock's holder: whether a process with its pid still runs.
"""

from __future__ import annotations

import os
import pwd
import socket
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from reconciler import backend_files
from reconciler.s3 import Credentials, S3Client, S3Error
from reconciler.stale_locks import (
    Identity,
    PodFacts,
    StackLock,
    Verdict,
    judge,
    parse_lock,
    pod_name_prefix,
    same_host,
)

# What the CLI names a stack in project mode: <organization>/<project>/<stack>.
ORGANIZATION = "organization"


class LockStore(Protocol):
    def locks(self, stack: str) -> tuple[list[StackLock], list[str]]:
        """The stack's readable locks, and the keys of those that cannot be read."""
        ...

    def remove(self, lock: StackLock) -> None: ...


@dataclass(frozen=True)
class DirectoryLocks:
    directory: Path
    project: str

    def locks(self, stack: str) -> tuple[list[StackLock], list[str]]:
        found: list[StackLock] = []
        unreadable: list[str] = []
        for path in backend_files.lock_files(self.directory, self.project, stack):
            try:
                lock = parse_lock(str(path), path.read_bytes())
            except FileNotFoundError:
                continue  # released meanwhile
            if lock is None:
                unreadable.append(str(path))
            else:
                found.append(lock)
        return found, unreadable

    def remove(self, lock: StackLock) -> None:
        Path(lock.key).unlink(missing_ok=True)
        Path(f"{lock.key}{backend_files.SIDECAR_SUFFIX}").unlink(missing_ok=True)


@dataclass(frozen=True)
class BucketBackend:
    """An S3 backend's stack locks, and its checkpoints as they are stored (uncompressed
    JSON under `.pulumi/stacks/<project>/`), read without a CLI run."""

    client: S3Client
    bucket: str
    prefix: str  # the backend's path in the bucket, '' or ending in '/'
    project: str

    def _folder(self, stack: str) -> str:
        return f"{self.prefix}.pulumi/locks/{ORGANIZATION}/{self.project}/{stack}/"

    def _checkpoint_key(self, stack: str) -> str:
        return f"{self.prefix}.pulumi/stacks/{self.project}/{stack}.json"

    def has_checkpoint(self, stack: str) -> bool:
        """Whether the stack's checkpoint object exists (a HEAD: its body is not read);
        False when the store cannot say."""
        try:
            return self.client.head_object(self.bucket, self._checkpoint_key(stack)) is not None
        except (S3Error, OSError):
            return False

    def latest_deployment(self, stack: str) -> Mapping[str, Any] | None:
        """The checkpoint's latest deployment; {} for a stack never deployed; None when
        there is no such object or it cannot be read (the CLI can tell)."""
        key = self._checkpoint_key(stack)
        try:
            # A missing object is an S3Error (404) too: one request either way.
            return backend_files.deployment_of(self.client.get_object(self.bucket, key))
        except (S3Error, OSError):
            return None

    def locks(self, stack: str) -> tuple[list[StackLock], list[str]]:
        found: list[StackLock] = []
        unreadable: list[str] = []
        for item in self.client.list_objects(self.bucket, self._folder(stack)):
            if not item.key.endswith(".json"):
                continue
            try:
                content = self.client.get_object(self.bucket, item.key)
            except S3Error:
                unreadable.append(item.key)  # released meanwhile, or unreachable
                continue
            lock = parse_lock(item.key, content)
            if lock is None:
                unreadable.append(item.key)
            else:
                found.append(lock)
        return found, unreadable

    def remove(self, lock: StackLock) -> None:
        self.client.delete_object(self.bucket, lock.key)


def s3_location(url: str) -> tuple[str, str, str, str] | None:
    """(endpoint, bucket, prefix, region) of an `s3://` backend URL, else None. The
    endpoint comes from `endpoint=` (with its scheme, or https unless
    `disableSSL=true`), else the region's AWS endpoint."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        return None
    query = {key: values[-1] for key, values in urllib.parse.parse_qs(parts.query).items()}
    region = query.get("region") or os.environ.get("AWS_REGION") or "us-east-1"
    endpoint = query.get("endpoint")
    if endpoint is None:
        endpoint = f"https://s3.{region}.amazonaws.com"
    elif "://" not in endpoint:
        insecure = query.get("disableSSL", query.get("disable_https", "")).lower() == "true"
        endpoint = f"{'http' if insecure else 'https'}://{endpoint}"
    prefix = parts.path.strip("/")
    return endpoint, parts.netloc, f"{prefix}/" if prefix else "", region


def lock_store(
    backend_url: str, project: str, environ: Mapping[str, str] = os.environ
) -> LockStore | None:
    """Where the backend at `backend_url` keeps its locks, when this process can read
    them: a directory, or an S3 bucket with keys in the AWS environment variables."""
    directory = backend_files.backend_directory(backend_url)
    if directory is not None:
        return DirectoryLocks(directory, project)
    found = s3_bucket(backend_url, environ)
    if found is None:
        return None
    client, bucket, prefix = found
    return BucketBackend(client, bucket, prefix, project)


def s3_bucket(url: str, environ: Mapping[str, str]) -> tuple[S3Client, str, str] | None:
    """A client, the bucket and the prefix of an `s3://` backend URL, with the keys (and CA
    bundle) of the AWS environment variables; None when `url` is not one or there are no
    keys."""
    location = s3_location(url)
    key_id, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if location is None or not key_id or not secret:
        return None
    endpoint, bucket, prefix, region = location
    client = S3Client(
        endpoint, Credentials(key_id, secret, region), ca_file=environ.get("AWS_CA_BUNDLE")
    )
    return client, bucket, prefix


def process_running(pid: int) -> bool:
    """Whether a process with this pid runs in this process namespace (a zombie does
    not run)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    # The state follows the command's closing parenthesis: "pid (comm) S ...".
    state = stat.rpartition(")")[2].split()[:1]
    return state not in (["Z"], ["X"])


def local_identity(pod_namespace: str | None = None, pod_name: str | None = None) -> Identity:
    """This process as a lock would name it (the CLI it starts writes its locks). In a
    pod, also where the operator's other pods are looked up."""
    return Identity(
        hostname=socket.gethostname(),
        username=cli_username(),
        pod_namespace=pod_namespace if pod_name else None,
        pod_name_prefix=pod_name_prefix(pod_name) if pod_name else None,
    )


def cli_username() -> str:
    """The user name the CLI writes into its locks: the password database's name for this
    uid, else $USER (what Go's os/user does without cgo)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return os.environ.get("USER", "")


@dataclass(frozen=True)
class HolderCheck:
    """Gathers the facts `stale_locks.judge` needs about one lock's holder. `read_pod`
    returns the facts of a pod in a namespace, or None when they cannot be read now."""

    identity: Identity
    read_pod: Callable[[str, str], PodFacts | None] | None = None

    def __call__(self, lock: StackLock) -> Verdict:
        identity = self.identity
        if same_host(lock, identity):
            return judge(lock, identity, process_running=process_running(lock.pid))
        pod_name = identity.operator_pod(lock)
        if pod_name is None or identity.pod_namespace is None:
            return judge(lock, identity)
        facts = self.read_pod(identity.pod_namespace, pod_name) if self.read_pod else None
        if facts is None:
            return Verdict(False, f"pod {identity.pod_namespace}/{pod_name} cannot be read now")
        return judge(lock, identity, pod=facts)
