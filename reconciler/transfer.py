"""Moves one dump between a Job's staging directory and an S3 bucket (transfer_jobs.py
builds the Jobs). Runs in the operator's image, from the environment only:

    python3 -m reconciler.transfer upload     # after backup.sh wrote the dump and .meta
    python3 -m reconciler.transfer download   # before restore.sh reads them

Standard library only (with reconciler/s3.py). Like the Job scripts it prints progress
to stderr and writes one result line to the termination log, and exits 0 on success, 1
when the transfer failed (the Job may be tried again), 2 on bad configuration, and 4
(download) when the object is missing or is not the dump the backup recorded.

Environment: S3_ENDPOINT, S3_BUCKET, S3_KEY, S3_REGION, S3_CA_FILE (optional),
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, STAGING_DIR; upload: BACKUP_TRIGGER,
BACKUP_KEEP, S3_ROTATE_PREFIX, FINAL_OF_INSTANCE (the final backup: STAGING_DIR is
the backup claim, and the dump is that instance uid's newest final one); download:
RESTORE_SOURCE (the dump's file name), RESTORE_BACKUP (the MySQLBackup's name),
EXPECTED_SIZE, EXPECTED_SHA256.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import sys
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from reconciler.s3 import Credentials, S3Client, S3Error

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_BAD_CONFIGURATION: Final = 2
EXIT_DUMP_UNUSABLE: Final = 4
TERMINATION_LOG: Final = "/dev/termination-log"
DUMP_NAME: Final = re.compile(r"dump-[0-9]{10}\.sql\.gz")
SHA256: Final = re.compile(r"[0-9a-f]{64}")
META_SUFFIX: Final = ".meta"
TRAILER: Final = "-- Dump completed"
GZIP_WBITS: Final = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate data
INFLATE_STEP_BYTES: Final = 1 << 22  # decompressed bytes per step: memory stays bounded
TAIL_BYTES: Final = 4096  # the end of the stream kept: the trailer line is far shorter
# Per socket operation: an endpoint that does not answer fails the Job within this.
TIMEOUT_S: Final = 20.0


class TransferError(Exception):
    """Ends the transfer with `code` and a one-line `message`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "")
    if not value:
        raise TransferError(EXIT_BAD_CONFIGURATION, f"{name} is required")
    return value


def client_from(environ: Mapping[str, str]) -> S3Client:
    return S3Client(
        _required(environ, "S3_ENDPOINT"),
        Credentials(
            access_key_id=_required(environ, "AWS_ACCESS_KEY_ID"),
            secret_access_key=_required(environ, "AWS_SECRET_ACCESS_KEY"),
            region=environ.get("S3_REGION") or "us-east-1",
        ),
        timeout_s=TIMEOUT_S,
        ca_file=environ.get("S3_CA_FILE") or None,
    )


def parse_meta(text: str) -> dict[str, str]:
    """The `key=value` lines of a .meta record."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


@dataclass(frozen=True)
class StagedDump:
    path: Path
    meta_path: Path
    meta: dict[str, str]

    @property
    def size(self) -> int:
        return int(self.meta["size"])

    @property
    def sha256(self) -> str:
        return self.meta["sha256"]


def staged_dump(staging: Path) -> StagedDump:
    """The one verified dump backup.sh left in the staging directory."""
    metas = sorted(staging.glob("dump-*.meta"))
    if len(metas) != 1:
        raise TransferError(
            EXIT_FAILED, f"expected one dump record in {staging}, found {len(metas)}"
        )
    return _verified(metas[0], parse_meta(metas[0].read_text()))


def _verified(meta_path: Path, meta: dict[str, str]) -> StagedDump:
    """The dump a record names, when the record is complete and the file its size."""
    name = meta.get("file", "")
    if not DUMP_NAME.fullmatch(name) or not SHA256.fullmatch(meta.get("sha256", "")):
        raise TransferError(EXIT_FAILED, f"{meta_path.name} is not a complete dump record")
    path = meta_path.parent / name
    size = path.stat().st_size if path.exists() else -1
    if str(size) != meta.get("size"):
        raise TransferError(
            EXIT_FAILED, f"{name} is {size} bytes, {meta_path.name} says {meta.get('size')}"
        )
    return StagedDump(path, meta_path, meta)


def newest_final_dump(directory: Path, instance_uid: str) -> StagedDump:
    """On a backup claim that holds many dumps: the final dump of `instance_uid` with the
    highest sequence. The final backup Job's backup.sh has just written it, with clients
    cut off, and no other Job writes the claim while a spec.backup.s3 is set (requested
    and scheduled dumps then go to the bucket), so it is this Job's dump."""
    for meta_path in sorted(directory.glob("dump-*.meta"), reverse=True):
        meta = parse_meta(meta_path.read_text())
        if meta.get("instance_uid") == instance_uid and meta.get("final") == "true":
            return _verified(meta_path, meta)
    raise TransferError(EXIT_FAILED, f"no final dump of instance uid {instance_uid} in {directory}")


