"""One-layer docker-archive tars (manifest.json, config, layer.tar): what both
`ctr images import` and `docker load` accept."""

from __future__ import annotations

import hashlib
import io
import json
import platform
import tarfile
import time
from collections.abc import Mapping
from pathlib import Path

# The PATH of every image's config.
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def image_config(
    layer_diff_id: str, config: Mapping[str, object], created: str
) -> dict[str, object]:
    """The image config JSON of a one-layer image for this machine's architecture."""
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {
        "architecture": arch,
        "os": "linux",
        "created": created,
        "config": dict(config),
        "rootfs": {"type": "layers", "diff_ids": [layer_diff_id]},
        "history": [{"created": created, "created_by": "hack/images/build"}],
    }


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_docker_archive(
    out: Path, layer: Path, config: Mapping[str, object], refs: list[str]
) -> None:
    """Writes a docker-archive tar of one layer (an uncompressed tar) to `out`."""
    layer_hex = sha256_file(layer)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    config_bytes = json.dumps(
        image_config(f"sha256:{layer_hex}", config, created), indent=2, sort_keys=True
    ).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = f"{layer_hex}/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": refs, "Layers": [layer_name]}])

    def add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(time.time())
        archive.addfile(info, io.BytesIO(data))

    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as archive:
        # manifest.json first, so that readers of the tags stop early.
        add_bytes(archive, "manifest.json", manifest.encode())
        add_bytes(archive, config_name, config_bytes)
        dir_info = tarfile.TarInfo(layer_hex)
        dir_info.type = tarfile.DIRTYPE
        dir_info.mode = 0o755
        archive.addfile(dir_info)
        info = archive.gettarinfo(str(layer), arcname=layer_name)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        with open(layer, "rb") as f:
            archive.addfile(info, f)


def archive_refs(tar_path: Path) -> list[str]:
    """The RepoTags of a docker archive written by write_docker_archive."""
    with tarfile.open(tar_path) as archive:
        for member in archive:
            if member.name == "manifest.json":
                manifest = archive.extractfile(member)
                if manifest is None:
                    break
                return [str(ref) for ref in json.load(manifest)[0]["RepoTags"]]
    raise SystemExit(f"{tar_path}: no manifest.json")
