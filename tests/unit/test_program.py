"""The stack program under Pulumi's own mocks: it registers exactly the manifests of
`manifests.py`, with the options each object needs (retain_on_delete on storage, no
awaiting, forced upserts, secrets wrapped, fixed logical names for Jobs, dependencies).

What the manifests say is tested on the dicts in test_manifests.py; this file is about
what the program adds to them.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pulumi
import pytest

from reconciler import manifests
from reconciler.desired import Desired
from reconciler.program import PATCH_FORCE, SKIP_AWAIT, ClusterAccess, build_program
from reconciler.vocabulary import Stage
from tests.unit.builders import (
    BACKUP_CLAIM,
    BACKUP_JOB_1,
    DATA_CLAIM,
    NAME,
    PASSWORD,
    RESTORE_JOB_1,
    STATIC_BACKUP_PV,
    STATIC_DATA_PV,
    desired,
)
from tests.unit.pulumi_mocks import (
    SECRET_SIG,
    SECRET_SIG_KEY,
    RecordingMonitor,
    Registration,
    plain_strings,
)

pytestmark = pytest.mark.unit

PVC = "kubernetes:core/v1:PersistentVolumeClaim"
PV = "kubernetes:core/v1:PersistentVolume"
JOB = "kubernetes:batch/v1:Job"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
SECRET = "kubernetes:core/v1:Secret"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
PROVIDER = "pulumi:providers:kubernetes"
TYPES = {
    "PersistentVolumeClaim": PVC,
    "PersistentVolume": PV,
    "Job": JOB,
    "Deployment": DEPLOYMENT,
    "Service": SERVICE,
    "Secret": SECRET,
    "ConfigMap": CONFIG_MAP,
}
HOST_PATHS: dict[str, Any] = {"host_path": "/mnt/mysql", "backup": {"host_path": "/mnt/dumps"}}


class Rendered:
    def __init__(self, registrations: list[Registration]) -> None:
        self.all = registrations

    def one(self, type_: str, name: str) -> Registration:
        found = [r for r in self.all if r.type == type_ and r.name == name]
        assert len(found) == 1, f"{type_} {name}: {[(r.type, r.name) for r in self.all]}"
        return found[0]

    def objects(self) -> list[Registration]:
        return [r for r in self.all if r.type != PROVIDER]

    def by_object_name(self, type_: str, name: str) -> Registration:
        """The registration whose Kubernetes object (metadata.name) is `name`."""
        found = [
            r for r in self.objects() if r.type == type_ and r.inputs["metadata"]["name"] == name
        ]
        assert len(found) == 1, f"{type_} {name}"
        return found[0]


def render(of: Desired, cluster: ClusterAccess | None = None) -> Rendered:
    monitor = RecordingMonitor()
    pulumi.runtime.set_mocks(monitor.mocks, monitor=monitor, preview=False)
    program = build_program(of, cluster or ClusterAccess(kubeconfig="/dev/null/kubeconfig"))

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> None:
        program()

    run()
    return Rendered(monitor.registrations)


EVERY_STAGE = pytest.mark.parametrize("stage", list(Stage))


@pytest.fixture(scope="module")
def serving() -> Rendered:
    return render(desired(Stage.SERVING, **HOST_PATHS))


# -- the manifests, unchanged ---------------------------------------------------------------


@EVERY_STAGE
def test_the_program_registers_exactly_the_stage_manifests(stage: Stage) -> None:
    of = desired(stage, **HOST_PATHS)
    rendered = render(of)
    registered = {(r.type, r.inputs["metadata"]["name"]) for r in rendered.objects()}
    assert registered == {(TYPES[m["kind"]], m["metadata"]["name"]) for m in manifests.rendered(of)}


@EVERY_STAGE
def test_manifests_reach_the_engine_as_built(stage: Stage) -> None:
    of = desired(stage, **HOST_PATHS)
    rendered = render(of)
    for manifest in manifests.rendered(of):
        registration = rendered.by_object_name(
            TYPES[manifest["kind"]], manifest["metadata"]["name"]
        )
        inputs = registration.inputs
        metadata = dict(inputs["metadata"])
        metadata.pop("annotations")
        assert metadata == manifest["metadata"], manifest["metadata"]["name"]
        for field in ("spec", "data", "stringData", "type"):
            if field in manifest:
                assert inputs[field] == manifest[field], (manifest["metadata"]["name"], field)


def test_every_object_is_applied_without_waiting_and_with_force(serving: Rendered) -> None:
    for registration in serving.objects():
        annotations = registration.inputs["metadata"]["annotations"]
        assert annotations == {SKIP_AWAIT: "true", PATCH_FORCE: "true"}, registration.name


# -- options --------------------------------------------------------------------------------


def test_the_provider_applies_server_side_with_the_cluster_access() -> None:
    rendered = render(desired(), ClusterAccess(kubeconfig="/etc/kube/config", context="ops"))
    provider = rendered.one(PROVIDER, "kubernetes").inputs
    assert provider["enableServerSideApply"] in (True, "true")
    assert provider["enableSecretMutable"] in (True, "true")
    assert provider["enableConfigMapMutable"] in (True, "true")
    assert provider["kubeconfig"] == "/etc/kube/config"
    assert provider["context"] == "ops"


def test_every_object_uses_the_provider_and_deletes_before_replacing(serving: Rendered) -> None:
    provider_urn = serving.one(PROVIDER, "kubernetes").urn
    for registration in serving.objects():
        assert registration.provider.startswith(provider_urn + "::"), registration.name
        assert registration.delete_before_replace, registration.name


@EVERY_STAGE
def test_claims_and_static_volumes_are_retained_on_delete_and_nothing_else(stage: Stage) -> None:
    rendered = render(desired(stage, **HOST_PATHS))
    retained = {r.inputs["metadata"]["name"] for r in rendered.objects() if r.retain_on_delete}
    assert retained == {DATA_CLAIM, BACKUP_CLAIM, STATIC_DATA_PV, STATIC_BACKUP_PV}


def test_nothing_is_protected(serving: Rendered) -> None:
    # protect would make `destroy` fail; retain_on_delete is what keeps the data.
    assert [r.name for r in serving.all if r.protect] == []


def test_jobs_keep_one_logical_name_across_attempts() -> None:
    first = render(desired(Stage.RESTORING, restore_attempt=1))
    second = render(desired(Stage.RESTORING, restore_attempt=2))
    assert first.one(JOB, "restore").inputs["metadata"]["name"] == RESTORE_JOB_1
    assert second.one(JOB, "restore").inputs["metadata"]["name"] == (
        "mysql-instance-restore-0f3c2a9e-2"
    )
    backup = render(desired(Stage.FINAL_BACKUP))
    assert backup.one(JOB, "backup").inputs["metadata"]["name"] == BACKUP_JOB_1


def test_a_finished_gated_restore_job_keeps_the_spec_it_ran_with() -> None:
    gated = replace(desired(Stage.SERVING), readiness_gated=True)
    assert render(gated).one(JOB, "restore").ignore_changes == ()
    finished = render(replace(gated, restore_finished=True))
    assert finished.one(JOB, "restore").ignore_changes == ("spec",)
    assert [r.name for r in finished.objects() if r.ignore_changes] == ["restore"]


def test_other_objects_are_named_after_their_kubernetes_object(serving: Rendered) -> None:
    for registration in serving.objects():
        assert registration.name == registration.inputs["metadata"]["name"]


# -- dependencies ---------------------------------------------------------------------------


def test_a_claim_waits_for_its_static_volume(serving: Rendered) -> None:
    assert serving.one(PV, STATIC_DATA_PV).urn in serving.one(PVC, DATA_CLAIM).dependencies
    assert serving.one(PV, STATIC_BACKUP_PV).urn in serving.one(PVC, BACKUP_CLAIM).dependencies


def test_the_server_waits_for_its_claim_password_and_scripts(serving: Rendered) -> None:
    dependencies = serving.one(DEPLOYMENT, NAME).dependencies
    assert serving.one(PVC, DATA_CLAIM).urn in dependencies
    assert serving.one(SECRET, "mysql-instance-credentials").urn in dependencies
    assert serving.one(CONFIG_MAP, "mysql-instance-scripts").urn in dependencies


def test_the_restore_job_waits_for_the_server_and_its_inputs() -> None:
    rendered = render(desired(Stage.RESTORING))
    dependencies = rendered.one(JOB, "restore").dependencies
    for type_, name in (
        (DEPLOYMENT, NAME),
        (SERVICE, "mysql-instance-internal"),
        (CONFIG_MAP, "mysql-instance-scripts"),
        (PVC, BACKUP_CLAIM),
    ):
        assert rendered.one(type_, name).urn in dependencies, name


def test_the_final_backup_starts_only_after_clients_are_cut_off() -> None:
    rendered = render(desired(Stage.FINAL_BACKUP))
    client_service = rendered.one(SERVICE, NAME)
    assert client_service.inputs["spec"]["selector"]["otus.homework/clients-cut-off"] == "true"
    assert client_service.urn in rendered.one(JOB, "backup").dependencies


# -- the password ---------------------------------------------------------------------------


@EVERY_STAGE
def test_no_plaintext_password_reaches_the_engine(stage: Stage) -> None:
    rendered = render(desired(stage))
    for registration in rendered.all:
        leaks = [s for s in plain_strings(registration.wire) if PASSWORD in s]
        assert not leaks, f"{registration.type} {registration.name} has the password in plain"


def test_the_credentials_secret_is_a_secret_in_and_out(serving: Rendered) -> None:
    secret = serving.one(SECRET, "mysql-instance-credentials")
    assert secret.wire["stringData"][SECRET_SIG_KEY] == SECRET_SIG
    assert secret.inputs["stringData"] == {"password": PASSWORD}
    assert set(secret.additional_secret_outputs) == {"data", "stringData"}


def test_a_password_secret_ref_declares_no_secret() -> None:
    rendered = render(desired(password=None, passwordSecretRef={"name": "root-pw"}))
    assert [r for r in rendered.all if r.type == SECRET] == []


# -- the adoption assumption ----------------------------------------------------------------


def test_the_upsert_that_adoption_relies_on_still_holds() -> None:
    # A new stack takes live objects over (lost state, re-created instance) because
    # pulumi-kubernetes creates with a server-side apply upsert. From 4.29 that needs the
    # Provider's upsertExistingObjects: set it in program.py before raising the pin.
    major, minor = (int(part) for part in version("pulumi-kubernetes").split(".")[:2])
    assert (major, minor) < (4, 29), "set upsertExistingObjects on the Provider in program.py"


def test_importing_the_program_loads_the_api_groups_it_uses() -> None:
    """Workers run programs in threads; a lazily loaded module met first by two of them at
    once can be half-loaded. A fresh interpreter shows what the import alone loads."""
    groups = [f"pulumi_kubernetes.{group}.v1" for group in ("meta", "core", "apps", "batch")]
    probe = (
        "import sys, types, reconciler.program\n"
        f"print([type(sys.modules.get(name)) is types.ModuleType for name in {groups!r}])"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert result.stdout.strip() == repr([True] * len(groups)), result.stdout
