"""The real node's default StorageClass: rancher's local-path-provisioner as a host process.

As on kind: the class `standard` is the cluster default, binds WaitForFirstConsumer
(a volume is made on the node where its first pod is scheduled) and deletes a volume
with its claim (reclaim Delete). Volumes are directories under the state directory,
made and removed by short helper pods that run the node's MariaDB image (it has sh,
mkdir and rm, and is imported on every `up`), so `down` removes them with the state.

The provisioner runs with its own client certificate (mysql-operator:local-path-
provisioner) and the permissions upstream's manifest grants it; its helper pods run in
the namespace local-path-storage under a service account with no permissions.
"""

from __future__ import annotations

import json

from localcluster.control_plane import Component, Context
from localcluster.layout import Layout, write_if_changed
from localcluster.processes import START_MARKER

NAME = "local-path-provisioner"
USER = "mysql-operator:local-path-provisioner"
PROVISIONER = "rancher.io/local-path"
STORAGE_CLASS = "standard"
NAMESPACE = "local-path-storage"
SERVICE_ACCOUNT = "local-path-provisioner-service-account"
CONFIG_MAP = "local-path-config"
# Imported into the node on every `up` (real_node.import_images); never pulled.
HELPER_IMAGE = "localhost/mysql-operator/mariadb:10.11"
# Provisioning waits for a helper pod; a stuck one fails the claim's attempt after this.
HELPER_TIMEOUT_S = 120

SETUP_SCRIPT = """\
#!/bin/sh
set -eu
mkdir -m 0777 -p "$VOL_DIR"
"""
TEARDOWN_SCRIPT = """\
#!/bin/sh
set -eu
rm -rf "$VOL_DIR"
"""


def provisioner_config(layout: Layout) -> dict[str, object]:
    """config.json: every node (there is one) keeps its volumes under the state."""
    return {
        "nodePathMap": [
            {
                "node": "DEFAULT_PATH_FOR_NON_LISTED_NODES",
                "paths": [str(layout.provisioned_volumes)],
            }
        ],
        "cmdTimeoutSeconds": HELPER_TIMEOUT_S,
    }


def helper_pod() -> dict[str, object]:
    """The template of the pods that make and remove volume directories."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "helper-pod", "labels": {"app.kubernetes.io/name": NAME}},
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "helper-pod",
                    "image": HELPER_IMAGE,
                    "imagePullPolicy": "Never",
                    # The directories belong to root on the host.
                    "securityContext": {"runAsUser": 0, "runAsGroup": 0},
                }
            ],
        },
    }


def config_path(layout: Layout) -> str:
    return str(layout.local_path / "config.json")


def helper_pod_path(layout: Layout) -> str:
    return str(layout.local_path / "helper-pod.json")


def write_configs(layout: Layout) -> None:
    layout.local_path.mkdir(parents=True, exist_ok=True)
    layout.provisioned_volumes.mkdir(parents=True, exist_ok=True)
    write_if_changed(layout.local_path / "config.json", json.dumps(provisioner_config(layout)))
    # JSON is YAML, which is what the provisioner reads its template as.
    write_if_changed(layout.local_path / "helper-pod.json", json.dumps(helper_pod()))


def provisioner_argv(ctx: Context) -> list[str]:
    return [
        ctx.binary(NAME),
        "--debug",
        "start",
        f"--kubeconfig={ctx.layout.component_kubeconfig(NAME)}",
        f"--config={config_path(ctx.layout)}",
        f"--helper-pod-file={helper_pod_path(ctx.layout)}",
        f"--namespace={NAMESPACE}",
        f"--service-account-name={SERVICE_ACCOUNT}",
        f"--configmap-name={CONFIG_MAP}",
        f"--provisioner-name={PROVISIONER}",
    ]


# Logged by the provisioner library once its informers run; it serves no health endpoint.
STARTED = "Started provisioner controller"


def provisioner_healthy(ctx: Context) -> bool:
    try:
        text = ctx.layout.log_file(NAME).read_text(errors="replace")
    except FileNotFoundError:
        return False
    # The log is appended to across restarts: only what the last run wrote counts.
    return STARTED in text.rsplit(START_MARKER, 1)[-1]


LOCAL_PATH_PROVISIONER = Component(NAME, provisioner_argv, provisioner_healthy)


def storage_class() -> dict[str, object]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Delete",
        "allowVolumeExpansion": False,
    }


def cluster_objects() -> dict[str, object]:
    """Everything the provisioner needs in the cluster, and the class itself."""
    rules = [
        {
            "apiGroups": [""],
            "resources": ["nodes", "persistentvolumeclaims", "configmaps", "pods", "pods/log"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": [""],
            "resources": ["persistentvolumes"],
            "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
        },
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        {
            "apiGroups": ["storage.k8s.io"],
            "resources": ["storageclasses"],
            "verbs": ["get", "list", "watch"],
        },
    ]
    subject = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}]
    items: list[dict[str, object]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE},
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CONFIG_MAP, "namespace": NAMESPACE},
            # The helper pods mount the scripts from here.
            "data": {"setup": SETUP_SCRIPT, "teardown": TEARDOWN_SCRIPT},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": USER},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": USER},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": USER,
            },
            "subjects": subject,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": USER, "namespace": NAMESPACE},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["pods"],
                    "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": USER, "namespace": NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": USER},
            "subjects": subject,
        },
        storage_class(),
    ]
    return {"apiVersion": "v1", "kind": "List", "items": items}
