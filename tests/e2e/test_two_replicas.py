"""Two replicas with their stacks on S3, on the real node: the operator installed with
`backendUrl` (the cluster's MinIO) and `leaderElection`, three instances of the original
example, and the leader's pod killed while an `up` holds a stack lock. The follower takes
over within 30 s, every instance becomes Ready, no lock is left in the bucket, and no two
updates of one stack overlap in the engine's history. Then CI's preview, from this host
with the bucket, the passphrase and a kubeconfig that may only read MySQL objects, gives
the same plan as the preview inside the operator's pod."""

from __future__ import annotations

import base64
import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import yaml
from kubernetes import client
from localcluster import object_store

from bench.cluster import s3_backend_url
from reconciler.leases import DEFAULT_LEASE_NAME
from reconciler.s3 import S3Client
from tests.e2e.conftest import RealNode
from tests.e2e.data_story import ORIGINAL_SPEC, e2e_harness
from tests.e2e.test_in_cluster import DEPLOYMENT, operator_log, preview_in_pod
from tests.e2e.test_local_s3 import host_client
from tests.harness import REPO_ROOT
from tests.local_s3 import prefix_of_its_own
from tests.pulumi_project import Project, new_project
from tests.reader_kubeconfig import reader_kubeconfig
from tests.support import eventually

pytestmark = pytest.mark.e2e

NAMES: Final = ("first", "second", "third")
BUCKET: Final = "pulumi-state"
STORE_SECRET: Final = "state-store"
TAKEOVER_LIMIT_S: Final = 30.0
READY_TIMEOUT_S: Final = 600.0


@pytest.fixture
def store(real_node: RealNode) -> Iterator[tuple[S3Client, str]]:
    """The store as this host reaches it, and a prefix of this test's own (emptied
    afterwards)."""
    s3 = host_client(real_node.api())
    with prefix_of_its_own(s3, BUCKET, "e2e-state") as prefix:
        yield s3, prefix


def lease_holder(core_api: client.ApiClient, namespace: str) -> str | None:
    lease = client.CoordinationV1Api(core_api).read_namespaced_lease(DEFAULT_LEASE_NAME, namespace)
    holder = lease.spec.holder_identity
    return str(holder).rsplit("_", 1)[0] if holder else None  # the pod's name


def locks(s3: S3Client, prefix: str) -> list[str]:
    return [item.key for item in s3.list_objects(BUCKET, f"{prefix}/.pulumi/locks/")]


def updates(s3: S3Client, prefix: str) -> dict[str, list[tuple[int, int]]]:
    """Each stack's updates in the engine's history: (start, end), in unix seconds."""
    found: dict[str, list[tuple[int, int]]] = {}
    for item in s3.list_objects(BUCKET, f"{prefix}/.pulumi/history/"):
        if item.key.endswith(".history.json"):
            entry = json.loads(s3.get_object(BUCKET, item.key))
            stack = item.key.rsplit("/", 2)[-2]
            found.setdefault(stack, []).append((int(entry["startTime"]), int(entry["endTime"])))
    return {stack: sorted(spans) for stack, spans in found.items()}


