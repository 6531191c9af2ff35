"""The transfer's checks that need no store: what a staging directory (or, for the final
backup, the backup claim) must hold before anything is uploaded, and how bad
configuration ends (exit 2, the variable named)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.transfer import (
    EXIT_BAD_CONFIGURATION,
    EXIT_FAILED,
    TransferError,
    main,
    meta_key,
    newest_final_dump,
    staged_dump,
)

pytestmark = pytest.mark.unit

SHA = "e" * 64


def stage(directory: Path, content: bytes = b"x" * 10, size: int | None = None) -> None:
    (directory / "dump-0000000001.sql.gz").write_bytes(content)
    recorded = size if size is not None else len(content)
    (directory / "dump-0000000001.meta").write_text(
        f"sequence=1\nfile=dump-0000000001.sql.gz\nsize={recorded}\nsha256={SHA}\n"
        "server_version=5.7.44\n"
    )


def test_the_one_verified_dump_is_found_with_its_record(tmp_path: Path) -> None:
    stage(tmp_path)
    found = staged_dump(tmp_path)
    assert (found.path.name, found.size, found.sha256) == ("dump-0000000001.sql.gz", 10, SHA)
    assert found.meta["server_version"] == "5.7.44"


def test_a_dump_whose_size_differs_from_its_record_is_not_uploaded(tmp_path: Path) -> None:
    stage(tmp_path, size=11)
    with pytest.raises(TransferError) as raised:
        staged_dump(tmp_path)
    assert raised.value.code == EXIT_FAILED
    assert "is 10 bytes, dump-0000000001.meta says 11" in str(raised.value)


def test_an_empty_staging_directory_is_a_failed_backup(tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="expected one dump record"):
        staged_dump(tmp_path)


def test_records_sit_beside_their_dumps() -> None:
    assert meta_key("p/ns/db/db-20261201000000.sql.gz") == "p/ns/db/db-20261201000000.meta"


def test_missing_configuration_exits_2_naming_the_variable(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    environ = {"TERMINATION_LOG": str(log), "S3_ENDPOINT": "http://127.0.0.1:9"}
    assert main(["upload"], environ) == EXIT_BAD_CONFIGURATION
    assert log.read_text() == "AWS_ACCESS_KEY_ID is required\n"
    assert main(["sideload"], environ) == EXIT_BAD_CONFIGURATION


def final_dump(directory: Path, sequence: int, uid: str, *, final: bool = True) -> str:
    name = f"dump-{sequence:010d}.sql.gz"
    (directory / name).write_bytes(b"y" * sequence)
    (directory / f"dump-{sequence:010d}.meta").write_text(
        f"sequence={sequence}\nfile={name}\nsize={sequence}\nsha256={SHA}\n"
        f"instance_uid={uid}\nfinal={'true' if final else 'false'}\ntrigger=x\n"
    )
    return name


def test_the_final_upload_takes_the_instances_newest_final_dump_from_the_claim(
    tmp_path: Path,
) -> None:
    final_dump(tmp_path, 1, "uid-a")
    final_dump(tmp_path, 2, "uid-a")
    final_dump(tmp_path, 3, "uid-b")  # an earlier lifetime's, or another's
    final_dump(tmp_path, 4, "uid-a", final=False)  # a dump asked for, not the final one
    found = newest_final_dump(tmp_path, "uid-a")
    assert (found.path.name, found.size) == ("dump-0000000002.sql.gz", 2)
    with pytest.raises(TransferError, match="no final dump of instance uid uid-c"):
        newest_final_dump(tmp_path, "uid-c")


def test_a_final_dump_whose_size_differs_from_its_record_is_not_uploaded(tmp_path: Path) -> None:
    name = final_dump(tmp_path, 5, "uid-a")
    (tmp_path / name).write_bytes(b"cut")
    with pytest.raises(TransferError, match=r"is 3 bytes, dump-0000000005\.meta says 5") as raised:
        newest_final_dump(tmp_path, "uid-a")
    assert raised.value.code == EXIT_FAILED
