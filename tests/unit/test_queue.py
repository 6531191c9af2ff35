"""The work queue and backoff, on a fake clock: dedup, one worker per key, three lanes, and
the two kinds of delay (a backoff after a failure, a poll while something is under way)
with the three ways to add a key (plain, wake, urgent)."""

from __future__ import annotations

import threading

import pytest

from reconciler.queue import Backoff, ShutDown, WorkQueue

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def drain(queue: WorkQueue[str]) -> list[str]:
    """Every key ready now, in order, each marked done."""
    keys = []
    while (key := queue.get(timeout_s=0)) is not None:
        keys.append(key)
        queue.done(key)
    return keys


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(clock: FakeClock) -> WorkQueue[str]:
    return WorkQueue(clock=clock)


# -- dedup and one worker per key -----------------------------------------------------------


def test_a_key_added_twice_is_queued_once(queue: WorkQueue[str]) -> None:
    queue.add("a")
    queue.add("b")
    queue.add("a")
    assert len(queue) == 2
    assert drain(queue) == ["a", "b"]


def test_a_key_being_processed_is_not_handed_out_again_until_done(queue: WorkQueue[str]) -> None:
    queue.add("a")
    assert queue.get(timeout_s=0) == "a"
    queue.add("a")  # an event arrives while a worker holds the key
    assert queue.get(timeout_s=0) is None
    queue.done("a")
    assert drain(queue) == ["a"]
    assert drain(queue) == []


def test_a_key_done_without_news_is_not_queued_again(queue: WorkQueue[str]) -> None:
    queue.add("a")
    assert queue.get(timeout_s=0) == "a"
    queue.done("a")
    assert len(queue) == 0


# -- two lanes ------------------------------------------------------------------------------


def test_urgent_keys_go_before_every_other_key(queue: WorkQueue[str]) -> None:
    queue.add("resync-1")
    queue.add("resync-2")
    queue.add("edited", urgent=True)
    assert drain(queue) == ["edited", "resync-1", "resync-2"]


def test_an_urgent_add_moves_a_waiting_key_to_the_front(queue: WorkQueue[str]) -> None:
    queue.add("a")
    queue.add("b")
    queue.add("b", urgent=True)
    assert len(queue) == 2, "moved, not duplicated"
    assert drain(queue) == ["b", "a"]


def test_an_urgent_key_stays_urgent_when_added_plainly(queue: WorkQueue[str]) -> None:
    queue.add("a")
    queue.add("b", urgent=True)
    queue.add("b")
    assert drain(queue) == ["b", "a"]


def test_urgent_keys_keep_their_order(queue: WorkQueue[str]) -> None:
    for key in ("x", "y", "z"):
        queue.add(key, urgent=True)
    assert drain(queue) == ["x", "y", "z"]


def test_urgent_and_progress_keys_take_turns_before_plain_ones(queue: WorkQueue[str]) -> None:
    queue.add("resync", wake=False)
    for key in ("new-1", "new-2", "new-3"):
        queue.add(key, urgent=True)
    for key in ("woken-1", "woken-2"):
        queue.add(key, wake=True)
    assert drain(queue) == ["new-1", "woken-1", "new-2", "woken-2", "new-3", "resync"]


def test_a_wake_moves_a_plain_key_into_the_progress_lane(queue: WorkQueue[str]) -> None:
    queue.add("a")
    queue.add("b")
    queue.add("b", wake=True)
    assert len(queue) == 2
    assert drain(queue) == ["b", "a"]


def test_a_burst_of_new_objects_does_not_hold_back_one_on_its_way(
    queue: WorkQueue[str], clock: FakeClock
) -> None:
    for n in range(100):
        queue.add(f"new-{n}", urgent=True)
    queue.add_after("restoring", 5, backoff=False)  # polls its restore Job
    clock.now += 5
    served = drain(queue)
    assert served.index("restoring") <= 1
    # A retry after a backoff waits for every new object.
    queue.add_after("failing", 1, backoff=True)
    for n in range(3):
        queue.add(f"newer-{n}", urgent=True)
    clock.now += 1
    assert drain(queue) == ["newer-0", "newer-1", "newer-2", "failing"]


# -- delays ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backoff", [True, False])
def test_a_delayed_key_waits_for_the_clock(
    queue: WorkQueue[str], clock: FakeClock, backoff: bool
) -> None:
    queue.add_after("a", 10, backoff=backoff)
    assert queue.delayed() == 1
    clock.now += 9.5
    assert drain(queue) == []
    clock.now += 0.5
    assert drain(queue) == ["a"]
    assert queue.delayed() == 0


def test_a_delayed_key_comes_back_in_the_normal_lane(
    queue: WorkQueue[str], clock: FakeClock
) -> None:
    queue.add_after("retried", 1, backoff=True)
    clock.now += 1
    queue.add("edited", urgent=True)
    assert drain(queue) == ["edited", "retried"]


def test_the_latest_delay_replaces_an_earlier_one(queue: WorkQueue[str], clock: FakeClock) -> None:
    queue.add_after("a", 5, backoff=False)
    queue.add_after("a", 30, backoff=True)
    clock.now += 5
    assert drain(queue) == [], "the earlier delay no longer counts"
    clock.now += 25
    assert drain(queue) == ["a"]


def test_a_delay_of_zero_queues_at_once(queue: WorkQueue[str]) -> None:
    queue.add_after("a", 0, backoff=True)
    assert drain(queue) == ["a"]


@pytest.mark.parametrize("backoff", [True, False])
def test_a_plain_add_never_ends_a_delay(
    queue: WorkQueue[str], clock: FakeClock, backoff: bool
) -> None:
    queue.add_after("a", 60, backoff=backoff)
    queue.add("a")  # a resync
    assert drain(queue) == []
    clock.now += 60
    assert drain(queue) == ["a"]