def meta_key(key: str) -> str:
    """The key of a dump's record beside it: <name>.sql.gz -> <name>.meta."""
    return key.removesuffix(".sql.gz") + META_SUFFIX


def upload(environ: Mapping[str, str]) -> str:
    """Puts the staged dump under S3_KEY (the store checks its SHA-256), then its record;
    checks the stored size; rotates scheduled dumps. Returns the result line."""
    s3 = client_from(environ)
    bucket, key = _required(environ, "S3_BUCKET"), _required(environ, "S3_KEY")
    staging = Path(_required(environ, "STAGING_DIR"))
    final_of = environ.get("FINAL_OF_INSTANCE")
    staged = newest_final_dump(staging, final_of) if final_of else staged_dump(staging)
    url = f"s3://{bucket}/{key}"
    _log(f"uploading {staged.path.name} ({staged.size} bytes) to {url}")
    try:
        # The dump before its record: a record names only a dump that is complete.
        s3.put_file(bucket, key, staged.path, staged.sha256)
        stored = s3.head_object(bucket, key)
        if stored is None or stored.size != staged.size:
            found = "nothing" if stored is None else f"{stored.size} bytes"
            raise TransferError(EXIT_FAILED, f"{url} holds {found} after the upload")
        record = staged.meta_path.read_text().rstrip("\n") + f"\nlocation={url}\n"
        s3.put_object(bucket, meta_key(key), record.encode())
        if environ.get("BACKUP_TRIGGER") == "schedule":
            _rotate(s3, environ, bucket, key)
    except S3Error as error:
        raise TransferError(EXIT_FAILED, str(error)) from None
    except OSError as error:
        raise TransferError(EXIT_FAILED, unreachable(s3, error)) from None
    meta = staged.meta
    return (
        f"dump={staged.path.name} sequence={meta.get('sequence', '')} size={staged.size} "
        f"sha256={staged.sha256} server_version={meta.get('server_version', '')} location={url}"
    )


def _rotate(s3: S3Client, environ: Mapping[str, str], bucket: str, written: str) -> None:
    """Keeps the newest BACKUP_KEEP scheduled dumps under S3_ROTATE_PREFIX (by key: their
    names end in the UTC fire time), never the one just written. A dump's record goes
    first, so an interrupted rotation leaves only an unrecorded dump, never a record of
    a dump that is gone."""
    keep_text = environ.get("BACKUP_KEEP", "")
    prefix = _required(environ, "S3_ROTATE_PREFIX")
    if not keep_text.isdigit() or int(keep_text) < 1:
        raise TransferError(EXIT_BAD_CONFIGURATION, f"BACKUP_KEEP must be positive: {keep_text!r}")
    objects = {item.key: item.size for item in s3.list_objects(bucket, prefix)}
    scheduled = []
    for key in sorted(objects):
        if not key.endswith(META_SUFFIX) or "/" in key[len(prefix) :]:
            continue
        dump = key.removesuffix(META_SUFFIX) + ".sql.gz"
        record = parse_meta(s3.get_object(bucket, key).decode(errors="replace"))
        if record.get("trigger") == "schedule" and str(objects.get(dump)) == record.get("size"):
            scheduled.append(dump)
    excess = len(scheduled) - int(keep_text)
    for dump in scheduled:
        if excess <= 0:
            break
        if dump == written:
            continue
        _log(f"removing old scheduled dump s3://{bucket}/{dump}")
        s3.delete_object(bucket, meta_key(dump))
        s3.delete_object(bucket, dump)
        excess -= 1


class GzipTail:
    """Decompresses a gzip stream as it is downloaded, in a thread of its own (zlib works
    without the GIL), and keeps the end of what it holds. `finish` gives the stream's
    last line, or None when the stream did not decompress to its end."""

    def __init__(self) -> None:
        # Bounded: a download faster than the decompression waits for it.
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=32)
        self._tail = b""
        self._complete = False
        self._failure: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="gzip-tail", daemon=True)
        self._thread.start()

    def feed(self, chunk: bytes) -> None:
        self._chunks.put(chunk)

    def finish(self) -> str | None:
        self._chunks.put(None)
        self._thread.join()
        if self._failure is not None:
            # Not the dump's fault: the download fails, to be tried again.
            failure = f"{type(self._failure).__name__}: {self._failure}"
            raise TransferError(EXIT_FAILED, f"checking the dump's trailer failed: {failure}")
        if not self._complete:
            return None
        text = self._tail.removesuffix(b"\n")
        return text.rpartition(b"\n")[2].decode(errors="replace")

    def _run(self) -> None:
        ended = False
        try:
            ended = self._inflate()
        except Exception as error:  # reported by finish, as a failure to retry
            self._failure = error
        finally:
            # Whatever stopped the decompression, the download never waits on the queue.
            while not ended:
                ended = self._chunks.get() is None

    def _inflate(self) -> bool:
        inflate = zlib.decompressobj(wbits=GZIP_WBITS)
        in_member = False  # bytes of a member were read and its end not yet
        broken = False
        while (chunk := self._chunks.get()) is not None:
            data = chunk
            # Until this chunk is consumed and zlib holds no more output for it (a step
            # ends at INFLATE_STEP_BYTES of output, input used or not).
            while not broken:
                try:
                    out = inflate.decompress(data, INFLATE_STEP_BYTES)
                except zlib.error:
                    broken = True  # keep taking chunks: the download goes on
                    break
                in_member = in_member or bool(data)
                self._tail = (self._tail + out[-TAIL_BYTES:])[-TAIL_BYTES:]
                data = inflate.unconsumed_tail
                if inflate.eof:
                    # gzip allows members one after another: the next starts here.
                    data = inflate.unused_data + data
                    inflate = zlib.decompressobj(wbits=GZIP_WBITS)
                    in_member = False
                elif not data and not out:
                    break
        self._complete = not broken and not in_member and bool(self._tail)
        return True


