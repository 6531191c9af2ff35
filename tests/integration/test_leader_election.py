"""Leader election on a real API server: the candidates' rules (leases.py) through the
gateway's Lease calls (leader.py), then two `reconciler run --leader-elect` processes on
one state directory, of which only the holder reconciles."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any, Final

import pytest
from kubernetes import client

from reconciler.kube import Gateway
from reconciler.leader import Elector
from reconciler.leases import DEFAULT_LEASE_NAME
from tests.harness import Harness, harness_in_new_namespace
from tests.support import eventually

pytestmark = pytest.mark.integration

# Short enough for a test, in the same proportions as the defaults (15 s, 10 s, 2 s).
DURATION_S: Final = 3
RENEW_DEADLINE_S: Final = 2.0
RETRY_S: Final = 0.2
TAKEOVER_TIMEOUT_S: Final = 60.0


@pytest.fixture
def namespace(api_client: client.ApiClient, namespace_name: str) -> Iterator[str]:
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace_name)))
    try:
        yield namespace_name
    finally:
        core.delete_namespace(namespace_name)


def elector(api_client: client.ApiClient, namespace: str, identity: str) -> Elector:
    return Elector(
        Gateway(api_client),
        namespace,
        "lease",
        identity,
        duration_s=DURATION_S,
        renew_deadline_s=RENEW_DEADLINE_S,
        retry_period_s=RETRY_S,
    )


def lease_spec(api_client: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    lease = Gateway(api_client).get_lease(namespace, name)
    assert lease is not None
    spec: dict[str, Any] = lease["spec"]
    return spec


def test_a_holder_keeps_the_lease_and_a_dead_ones_is_taken_after_its_duration(
    api_client: client.ApiClient, namespace: str
) -> None:
    first = elector(api_client, namespace, "first")
    second = elector(api_client, namespace, "second")
    assert first.try_once()
    # While the holder renews, the other candidate never gets the Lease.
    until = time.monotonic() + 2 * DURATION_S
    while time.monotonic() < until:
        assert first.try_once()
        last_renewal = time.monotonic()
        assert not second.try_once()
        assert second.holder == "first"
        time.sleep(0.3)
    # The holder stops renewing (a dead process): the candidate takes over, not earlier
    # than one duration after the last renewal.
    eventually(
        second.try_once, bool, timeout_s=TAKEOVER_TIMEOUT_S, interval_s=RETRY_S, what="a takeover"
    )
    assert time.monotonic() - last_renewal >= DURATION_S
    spec = lease_spec(api_client, namespace, "lease")
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("second", 1)
    # The old holder, back after a pause, learns at its next renewal that it lost.
    lost: list[str] = []
    stop = threading.Event()
    try:
        first.keep(stop, lost.append)
        eventually(lambda: lost, bool, timeout_s=10, what="the old holder told it lost")
    finally:
        stop.set()
    # Said once: by the renewal that found the new holder, or by the deadline.
    assert len(lost) == 1
    assert lost[0].startswith(f"Lease {namespace}/lease ")
    assert not first.leading()


def test_of_candidates_racing_for_a_new_lease_exactly_one_wins(
    api_client: client.ApiClient, namespace: str
) -> None:
    candidates = [elector(api_client, namespace, f"candidate-{n}") for n in range(6)]
    start = threading.Barrier(len(candidates))
    won: list[str] = []

    def race(candidate: Elector) -> None:
        start.wait()
        if candidate.try_once():
            won.append(candidate.identity)

    threads = [threading.Thread(target=race, args=(c,)) for c in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert lease_spec(api_client, namespace, "lease")["holderIdentity"] == won[0]


def test_a_released_lease_is_taken_at_the_next_read(
    api_client: client.ApiClient, namespace: str
) -> None:
    first = elector(api_client, namespace, "first")
    second = elector(api_client, namespace, "second")
    assert first.try_once()
    assert not second.try_once()
    first.release()
    assert lease_spec(api_client, namespace, "lease").get("holderIdentity") is None
    assert second.try_once()


def logged(harness: Harness, message: str) -> bool:
    return any(f"msg={message} " in line for line in harness.log_lines())


def test_only_the_leader_reconciles_and_a_follower_takes_over_when_it_dies(
    api_client: client.ApiClient, kubeconfig: Path, namespace_name: str, tmp_path: Path
) -> None:
    flags = ("--leader-elect", f"--leader-election-namespace={namespace_name}")
    with harness_in_new_namespace(
        api_client, kubeconfig, namespace_name, tmp_path, extra_flags=flags
    ) as leader:
        # The second process shares the state directory and the host path root.
        follower = Harness(api_client, kubeconfig, namespace_name, tmp_path, extra_flags=flags)
        follower.log_path = tmp_path / "follower.log"
        try:
            leader.start()
            eventually(
                partial(logged, leader, "leading"), bool, timeout_s=60, what="the first leads"
            )
            follower.start()
            status, text = follower.http_get("/healthz")
            assert (status, text.split(":")[0]) == (200, "following")

            leader.create("first", leader.host_path_spec())
            leader.wait_ready("first", 1)
            assert not logged(follower, "leading")
            assert not logged(follower, "starting"), "the follower set up an engine"

            leader.kill()
            killed = time.monotonic()
            eventually(
                partial(logged, follower, "leading"),
                bool,
                timeout_s=TAKEOVER_TIMEOUT_S,
                what="the follower took over",
            )
            print(f"the follower led {time.monotonic() - killed:.1f}s after the kill")
            host = tmp_path / "host-second"
            spec = {
                **leader.host_path_spec(),
                "host_path": str(host / "data"),
                "backup": {"host_path": str(host / "backup")},
            }
            follower.create("second", spec)
            follower.wait_ready("second", 1)
            assert follower.http_get("/healthz") == (200, "ok\n")

            follower.stop()
            assert follower.process is not None
            assert follower.process.returncode == 0
            spec_after = lease_spec(api_client, namespace_name, DEFAULT_LEASE_NAME)
            assert spec_after.get("holderIdentity") is None, "released at shutdown"
        finally:
            follower.stop()
            if follower.log_path.exists():
                print("--- follower log (tail) ---")
                print("\n".join(follower.log_lines()[-60:]))
