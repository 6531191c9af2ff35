"""`reconciler migrate-state --to s3://...`: copies every stack of a directory backend to
an S3 bucket, byte for byte, so that an installed operator can switch backends without
losing state or history.

The copy is the backend's own layout (`.pulumi/stacks`, `history`, `backups`,
`meta.yaml`), so checkpoints keep their update history and their secrets stay encrypted
as they were: the same passphrase reads them. The source is only read. It refuses, before
writing anything, when a reconciler holds the state directory, when a stack is locked,
or when the bucket already holds a file with other content (a newer state than this
one, perhaps): it never overwrites. Files the bucket already has with the same content
are skipped, so an interrupted copy is finished by running the command again.
Checkpoints are copied last, so a stack appears in the bucket only with its history.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from reconciler import backend_files
from reconciler.backend_locks import s3_bucket, s3_location
from reconciler.s3 import S3Client

log = logging.getLogger(__name__)

BOOKKEEPING = ".pulumi"
LOCKS = "locks"
STACKS = "stacks"
META = "meta.yaml"


class MigrationError(Exception):
    pass


@dataclass(frozen=True)
class SourceFile:
    relative: str  # below the backend directory, with '/' separators
    path: Path
    size: int
    sha256: str


class Step(StrEnum):
    COPY = "copy"
    SAME = "same"  # already in the bucket with this content
    CONFLICT = "conflict"  # in the bucket with other content


def source_files(directory: Path) -> tuple[list[SourceFile], list[str]]:
    """The backend's files to copy, and its lock files (which stop the migration).
    fileblob's `.attrs` sidecars are left: the bucket keeps its own metadata."""
    root = directory / BOOKKEEPING
    files: list[SourceFile] = []
    locks: list[str] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.endswith(backend_files.SIDECAR_SUFFIX):
            continue
        relative = path.relative_to(directory).as_posix()
        if relative.startswith(f"{BOOKKEEPING}/{LOCKS}/"):
            locks.append(relative)
            continue
        files.append(SourceFile(relative, path, path.stat().st_size, _sha256(path)))
    return files, locks


def copy_order(files: Iterable[SourceFile]) -> list[SourceFile]:
    """History and backups first, then the checkpoints, then the backend's metadata."""

    def rank(item: SourceFile) -> int:
        if item.relative == f"{BOOKKEEPING}/{META}":
            return 2
        return 1 if item.relative.startswith(f"{BOOKKEEPING}/{STACKS}/") else 0

    return sorted(files, key=lambda item: (rank(item), item.relative))


def stack_names(files: Iterable[SourceFile]) -> list[str]:
    """The stacks whose checkpoints are among `files`."""
    prefix = f"{BOOKKEEPING}/{STACKS}/"
    return sorted(
        item.relative.rsplit("/", 1)[-1].removesuffix(".json")
        for item in files
        if item.relative.startswith(prefix) and item.relative.endswith(".json")
    )


@dataclass(frozen=True)
class Destination:
    client: S3Client
    bucket: str
    prefix: str  # '' or ending in '/'

    @classmethod
    def from_url(cls, url: str, environ: Mapping[str, str]) -> Destination:
        if s3_location(url) is None:
            raise MigrationError(f"--to: an s3:// backend URL, got {url.split('?', 1)[0]!r}")
        found = s3_bucket(url, environ)
        if found is None:
            raise MigrationError("--to: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        return cls(*found)

    def key(self, item: SourceFile) -> str:
        return f"{self.prefix}{item.relative}"

    def step(self, item: SourceFile) -> Step:
        found = self.client.head_object(self.bucket, self.key(item))
        if found is None:
            return Step.COPY
        if found.size != item.size:
            return Step.CONFLICT
        stored = hashlib.sha256(self.client.get_object(self.bucket, self.key(item))).hexdigest()
        return Step.SAME if stored == item.sha256 else Step.CONFLICT


@dataclass(frozen=True)
class Summary:
    stacks: list[str]
    copied: int
    skipped: int
    copied_bytes: int


def migrate(directory: Path, destination: Destination) -> Summary:
    """Copies the directory backend's files into the bucket (see the module's docstring)."""
    if not (directory / BOOKKEEPING).is_dir():
        raise MigrationError(f"{directory} holds no Pulumi state ({BOOKKEEPING}/ is missing)")
    files, locks = source_files(directory)
    if locks:
        raise MigrationError(
            "stacks are locked (a run may be under way, or a crash left the lock): "
            + ", ".join(locks)
            + "; start the reconciler once to recover them, stop it, then migrate"
        )
    plan = [(item, destination.step(item)) for item in copy_order(files)]
    conflicts = [destination.key(item) for item, step in plan if step is Step.CONFLICT]
    if conflicts:
        raise MigrationError(
            f"the bucket already holds other content at {len(conflicts)} keys, for instance "
            f"{', '.join(conflicts[:3])}: refusing to overwrite them"
        )
    copied = copied_bytes = 0
    for item, step in plan:
        if step is Step.COPY:
            destination.client.put_file(
                destination.bucket, destination.key(item), item.path, item.sha256
            )
            copied += 1
            copied_bytes += item.size
    return Summary(stack_names(files), copied, len(plan) - copied, copied_bytes)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
