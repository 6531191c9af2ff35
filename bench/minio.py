"""A throwaway MinIO server on loopback, from the toolchain build (hack/toolchain/build
makes the same `minio` the local cluster runs): the S3 store of the dump benchmark. Its
data directory is the caller's; its root credentials are made for the run and passed to
it in its environment, never on a command line."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.mariadb import ServerError, free_loopback_port, stop
from reconciler.s3 import Credentials, S3Client

START_TIMEOUT_S: Final = 60.0
BUCKET: Final = "bench-dumps"


@dataclass(frozen=True)
class MinIO:
    endpoint: str
    credentials: Credentials
    bucket: str = BUCKET

    def client(self) -> S3Client:
        return S3Client(self.endpoint, self.credentials, timeout_s=60.0)

    def transfer_env(self, key: str) -> dict[str, str]:
        """The environment the Jobs give reconciler.transfer for this store and key."""
        return {
            "S3_ENDPOINT": self.endpoint,
            "S3_BUCKET": self.bucket,
            "S3_REGION": self.credentials.region,
            "S3_KEY": key,
            "AWS_ACCESS_KEY_ID": self.credentials.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.credentials.secret_access_key,
        }


def _live(endpoint: str) -> bool:
    """Ready for requests: `live` answers before the server has initialized its drives."""
    try:
        with urllib.request.urlopen(f"{endpoint}/minio/health/ready", timeout=2) as reply:  # noqa: S310 (loopback)
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def running_store(base: Path, binary: str | None = None) -> Iterator[MinIO]:
    """A new MinIO with its data under `base` and one bucket, stopped on exit."""
    found = binary or shutil.which("minio")
    if found is None:
        raise ServerError('no minio on PATH: eval "$(hack/toolchain/build)" puts it there')
    base.mkdir(parents=True, exist_ok=True)
    port = free_loopback_port()
    credentials = Credentials(f"bench-{secrets.token_hex(4)}", secrets.token_hex(20))
    endpoint = f"http://127.0.0.1:{port}"
    with (base / "minio.log").open("wb") as log:
        process = subprocess.Popen(
            [found, "server", str(base / "data"), "--address", f"127.0.0.1:{port}", "--quiet"],
            env={
                "PATH": os.environ["PATH"],
                "HOME": str(base),
                "MINIO_ROOT_USER": credentials.access_key_id,
                "MINIO_ROOT_PASSWORD": credentials.secret_access_key,
                "MINIO_BROWSER": "off",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _live(endpoint):
            if process.poll() is not None or time.monotonic() > deadline:
                raise ServerError(f"minio did not start: see {base / 'minio.log'}")
            time.sleep(0.2)
        store = MinIO(endpoint, credentials)
        store.client().ensure_bucket(BUCKET)
        yield store
    finally:
        stop(process)