def download(environ: Mapping[str, str]) -> str:
    """Fetches S3_KEY into STAGING_DIR as RESTORE_SOURCE, checks it against the size and
    SHA-256 the MySQLBackup recorded and, decompressing it as it arrives, that it ends
    with the dump's trailer; writes the .meta restore.sh checks, with that trailer (the
    Job tells restore.sh so, with RESTORE_STREAM_CHECKED, and it does not decompress the
    file a second time)."""
    s3 = client_from(environ)
    bucket, key = _required(environ, "S3_BUCKET"), _required(environ, "S3_KEY")
    staging = Path(_required(environ, "STAGING_DIR"))
    name, backup = _required(environ, "RESTORE_SOURCE"), _required(environ, "RESTORE_BACKUP")
    expected_size, expected_sha256 = (
        _required(environ, "EXPECTED_SIZE"),
        _required(environ, "EXPECTED_SHA256"),
    )
    if not DUMP_NAME.fullmatch(name) or not expected_size.isdigit():
        raise TransferError(EXIT_BAD_CONFIGURATION, "RESTORE_SOURCE or EXPECTED_SIZE is invalid")
    url = f"s3://{bucket}/{key}"
    what = f"MySQLBackup {backup}: {url}"
    target = staging / name
    partial = staging / f".{name}.partial"
    try:
        found = s3.head_object(bucket, key)
        if found is None:
            raise TransferError(EXIT_DUMP_UNUSABLE, f"{what} does not exist")
        _log(f"downloading {url} ({found.size} bytes)")
        stream = GzipTail()
        try:
            sha256 = s3.get_file(bucket, key, partial, stream.feed)
        finally:
            last_line = stream.finish()
    except S3Error as error:
        raise TransferError(EXIT_FAILED, f"{what}: {error}") from None
    except OSError as error:
        raise TransferError(EXIT_FAILED, f"{what}: {unreachable(s3, error)}") from None
    size = partial.stat().st_size
    if (str(size), sha256) != (expected_size, expected_sha256):
        partial.unlink()
        raise TransferError(
            EXIT_DUMP_UNUSABLE,
            f"{what} is corrupt: it is {size} bytes with sha256 {sha256}; the backup "
            f"recorded {expected_size} bytes with sha256 {expected_sha256}",
        )
    problem = (
        "it does not decompress"
        if last_line is None
        else None
        if last_line.startswith(TRAILER)
        else f"it does not end with the '{TRAILER}' trailer"
    )
    if problem is not None:
        partial.unlink()
        raise TransferError(EXIT_DUMP_UNUSABLE, f"{what} is corrupt: {problem}")
    assert last_line is not None
    partial.rename(target)
    sequence = name.removeprefix("dump-").removesuffix(".sql.gz")
    meta = (
        f"sequence={sequence}\nfile={name}\nsize={size}\nsha256={sha256}\nsource={url}\n"
        f"trailer={last_line}\n"
    )
    (staging / f"dump-{sequence}.meta").write_text(meta)
    return f"downloaded {url} size={size} sha256={sha256}"


def unreachable(s3: S3Client, error: OSError) -> str:
    """A network failure, naming the field that says where the store is."""
    reason = str(error) or type(error).__name__
    return f"spec.backup.s3.endpoint {s3.endpoint}: the store cannot be reached: {reason}"


def _log(message: str) -> None:
    print(f"[transfer] {message}", file=sys.stderr, flush=True)


def _report(line: str, termination_log: str) -> None:
    # Outside a pod there is no termination log: the log line is enough.
    with contextlib.suppress(OSError):
        Path(termination_log).write_text(line + "\n")


def main(argv: list[str], environ: Mapping[str, str]) -> int:
    verbs = {"upload": upload, "download": download}
    termination_log = environ.get("TERMINATION_LOG") or TERMINATION_LOG
    if len(argv) != 1 or argv[0] not in verbs:
        _log(f"usage: python3 -m reconciler.transfer {'|'.join(verbs)}")
        return EXIT_BAD_CONFIGURATION
    try:
        line = verbs[argv[0]](environ)
    except TransferError as error:
        _log(str(error))
        _report(str(error), termination_log)
        return error.code
    _log(line)
    _report(line, termination_log)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
