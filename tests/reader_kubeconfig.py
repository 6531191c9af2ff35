"""A kubeconfig that can read MySQL objects in one namespace and do nothing else: what a
CI job gets to run `reconciler preview` from outside the cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from reconciler.vocabulary import API_GROUP, PLURAL

READER = "mysql-preview-reader"


def reader_kubeconfig(
    api_client: client.ApiClient, admin_kubeconfig: Path, namespace: str, path: Path
) -> Path:
    """Writes, at `path`, a kubeconfig of a new ServiceAccount in `namespace` whose only
    right is `get` on MySQL objects there (a token from the TokenRequest API)."""
    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=READER))
    )
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name=READER),
            rules=[client.V1PolicyRule(api_groups=[API_GROUP], resources=[PLURAL], verbs=["get"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=READER),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name=READER
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name=READER, namespace=namespace)
            ],
        ),
    )
    token = core.create_namespaced_service_account_token(
        READER,
        namespace,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
    ).status.token
    admin: dict[str, Any] = yaml.safe_load(admin_kubeconfig.read_text())
    contexts = {entry["name"]: entry["context"] for entry in admin["contexts"]}
    cluster_name = contexts[admin["current-context"]]["cluster"]
    (cluster,) = [entry for entry in admin["clusters"] if entry["name"] == cluster_name]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": READER, "user": {"token": token}}],
                "contexts": [
                    {
                        "name": READER,
                        "context": {
                            "cluster": cluster_name,
                            "user": READER,
                            "namespace": namespace,
                        },
                    }
                ],
                "current-context": READER,
            }
        )
    )
    path.chmod(0o600)
    return path
