"""Images made of one debootstrap minbase rootfs plus Debian packages (mariadb, python):
the generic builder. Needs root (debootstrap, chroot, mount)."""

from __future__ import annotations

import dataclasses
import glob
import os
import platform
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from images import cache
from images.apt_sources import deb822, host_apt_sources, pick_debian_sources
from images.docker_archive import write_docker_archive
from images.process import log, run, step

DEBIAN_SUITE = "bookworm"


def image_tag(debian_version: str) -> str:
    """A Debian version as an image tag: no epoch; characters a tag may not hold become
    '-'. E.g. '1:10.11.19-0+deb12u1' -> '10.11.19-0-deb12u1'."""
    version = debian_version.split(":", 1)[-1]
    tag = re.sub(r"[^A-Za-z0-9_.-]", "-", version).lstrip(".-")
    return tag[:128]


def minor_tag(debian_version: str) -> str:
    """The upstream major.minor of a Debian version, a tag that survives Debian's point
    releases. E.g. '1:10.11.19-0+deb12u1' -> '10.11'."""
    upstream = debian_version.split(":", 1)[-1].rsplit("-", 1)[0]
    return ".".join(re.split(r"[.+~]", upstream)[:2])


@dataclasses.dataclass(frozen=True)
class DebianImage:
    """An image made of one debootstrap minbase rootfs plus Debian packages."""

    name: str
    packages: list[str]
    # The package whose version names the image (its tags and version label).
    versioned_package: str
    repo: str
    finish: Callable[[Path], None]  # installs the image's own files, checks its commands
    config: dict[str, object]
    alias_refs: list[str] = dataclasses.field(default_factory=list)
    # The image's own files, for the key.
    sources: list[Path] = dataclasses.field(default_factory=list)

    def key(self) -> str:
        return cache.input_key(
            [*cache.own_sources(), *self.sources],
            [DEBIAN_SUITE, *self.packages, *self.alias_refs, platform.machine()],
        )

    def refs(self, version: str) -> list[str]:
        return [
            f"{self.repo}:{image_tag(version)}",
            f"{self.repo}:{minor_tag(version)}",
            *self.alias_refs,
        ]


def in_private_mounts(script: str, *args: str) -> None:
    """Runs a bash script in a private mount namespace, so that whatever it mounts is
    gone when it exits, even if it is killed; the script also unmounts on its own."""
    argv = ["bash", "-euo", "pipefail", "-c", script, "bash", *args]
    if shutil.which("unshare"):
        argv = ["unshare", "--mount", "--propagation", "private", "--", *argv]
    run(argv)


# Installs packages in the rootfs $1 by chroot, with /proc mounted and the .deb cache $2
# bind-mounted over its (emptied) apt archives, so that the image carries no .debs and a
# rebuild downloads only what changed.
CHROOT_INSTALL = r"""
rootfs=$1 debs=$2
shift 2
unmount() {
  local point
  for point in "$rootfs/var/cache/apt/archives" "$rootfs/proc"; do
    if mountpoint -q "$point"; then umount "$point" 2>/dev/null || umount -l "$point"; fi
  done
}
trap unmount EXIT
mount -t proc proc "$rootfs/proc"
mkdir -p "$debs/partial"
mount --bind "$debs" "$rootfs/var/cache/apt/archives"
chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 bash -euo pipefail -c '
apt-get update -q
apt-get install -y -q -o Dpkg::Use-Pty=0 --no-install-recommends "$@"
apt-get autoclean -q
' bash "$@"
"""


