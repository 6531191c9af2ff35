"""The list+watch loops that feed the queue, on a scripted gateway: the MySQL loop queues
every listed object plainly and every real change urgently; the loops over claims, pods
and Jobs only wake the instance their labels name."""

# The scripted gateway keeps the real signatures and ignores some arguments.
# ruff: noqa: ARG002

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import pytest
from kubernetes import client

from reconciler.kube import (
    LIST_PAGE_SIZE,
    ApiUnavailable,
    Expired,
    Gateway,
    Kind,
    Listing,
    WatchEvent,
)
from reconciler.queue import Backoff, WorkQueue
from reconciler.vocabulary import FINALIZER, LABEL_TRIGGER
from reconciler.watch import (
    OWNED_SELECTOR,
    BackupIndex,
    Health,
    WatchLoop,
    instance_key,
    intent,
    listed_fields,
    worth_queueing,
)
from tests.unit.builders import NAME, NAMESPACE, claim, job, pod

pytestmark = pytest.mark.unit

Key = tuple[str, str]
KEY_OF_INSTANCE: Key = (NAMESPACE, NAME)
Script = list[list[tuple[str, dict[str, Any]]] | type[Exception]]


@dataclass
class ScriptedGateway:
    """Answers lists and watches from a script; stops the loop when the script runs out."""

    lists: list[list[dict[str, Any]]]
    watches: Script = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    selectors: list[str] = field(default_factory=list)
    loop: WatchLoop | None = None

    def list(
        self,
        kind: str,
        namespace: str | None,
        label_selector: str = "",
        keep: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
    ) -> Listing:
        self.calls.append("list")
        self.selectors.append(label_selector)
        if not self.lists:
            assert self.loop is not None
            self.loop.stop()
            raise ApiUnavailable("script over")
        items = self.lists.pop(0)
        return Listing(tuple(map(keep, items) if keep else items), "10")

    def watch(
        self,
        kind: str,
        namespace: str | None,
        resource_version: str,
        timeout_s: int,
        label_selector: str = "",
    ) -> Iterator[WatchEvent]:
        self.calls.append(f"watch@{resource_version}")
        self.selectors.append(label_selector)
        step = self.watches.pop(0) if self.watches else Expired
        if isinstance(step, list):
            for event_type, obj in step:
                yield WatchEvent(event_type, obj)
            return
        raise step()


def run_loop(
    gateway: ScriptedGateway,
    queue: WorkQueue[Key],
    *,
    kind: str = Kind.MYSQL,
    selector: str = "",
    backoff: Backoff[str] | None = None,
    health: Health | None = None,
) -> WatchLoop:
    loop = WatchLoop(
        cast(Gateway, gateway),
        queue,
        health or Health(stale_after_s=60),
        namespace=NAMESPACE,
        resync_period_s=3600,
        watch_timeout_s=60,
        backoff=backoff or Backoff(base_s=0, cap_s=0),
        kind=kind,
        label_selector=selector,
    )
    gateway.loop = loop
    loop.run()
    return loop


def mysql(name: str, version: str = "10", **metadata: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": NAMESPACE,
            "name": name,
            "uid": f"uid-{name}",
            "generation": 1,
            "resourceVersion": version,
            **metadata,
        }
    }


def drain(queue: WorkQueue[Key]) -> list[Key]:
    keys = []
    while (key := queue.get(timeout_s=0)) is not None:
        keys.append(key)
        queue.done(key)
    return keys


# -- the MySQL loop -------------------------------------------------------------------------


def test_the_loop_lists_watches_from_the_version_and_relists_on_410() -> None:
    queue: WorkQueue[Key] = WorkQueue()
    health = Health(stale_after_s=60)
    gateway = ScriptedGateway(
        lists=[[mysql("a"), mysql("b")], [mysql("a")]],
        watches=[[("ADDED", mysql("c", version="11"))], Expired],
    )
    run_loop(gateway, queue, health=health)
    # list, watch from the list's version, again from the event's version (the server
    # closed the first watch), 410 -> list again, watch, 410, list fails -> stop.
    assert gateway.calls[:5] == ["list", "watch@10", "watch@11", "list", "watch@10"]
    # Every listed object is queued, like a new one; each key once while it waits.
    assert drain(queue) == [(NAMESPACE, "c"), (NAMESPACE, "a"), (NAMESPACE, "b")]
    assert not health.healthy(), "a stopped loop is reported"


