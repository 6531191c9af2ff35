"""Where the image cache lives, how its entries are keyed, and one build slot per image.

An image's tar is `images_dir/<name>-<key>.tar`; the key hashes everything the image is
built from, this package's own sources (and its launcher, hack/images/build) included.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from images.process import log

HERE = Path(__file__).resolve().parent  # hack/images
REPO_ROOT = HERE.parent.parent
LAUNCHER = HERE / "build"

cache_root = Path(
    os.environ.get("MYSQL_OPERATOR_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mysql-operator"
)
images_dir = cache_root / "images"


def own_sources() -> list[Path]:
    """The builder's own code: the launcher and every module of this package. Each image's
    key hashes all of it, as it hashed the one script this package was split from."""
    return [LAUNCHER, *sorted(HERE.glob("*.py"))]


def input_key(paths: list[Path], extra: list[str]) -> str:
    """A short hash of the contents of `paths` (named relative to the repo) and `extra`."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    for item in extra:
        digest.update(item.encode() + b"\0")
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def cache_slot(name: str, key: str) -> Iterator[tuple[Path, Path]]:
    """Holds a lock on one cache entry; yields (final path, temporary build dir)."""
    images_dir.mkdir(parents=True, exist_ok=True)
    final = images_dir / f"{name}-{key}.tar"
    with open(images_dir / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        work = Path(tempfile.mkdtemp(prefix=f".build-{name}-", dir=images_dir))
        try:
            yield final, work
        finally:
            remove_build_dir(work)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, deepest first."""
    found = []
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == str(path) or point.startswith(prefix):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def remove_build_dir(work: Path) -> None:
    for point in mounts_under(work):
        log(f"unmounting leftover {point}")
        if subprocess.run(["umount", point], stderr=subprocess.DEVNULL, check=False).returncode:
            subprocess.run(["umount", "-l", point], check=False)
    if mounts_under(work):
        log(f"WARNING: mounts remain under {work}; leaving it in place")
        return
    shutil.rmtree(work, ignore_errors=True)


def prune_old(name: str, keep: Path) -> None:
    """Removes the image's tars of other keys."""
    for old in images_dir.glob(f"{name}-*.tar"):
        if old != keep:
            log(f"removing superseded {old.name}")
            old.unlink(missing_ok=True)