def preview_from_host(
    manifest: dict[str, Any], url: str, env: dict[str, str], tmp_path: Path
) -> tuple[int, dict[str, Any]]:
    path = tmp_path / f"manifest-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    result = subprocess.run(
        [
            *(sys.executable, "-m", "reconciler", "preview", "-f", str(path), "--output=json"),
            *("--backend-url", url, "--kubeconfig", env["KUBECONFIG"]),
            *("--state-dir", str(tmp_path / "ci-state")),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode in (0, 2), result.stderr
    plan: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, plan


def test_the_leaders_death_during_an_up_loses_nothing_and_ci_previews_from_outside(
    real_node: RealNode,
    reconciler_image: str,
    installation_namespace: str,
    store: tuple[S3Client, str],
    tmp_path: Path,
) -> None:
    s3, prefix = store
    api = real_node.api()
    core = client.CoreV1Api(api)
    with e2e_harness(real_node, tmp_path) as harness:
        # The store's keys in the operator's namespace, before the install needs them.
        core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=installation_namespace))
        )
        published = core.read_namespaced_secret(object_store.SECRET, object_store.NAMESPACE)
        core.create_namespaced_secret(
            installation_namespace,
            client.V1Secret(metadata=client.V1ObjectMeta(name=STORE_SECRET), data=published.data),
        )
        project: Project = new_project(
            tmp_path / "install",
            real_node.kubeconfig,
            {
                "image": reconciler_image,
                "imagePullPolicy": "Never",
                "namespace": installation_namespace,
                "watchedNamespaces": harness.namespace,
                "backendUrl": s3_backend_url(object_store.IN_CLUSTER_ENDPOINT, prefix, BUCKET),
                "backendCredentialsSecret": STORE_SECRET,
                "leaderElection": "true",
                "workers": "2",
            },
        )
        try:
            project.pulumi("up", "--yes", "--skip-preview")
            eventually(
                lambda: harness.apps.read_namespaced_deployment(DEPLOYMENT, installation_namespace),
                lambda d: d.status.ready_replicas == 2,
                timeout_s=300,
                what="both reconciler replicas ready",
            )
            leader = str(
                eventually(
                    lambda: lease_holder(api, installation_namespace),
                    lambda holder: holder is not None,
                    timeout_s=60,
                    what="a leader",
                )
            )

            for name in NAMES:
                harness.create(name, dict(ORIGINAL_SPEC))
            held = eventually(
                lambda: locks(s3, prefix),
                bool,
                timeout_s=180,
                interval_s=0.1,
                what="an `up` holding a stack lock",
            )
            core.delete_namespaced_pod(leader, installation_namespace, grace_period_seconds=0)
            killed = time.monotonic()
            print(f"killed the leader {leader} while it held {held}")
            successor = eventually(
                lambda: lease_holder(api, installation_namespace),
                lambda holder: holder not in (None, leader),
                timeout_s=2 * TAKEOVER_LIMIT_S,
                interval_s=0.5,
                what="another pod leading",
            )
            takeover_s = time.monotonic() - killed
            print(f"{successor} led {takeover_s:.1f}s after the kill")
            assert takeover_s <= TAKEOVER_LIMIT_S

            for name in NAMES:
                harness.wait_ready(name, generation=1)
            assert locks(s3, prefix) == []
            history = updates(s3, prefix)
            assert sorted(history) == sorted(f"{harness.namespace}.{name}" for name in NAMES)
            for stack, spans in history.items():
                for (_, end), (start, _) in itertools.pairwise(spans):
                    assert start >= end, f"{stack}: overlapping updates {spans}"
            # The successor's log says which lock it removed, and why.
            log = core.read_namespaced_pod_log(str(successor), installation_namespace)
            removed = [line for line in log.splitlines() if "removing the lock of" in line]
            print("\n".join(removed) or "the killed `up` left no lock to remove")
            assert all(f"pod {installation_namespace}/{leader}" in line for line in removed)

            # CI's preview: the bucket, the passphrase and a reader of MySQL objects.
            passphrase = core.read_namespaced_secret(
                "mysql-operator-state-passphrase", installation_namespace
            ).data["passphrase"]
            env = {
                **os.environ,
                "KUBECONFIG": str(
                    reader_kubeconfig(
                        api, real_node.kubeconfig, harness.namespace, tmp_path / "reader"
                    )
                ),
                "AWS_ACCESS_KEY_ID": s3.credentials.access_key_id,
                "AWS_SECRET_ACCESS_KEY": s3.credentials.secret_access_key,
                "PULUMI_CONFIG_PASSPHRASE": base64.b64decode(passphrase).decode(),
            }
            url = s3_backend_url(s3.endpoint, prefix, BUCKET)
            same = harness.manifest(NAMES[0], dict(ORIGINAL_SPEC))
            changed = harness.manifest(NAMES[0], {**ORIGINAL_SPEC, "image": "mysql:8.0"})
            from_ci = [preview_from_host(m, url, env, tmp_path) for m in (same, changed)]
            assert from_ci[0][0] == 0, from_ci[0][1]
            assert from_ci[0][1]["hasChanges"] is False
            assert from_ci[1][0] == 2, from_ci[1][1]
            assert [(s["op"], s["type"]) for s in from_ci[1][1]["steps"]] == [
                ("update", "kubernetes:apps/v1:Deployment")
            ]
            in_pod = [preview_in_pod(real_node, installation_namespace, m) for m in (same, changed)]
            assert in_pod == from_ci
        finally:
            lines = operator_log(harness, installation_namespace).splitlines()
            print("--- in-cluster reconcilers' log: warnings and errors ---")
            print("\n".join([line for line in lines if "level=info" not in line][:60]))
            project.pulumi("destroy", "--yes", "--skip-preview")