def test_a_new_object_is_urgent_and_a_listed_one_is_not() -> None:
    queue: WorkQueue[Key] = WorkQueue()
    gateway = ScriptedGateway(
        lists=[[mysql("listed")]], watches=[[("ADDED", mysql("new", version="11"))]]
    )
    run_loop(gateway, queue)
    assert drain(queue) == [(NAMESPACE, "new"), (NAMESPACE, "listed")]


def test_a_resync_list_does_not_end_a_backoff() -> None:
    queue: WorkQueue[Key] = WorkQueue()
    queue.add_after((NAMESPACE, "failing"), 300, backoff=True)
    run_loop(ScriptedGateway(lists=[[mysql("failing")]]), queue)
    assert drain(queue) == []


def test_an_edit_ends_a_backoff() -> None:
    queue: WorkQueue[Key] = WorkQueue()
    queue.add_after((NAMESPACE, "failing"), 300, backoff=True)
    edited = mysql("failing", version="11", generation=2)
    gateway = ScriptedGateway(lists=[[mysql("failing")]], watches=[[("MODIFIED", edited)]])
    run_loop(gateway, queue)
    assert drain(queue) == [(NAMESPACE, "failing")]


def test_the_reconcilers_own_status_write_does_not_requeue() -> None:
    queue: WorkQueue[Key] = WorkQueue()
    queue.add_after((NAMESPACE, "a"), 300, backoff=False)
    status_write = {**mysql("a", version="11"), "status": {"conditions": []}}
    gateway = ScriptedGateway(lists=[[mysql("a")]], watches=[[("MODIFIED", status_write)]])
    run_loop(gateway, queue)
    assert drain(queue) == []


def test_adding_the_operators_finalizer_does_not_requeue_but_removing_it_does() -> None:
    queue: WorkQueue[Key] = WorkQueue()
    for name in ("added", "theirs", "removed"):
        queue.add_after((NAMESPACE, name), 300, backoff=False)
    added = mysql("added", version="11", finalizers=[FINALIZER])
    theirs = mysql("theirs", version="12", finalizers=[FINALIZER, "example.com/hold"])
    removed = mysql("removed", version="13", finalizers=[])  # by hand, on a live object
    gateway = ScriptedGateway(
        lists=[
            [
                mysql("added"),
                mysql("theirs", finalizers=[FINALIZER]),
                mysql("removed", finalizers=[FINALIZER]),
            ]
        ],
        watches=[[("MODIFIED", added), ("MODIFIED", theirs), ("MODIFIED", removed)]],
    )
    run_loop(gateway, queue)
    assert drain(queue) == [(NAMESPACE, "theirs"), (NAMESPACE, "removed")]


def test_an_instance_on_its_way_is_not_sent_behind_a_burst_by_its_own_finalizer() -> None:
    """A burst: `first` is being reconciled when the reconciler adds its finalizer (an
    event the loop sees meanwhile) and its claims bind (a wake). After the reconcile it
    must not wait behind the 49 new objects still queued."""
    queue: WorkQueue[Key] = WorkQueue()
    burst = [mysql(f"s-{index:02}") for index in range(50)]
    for obj in burst:
        queue.add((NAMESPACE, obj["metadata"]["name"]), urgent=True)
    first = queue.get(timeout_s=0)
    assert first == (NAMESPACE, "s-00")
    with_finalizer = mysql("s-00", version="11", finalizers=[FINALIZER])
    gateway = ScriptedGateway(lists=[burst], watches=[[("MODIFIED", with_finalizer)]])
    run_loop(gateway, queue)
    queue.add(first, wake=True)  # its claim bound
    queue.done(first)
    # Urgent and progress keys take turns, and a new object was served last.
    assert [queue.get(timeout_s=0), queue.get(timeout_s=0)] == [first, (NAMESPACE, "s-01")]


def test_the_label_selector_reaches_list_and_watch() -> None:
    gateway = ScriptedGateway(lists=[[]], watches=[[]])
    run_loop(gateway, WorkQueue(), selector="shard=a")
    assert set(gateway.selectors) == {"shard=a"}


