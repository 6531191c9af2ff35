"""The pause image: a static Go binary (pause/main.go) that holds a pod's namespaces,
reaps zombies and exits on SIGTERM/SIGINT."""

from __future__ import annotations

import os
import platform
import shutil
import tarfile
from pathlib import Path

from images import cache
from images.docker_archive import PATH_ENV, write_docker_archive
from images.process import log, run, step

PAUSE_VERSION = "1.0"
PAUSE_REF = f"localhost/mysql-operator/pause:{PAUSE_VERSION}"
PAUSE_SOURCES = cache.HERE / "pause"


def pause_key() -> tuple[str, list[str]]:
    go_version = run(["go", "env", "GOVERSION"], capture=True).strip()
    sources = [*cache.own_sources(), PAUSE_SOURCES / "main.go", PAUSE_SOURCES / "go.mod"]
    return cache.input_key(sources, [PAUSE_VERSION, go_version, platform.machine()]), [PAUSE_REF]


def build_pause(rebuild: bool) -> Path:
    if not shutil.which("go"):
        raise SystemExit("go is required to build the pause image (Go 1.26 or newer)")
    key, refs = pause_key()
    with cache.cache_slot("pause", key) as (final, work):
        if final.exists() and not rebuild:
            log(f"pause: cached {final}")
            return final
        env = {
            **os.environ,
            "CGO_ENABLED": "0",
            "GOTOOLCHAIN": "local",
            "GOFLAGS": "-buildvcs=false",
            "GOCACHE": os.environ.get("GOCACHE") or str(cache.cache_root / "go" / "build"),
        }
        with step("pause: go build"):
            run(
                [
                    "go",
                    "build",
                    "-trimpath",
                    "-ldflags",
                    f"-s -w -X main.version={PAUSE_VERSION}",
                    "-o",
                    str(work / "pause"),
                    ".",
                ],
                cwd=PAUSE_SOURCES,
                env=env,
            )
        with step("pause: docker archive"):
            layer = work / "layer.tar"
            with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tar:
                info = tar.gettarinfo(str(work / "pause"), arcname="pause")
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mode = 0o755
                info.mtime = 0
                with open(work / "pause", "rb") as f:
                    tar.addfile(info, f)
            config = {
                "Entrypoint": ["/pause"],
                "Env": [PATH_ENV],
                "WorkingDir": "/",
                "Labels": {"org.opencontainers.image.version": PAUSE_VERSION},
            }
            write_docker_archive(work / "image.tar", layer, config, refs)
            os.rename(work / "image.tar", final)
        cache.prune_old("pause", final)
        return final
