"""The command line of hack/images/build (see the package's docstring)."""

from __future__ import annotations

import argparse
import signal
import time
from collections.abc import Callable
from pathlib import Path

from images.containerd_import import import_images
from images.debian_rootfs import build_debian_image
from images.docker_archive import archive_refs
from images.mariadb_image import MARIADB
from images.pause_image import build_pause
from images.process import log, step, terminate
from images.reconciler_image import PYTHON, build_reconciler

DESCRIPTION = "Builds the local cluster's container images without a registry."

BUILDERS: dict[str, Callable[[bool], Path]] = {
    "pause": build_pause,
    "mariadb": lambda rebuild: build_debian_image(MARIADB, rebuild),
    "python": lambda rebuild: build_debian_image(PYTHON, rebuild),
    "reconciler": build_reconciler,
}
# What the local cluster's node needs, and what the command builds without names.
DEFAULT_IMAGES = ["pause", "mariadb"]


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--print", action="store_true", help="print the image tars (default)")
    mode.add_argument("--refs", action="store_true", help="print the image references")
    mode.add_argument(
        "--import",
        dest="socket",
        metavar="SOCKET",
        help="import into the k8s.io namespace of the containerd on SOCKET",
    )
    parser.add_argument("--rebuild", action="store_true", help="ignore cached images")
    parser.add_argument(
        "images",
        nargs="*",
        metavar="IMAGE",
        help=f"{', '.join(BUILDERS)} (default: {', '.join(DEFAULT_IMAGES)})",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    command = parser()
    args = command.parse_args(argv)
    names: list[str] = args.images or DEFAULT_IMAGES
    unknown = [name for name in names if name not in BUILDERS]
    if unknown:
        command.error(f"unknown image(s) {unknown}; known: {', '.join(BUILDERS)}")
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)

    started = time.monotonic()
    tars = {}
    for name in names:
        with step(f"{name} image"):
            tars[name] = BUILDERS[name](args.rebuild)
    log(f"images ready in {time.monotonic() - started:.1f}s")

    if args.socket:
        refs = import_images(args.socket, tars)
        print("\n".join(refs))
    elif args.refs:
        print("\n".join(ref for tar in tars.values() for ref in archive_refs(tar)))
    else:
        print("\n".join(str(tar) for tar in tars.values()))
    return 0