class CountingBackoff(Backoff[str]):
    """Records how many failures each delay was computed from."""

    def __init__(self) -> None:
        super().__init__(base_s=0, cap_s=0)
        self.failures_before_each_delay: list[int] = []

    def next_delay(self, key: str) -> float:
        self.failures_before_each_delay.append(self.failures(key))
        return super().next_delay(key)


def test_a_successful_list_resets_the_reconnect_backoff() -> None:
    # Failures spread over hours, each after a good list, must not add up to the cap.
    backoff = CountingBackoff()
    gateway = ScriptedGateway(lists=[[], []], watches=[ApiUnavailable, ApiUnavailable])
    run_loop(gateway, WorkQueue(), backoff=backoff)
    assert gateway.calls == ["list", "watch@10", "list", "watch@10", "list"]
    # 0 earlier failures after each good list; 1 before the failed list's delay.
    assert backoff.failures_before_each_delay == [0, 0, 1]


# -- the loops over the instance's objects --------------------------------------------------


def owned(obj: dict[str, Any]) -> dict[str, Any]:
    return {**obj, "metadata": {**obj["metadata"], "resourceVersion": "11"}}


def test_a_changed_pod_wakes_its_instance() -> None:
    queue: WorkQueue[Key] = WorkQueue()
    queue.add_after(KEY_OF_INSTANCE, 30, backoff=False)
    gateway = ScriptedGateway(lists=[[]], watches=[[("MODIFIED", owned(pod()))]])
    run_loop(gateway, queue, kind=Kind.POD, selector=OWNED_SELECTOR)
    assert drain(queue) == [KEY_OF_INSTANCE]


def test_a_changed_job_does_not_end_its_instances_backoff() -> None:
    queue: WorkQueue[Key] = WorkQueue()
    queue.add_after(KEY_OF_INSTANCE, 30, backoff=True)
    gateway = ScriptedGateway(lists=[[]], watches=[[("MODIFIED", owned(job()))]])
    run_loop(gateway, queue, kind=Kind.JOB, selector=OWNED_SELECTOR)
    assert drain(queue) == []


def test_a_listed_pod_wakes_nothing() -> None:
    queue: WorkQueue[Key] = WorkQueue()
    run_loop(ScriptedGateway(lists=[[pod()]]), queue, kind=Kind.POD)
    assert drain(queue) == []


def test_a_listed_claim_being_deleted_wakes_its_instance() -> None:
    # Its MySQL object may be gone: only this tells the operator to keep the volume.
    queue: WorkQueue[Key] = WorkQueue()
    claims = [claim(), claim("mysql-instance-backup", deleting=True)]
    run_loop(ScriptedGateway(lists=[claims]), queue, kind=Kind.CLAIM)
    assert drain(queue) == [KEY_OF_INSTANCE]


def test_a_listed_claim_being_deleted_does_not_end_a_backoff() -> None:
    queue: WorkQueue[Key] = WorkQueue()
    queue.add_after(KEY_OF_INSTANCE, 30, backoff=True)
    deleting = [claim(deleting=True)]
    run_loop(ScriptedGateway(lists=[deleting]), queue, kind=Kind.CLAIM)
    assert drain(queue) == []


def test_an_object_without_an_instance_label_wakes_nothing() -> None:
    queue: WorkQueue[Key] = WorkQueue()
    stranger = {"metadata": {"namespace": NAMESPACE, "name": "x", "resourceVersion": "11"}}
    run_loop(ScriptedGateway(lists=[[]], watches=[[("ADDED", stranger)]]), queue, kind=Kind.POD)
    assert drain(queue) == []


def test_the_instance_key_comes_from_the_labels() -> None:
    assert instance_key(pod()) == KEY_OF_INSTANCE
    assert instance_key({"metadata": {"namespace": NAMESPACE, "labels": {}}}) is None
    assert instance_key({"metadata": {"labels": {"app.kubernetes.io/instance": NAME}}}) is None


# -- health and intent ----------------------------------------------------------------------


def test_health_needs_every_loop_recent() -> None:
    health = Health(stale_after_s=60)
    assert not health.healthy(), "nothing watching yet"
    health.register("watch:a")
    health.register("watch:b")
    assert health.healthy()
    health.stopped("watch:b")
    assert not health.healthy()
    assert health.stale_loops() == ["watch:b"]


