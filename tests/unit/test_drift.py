"""Drift (reconciler/drift.py): declared fields of the Deployment and Services against the
live objects, with what the API server adds or rewrites left alone, and what a Ready
instance does about it (heal once per drift, or report)."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from reconciler.actions import Deploy, MarkReady
from reconciler.conditions import ConditionType, Reason, Status, find
from reconciler.drift import drift_step, drifted, signature
from reconciler.fingerprint import inputs_fingerprint
from reconciler.lifecycle import decide_lifecycle
from reconciler.manifests import rendered
from reconciler.policy import desired_for
from reconciler.transitions import Moment, ready
from reconciler.vocabulary import Stage
from tests.unit.builders import (
    FINGERPRINT_KEY,
    NAME,
    NOW,
    instance,
    mysql_object,
    observe,
    serving_live,
)
from tests.unit.test_lifecycle import SERVING

pytestmark = pytest.mark.unit


def as_served(manifest: dict[str, Any]) -> dict[str, Any]:
    """The object as the API server returns it: defaults added, quantities rewritten."""
    live = copy.deepcopy(manifest)
    spec = live["spec"]
    if live["kind"] == "Service":
        spec.update(clusterIP="10.96.0.7", sessionAffinity="None")
        for port in spec["ports"]:
            port["protocol"] = "TCP"
    if live["kind"] == "Deployment":
        spec.update(progressDeadlineSeconds=600, revisionHistoryLimit=10)
        pod = spec["template"]["spec"]
        pod.update(dnsPolicy="ClusterFirst", schedulerName="default-scheduler")
        for container in pod["containers"]:
            container["imagePullPolicy"] = "IfNotPresent"
            for amounts in container.get("resources", {}).values():
                for key, value in amounts.items():
                    amounts[key] = {"1024Mi": "1Gi", "0.5": "500m"}.get(value, value)
        spec["template"]["metadata"].setdefault("annotations", {})[
            "kubectl.kubernetes.io/restartedAt"
        ] = "2026-12-01T00:00:00Z"
    return live


SERVING_DESIRED = desired_for(
    instance(resources={"limits": {"memory": "1024Mi", "cpu": "0.5"}}), Stage.SERVING, SERVING
)


def live_of(manifests: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (m["kind"], m["metadata"]["name"]): as_served(m)
        for m in manifests
        if m["kind"] in ("Deployment", "Service")
    }


def test_what_the_api_server_adds_or_rewrites_is_not_drift() -> None:
    manifests = rendered(SERVING_DESIRED)
    assert drifted(manifests, live_of(manifests)) == ()


def test_an_image_and_a_port_edited_by_hand_are_named() -> None:
    manifests = rendered(SERVING_DESIRED)
    live = live_of(manifests)
    live[("Deployment", NAME)]["spec"]["template"]["spec"]["containers"][0]["image"] = "mysql:8.0"
    live[("Service", NAME)]["spec"]["ports"][0]["port"] = 3307
    assert drifted(manifests, live) == (
        f"Deployment/{NAME} spec.template.spec.containers[0].image: declared 'mysql:5.7', "
        "found 'mysql:8.0'",
        f"Service/{NAME} spec.ports[0].port: declared 3306, found 3307",
    )


def test_an_added_env_var_or_replica_count_is_drift_and_a_missing_object_is_not() -> None:
    manifests = rendered(SERVING_DESIRED)
    live = live_of(manifests)
    container = live[("Deployment", NAME)]["spec"]["template"]["spec"]["containers"][0]
    declared = len(container["env"])
    container["env"].append({"name": "DEBUG", "value": "1"})
    del live[("Service", f"{NAME}-internal")]
    assert drifted(manifests, live) == (
        f"Deployment/{NAME} spec.template.spec.containers[0].env: declared {declared} entries, "
        f"found {declared + 1} entries",
    )


def ready_observation(
    drift_mode: str = "Heal", *, image: str = "mysql:8.0", healed: str | None = None
) -> Any:
    status = replace(SERVING, drift_healed=healed)
    obj = mysql_object(status=status, drift=drift_mode)
    manifests = rendered(desired_for(instance(drift=drift_mode), Stage.SERVING, SERVING))
    live = live_of(manifests)
    live[("Deployment", NAME)]["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return observe(obj, live=replace(serving_live(), workload_objects=tuple(live.items())))


def test_heal_runs_an_up_with_refresh_naming_what_it_reverts() -> None:
    action = decide_lifecycle(ready_observation())
    assert isinstance(action, Deploy)
    assert action.refresh
    assert action.reason is Reason.DRIFT_HEALING
    (healed,) = action.heals
    assert "containers[0].image: declared 'mysql:5.7', found 'mysql:8.0'" in healed
    assert healed in action.message
    assert action.replace == (), "a Deployment is healed in place, never re-created"


def test_a_drifted_service_is_created_again_by_the_heal() -> None:
    observation = ready_observation(image="mysql:5.7")
    live = dict(observation.live.workload_objects)
    live[("Service", NAME)]["spec"]["ports"][0]["port"] = 3307
    action = decide_lifecycle(
        replace(observation, live=replace(observation.live, workload_objects=tuple(live.items())))
    )
    assert isinstance(action, Deploy)
    assert action.replace == (NAME,)


def test_a_drift_the_heal_did_not_revert_is_only_reported() -> None:
    first = decide_lifecycle(ready_observation())
    assert isinstance(first, Deploy)
    again = decide_lifecycle(ready_observation(healed=signature(first.heals)))
    assert isinstance(again, MarkReady)
    assert again.drift is not None
    assert again.drift[0] is Reason.DRIFT_NOT_HEALED


def test_report_sets_the_condition_and_runs_nothing() -> None:
    action = decide_lifecycle(ready_observation("Report"))
    assert isinstance(action, MarkReady)
    assert action.drift is not None
    reason, message = action.drift
    assert reason is Reason.DRIFTED
    assert "containers[0].image" in message
    marked = ready(SERVING, action.message, Moment(1, NOW), action.drift)
    found = find(marked.conditions, ConditionType.DRIFT_DETECTED)
    assert found is not None
    assert (found.status, found.reason) == (Status.TRUE, Reason.DRIFTED)


def test_no_drift_clears_the_condition_and_the_heal_record() -> None:
    action = decide_lifecycle(ready_observation(image="mysql:5.7", healed="abc"))
    assert isinstance(action, MarkReady)
    assert action.drift == (Reason.NO_DRIFT, "the Deployment and Services are as declared")
    marked = ready(
        replace(SERVING, drift_healed="abc"), action.message, Moment(1, NOW), action.drift
    )
    found = find(marked.conditions, ConditionType.DRIFT_DETECTED)
    assert found is not None
    assert found.status is Status.FALSE
    assert marked.drift_healed is None


def test_unread_objects_decide_nothing() -> None:
    obs = observe(mysql_object(status=SERVING))
    assert drift_step(obs, instance(), SERVING_DESIRED, "f") is None


def test_the_drift_mode_is_not_an_input_of_the_stack() -> None:
    heal = desired_for(instance(), Stage.SERVING, SERVING)
    report = desired_for(instance(drift="Report"), Stage.SERVING, SERVING)
    assert inputs_fingerprint(heal, FINGERPRINT_KEY) == inputs_fingerprint(report, FINGERPRINT_KEY)
