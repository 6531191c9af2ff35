"""The mariadb image: Debian's MariaDB with an entrypoint that honours the official mysql
image's interface (mariadb/docker-entrypoint.sh), its user mysql renumbered to uid and
gid 999 as in the official image.

With uid 999, pods can run the server as `runAsNonRoot: true, runAsUser: 999,
runAsGroup: 999, fsGroup: 999` with every capability dropped (Pod Security
"restricted"), and files written by the root-started entrypoint (which drops to mysql)
and by a uid-999 start are owned alike.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path

from images.cache import HERE, mounts_under
from images.debian_rootfs import DebianImage, chroot_output, remove_paths, require_commands
from images.docker_archive import PATH_ENV
from images.process import log, run

MARIADB_PACKAGES = ["mariadb-server", "mariadb-client"]
MARIADB_REPO = "localhost/mysql-operator/mariadb"
# Extra names for the mariadb image, so that manifests written for the official mysql
# image (the project's example says `image: mysql:5.7`) run unchanged on the local
# cluster. containerd and the kubelet spell `mysql:5.7` as below.
MARIADB_ALIAS_REFS = ["docker.io/library/mysql:5.7"]

# The official mysql image's mysql user and group.
MYSQL_USER = "mysql"
MYSQL_UID = 999
MYSQL_GID = 999
# Where the server keeps its socket and pid file (Debian's config); the image must hold
# it, owned by mysql, for a server started as uid 999 (the kubelet, unlike `ctr run`,
# mounts no tmpfs over /run).
RUN_DIR = "run/mysqld"


def passwd_ids(passwd: str, name: str) -> tuple[int, int] | None:
    """(uid, gid) of the user `name` in an /etc/passwd text, or None."""
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == name:
            return int(fields[2]), int(fields[3])
    return None


def group_id(group: str, name: str) -> int | None:
    """The gid of the group `name` in an /etc/group text, or None."""
    for line in group.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name:
            return int(fields[2])
    return None


def id_holders(text: str, number: int, other_than: str) -> list[str]:
    """Names other than `other_than` that hold id `number` in an /etc/passwd or
    /etc/group text (the third field)."""
    return [
        fields[0]
        for fields in (line.split(":") for line in text.splitlines())
        if len(fields) >= 3 and fields[0] != other_than and fields[2] == str(number)
    ]


def ownership_changes(
    root: Path, uids: Mapping[int, int], gids: Mapping[int, int]
) -> list[tuple[Path, int, int]]:
    """Every path under `root` (itself included, symlinks as such) owned by a uid or gid
    that the maps renumber: (path, new uid, new gid). Does not descend into symlinks."""
    changes = []
    for dirpath, dirnames, filenames in os.walk(root):
        names = [Path(dirpath)] if dirpath == str(root) else []
        names += [Path(dirpath, name) for name in (*dirnames, *filenames)]
        for path in names:
            info = path.lstat()
            uid = uids.get(info.st_uid, info.st_uid)
            gid = gids.get(info.st_gid, info.st_gid)
            if (uid, gid) != (info.st_uid, info.st_gid):
                changes.append((path, uid, gid))
    return changes


def renumber_mysql_user(rootfs: Path) -> None:
    """Makes Debian's mysql user and group uid and gid 999 (groupmod and usermod in the
    chroot), then gives the files that the packages made for the old ids to the new
    ones: /var/lib/mysql, the PAM tool's directory, /var/log/mysql if present."""
    passwd = (rootfs / "etc/passwd").read_text()
    group = (rootfs / "etc/group").read_text()
    ids = passwd_ids(passwd, MYSQL_USER)
    old_gid = group_id(group, MYSQL_USER)
    if ids is None or old_gid is None:
        raise SystemExit(f"the packages made no {MYSQL_USER} user and group")
    old_uid = ids[0]
    taken = id_holders(passwd, MYSQL_UID, MYSQL_USER) + id_holders(group, MYSQL_GID, MYSQL_USER)
    if taken:
        raise SystemExit(f"uid/gid {MYSQL_UID}/{MYSQL_GID} is taken in the rootfs by {taken}")
    if mounts_under(rootfs):
        raise SystemExit(f"{rootfs} holds mounts; not walking it")
    run(["chroot", str(rootfs), "/usr/sbin/groupmod", "-g", str(MYSQL_GID), MYSQL_USER])
    run(["chroot", str(rootfs), "/usr/sbin/usermod", "-u", str(MYSQL_UID), MYSQL_USER])
    changes = ownership_changes(
        rootfs,
        {old_uid: MYSQL_UID} if old_uid != MYSQL_UID else {},
        {old_gid: MYSQL_GID} if old_gid != MYSQL_GID else {},
    )
    for path, uid, gid in changes:
        os.lchown(path, uid, gid)
    names = ["/" + str(path.relative_to(rootfs)) for path, _, _ in changes]
    log(
        f"mariadb: {MYSQL_USER} {old_uid}:{old_gid} -> {MYSQL_UID}:{MYSQL_GID}; "
        f"re-owned {len(names)} path(s): {', '.join(names[:10])}"
        + (", ..." if len(names) > 10 else "")
    )
    found = chroot_output(rootfs, "id", MYSQL_USER)
    expected = f"uid={MYSQL_UID}({MYSQL_USER}) gid={MYSQL_GID}({MYSQL_USER})"
    if not found.startswith(expected + " "):
        raise SystemExit(f"after renumbering, `id {MYSQL_USER}` says {found!r}")