def spec_object(**metadata: Any) -> dict[str, Any]:
    base = {"namespace": "ns", "name": "db", "uid": "u1", "generation": 1, "finalizers": ["f"]}
    return {"metadata": {**base, **metadata}, "spec": {}, "status": {}}


def test_a_status_only_change_is_not_queued_but_every_intent_change_is() -> None:
    seen = intent(spec_object())
    status_write = spec_object(resourceVersion="12")
    status_write["status"] = {"conditions": [{"type": "Ready", "status": "False"}]}
    assert not worth_queueing("MODIFIED", status_write, seen)
    changes: list[Mapping[str, Any]] = [
        spec_object(generation=2),
        spec_object(deletionTimestamp="2026-11-26T00:00:00Z"),
        spec_object(finalizers=[]),
        spec_object(labels={"team": "a"}),
        spec_object(annotations={"otus.homework/retry": "1"}),
        spec_object(uid="u2"),  # deleted and created again between two events
    ]
    for changed in changes:
        assert worth_queueing("MODIFIED", changed, seen), changed["metadata"]
    # Never seen before, added or deleted: always queued.
    assert worth_queueing("MODIFIED", status_write, None)
    assert worth_queueing("ADDED", status_write, seen)
    assert worth_queueing("DELETED", status_write, seen)


# -- the MySQLBackup loop -------------------------------------------------------------------


def backup(
    name: str, instance: str = "db", phase: str | None = None, **labels: str
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "metadata": {
            "namespace": NAMESPACE,
            "name": name,
            "uid": f"uid-{name}",
            "labels": labels,
            "resourceVersion": "11",
        },
        "spec": {"instance": instance},
    }
    if phase is not None:
        found["status"] = {"phase": phase}
    return found


def run_backup_loop(
    gateway: ScriptedGateway, queue: WorkQueue[Key], index: BackupIndex
) -> WatchLoop:
    loop = WatchLoop(
        cast(Gateway, gateway),
        queue,
        Health(stale_after_s=60),
        namespace=NAMESPACE,
        resync_period_s=3600,
        watch_timeout_s=60,
        backoff=Backoff(base_s=0, cap_s=0),
        kind=Kind.BACKUP,
        backups=index,
    )
    gateway.loop = loop
    loop.run()
    return loop


def test_a_new_backup_request_wakes_the_instance_it_names_and_is_indexed() -> None:
    queue: WorkQueue[Key] = WorkQueue()
    index = BackupIndex()
    gateway = ScriptedGateway(lists=[[]], watches=[[("ADDED", backup("now"))]])
    run_backup_loop(gateway, queue, index)
    assert drain(queue) == [(NAMESPACE, "db")]
    assert index.open_for((NAMESPACE, "db")) == ("now",)


def test_finished_deleted_and_operator_records_are_not_indexed() -> None:
    queue: WorkQueue[Key] = WorkQueue()
    index = BackupIndex()
    listed = [
        backup("done", phase="Succeeded"),
        backup("failed", phase="Failed"),
        backup("running", phase="Running"),
        backup("pending"),
        backup("db-20260101120000", **{LABEL_TRIGGER: "delete"}),
        backup("other", instance="other-db"),
    ]
    events = [("MODIFIED", backup("running", phase="Succeeded")), ("DELETED", backup("pending"))]
    gateway = ScriptedGateway(lists=[listed], watches=[events])
    run_backup_loop(gateway, queue, index)
    # The list woke each instance with an unfinished request, but not for the records.
    assert sorted(drain(queue)) == [(NAMESPACE, "db"), (NAMESPACE, "other-db")]
    assert index.open_for((NAMESPACE, "db")) == ()
    assert index.open_for((NAMESPACE, "other-db")) == ("other",)


def test_a_fresh_list_replaces_what_the_index_knew_of_its_namespace() -> None:
    index = BackupIndex()
    index.update(backup("gone-while-disconnected"), deleted=False)
    elsewhere = {**backup("x"), "metadata": {**backup("x")["metadata"], "namespace": "other"}}
    index.update(elsewhere, deleted=False)
    index.replace_namespace(NAMESPACE, (backup("new"),))
    assert index.open_for((NAMESPACE, "db")) == ("new",)
    assert index.open_for(("other", "db")) == ("x",)


