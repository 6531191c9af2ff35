"""The work queue and backoff, on a fake clock: dedup, one worker per key, delays."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.kube import ApiUnavailable, Expired, Gateway, Listing, WatchEvent
from reconciler.queue import Backoff, ShutDown, WorkQueue
from reconciler.watch import Health, WatchLoop, intent, worth_queueing

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_key_added_twice_is_queued_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("b")
    queue.add("a")
    assert len(queue) == 2
    assert queue.get(timeout_s=0) == "a"
    assert queue.get(timeout_s=0) == "b"
    assert queue.get(timeout_s=0) is None


def test_a_key_being_processed_is_not_handed_out_again_until_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    assert queue.get(timeout_s=0) == "a"
    queue.add("a")  # an event arrives while a worker holds the key
    assert queue.get(timeout_s=0) is None
    queue.done("a")
    assert queue.get(timeout_s=0) == "a"
    queue.done("a")
    assert queue.get(timeout_s=0) is None


def test_add_after_waits_for_the_clock() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    queue.add_after("a", 10)
    assert queue.get(timeout_s=0) is None
    clock.now += 10
    assert queue.get(timeout_s=0) == "a"


def test_a_delayed_key_that_is_already_queued_is_not_duplicated() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    queue.add_after("a", 5)
    queue.add("a")
    clock.now += 5
    assert queue.get(timeout_s=0) == "a"
    queue.done("a")
    assert queue.get(timeout_s=0) is None


def test_a_delayed_key_due_while_processing_comes_back_after_done() -> None:
    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(clock=clock)
    queue.add("a")
    assert queue.get(timeout_s=0) == "a"
    queue.add_after("a", 1)
    clock.now += 1
    assert queue.get(timeout_s=0) is None
    queue.done("a")
    assert queue.get(timeout_s=0) == "a"


def test_shut_down_releases_a_blocked_worker() -> None:
    queue: WorkQueue[str] = WorkQueue()
    raised = threading.Event()

    def worker() -> None:
        try:
            queue.get()
        except ShutDown:
            raised.set()

    thread = threading.Thread(target=worker)
    thread.start()
    queue.shut_down()
    thread.join(timeout=10)
    assert raised.is_set()


def test_backoff_doubles_up_to_the_cap_and_forget_resets() -> None:
    backoff: Backoff[str] = Backoff(base_s=2, cap_s=20)
    assert [backoff.next_delay("a") for _ in range(6)] == [2, 4, 8, 16, 20, 20]
    assert backoff.next_delay("b") == 2, "keys back off independently"
    backoff.forget("a")
    assert backoff.failures("a") == 0
    assert backoff.next_delay("a") == 2


# -- the watch loop, on a fake gateway --------------------------------------------------


class FakeWatchGateway(Gateway):
    """Scripted lists and watches; the loop stops itself after the script runs out."""

    def __init__(self, loop: list[WatchLoop]) -> None:
        self.loop = loop
        self.lists = [["a", "b"], ["a"]]
        self.watches: list[list[str] | type[Exception]] = [["c"], Expired]
        self.calls: list[str] = []

    def list_mysqls(self, namespace: str | None) -> Listing:  # noqa: ARG002 (the real signature)
        self.calls.append("list")
        if not self.lists:
            self.loop[0].stop()
            raise ApiUnavailable("script over")
        names = self.lists.pop(0)
        return Listing(tuple(mysql_object(name) for name in names), "10")

    def watch_mysqls(  # the real signature
        self,
        namespace: str | None,  # noqa: ARG002
        resource_version: str,
        timeout_s: int,  # noqa: ARG002
    ) -> Iterator[WatchEvent]:
        self.calls.append(f"watch@{resource_version}")
        step = self.watches.pop(0) if self.watches else Expired
        if isinstance(step, list):
            for name in step:
                yield WatchEvent("ADDED", mysql_object(name, version="11"))
            return
        raise step()


def mysql_object(name: str, version: str = "10") -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": version}}


def scripted_loop(
    queue: WorkQueue[tuple[str, str]], health: Health, backoff: Backoff[str]
) -> tuple[WatchLoop, FakeWatchGateway]:
    """A loop over "ns" on a FakeWatchGateway, which stops it when its script runs out."""
    holder: list[WatchLoop] = []
    gateway = FakeWatchGateway(holder)
    loop = WatchLoop(
        gateway,
        queue,
        health,
        namespace="ns",
        resync_period_s=3600,
        watch_timeout_s=60,
        backoff=backoff,
    )
    holder.append(loop)
    return loop, gateway


def test_the_watch_loop_lists_watches_from_the_version_and_relists_on_410() -> None:
    queue: WorkQueue[tuple[str, str]] = WorkQueue()
    health = Health(stale_after_s=60)
    loop, gateway = scripted_loop(queue, health, Backoff(base_s=0.001, cap_s=0.001))
    loop.run()
    # list, watch from the list's version, again from the event's version (the server
    # closed the first watch), 410 -> list again, watch, 410, list fails -> stop.
    assert gateway.calls[:5] == ["list", "watch@10", "watch@11", "list", "watch@10"]
    keys = []
    while (key := queue.get(timeout_s=0)) is not None:
        keys.append(key)
        queue.done(key)
    # Every listed object is queued, like a new one; each key once while it waits.
    assert keys == [("ns", "a"), ("ns", "b"), ("ns", "c")]
    assert not health.healthy(), "a stopped loop is reported"


class CountingBackoff(Backoff[str]):
    """Records how many failures each delay was computed from."""

    def __init__(self, base_s: float, cap_s: float) -> None:
        super().__init__(base_s=base_s, cap_s=cap_s)
        self.failures_before_each_delay: list[int] = []

    def next_delay(self, key: str) -> float:
        self.failures_before_each_delay.append(self.failures(key))
        return super().next_delay(key)


def test_a_successful_list_resets_the_reconnect_backoff() -> None:
    # Failures spread over hours, each after a good list, must not add up to the cap.
    backoff = CountingBackoff(base_s=0.001, cap_s=1.0)
    loop, gateway = scripted_loop(WorkQueue(), Health(stale_after_s=60), backoff)
    gateway.watches = [ApiUnavailable, ApiUnavailable]  # each watch fails after its list
    loop.run()
    assert gateway.calls == ["list", "watch@10", "list", "watch@10", "list"]
    # 0 earlier failures after each good list; 1 before the failed list's delay.
    assert backoff.failures_before_each_delay == [0, 0, 1]


def test_health_needs_every_loop_recent() -> None:
    health = Health(stale_after_s=60)
    assert not health.healthy(), "nothing watching yet"
    health.register("watch:a")
    health.register("watch:b")
    assert health.healthy()
    health.stopped("watch:b")
    assert not health.healthy()


def spec_object(**metadata: Any) -> dict[str, Any]:
    base = {"namespace": "ns", "name": "db", "uid": "u1", "generation": 1, "finalizers": ["f"]}
    return {"metadata": {**base, **metadata}, "spec": {}, "status": {}}


def test_a_status_only_change_is_not_queued_but_every_intent_change_is() -> None:
    seen = intent(spec_object())
    status_write = spec_object(resourceVersion="12")
    status_write["status"] = {"conditions": [{"type": "Ready", "status": "False"}]}
    assert not worth_queueing("MODIFIED", status_write, seen)
    for changed in (
        spec_object(generation=2),
        spec_object(deletionTimestamp="2026-11-26T00:00:00Z"),
        spec_object(finalizers=[]),
        spec_object(labels={"team": "a"}),
        spec_object(annotations={"note": "x"}),
        spec_object(uid="u2"),  # deleted and created again between two events
    ):
        assert worth_queueing("MODIFIED", changed, seen), changed["metadata"]
    # Never seen before, added or deleted: always queued.
    assert worth_queueing("MODIFIED", status_write, None)
    assert worth_queueing("ADDED", status_write, seen)
    assert worth_queueing("DELETED", status_write, seen)
