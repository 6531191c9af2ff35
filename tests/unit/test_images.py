"""The pure helpers of hack/images (the `images` package behind hack/images/build): apt
sources, tags, cache keys, docker archives, the mysql user's renumbering, the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from images import cache, cli, mariadb_image, pause_image
from images.apt_sources import AptSource, deb822, parse_apt_sources, pick_debian_sources
from images.debian_rootfs import image_tag as debian_image_tag
from images.debian_rootfs import minor_tag
from images.docker_archive import archive_refs, write_docker_archive

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGES = REPO_ROOT / "hack" / "images"


def test_the_package_is_the_one_beside_the_launcher() -> None:
    assert cache.HERE == IMAGES
    assert cache.REPO_ROOT == REPO_ROOT
    assert cache.LAUNCHER == IMAGES / "build"


DEB822 = """\
Types: deb
# a comment, with a URL in it
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Enabled: no
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Components: main
"""

ONE_LINE = """\
# deb http://commented.example/debian bookworm main
deb [arch=amd64 signed-by=/etc/keyring.gpg] http://one.example/debian bookworm main contrib
deb http://other.example/ubuntu jammy main
"""


def test_parses_deb822_and_drops_disabled_entries() -> None:
    entries = parse_apt_sources({"/etc/apt/sources.list.d/debian.sources": DEB822})
    assert [e.uris for e in entries] == [
        ["http://mirror.example/debian"],
        ["http://security.example/debian-security"],
        ["http://src.example/debian"],
    ]
    assert entries[0].suites == ["bookworm", "bookworm-updates"]
    assert entries[0].signed_by == "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert entries[1].signed_by is None
    assert entries[2].types == ["deb-src"]


def test_parses_an_inline_key_as_one_field() -> None:
    text = "Types: deb\nURIs: http://k.example/d\nSuites: bookworm\nSigned-By:\n KEY\n .\n END\n"
    (entry,) = parse_apt_sources({"k.sources": text})
    assert entry.signed_by is not None
    assert entry.signed_by.split() == ["KEY", ".", "END"]
    assert "Signed-By" not in deb822([entry])


def test_parses_one_line_sources_with_options() -> None:
    entries = parse_apt_sources({"/etc/apt/sources.list": ONE_LINE})
    assert len(entries) == 2
    assert entries[0] == AptSource(
        types=["deb"],
        uris=["http://one.example/debian"],
        suites=["bookworm"],
        components=["main", "contrib"],
        signed_by="/etc/keyring.gpg",
    )


def test_ignores_files_of_other_kinds() -> None:
    assert parse_apt_sources({"/etc/apt/sources.list.d/x.disabled": ONE_LINE}) == []


def test_picks_the_mirror_and_the_update_suites() -> None:
    entries = parse_apt_sources(
        {"/etc/apt/sources.list": ONE_LINE, "/etc/apt/sources.list.d/d.sources": DEB822}
    )
    main, extra = pick_debian_sources(entries, "bookworm")
    assert main.uris == ["http://one.example/debian"]
    assert [(e.uris[0], e.suites) for e in extra] == [
        ("http://mirror.example/debian", ["bookworm-updates"]),
        ("http://security.example/debian-security", ["bookworm-security"]),
    ]


def test_no_source_for_the_suite_is_an_error() -> None:
    entries = parse_apt_sources({"/etc/apt/sources.list": ONE_LINE})
    with pytest.raises(LookupError):
        pick_debian_sources(entries, "trixie")


def test_deb822_renders_binary_main_entries() -> None:
    entry = AptSource(["deb"], ["http://a.example/d"], ["bookworm-updates"], ["main"], "/k.gpg")
    assert deb822([entry]) == (
        "Types: deb\nURIs: http://a.example/d\nSuites: bookworm-updates\n"
        "Components: main\nSigned-By: /k.gpg\n"
    )


@pytest.mark.parametrize(
    ("version", "tag"),
    [
        ("1:10.11.19-0+deb12u1", "10.11.19-0-deb12u1"),
        ("10.11.6-0+deb12u1", "10.11.6-0-deb12u1"),
        ("1:11.8.3-1~bpo12+1", "11.8.3-1-bpo12-1"),
    ],
)
def test_debian_versions_become_valid_tags(version: str, tag: str) -> None:
    assert debian_image_tag(version) == tag


@pytest.mark.parametrize(
    ("version", "tag"),
    [("1:10.11.19-0+deb12u1", "10.11"), ("11.8.3-1~bpo12+1", "11.8"), ("10.5", "10.5")],
)
def test_minor_tags_survive_point_releases(version: str, tag: str) -> None:
    assert minor_tag(version) == tag


def test_alias_of_the_official_example_is_kept() -> None:
    assert "docker.io/library/mysql:5.7" in mariadb_image.MARIADB_ALIAS_REFS
    assert mariadb_image.MARIADB.refs("1:10.11.19-0+deb12u1") == [
        "localhost/mysql-operator/mariadb:10.11.19-0-deb12u1",
        "localhost/mysql-operator/mariadb:10.11",
        "docker.io/library/mysql:5.7",
    ]
    assert pause_image.PAUSE_REF.startswith("localhost/mysql-operator/pause:")


def test_input_key_follows_contents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "REPO_ROOT", tmp_path)
    source = tmp_path / "entrypoint.sh"
    source.write_text("one")
    first = cache.input_key([source], ["bookworm"])
    assert cache.input_key([source], ["bookworm"]) == first
    assert cache.input_key([source], ["trixie"]) != first
    source.write_text("two")
    assert cache.input_key([source], ["bookworm"]) != first


def test_keys_hash_every_module_and_the_launcher() -> None:
    sources = cache.own_sources()
    assert IMAGES / "build" in sources
    modules = sorted(IMAGES.glob("*.py"))
    assert {IMAGES / "cli.py", IMAGES / "docker_engine.py", IMAGES / "mariadb_image.py"} <= set(
        modules
    )
    assert set(modules) <= set(sources)
    # The mariadb image also hashes its entrypoint and config.
    assert {p.name for p in mariadb_image.MARIADB.sources} == {
        "docker-entrypoint.sh",
        "container.cnf",
    }


def test_docker_archive_layout(tmp_path: Path) -> None:
    layer = tmp_path / "layer.tar"
    (tmp_path / "hello").write_text("hi\n")
    with tarfile.open(layer, "w") as tar:
        tar.add(tmp_path / "hello", arcname="hello")
    out = tmp_path / "image.tar"
    refs = ["localhost/x/y:1", "docker.io/library/mysql:5.7"]
    write_docker_archive(out, layer, {"Cmd": ["/hello"]}, refs)

    layer_hex = hashlib.sha256(layer.read_bytes()).hexdigest()
    with tarfile.open(out) as archive:
        names = archive.getnames()
        assert names[0] == "manifest.json"
        manifest_file = archive.extractfile("manifest.json")
        assert manifest_file is not None
        manifest = json.load(manifest_file)
        assert manifest == [
            {
                "Config": manifest[0]["Config"],
                "RepoTags": refs,
                "Layers": [f"{layer_hex}/layer.tar"],
            }
        ]
        config_file = archive.extractfile(manifest[0]["Config"])
        assert config_file is not None
        config_bytes = config_file.read()
        assert manifest[0]["Config"] == hashlib.sha256(config_bytes).hexdigest() + ".json"
        config = json.loads(config_bytes)
        assert config["rootfs"] == {"type": "layers", "diff_ids": [f"sha256:{layer_hex}"]}
        assert config["config"] == {"Cmd": ["/hello"]}
        assert config["os"] == "linux"
        layer_file = archive.extractfile(f"{layer_hex}/layer.tar")
        assert layer_file is not None
        assert layer_file.read() == layer.read_bytes()
    assert archive_refs(out) == refs


PASSWD = """\
root:x:0:0:root:/root:/bin/bash
_apt:x:42:65534::/nonexistent:/usr/sbin/nologin
mysql:x:100:101:MySQL Server,,,:/nonexistent:/bin/false
"""
GROUP = "root:x:0:\nusers:x:100:\nmysql:x:101:\n"


def test_reads_the_mysql_ids_from_passwd_and_group() -> None:
    assert mariadb_image.passwd_ids(PASSWD, "mysql") == (100, 101)
    assert mariadb_image.passwd_ids(PASSWD, "nobody") is None
    assert mariadb_image.group_id(GROUP, "mysql") == 101
    # The users group holds gid 100, the mysql user uid 100: not the same thing.
    assert mariadb_image.id_holders(GROUP, 100, "mysql") == ["users"]
    assert mariadb_image.id_holders(PASSWD, 100, "mysql") == []
    assert mariadb_image.id_holders(PASSWD + "other:x:999:999::/:/bin/false\n", 999, "mysql") == [
        "other"
    ]


def test_the_image_user_is_the_official_images() -> None:
    assert (mariadb_image.MYSQL_UID, mariadb_image.MYSQL_GID) == (999, 999)


def test_ownership_changes_renumber_uids_and_gids_separately(tmp_path: Path) -> None:
    me, my_group = os.getuid(), os.getgid()
    (tmp_path / "lib" / "mysql").mkdir(parents=True)
    (tmp_path / "lib" / "mysql" / "ibdata1").write_text("")
    (tmp_path / "link").symlink_to("/nonexistent")
    every = {tmp_path, tmp_path / "lib", tmp_path / "lib/mysql", tmp_path / "lib/mysql/ibdata1"}
    every.add(tmp_path / "link")
    uid_only = mariadb_image.ownership_changes(tmp_path, {me: 999}, {})
    assert {path for path, _, _ in uid_only} == every
    assert {(uid, gid) for _, uid, gid in uid_only} == {(999, my_group)}
    gid_only = mariadb_image.ownership_changes(tmp_path, {}, {my_group: 999})
    assert {(uid, gid) for _, uid, gid in gid_only} == {(me, 999)}
    assert mariadb_image.ownership_changes(tmp_path, {me + 1: 999}, {my_group + 1: 999}) == []


@pytest.mark.parametrize(
    ("argv", "images", "mode"),
    [
        ([], [], "print"),
        (["--print", "pause"], ["pause"], "print"),
        (["--refs"], [], "refs"),
        (["--import", "/run/x.sock", "reconciler"], ["reconciler"], "/run/x.sock"),
        (["--rebuild", "mariadb", "python"], ["mariadb", "python"], "print"),
    ],
)
def test_the_command_line_of_hack_images_build(
    argv: list[str], images: list[str], mode: str
) -> None:
    args = cli.parser().parse_args(argv)
    assert args.images == images
    assert (args.socket or ("refs" if args.refs else "print")) == mode
    assert cli.DEFAULT_IMAGES == ["pause", "mariadb"]
    assert set(cli.BUILDERS) == {"pause", "mariadb", "python", "reconciler"}


def test_the_launcher_runs_the_package_and_leaves_no_bytecode(tmp_path: Path) -> None:
    # A copy, so that bytecode written by this test process's own imports cannot hide
    # (or fake) what the launcher writes; builds run as root, and root-owned caches in a
    # checkout get in a user's way.
    copy = tmp_path / "hack" / "images"
    shutil.copytree(IMAGES, copy, ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    result = subprocess.run(
        [sys.executable, str(copy / "build"), "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**env, "PYTHONPATH": ""},
    )
    assert not list(tmp_path.rglob("__pycache__"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: build [-h] [--print | --refs | --import SOCKET]")
    assert "Builds the local cluster's container images without a registry." in result.stdout
    unknown = subprocess.run(
        [sys.executable, str(IMAGES / "build"), "nginx"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert unknown.returncode == 2
    assert "unknown image(s) ['nginx']" in unknown.stderr
