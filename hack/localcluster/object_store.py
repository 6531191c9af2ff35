"""The cluster's S3-compatible object store: MinIO as a host process of the cluster.

It listens where pods reach it (the node bridge's address, port 9000, on a real node;
loopback, on a port picked at the first `up`, on kwok), keeps its data under the state
directory and its root credentials in two 0600 files there, made once. Pods reach it by
the name minio.local-s3.svc.cluster.local:9000: a Service without a selector whose
EndpointSlice points at the host process (real node only: an EndpointSlice cannot name a
loopback address, and kwok's pods run nothing). The Secret local-s3/minio-credentials
holds the same credentials (access_key_id, secret_access_key) for tests and users to
copy. The buckets the operator uses exist after every `up`.
"""

from __future__ import annotations

import http.client
import json
import secrets
from pathlib import Path

from localcluster.control_plane import Component, Context, http_ok, kubectl
from localcluster.layout import CLUSTER_DOMAIN, Layout, NodeKind
from reconciler.s3 import Credentials, S3Client

NAME = "minio"
NAMESPACE = "local-s3"
SERVICE = "minio"
SERVICE_PORT = 9000
REAL_NODE_PORT = 9000
SECRET = "minio-credentials"  # noqa: S105 (its name, not its value)
REGION = "us-east-1"
BUCKETS = ("mysql-backups", "pulumi-state")
IN_CLUSTER_ENDPOINT = f"http://{SERVICE}.{NAMESPACE}.svc.{CLUSTER_DOMAIN}:{SERVICE_PORT}"
MANAGED_BY = "hack-cluster.mysql-operator.dev"


def listen_address(ctx: Context) -> tuple[str, int]:
    """Where MinIO listens: where pods reach the host on a real node, loopback on kwok."""
    if ctx.node is NodeKind.REAL:
        return ctx.api_ip, REAL_NODE_PORT
    return "127.0.0.1", ctx.ports.minio


def endpoint(ctx: Context) -> str:
    """The URL that this host reaches the store by."""
    host, port = listen_address(ctx)
    return f"http://{host}:{port}"


def _write_secret_file(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(value)


def ensure_credentials(layout: Layout) -> Credentials:
    """The root credentials: made at the first `up`, kept with the state, 0600."""
    if not layout.s3_access_key_file.exists() or not layout.s3_secret_key_file.exists():
        _write_secret_file(layout.s3_secret_key_file, secrets.token_hex(20))
        _write_secret_file(layout.s3_access_key_file, f"local-{secrets.token_hex(6)}")
    return read_credentials(layout)


def read_credentials(layout: Layout) -> Credentials:
    return Credentials(
        access_key_id=layout.s3_access_key_file.read_text().strip(),
        secret_access_key=layout.s3_secret_key_file.read_text().strip(),
        region=REGION,
    )


def client(ctx: Context) -> S3Client:
    return S3Client(endpoint(ctx), read_credentials(ctx.layout))


def minio_argv(ctx: Context) -> list[str]:
    host, port = listen_address(ctx)
    return [
        ctx.binary("minio"),
        "server",
        str(ctx.layout.minio_data),
        f"--address={host}:{port}",
        # Its TLS directory defaults to ~/.minio/certs: keep it with the cluster.
        f"--certs-dir={ctx.layout.minio / 'certs'}",
        "--quiet",
        "--anonymous",
    ]


def minio_env(ctx: Context) -> dict[str, str]:
    """Credentials go through the environment, never the command line."""
    credentials = ensure_credentials(ctx.layout)
    return {
        "MINIO_ROOT_USER": credentials.access_key_id,
        "MINIO_ROOT_PASSWORD": credentials.secret_access_key,
        "MINIO_SITE_REGION": REGION,
        "MINIO_UPDATE": "off",
        # No web console: it would listen on another port, and nothing here uses it.
        "MINIO_BROWSER": "off",
    }


def minio_healthy(ctx: Context) -> bool:
    """Serving signed S3 requests: /minio/health/ready answers 200 a moment before the
    object layer is up, while S3 calls still get 503 XMinioServerNotInitialized."""
    if not http_ok(f"{endpoint(ctx)}/minio/health/ready"):
        return False
    store = S3Client(endpoint(ctx), read_credentials(ctx.layout), timeout_s=2.0)
    try:
        return store.request("GET", "/").status == 200
    except (OSError, http.client.HTTPException):
        return False


MINIO = Component(NAME, minio_argv, minio_healthy, env=minio_env)


def prepare(layout: Layout) -> None:
    layout.minio_data.mkdir(parents=True, exist_ok=True)
    layout.minio.chmod(0o700)
    ensure_credentials(layout)


def cluster_objects(ctx: Context) -> dict[str, object]:
    """The namespace, the Service name pods use and its endpoints, and the Secret."""
    credentials = read_credentials(ctx.layout)
    labels = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/managed-by": "hack-cluster"}
    items: list[dict[str, object]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET, "namespace": NAMESPACE, "labels": labels},
            "type": "Opaque",
            "stringData": {
                "access_key_id": credentials.access_key_id,
                "secret_access_key": credentials.secret_access_key,
            },
        },
    ]
    if ctx.node is NodeKind.REAL:
        host, port = listen_address(ctx)
        items += [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": labels},
                # No selector: the endpoints are ours, the host process below.
                "spec": {
                    "ports": [
                        {"name": "s3", "port": SERVICE_PORT, "targetPort": port, "protocol": "TCP"}
                    ]
                },
            },
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{SERVICE}-host",
                    "namespace": NAMESPACE,
                    "labels": {
                        **labels,
                        "kubernetes.io/service-name": SERVICE,
                        "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
                    },
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
                "ports": [{"name": "s3", "port": port, "protocol": "TCP"}],
            },
        ]
    return {"apiVersion": "v1", "kind": "List", "items": items}


def publish(ctx: Context) -> None:
    """Creates the buckets (idempotent) and the objects that make the store reachable."""
    store = client(ctx)
    for bucket in BUCKETS:
        store.ensure_bucket(bucket)
    kubectl(ctx, "apply", "-f", "-", stdin=json.dumps(cluster_objects(ctx)))


def env_lines(ctx: Context) -> list[str]:
    """What `hack/cluster env` prints for the store. The secret key stays in its file:
    only a command that reads it is printed, so it never lands in a terminal log."""
    access_key = ctx.layout.s3_access_key_file.read_text().strip()
    return [
        f"export AWS_ENDPOINT_URL='{endpoint(ctx)}'",
        f"export AWS_REGION='{REGION}'",
        f"export AWS_ACCESS_KEY_ID='{access_key}'",
        f"export AWS_SECRET_ACCESS_KEY=\"$(cat '{ctx.layout.s3_secret_key_file}')\"",
        f"# a Pulumi state backend in the store: {pulumi_backend_url(ctx)}",
    ]


def pulumi_backend_url(ctx: Context, bucket: str = "pulumi-state") -> str:
    """A Pulumi DIY backend URL for a bucket of this store (credentials from the AWS
    variables above)."""
    return f"s3://{bucket}?endpoint={endpoint(ctx)}&region={REGION}&use_path_style=true"