def build_debian_image(image: DebianImage, rebuild: bool) -> Path:
    name = image.name
    if os.geteuid() != 0:
        raise SystemExit(f"the {name} image needs root (debootstrap, chroot, mount)")
    for tool in ("debootstrap", "chroot", "tar", "mount"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is required to build the {name} image")
    with cache.cache_slot(name, image.key()) as (final, work):
        if final.exists() and not rebuild:
            log(f"{name}: cached {final}")
            return final
        main, extra = pick_debian_sources(host_apt_sources(), DEBIAN_SUITE)
        mirror = main.uris[0]
        rootfs = work / "rootfs"
        # Downloaded packages are kept between builds (debootstrap's and apt's alike).
        debs = cache.images_dir / "debs" / DEBIAN_SUITE
        debs.mkdir(parents=True, exist_ok=True)
        with step(f"{name}: debootstrap --variant=minbase {DEBIAN_SUITE}"):
            argv = ["debootstrap", "--variant=minbase", f"--cache-dir={debs}"]
            if main.signed_by and Path(main.signed_by).is_file():
                argv.append(f"--keyring={main.signed_by}")
            in_private_mounts('exec "$@"', *argv, DEBIAN_SUITE, str(rootfs), mirror)

        with step(f"{name}: apt-get install " + " ".join(image.packages)):
            # debootstrap wrote the suite's own source; updates and security come from
            # the same apt configuration as this machine's.
            if extra:
                # A keyring the rootfs does not hold cannot be named in it.
                extra = [
                    entry
                    if not entry.signed_by or (rootfs / entry.signed_by.lstrip("/")).is_file()
                    else dataclasses.replace(entry, signed_by=None)
                    for entry in extra
                ]
                (rootfs / "etc/apt/sources.list.d/updates.sources").write_text(deb822(extra))
            policy = rootfs / "usr/sbin/policy-rc.d"
            policy.write_text("#!/bin/sh\n# No service starts inside an image.\nexit 101\n")
            policy.chmod(0o755)
            replace_file(rootfs / "etc/resolv.conf", Path("/etc/resolv.conf").read_text())
            in_private_mounts(CHROOT_INSTALL, str(rootfs), str(debs), *image.packages)
            version = chroot_output(
                rootfs, "dpkg-query", "-W", "-f=${Version}", image.versioned_package
            )
            log(f"{name}: installed {image.versioned_package} {version}")

        with step(f"{name}: image files and clean-up"):
            image.finish(rootfs)
            strip_rootfs(rootfs)

        with step(f"{name}: layer tar"):
            layer = work / "layer.tar"
            top = sorted(os.listdir(rootfs))
            run(
                [
                    "tar",
                    "--create",
                    f"--file={layer}",
                    f"--directory={rootfs}",
                    "--numeric-owner",
                    "--sort=name",
                    "--anchored",
                    "--exclude=proc/*",
                    "--exclude=sys/*",
                    "--exclude=dev/*",
                    "--",
                    *top,
                ]
            )
            shutil.rmtree(rootfs)
        with step(f"{name}: docker archive"):
            config = {
                **image.config,
                "Labels": {"org.opencontainers.image.version": version},
            }
            write_docker_archive(work / "image.tar", layer, config, image.refs(version))
            os.rename(work / "image.tar", final)
        cache.prune_old(name, final)
        return final


def chroot_output(rootfs: Path, *argv: str) -> str:
    """What a command run in the rootfs prints on stdout, stripped."""
    return run(["chroot", str(rootfs), *argv], capture=True).strip()


def require_commands(rootfs: Path, image: str, commands: list[str]) -> None:
    for command in commands:
        if not chroot_output(rootfs, "bash", "-c", f"command -v {command} || true"):
            raise SystemExit(f"the {image} image lacks the command {command}")


def replace_file(path: Path, text: str) -> None:
    """Writes a file of the rootfs, never through a symlink that could point at the host."""
    if path.is_symlink() or path.exists():
        path.unlink()
    path.write_text(text)
    path.chmod(0o644)


def remove_paths(rootfs: Path, pattern: str) -> None:
    """Removes what the glob `pattern` (relative to the rootfs) matches, symlinks as such."""
    for path in glob.glob(str(rootfs / pattern)):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def strip_rootfs(rootfs: Path) -> None:
    """Removes what an image should not carry: apt's lists and caches, logs, docs."""
    for pattern in (
        "var/lib/apt/lists/*",
        "var/cache/apt/*.bin",
        "var/cache/debconf/*-old",
        "var/cache/apt/archives/*.deb",
        "var/cache/apt/archives/partial/*",
        "var/log/*.log",
        "var/log/apt/*",
        "tmp/*",
    ):
        remove_paths(rootfs, pattern)
    # The runtime provides these.
    replace_file(rootfs / "etc/resolv.conf", "")
    replace_file(rootfs / "etc/hostname", "")
    # Manuals and docs, except the copyright notices.
    for top in ("usr/share/man", "usr/share/info"):
        remove_paths(rootfs, f"{top}/*")
    for dirpath, _dirs, files in os.walk(rootfs / "usr/share/doc"):
        for name in files:
            if name != "copyright":
                os.unlink(os.path.join(dirpath, name))
