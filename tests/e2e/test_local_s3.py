"""The local cluster's S3 store is reachable from pods by its Service name and from this
host: a pod puts an object (through a presigned URL, so it holds no credentials) and the
host reads it back with the credentials of the Secret local-s3/minio-credentials."""

from __future__ import annotations

import base64

import pytest
from kubernetes import client
from localcluster import object_store

from reconciler.s3 import Credentials, S3Client
from tests.e2e.conftest import RealNode
from tests.support import eventually

pytestmark = pytest.mark.e2e

# Perl and its HTTP::Tiny come with the MariaDB image, which every real node has.
IMAGE = "localhost/mysql-operator/mariadb:10.11"
PUT_SCRIPT = (
    "my $r = HTTP::Tiny->new(timeout => 30)->put($ENV{URL}, {content => $ENV{BODY}});"
    ' print "$r->{status} $r->{content}\\n"; exit($r->{success} ? 0 : 1)'
)
TIMEOUT_S = 180.0


def host_client(api: client.ApiClient) -> S3Client:
    """The store as this host reaches it: the address its Service's endpoints name, and
    the credentials its Secret holds."""
    core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    secret = core.read_namespaced_secret(object_store.SECRET, object_store.NAMESPACE)
    data = secret.data or {}
    slices = discovery.list_namespaced_endpoint_slice(
        object_store.NAMESPACE, label_selector=f"kubernetes.io/service-name={object_store.SERVICE}"
    ).items
    assert len(slices) == 1, [s.metadata.name for s in slices]
    (endpoint,) = slices[0].endpoints or []
    (port,) = slices[0].ports or []
    return S3Client(
        f"http://{endpoint.addresses[0]}:{port.port}",
        Credentials(
            access_key_id=base64.b64decode(data["access_key_id"]).decode(),
            secret_access_key=base64.b64decode(data["secret_access_key"]).decode(),
            region=object_store.REGION,
        ),
    )


def put_pod(url: str, body: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name="s3-put"),
        spec=client.V1PodSpec(
            restart_policy="Never",
            containers=[
                client.V1Container(
                    name="put",
                    image=IMAGE,
                    image_pull_policy="Never",
                    command=["perl", "-MHTTP::Tiny", "-e", PUT_SCRIPT],
                    env=[
                        client.V1EnvVar(name="URL", value=url),
                        client.V1EnvVar(name="BODY", value=body),
                    ],
                )
            ],
        ),
    )


def test_a_pod_puts_an_object_by_service_name_and_the_host_reads_it(
    real_node: RealNode, namespace: str
) -> None:
    api = real_node.api()
    core = client.CoreV1Api(api)
    store = host_client(api)
    for bucket in object_store.BUCKETS:
        assert store.bucket_exists(bucket), f"bucket {bucket} made by `hack/cluster up`"

    key = f"e2e/{namespace}/greeting.txt"
    body = f"hello from {namespace}"
    url = store.presigned_url(
        "PUT", "mysql-backups", key, endpoint=object_store.IN_CLUSTER_ENDPOINT
    )
    assert url.startswith("http://minio.local-s3.svc.cluster.local:9000/mysql-backups/")
    core.create_namespaced_pod(namespace, put_pod(url, body))
    phase = eventually(
        lambda: core.read_namespaced_pod("s3-put", namespace).status.phase,
        lambda p: p in ("Succeeded", "Failed"),
        timeout_s=TIMEOUT_S,
        interval_s=1,
        what="the pod's PUT finishing",
    )
    log = core.read_namespaced_pod_log("s3-put", namespace)
    assert phase == "Succeeded", log
    try:
        assert store.get_object("mysql-backups", key).decode() == body
    finally:
        store.delete_object("mysql-backups", key)
