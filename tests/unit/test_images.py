"""The pure helpers of hack/images/build: apt sources, tags, cache keys, docker archives."""

from __future__ import annotations

import hashlib
import json
import sys
import tarfile
import types
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD = REPO_ROOT / "hack" / "images" / "build"


@pytest.fixture(scope="module")
def images() -> types.ModuleType:
    """The build script as a module, compiled by hand so that no __pycache__ lands in hack/."""
    module = types.ModuleType("images_build")
    module.__file__ = str(BUILD)
    # Dataclasses look their module up by name.
    sys.modules[module.__name__] = module
    exec(compile(BUILD.read_text(), str(BUILD), "exec"), module.__dict__)  # noqa: S102
    return module


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


def test_parses_deb822_and_drops_disabled_entries(images: types.ModuleType) -> None:
    entries = images.parse_apt_sources({"/etc/apt/sources.list.d/debian.sources": DEB822})
    assert [e["uris"] for e in entries] == [
        ["http://mirror.example/debian"],
        ["http://security.example/debian-security"],
        ["http://src.example/debian"],
    ]
    assert entries[0]["suites"] == ["bookworm", "bookworm-updates"]
    assert entries[0]["signed_by"] == "/usr/share/keyrings/debian-archive-keyring.gpg"
    assert entries[1]["signed_by"] is None
    assert entries[2]["types"] == ["deb-src"]


def test_parses_one_line_sources_with_options(images: types.ModuleType) -> None:
    entries = images.parse_apt_sources({"/etc/apt/sources.list": ONE_LINE})
    assert len(entries) == 2
    assert entries[0] == {
        "types": ["deb"],
        "uris": ["http://one.example/debian"],
        "suites": ["bookworm"],
        "components": ["main", "contrib"],
        "signed_by": "/etc/keyring.gpg",
    }


def test_ignores_files_of_other_kinds(images: types.ModuleType) -> None:
    assert images.parse_apt_sources({"/etc/apt/sources.list.d/x.disabled": ONE_LINE}) == []


def test_picks_the_mirror_and_the_update_suites(images: types.ModuleType) -> None:
    entries = images.parse_apt_sources(
        {"/etc/apt/sources.list": ONE_LINE, "/etc/apt/sources.list.d/d.sources": DEB822}
    )
    main, extra = images.pick_debian_sources(entries, "bookworm")
    assert main["uris"] == ["http://one.example/debian"]
    assert [(e["uris"][0], e["suites"]) for e in extra] == [
        ("http://mirror.example/debian", ["bookworm-updates"]),
        ("http://security.example/debian-security", ["bookworm-security"]),
    ]


def test_no_source_for_the_suite_is_an_error(images: types.ModuleType) -> None:
    entries = images.parse_apt_sources({"/etc/apt/sources.list": ONE_LINE})
    with pytest.raises(LookupError):
        images.pick_debian_sources(entries, "trixie")


def test_deb822_renders_binary_main_entries(images: types.ModuleType) -> None:
    text = images.deb822(
        [{"uris": ["http://a.example/d"], "suites": ["bookworm-updates"], "signed_by": "/k.gpg"}]
    )
    assert text == (
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
def test_debian_versions_become_valid_tags(
    images: types.ModuleType, version: str, tag: str
) -> None:
    assert images.image_tag(version) == tag


@pytest.mark.parametrize(
    ("version", "tag"),
    [("1:10.11.19-0+deb12u1", "10.11"), ("11.8.3-1~bpo12+1", "11.8"), ("10.5", "10.5")],
)
def test_minor_tags_survive_point_releases(
    images: types.ModuleType, version: str, tag: str
) -> None:
    assert images.minor_tag(version) == tag


def test_alias_of_the_official_example_is_kept(images: types.ModuleType) -> None:
    assert "docker.io/library/mysql:5.7" in images.MARIADB_ALIAS_REFS
    assert images.PAUSE_REF.startswith("localhost/mysql-operator/pause:")


def test_input_key_follows_contents(
    images: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "REPO_ROOT", tmp_path)
    source = tmp_path / "entrypoint.sh"
    source.write_text("one")
    first = images.input_key([source], ["bookworm"])
    assert images.input_key([source], ["bookworm"]) == first
    assert images.input_key([source], ["trixie"]) != first
    source.write_text("two")
    assert images.input_key([source], ["bookworm"]) != first


def test_docker_archive_layout(images: types.ModuleType, tmp_path: Path) -> None:
    layer = tmp_path / "layer.tar"
    (tmp_path / "hello").write_text("hi\n")
    with tarfile.open(layer, "w") as tar:
        tar.add(tmp_path / "hello", arcname="hello")
    out = tmp_path / "image.tar"
    refs = ["localhost/x/y:1", "docker.io/library/mysql:5.7"]
    images.write_docker_archive(out, layer, {"Cmd": ["/hello"]}, refs)

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
        config_bytes = archive.extractfile(manifest[0]["Config"]).read()
        assert manifest[0]["Config"] == hashlib.sha256(config_bytes).hexdigest() + ".json"
        config = json.loads(config_bytes)
        assert config["rootfs"] == {"type": "layers", "diff_ids": [f"sha256:{layer_hex}"]}
        assert config["config"] == {"Cmd": ["/hello"]}
        assert config["os"] == "linux"
        assert archive.extractfile(f"{layer_hex}/layer.tar").read() == layer.read_bytes()
    assert images.archive_refs(out) == refs
