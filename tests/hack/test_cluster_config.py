"""What hack/cluster renders for the default StorageClass and the S3 store, without a
cluster: the class, the provisioner's config and helper pod, the store's objects, its
credentials and what `env` prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from localcluster import object_store, real_node, storage
from localcluster.control_plane import Context
from localcluster.host_snapshot import HostSnapshot, parse_iptables_save
from localcluster.layout import CLUSTER_DOMAIN, Layout, NodeKind

pytestmark = pytest.mark.unit


def context(tmp_path: Path, node: NodeKind) -> Context:
    layout = Layout(tmp_path / "cluster")
    layout.make_dirs()
    api_ip = "10.244.0.1" if node is NodeKind.REAL else "127.0.0.1"
    return Context(
        layout=layout, ports=layout.ports(), bin_dir=tmp_path / "bin", node=node, api_ip=api_ip
    )


def items_by_kind(listed: dict[str, object]) -> dict[str, Any]:
    """A rendered List's items by kind/name, typed loosely for reading."""
    items: list[Any] = listed["items"]  # type: ignore[assignment]
    return {f"{item['kind']}/{item['metadata']['name']}": item for item in items}


def test_the_default_class_is_like_kinds() -> None:
    klass: Any = storage.storage_class()
    assert klass["metadata"] == {
        "name": "standard",
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
    }
    assert klass["provisioner"] == "rancher.io/local-path"
    assert klass["volumeBindingMode"] == "WaitForFirstConsumer"
    assert klass["reclaimPolicy"] == "Delete"
    assert "StorageClass/standard" in items_by_kind(storage.cluster_objects())


def test_volumes_live_under_the_state_and_helpers_use_an_imported_image(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "cluster")
    config: Any = storage.provisioner_config(layout)
    (entry,) = config["nodePathMap"]
    assert entry["paths"] == [str(tmp_path / "cluster" / "volumes" / "provisioned")]
    pod: Any = storage.helper_pod()
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "localhost/mysql-operator/mariadb:10.11"
    assert container["imagePullPolicy"] == "Never"


def test_the_provisioner_has_its_own_identity_and_only_upstreams_permissions() -> None:
    objects = items_by_kind(storage.cluster_objects())
    binding = objects[f"ClusterRoleBinding/{storage.USER}"]
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": storage.USER}
    ]
    rules = objects[f"ClusterRole/{storage.USER}"]["rules"]
    writable = {r for rule in rules if "create" in rule["verbs"] for r in rule["resources"]}
    assert writable == {"persistentvolumes", "events"}
    account = objects[f"ServiceAccount/{storage.SERVICE_ACCOUNT}"]
    assert account["automountServiceAccountToken"] is False
    scripts = objects[f"ConfigMap/{storage.CONFIG_MAP}"]["data"]
    assert set(scripts) == {"setup", "teardown"}


def test_credentials_are_made_once_and_private(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "cluster")
    first = object_store.ensure_credentials(layout)
    assert object_store.ensure_credentials(layout) == first
    for path in (layout.s3_access_key_file, layout.s3_secret_key_file):
        assert path.stat().st_mode & 0o777 == 0o600
    assert len(first.secret_access_key) >= 8, "MinIO refuses shorter root passwords"
    assert first.secret_access_key not in repr(first)


def test_the_store_listens_where_pods_reach_it(tmp_path: Path) -> None:
    real = context(tmp_path / "real", NodeKind.REAL)
    kwok = context(tmp_path / "kwok", NodeKind.KWOK)
    assert object_store.endpoint(real) == "http://10.244.0.1:9000"
    assert object_store.endpoint(kwok) == f"http://127.0.0.1:{kwok.ports.minio}"
    argv = object_store.minio_argv(real)
    assert "--address=10.244.0.1:9000" in argv
    assert all(str(real.layout.minio) in a for a in argv if a.startswith("--certs-dir"))


def test_credentials_go_through_the_environment_only(tmp_path: Path) -> None:
    ctx = context(tmp_path, NodeKind.REAL)
    object_store.prepare(ctx.layout)
    credentials = object_store.read_credentials(ctx.layout)
    env = object_store.minio_env(ctx)
    assert env["MINIO_ROOT_USER"] == credentials.access_key_id
    assert env["MINIO_ROOT_PASSWORD"] == credentials.secret_access_key
    assert env["MINIO_UPDATE"] == "off"
    argv = " ".join(object_store.minio_argv(ctx))
    assert credentials.secret_access_key not in argv
    assert credentials.access_key_id not in argv