class StreamedResponse:
    """What a watch request returns: newline-separated events."""

    status = 200

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.body = b"".join(json.dumps(event).encode() + b"\n" for event in events)

    def stream(self, amt: int | None = None, decode_content: bool = False) -> Iterator[bytes]:
        yield self.body

    def release_conn(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_watch_events_stay_json_without_building_typed_models(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The client builds a typed model (a V1Pod) for each event of a typed lister, about
    2 ms each, unless told the events' type is plain `object`; the loops read only the
    JSON."""
    built: list[object] = []
    real_deserialize = client.ApiClient.deserialize

    def recording_deserialize(api: client.ApiClient, text: str, kind: Any, *rest: Any) -> Any:
        built.append(kind)
        return real_deserialize(api, text, kind, *rest)

    monkeypatch.setattr(client.ApiClient, "deserialize", recording_deserialize)
    gateway = Gateway(client.ApiClient())
    sent = [{"type": "MODIFIED", "object": pod()}, {"type": "DELETED", "object": pod()}]

    def list_pod_for_all_namespaces(**_: Any) -> client.V1PodList:
        return cast(client.V1PodList, StreamedResponse(sent))

    # The client finds the model from the lister's annotation, which must be the class.
    list_pod_for_all_namespaces.__annotations__["return"] = client.V1PodList
    monkeypatch.setattr(gateway.core, "list_pod_for_all_namespaces", list_pod_for_all_namespaces)
    events = list(gateway.watch(Kind.POD, None, "1", 5))

    assert events == [WatchEvent("MODIFIED", pod()), WatchEvent("DELETED", pod())]
    assert built == [object, object]


class PagedLister:
    """A list endpoint that serves `pages` one per call, linked by continue tokens."""

    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        self.pages = pages
        self.calls: list[dict[str, Any]] = []

    def __call__(self, *args: str, **options: Any) -> Any:
        self.calls.append(options)
        index = len(self.calls) - 1
        more = index + 1 < len(self.pages)
        metadata = {"resourceVersion": "42", **({"continue": f"token-{index + 1}"} if more else {})}
        body = json.dumps({"items": self.pages[index], "metadata": metadata}).encode()
        return SimpleNamespace(data=body)


def test_a_list_comes_page_by_page_and_keeps_what_the_caller_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gateway = Gateway(client.ApiClient())
    pods = [owned(pod()) for _ in range(5)]
    for number, item in enumerate(pods):
        item["metadata"] = {**item["metadata"], "name": f"pod-{number}"}
    lister = PagedLister([pods[:2], pods[2:4], pods[4:]])
    monkeypatch.setattr(gateway.core, "list_pod_for_all_namespaces", lister)

    listing = gateway.list(Kind.POD, None, OWNED_SELECTOR, keep=listed_fields(Kind.POD))

    assert [item["metadata"]["name"] for item in listing.items] == [
        f"pod-{number}" for number in range(5)
    ]
    assert all(set(item) == {"metadata"} for item in listing.items)
    assert listing.resource_version == "42"
    assert [call.get("_continue") for call in lister.calls] == [None, "token-1", "token-2"]
    assert {call["limit"] for call in lister.calls} == {LIST_PAGE_SIZE}
    assert {call["label_selector"] for call in lister.calls} == {OWNED_SELECTOR}


def test_listed_objects_keep_the_metadata_and_a_backup_its_spec_and_status() -> None:
    managed = {"managedFields": [{"manager": "kubectl"}]}
    listed = mysql("a")
    listed["metadata"] = {**listed["metadata"], **managed}
    kept = listed_fields(Kind.MYSQL)(listed)
    assert kept == {
        "metadata": {k: v for k, v in listed["metadata"].items() if k != "managedFields"}
    }
    assert intent(kept) == intent(listed)

    record = backup("now")
    record["metadata"] = {**record["metadata"], **managed}
    kept_backup = listed_fields(Kind.BACKUP)(record)
    assert kept_backup["spec"] == record["spec"]
    assert kept_backup.get("status") == record.get("status")
    assert "managedFields" not in kept_backup["metadata"]