def test_a_wake_ends_a_poll(queue: WorkQueue[str]) -> None:
    queue.add_after("a", 30, backoff=False)
    queue.add("a", wake=True)  # the Job it waits for completed
    assert drain(queue) == ["a"]
    assert queue.delayed() == 0


def test_a_wake_does_not_end_a_backoff(queue: WorkQueue[str], clock: FakeClock) -> None:
    queue.add_after("a", 30, backoff=True)
    queue.add("a", wake=True)  # its own status write, or a pod restarting
    assert drain(queue) == []
    clock.now += 30
    assert drain(queue) == ["a"]


@pytest.mark.parametrize("backoff", [True, False])
def test_an_urgent_add_ends_any_delay(queue: WorkQueue[str], backoff: bool) -> None:
    queue.add_after("a", 300, backoff=backoff)
    queue.add("a", urgent=True)  # an edit may be the fix the key waited for
    assert drain(queue) == ["a"]


def test_an_ended_delay_does_not_fire_again(queue: WorkQueue[str], clock: FakeClock) -> None:
    queue.add_after("a", 10, backoff=False)
    queue.add("a", wake=True)
    assert drain(queue) == ["a"]
    clock.now += 10
    assert drain(queue) == []


# -- while a worker holds the key -----------------------------------------------------------


def test_a_key_due_while_processing_comes_back_after_done(
    queue: WorkQueue[str], clock: FakeClock
) -> None:
    queue.add("a")
    assert queue.get(timeout_s=0) == "a"
    queue.add_after("a", 1, backoff=False)
    clock.now += 1
    assert queue.get(timeout_s=0) is None
    queue.done("a")
    assert drain(queue) == ["a"]


def test_an_urgent_add_while_processing_comes_back_urgent(queue: WorkQueue[str]) -> None:
    queue.add("a")
    assert queue.get(timeout_s=0) == "a"
    queue.add("b")
    queue.add("a", urgent=True)
    queue.done("a")
    assert drain(queue) == ["a", "b"]


def test_a_wake_while_processing_does_not_override_the_backoff_that_follows(
    queue: WorkQueue[str], clock: FakeClock
) -> None:
    # The worker's reconcile fails and it backs off; a wake that came meanwhile waits too.
    queue.add("a")
    assert queue.get(timeout_s=0) == "a"
    queue.add("a", wake=True)
    queue.add_after("a", 20, backoff=True)
    queue.done("a")
    assert drain(queue) == []
    clock.now += 20
    assert drain(queue) == ["a"]


def test_a_wake_while_processing_ends_the_poll_that_follows(queue: WorkQueue[str]) -> None:
    queue.add("a")
    assert queue.get(timeout_s=0) == "a"
    queue.add("a", wake=True)
    queue.add_after("a", 30, backoff=False)
    queue.done("a")
    assert drain(queue) == ["a"]


def test_an_urgent_add_while_processing_ends_the_backoff_that_follows(
    queue: WorkQueue[str],
) -> None:
    queue.add("a")
    assert queue.get(timeout_s=0) == "a"
    queue.add("a", urgent=True)
    queue.add_after("a", 300, backoff=True)
    queue.done("a")
    assert drain(queue) == ["a"]


def test_a_plain_add_while_processing_waits_for_the_delay_that_follows(
    queue: WorkQueue[str], clock: FakeClock
) -> None:
    queue.add("a")
    assert queue.get(timeout_s=0) == "a"
    queue.add("a")
    queue.add_after("a", 30, backoff=False)
    queue.done("a")
    assert drain(queue) == []
    clock.now += 30
    assert drain(queue) == ["a"]


# -- figures and shutdown -------------------------------------------------------------------


def test_the_oldest_wait_is_measured_on_the_clock(queue: WorkQueue[str], clock: FakeClock) -> None:
    assert queue.oldest_wait_s() == 0
    queue.add("a")
    clock.now += 3
    queue.add("b")
    clock.now += 4
    assert queue.oldest_wait_s() == 7
    assert queue.get(timeout_s=0) == "a"
    assert queue.oldest_wait_s() == 4


def test_get_times_out_on_the_clock(queue: WorkQueue[str]) -> None:
    assert queue.get(timeout_s=0) is None


def test_nothing_is_queued_after_shut_down(queue: WorkQueue[str]) -> None:
    queue.shut_down()
    queue.add("a")
    queue.add_after("b", 1, backoff=True)
    assert len(queue) == 0
    with pytest.raises(ShutDown):
        queue.get(timeout_s=0)


def test_shut_down_releases_a_blocked_worker() -> None:
    queue: WorkQueue[str] = WorkQueue()
    entered = threading.Event()
    raised = threading.Event()

    def worker() -> None:
        entered.set()
        try:
            queue.get()
        except ShutDown:
            raised.set()

    thread = threading.Thread(target=worker)
    thread.start()
    entered.wait(timeout=10)
    queue.shut_down()
    thread.join(timeout=10)
    assert raised.is_set()


# -- backoff --------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_and_forget_resets() -> None:
    backoff: Backoff[str] = Backoff(base_s=2, cap_s=20)
    assert [backoff.next_delay("a") for _ in range(6)] == [2, 4, 8, 16, 20, 20]
    assert backoff.next_delay("b") == 2, "keys back off independently"
    assert backoff.failures("a") == 6
    backoff.forget("a")
    assert backoff.failures("a") == 0
    assert backoff.next_delay("a") == 2


def test_backoff_survives_a_very_long_failure_streak() -> None:
    backoff: Backoff[str] = Backoff(base_s=2, cap_s=300)
    for _ in range(10_000):
        delay = backoff.next_delay("a")
    assert delay == 300
