"""The original example in a namespace that enforces Pod Security "restricted": the
server, the restore Job and the final backup Job are all admitted there, and the data
story holds (rows survive delete and re-create)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.conftest import RealNode
from tests.e2e.data_story import (
    NAME,
    e2e_harness,
    rows_survive_delete_and_come_back_on_recreate,
)
from tests.harness import Harness

pytestmark = pytest.mark.e2e

RESTRICTED: Final = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def a_root_pod_is_refused(harness: Harness) -> str:
    """The namespace does enforce: a pod as the images run it by default is refused."""
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="as-root"),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="c", image="mysql:5.7", image_pull_policy="Never")]
        ),
    )
    with pytest.raises(ApiException) as refused:
        harness.core.create_namespaced_pod(harness.namespace, pod, dry_run="All")
    assert refused.value.status == 403
    return str(refused.value.body)


def test_the_original_example_keeps_its_data_in_a_restricted_namespace(
    real_node: RealNode, tmp_path: Path
) -> None:
    with e2e_harness(real_node, tmp_path, namespace_labels=RESTRICTED) as harness:
        assert "violates PodSecurity" in a_root_pod_is_refused(harness)
        rows_survive_delete_and_come_back_on_recreate(harness, harness.start)
        (server,) = harness.core.list_namespaced_pod(
            harness.namespace, label_selector=f"app={NAME}"
        ).items
        security = server.spec.security_context
        assert (security.run_as_non_root, security.run_as_user) == (True, 999)
        assert server.spec.automount_service_account_token is False
        # Both Jobs of the story ran there: the final backup, then the restore from it.
        reasons = {event.reason for event in harness.events(NAME)}
        assert {"FinalBackupSucceeded", "RestoreSucceeded"} <= reasons, reasons
