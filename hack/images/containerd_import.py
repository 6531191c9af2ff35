"""Importing the image tars into a containerd, as the kubelet's images."""

from __future__ import annotations

import shutil
from pathlib import Path

from images.docker_archive import archive_refs
from images.process import run, step

# Where the kubelet (the CRI plugin) looks for images.
CONTAINERD_NAMESPACE = "k8s.io"


def import_images(socket: str, tars: dict[str, Path]) -> list[str]:
    """Imports the tars into containerd's k8s.io namespace; idempotent. Returns the refs."""
    if not shutil.which("ctr"):
        raise SystemExit("ctr (Debian's containerd package) is required for --import")
    ctr = ["ctr", "--address", socket, "-n", CONTAINERD_NAMESPACE]
    imported = []
    for name, tar in tars.items():
        refs = archive_refs(tar)
        with step(f"{name}: ctr images import"):
            run([*ctr, "images", "import", "--all-platforms", str(tar)])
        # The archive names every alias already; tagging again makes them point at this
        # image even where an older import left them elsewhere.
        for alias in refs[1:]:
            run([*ctr, "images", "tag", "--force", refs[0], alias], capture=True)
        imported += refs
    listed = set(run([*ctr, "images", "list", "-q"], capture=True).split())
    missing = [ref for ref in imported if ref not in listed]
    if missing:
        raise SystemExit(f"containerd does not list {missing} after the import")
    return imported
