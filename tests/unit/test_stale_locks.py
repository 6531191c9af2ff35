"""A stack lock is removed only when its holder is provably gone (stale_locks.py), and
the lock stores find, read and remove exactly the stack's own locks (backend_locks.py)."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.backend_locks import (
    DirectoryLocks,
    HolderCheck,
    cli_username,
    lock_store,
    process_running,
    s3_location,
)
from reconciler.stale_locks import (
    Identity,
    PodFacts,
    StackLock,
    judge,
    parse_lock,
    pod_facts,
    pod_name_prefix,
)

pytestmark = pytest.mark.unit

WRITTEN = datetime(2026, 12, 3, 10, 0, 0, 500_000, tzinfo=UTC)
IN_POD = Identity(
    hostname="mysql-operator-5d8f9c7b4-abcde",
    username="app",
    pod_namespace="mysql-operator",
    pod_name_prefix="mysql-operator-",
)


def lock(hostname: str, *, username: str = "app", pid: int = 42) -> StackLock:
    return StackLock("k", pid, username, hostname, WRITTEN)


def test_the_clis_lock_file_is_read_with_its_nanoseconds_and_offset() -> None:
    content = json.dumps(
        {
            "pid": 17,
            "username": "app",
            "hostname": "h",
            "timestamp": "2026-12-03T10:00:00.123456789+01:00",
        }
    ).encode()
    found = parse_lock("key", content)
    assert found == StackLock(
        "key", 17, "app", "h", datetime(2026, 12, 3, 9, 0, 0, 123456, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"[]",
        b'{"pid": 1}',
        b'{"pid": "x", "username": "", "hostname": "", "timestamp": "2026-12-03T10:00:00Z"}',
        b'{"pid": 1, "username": "", "hostname": "", "timestamp": "2026-12-03T10:00:00"}',
    ],
)
def test_a_lock_that_cannot_be_read_is_not_taken_for_one(content: bytes) -> None:
    assert parse_lock("key", content) is None


def test_a_lock_of_this_host_is_gone_only_when_its_process_has_ended() -> None:
    own = lock(IN_POD.hostname)
    assert judge(own, IN_POD, process_running=False).gone
    running = judge(own, IN_POD, process_running=True)
    assert not running.gone
    assert "process 42 on this host is still running" in running.reason


def test_a_deleted_or_ended_operator_pod_holds_nothing() -> None:
    other = lock("mysql-operator-5d8f9c7b4-fghij")
    deleted = judge(other, IN_POD, pod=PodFacts(exists=False))
    assert deleted.gone
    assert "pod mysql-operator/mysql-operator-5d8f9c7b4-fghij no longer exists" in deleted.reason
    assert judge(other, IN_POD, pod=PodFacts(exists=True, terminal=True)).gone


def test_a_pod_whose_containers_started_after_the_lock_holds_nothing() -> None:
    other = lock("mysql-operator-77c8d9f6b-fghij")  # another ReplicaSet, same Deployment
    later = PodFacts(exists=True, all_running_since=WRITTEN + timedelta(seconds=1))
    assert judge(other, IN_POD, pod=later).gone
    # The kubelet's times have whole seconds: one in the lock's own second proves nothing.
    same_second = PodFacts(exists=True, all_running_since=WRITTEN.replace(microsecond=0))
    assert not judge(other, IN_POD, pod=same_second).gone
    earlier = PodFacts(exists=True, all_running_since=WRITTEN - timedelta(minutes=5))
    assert not judge(other, IN_POD, pod=earlier).gone
    not_running = PodFacts(exists=True, all_running_since=None)
    verdict = judge(other, IN_POD, pod=not_running)
    assert not verdict.gone
    assert "still runs and may hold it" in verdict.reason


@pytest.mark.parametrize(
    "foreign",
    [
        lock("laptop"),  # a person's `pulumi up`
        lock("mysql-operator-5d8f9c7b4-fghij", username="root"),  # not the operator's user
        lock("other-operator-5d8f9c7b4-fghij"),  # another Deployment's pod
    ],
)
def test_a_lock_from_anywhere_else_is_never_judged_gone(foreign: StackLock) -> None:
    verdict = judge(foreign, IN_POD, pod=PodFacts(exists=False))
    assert not verdict.gone
    assert "nothing here can tell" in verdict.reason


def test_outside_a_pod_only_this_hosts_locks_can_be_judged() -> None:
    host = Identity(hostname="ci-runner", username="app")
    assert not judge(lock("mysql-operator-5d8f9c7b4-fghij"), host).gone


def test_the_facts_a_verdict_needs_are_required() -> None:
    with pytest.raises(ValueError, match="process_running"):
        judge(lock(IN_POD.hostname), IN_POD)
    with pytest.raises(ValueError, match="pod's facts"):
        judge(lock("mysql-operator-5d8f9c7b4-fghij"), IN_POD)


def test_a_deployments_pods_share_the_prefix_before_the_template_hash() -> None:
    assert pod_name_prefix("mysql-operator-5d8f9c7b4-abcde") == "mysql-operator-"
    assert pod_name_prefix("op-5d8f9c7b4-abcde") == "op-"
    assert pod_name_prefix("standalone") is None
    assert pod_name_prefix("a-b") is None


def test_pod_facts_from_the_api() -> None:
    assert pod_facts(None) == PodFacts(exists=False)
    assert pod_facts({"status": {"phase": "Failed", "reason": "Evicted"}}).terminal
    running = {
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"state": {"running": {"startedAt": "2026-12-03T10:00:05Z"}}},
                {"state": {"running": {"startedAt": "2026-12-03T10:00:03Z"}}},
            ],
        }
    }
    assert pod_facts(running).all_running_since == datetime(2026, 12, 3, 10, 0, 3, tzinfo=UTC)
    waiting = {
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"state": {"running": {"startedAt": "2026-12-03T10:00:05Z"}}},
                {"state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            ],
        }
    }
    assert pod_facts(waiting) == PodFacts(exists=True)


# -- backend_locks -----------------------------------------------------------------------


def write_lock(folder: Path, name: str, pid: int, hostname: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    content = {
        "pid": pid,
        "username": "app",
        "hostname": hostname,
        "timestamp": "2026-12-03T10:00:00Z",
    }
    path.write_text(json.dumps(content))
    return path


def test_a_directory_backend_lists_only_the_stacks_own_locks(tmp_path: Path) -> None:
    locks = tmp_path / ".pulumi" / "locks" / "organization" / "mysql-operator"
    mine = write_lock(locks / "ns.db", "a", 1, "h")
    write_lock(locks / "ns.other", "b", 2, "h")
    (locks / "ns.db" / "c.json").write_text("{")
    store = DirectoryLocks(tmp_path, "mysql-operator")
    found, unreadable = store.locks("ns.db")
    assert [item.key for item in found] == [str(mine)]
    assert unreadable == [str(locks / "ns.db" / "c.json")]
    store.remove(found[0])
    assert not mine.exists()
    assert (locks / "ns.other" / "b.json").exists()


def test_s3_backend_urls_name_the_endpoint_bucket_prefix_and_region() -> None:
    url = "s3://state/ops/prod?endpoint=http://127.0.0.1:9000&region=eu-west-1&use_path_style=true"
    assert s3_location(url) == ("http://127.0.0.1:9000", "state", "ops/prod/", "eu-west-1")
    assert s3_location("s3://state?endpoint=minio:9000&disableSSL=true") == (
        "http://minio:9000",
        "state",
        "",
        "us-east-1",
    )
    assert (s3_location("s3://state?endpoint=minio:9000") or ("",))[0] == "https://minio:9000"
    assert s3_location("file:///tmp/x") is None


def test_bucket_locks_need_the_stores_keys() -> None:
    url = "s3://state?endpoint=http://127.0.0.1:9000"
    assert lock_store(url, "p", {}) is None
    keys = {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}
    assert lock_store(url, "p", keys) is not None
    assert lock_store("gs://bucket", "p", keys) is None


def test_a_process_runs_until_it_is_reaped() -> None:
    assert process_running(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not process_running(child.pid)


def test_the_holder_check_reads_a_pod_only_for_an_operator_pods_lock() -> None:
    asked: list[tuple[str, str]] = []

    def read_pod(namespace: str, name: str) -> PodFacts | None:
        asked.append((namespace, name))
        return None if name.endswith("unread") else PodFacts(exists=False)

    check = HolderCheck(IN_POD, read_pod)
    assert check(lock("mysql-operator-5d8f9c7b4-fghij")).gone
    unreadable = check(lock("mysql-operator-5d8f9c7b4-unread"))
    assert not unreadable.gone
    assert "cannot be read now" in unreadable.reason
    assert not check(lock("laptop")).gone
    assert asked == [
        ("mysql-operator", "mysql-operator-5d8f9c7b4-fghij"),
        ("mysql-operator", "mysql-operator-5d8f9c7b4-unread"),
    ]
    # This host's lock: its pid is looked at, never a pod.
    assert not check(lock(IN_POD.hostname, pid=os.getpid())).gone
    assert len(asked) == 2


def test_the_user_name_is_the_one_the_cli_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    # The password database first, as Go's os/user reads it; $USER only without an entry.
    monkeypatch.setenv("USER", "someone-else")
    assert cli_username() == pwd.getpwuid(os.getuid()).pw_name

    def no_entry(_uid: int) -> pwd.struct_passwd:
        raise KeyError(_uid)

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    assert cli_username() == "someone-else"