def test_the_service_name_points_at_the_host_process_on_a_real_node(tmp_path: Path) -> None:
    ctx = context(tmp_path, NodeKind.REAL)
    object_store.prepare(ctx.layout)
    objects = items_by_kind(object_store.cluster_objects(ctx))
    service = objects["Service/minio"]
    assert service["metadata"]["namespace"] == "local-s3"
    assert "selector" not in service["spec"]
    assert service["spec"]["ports"] == [
        {"name": "s3", "port": 9000, "targetPort": 9000, "protocol": "TCP"}
    ]
    endpoints = objects["EndpointSlice/minio-host"]
    assert endpoints["metadata"]["labels"]["kubernetes.io/service-name"] == "minio"
    assert endpoints["endpoints"][0]["addresses"] == ["10.244.0.1"]
    secret = objects["Secret/minio-credentials"]
    assert set(secret["stringData"]) == {"access_key_id", "secret_access_key"}
    assert object_store.IN_CLUSTER_ENDPOINT == "http://minio.local-s3.svc.cluster.local:9000"


def test_kwok_gets_the_secret_but_no_endpoints_on_loopback(tmp_path: Path) -> None:
    ctx = context(tmp_path, NodeKind.KWOK)
    object_store.prepare(ctx.layout)
    assert set(items_by_kind(object_store.cluster_objects(ctx))) == {
        "Namespace/local-s3",
        "Secret/minio-credentials",
    }


def test_env_names_the_secret_file_never_the_secret(tmp_path: Path) -> None:
    ctx = context(tmp_path, NodeKind.REAL)
    object_store.prepare(ctx.layout)
    credentials = object_store.read_credentials(ctx.layout)
    lines = object_store.env_lines(ctx)
    assert credentials.secret_access_key not in "\n".join(lines)
    assert lines == [
        "export AWS_ENDPOINT_URL='http://10.244.0.1:9000'",
        "export AWS_REGION='us-east-1'",
        f"export AWS_ACCESS_KEY_ID='{credentials.access_key_id}'",
        f"export AWS_SECRET_ACCESS_KEY=\"$(cat '{ctx.layout.s3_secret_key_file}')\"",
        "# a Pulumi state backend in the store: s3://pulumi-state"
        "?endpoint=http://10.244.0.1:9000&region=us-east-1&use_path_style=true",
    ]


def test_host_snapshots_survive_a_round_trip_and_name_what_changed() -> None:
    before = HostSnapshot(
        mounts=frozenset({"/"}),
        netns=frozenset(),
        bridges=frozenset({"docker0"}),
        veths=frozenset(),
        iptables=frozenset({"filter :INPUT DROP"}),
        ip6tables=frozenset(),
        container_processes=(),
        sysctls=(("net/ipv4/ip_forward", "0"),),
    )
    assert HostSnapshot.from_json(before.to_json()) == before
    after = HostSnapshot(
        mounts=before.mounts,
        netns=before.netns,
        bridges=frozenset({"docker0", "mysqlop0"}),
        veths=before.veths,
        iptables=before.iptables | {"nat :KUBE-SERVICES - "},
        ip6tables=before.ip6tables,
        container_processes=("containerd-shim",),
        sysctls=(("net/ipv4/ip_forward", "1"),),
    )
    assert before.differences(after) == {
        "bridges": {"added": ["mysqlop0"], "removed": []},
        "iptables": {"added": ["nat :KUBE-SERVICES - "], "removed": []},
        "container_processes": {"before": (), "after": ("containerd-shim",)},
        "sysctls": {
            "before": (("net/ipv4/ip_forward", "0"),),
            "after": (("net/ipv4/ip_forward", "1"),),
        },
    }


def test_iptables_tables_loaded_since_count_only_for_what_they_hold() -> None:
    """A table that something loaded, with nothing in it, is no trace; a rule, a chain
    or a changed policy is."""
    empty_now = "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [3:180]\nCOMMIT\n"
    assert parse_iptables_save("") == parse_iptables_save(empty_now) == frozenset()
    left = (
        "# Generated by iptables-save\n*filter\n:INPUT ACCEPT [10:20]\n:FORWARD DROP [0:0]\n"
        ":KUBE-FIREWALL - [0:0]\n-A INPUT -j KUBE-FIREWALL\nCOMMIT\n"
    )
    assert parse_iptables_save(left) == {
        "filter :FORWARD DROP",
        "filter :KUBE-FIREWALL -",
        "filter -A INPUT -j KUBE-FIREWALL",
    }


def test_cluster_names_are_never_answered_from_the_dns_cache(tmp_path: Path) -> None:
    corefile = real_node.corefile(context(tmp_path, NodeKind.REAL))
    cluster_block = corefile.split("\n}\n")[0]
    cache = cluster_block[cluster_block.index("cache 30 {") :]
    assert f"disable success {CLUSTER_DOMAIN}" in cache
    assert f"disable denial {CLUSTER_DOMAIN}" in cache
