"""kwok and its fake node: pods become Ready and Job pods succeed, with no containers."""

from __future__ import annotations

import json

from localcluster.control_plane import Component, Context, http_ok
from localcluster.layout import REPO_ROOT

FAKE_NODE = "kwok-node-0"
KWOK_STAGES = REPO_ROOT / "hack" / "kwok-stages.yaml"


def kwok_argv(ctx: Context) -> list[str]:
    return [
        ctx.binary("kwok"),
        f"--kubeconfig={ctx.layout.component_kubeconfig('kwok')}",
        f"--config={KWOK_STAGES}",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--node-lease-duration-seconds=40",
        f"--server-address=127.0.0.1:{ctx.ports.kwok}",
        "--node-ip=127.0.0.1",
        "--cidr=10.244.0.0/24",
    ]


KWOK = Component(
    "kwok", kwok_argv, lambda ctx: http_ok(f"http://127.0.0.1:{ctx.ports.kwok}/healthz")
)


def fake_node_manifest() -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": FAKE_NODE,
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {
                    "kubernetes.io/hostname": FAKE_NODE,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
        }
    )
