"""The installation's configuration: defaults, and errors that name the key."""

from __future__ import annotations

import pytest

from infra.config import ConfigError, InstallConfig, Resources, parse_config
from reconciler.settings import DEFAULT_WORKERS, LogLevel

pytestmark = pytest.mark.unit


def test_defaults_need_only_the_image() -> None:
    assert parse_config({"image": "registry/op:1"}) == InstallConfig(
        image="registry/op:1",
        namespace="mysql-operator",
        image_pull_policy="IfNotPresent",
        watched_namespaces=(),
        backend_url=None,
        workers=DEFAULT_WORKERS,
        log_level=LogLevel.INFO,
        state_storage_size="1Gi",
        state_storage_class=None,
        state_host_path=None,
        kubeconfig=None,
        context=None,
        resources=Resources(),
    )


def test_watched_namespaces_as_a_list_or_a_comma_string() -> None:
    for raw in (["a", "b", "a"], "a, b,a"):
        assert parse_config({"image": "i", "watchedNamespaces": raw}).watched_namespaces == (
            "a",
            "b",
        )


def test_an_empty_storage_class_is_kept() -> None:
    assert parse_config({"image": "i", "stateStorageClass": ""}).state_storage_class == ""


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({}, "image"),
        ({"image": "a b"}, "image"),
        ({"image": "i", "namespace": "Not_A_Label"}, "namespace"),
        ({"image": "i", "imagePullPolicy": "Sometimes"}, "imagePullPolicy"),
        ({"image": "i", "watchedNamespaces": ["ok", "No!"]}, "watchedNamespaces"),
        ({"image": "i", "backendUrl": "/var/state"}, "backendUrl"),
        ({"image": "i", "workers": "0"}, "workers"),
        ({"image": "i", "workers": "65"}, "workers"),
        ({"image": "i", "workers": "two"}, "workers"),
        ({"image": "i", "logLevel": "loud"}, "logLevel"),
        ({"image": "i", "stateStorageSize": "lots"}, "stateStorageSize"),
        ({"image": "i", "stateHostPath": "relative/dir"}, "stateHostPath"),
        ({"image": "i", "stateHostPath": "/srv/../etc"}, "stateHostPath"),
        ({"image": "i", "memoryLimit": "2 GB"}, "memoryLimit"),
        ({"image": "i", "leaderElection": "yes"}, "leaderElection"),
        ({"image": "i", "backendCredentialsSecret": "keys"}, "backendCredentialsSecret"),
        (
            {"image": "i", "backendUrl": "s3://b", "backendCredentialsSecret": "Bad_Name"},
            "backendCredentialsSecret",
        ),
    ],
)
def test_errors_name_the_key(raw: dict[str, str | list[str] | None], key: str) -> None:
    with pytest.raises(ConfigError, match=f"^{key}:"):
        parse_config(raw)


def test_host_path_root_reaches_the_reconciler_and_must_be_a_directory() -> None:
    config = parse_config({"image": "op:1", "hostPathRoot": "/srv/mysql"})
    assert config.host_path_root == "/srv/mysql"
    assert parse_config({"image": "op:1"}).host_path_root is None
    with pytest.raises(ConfigError, match="hostPathRoot"):
        parse_config({"image": "op:1", "hostPathRoot": "/"})
