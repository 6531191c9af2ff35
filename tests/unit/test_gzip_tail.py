"""The download's check of a gzip stream: the last line only when the whole stream
decompressed, fed in chunks of any size."""

from __future__ import annotations

import gzip
import zlib

import pytest

from reconciler.transfer import GzipTail, TransferError

pytestmark = pytest.mark.unit

DUMP = b"".join(b"INSERT INTO t VALUES (%d);\n" % n for n in range(20000))
DUMP += b"-- Dump completed on 2026-12-03  7:00:00\n"


def tail_of(data: bytes, chunk: int = 1 << 20) -> str | None:
    stream = GzipTail()
    for start in range(0, len(data), chunk):
        stream.feed(data[start : start + chunk])
    return stream.finish()


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_the_last_line_of_a_whole_stream(chunk: int) -> None:
    data = gzip.compress(DUMP)
    if chunk == 1:
        data = gzip.compress(DUMP[-5000:])  # byte by byte: a shorter stream
    assert tail_of(data, chunk) == "-- Dump completed on 2026-12-03  7:00:00"


def test_a_stream_that_expands_far_beyond_a_step_is_read_to_its_end() -> None:
    """64 MiB from a few dozen KiB: many steps of bounded output per chunk, and output
    still held by zlib when the input is all consumed."""
    data = gzip.compress(b"\0" * (64 << 20) + b"\n-- Dump completed\n")
    assert len(data) < 1 << 20
    assert tail_of(data) == "-- Dump completed"
    assert tail_of(data, 997) == "-- Dump completed"
    assert tail_of(data[:-8]) is None


def test_a_last_line_without_a_newline() -> None:
    assert tail_of(gzip.compress(b"a\nlast")) == "last"


def test_members_one_after_another_are_one_stream() -> None:
    data = gzip.compress(DUMP[:1000]) + gzip.compress(DUMP[1000:])
    assert tail_of(data, 333) == "-- Dump completed on 2026-12-03  7:00:00"


def test_a_truncated_stream_has_no_last_line() -> None:
    data = gzip.compress(DUMP)
    assert tail_of(data[: len(data) - 8]) is None  # without its own trailer (CRC, size)
    assert tail_of(data[: len(data) // 2]) is None


def test_a_damaged_stream_has_no_last_line() -> None:
    data = bytearray(gzip.compress(DUMP))
    data[len(data) // 2] ^= 0xFF
    assert tail_of(bytes(data)) is None
    assert tail_of(gzip.compress(DUMP) + b"\0\0\0\0") is None  # trailing garbage
    assert tail_of(b"") is None
    assert tail_of(zlib.compress(DUMP)) is None  # zlib, not gzip


def test_a_failing_decompression_never_blocks_the_download(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """More chunks than the queue holds, after the decompression died of the unexpected:
    a failure to retry, not a corrupt dump."""

    class Exploding:
        def decompress(self, _data: bytes, _max_length: int) -> bytes:
            raise MemoryError

    monkeypatch.setattr(zlib, "decompressobj", lambda **_kwargs: Exploding())
    stream = GzipTail()
    for _ in range(200):
        stream.feed(b"x" * 1024)
    with pytest.raises(TransferError, match="checking the dump's trailer failed: MemoryError"):
        stream.finish()