def finish_mariadb_rootfs(rootfs: Path) -> None:
    """Installs the entrypoint and config, checks the commands the image promises,
    empties the data directory, renumbers mysql to 999 and makes /run/mysqld its."""
    entrypoint = rootfs / "usr/local/bin/docker-entrypoint.sh"
    shutil.copyfile(HERE / "mariadb/docker-entrypoint.sh", entrypoint)
    entrypoint.chmod(0o755)
    cnf = rootfs / "etc/mysql/mariadb.conf.d/99-container.cnf"
    shutil.copyfile(HERE / "mariadb/container.cnf", cnf)
    cnf.chmod(0o644)
    (rootfs / "docker-entrypoint-initdb.d").mkdir(mode=0o755, exist_ok=True)
    require_commands(
        rootfs,
        "mariadb",
        [
            *("mariadbd", "mariadb-install-db", "mariadb", "mariadb-admin", "mysql"),
            *("mysqldump", "setpriv", "bash", "awk"),
        ],
    )
    # Debian's postinst initialised /var/lib/mysql; an image must not carry a data
    # directory, or a runtime that copies image content into a fresh volume would hide
    # the entrypoint's first-start set-up.
    datadir = rootfs / "var/lib/mysql"
    for child in datadir.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    renumber_mysql_user(rootfs)
    # Debian makes /run/mysqld at boot (tmpfiles.d); an image has no boot.
    run_dir = rootfs / RUN_DIR
    if run_dir.parent.is_symlink():
        raise SystemExit(f"/{run_dir.parent.relative_to(rootfs)} is a symlink in the rootfs")
    remove_paths(rootfs, RUN_DIR)
    run_dir.mkdir(mode=0o755)
    for path in (run_dir, datadir):
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode):
            raise SystemExit(f"/{path.relative_to(rootfs)} is not a directory")
        os.chown(path, MYSQL_UID, MYSQL_GID)
        path.chmod(0o755)


MARIADB = DebianImage(
    name="mariadb",
    packages=MARIADB_PACKAGES,
    versioned_package="mariadb-server",
    repo=MARIADB_REPO,
    finish=finish_mariadb_rootfs,
    config={
        "Entrypoint": ["/usr/local/bin/docker-entrypoint.sh"],
        "Cmd": ["mariadbd"],
        "Env": [PATH_ENV, "LANG=C.UTF-8"],
        "ExposedPorts": {"3306/tcp": {}},
        "WorkingDir": "/",
        "StopSignal": "SIGTERM",
    },
    alias_refs=MARIADB_ALIAS_REFS,
    sources=sorted(p for p in (HERE / "mariadb").iterdir() if p.is_file()),
)
