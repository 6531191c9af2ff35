"""Parsing MySQL objects: defaults, and errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.spec import (
    DEFAULT_BACKUPS_KEPT,
    DEFAULT_IDLE_TIMEOUT_S,
    MAX_SECONDS,
    BackupScope,
    DeletionPolicy,
    Instance,
    SecretKeyRef,
    SpecError,
    parse_instance,
    parse_spec,
    quantity_bytes,
)
from tests.unit.builders import NAME, NAMESPACE, UID
from tests.unit.builders import mysql_object as built_object

pytestmark = pytest.mark.unit

ORIGINAL_SPEC: dict[str, Any] = {
    "image": "mysql:5.7",
    "database": "otus-database",
    "password": "otuspassword",
    "storage_size": "1Gi",
}


def mysql_object(**spec_changes: Any) -> dict[str, Any]:
    return built_object(**spec_changes)


def test_the_original_example_parses_with_defaults() -> None:
    instance = parse_instance(mysql_object())
    assert isinstance(instance, Instance)
    assert (instance.name, instance.namespace, instance.uid) == (NAME, NAMESPACE, UID)
    spec = instance.spec
    assert spec.image == "mysql:5.7"
    assert spec.database == "otus-database"
    assert spec.password == "otuspassword"
    assert spec.storage_size == "1Gi"
    assert spec.backup.storage_size == "1Gi"
    assert spec.backup.on_delete is True
    assert spec.backup.keep == DEFAULT_BACKUPS_KEPT
    assert spec.deletion_policy is DeletionPolicy.BACKUP_THEN_DELETE
    assert spec.backs_up_on_delete
    assert spec.backup.scope is BackupScope.DATABASE
    assert spec.backup.deadline_seconds is None
    assert spec.backup.idle_timeout_seconds == DEFAULT_IDLE_TIMEOUT_S == 600


def test_the_password_stays_out_of_repr() -> None:
    assert "otuspassword" not in repr(parse_instance(mysql_object()))


def test_every_optional_field_is_read() -> None:
    spec = parse_spec(
        {
            "image": "mysql:8.0",
            "database": "shop_db",
            "passwordSecretRef": {"name": "root-password", "key": "pw"},
            "storage_size": "10Gi",
            "storage_class": "fast",
            "host_path": "/mnt/data",
            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": 2}},
            "backup": {
                "storage_size": "5Gi",
                "storage_class": "",
                "host_path": "/mnt/backup",
                "on_delete": False,
                "keep": 3,
                "scope": "all",
                "deadline_seconds": 900,
                "idle_timeout_seconds": 45,
            },
            "deletion_policy": "Retain",
        }
    )
    assert spec.password is None
    assert spec.password_secret_ref == SecretKeyRef(name="root-password", key="pw")
    assert spec.storage_class == "fast"
    assert spec.host_path == "/mnt/data"
    assert spec.resources.requests.cpu == "250m"
    assert spec.resources.requests.memory == "512Mi"
    assert spec.resources.limits.cpu == "2"
    assert spec.resources.limits.memory is None
    assert spec.backup.storage_size == "5Gi"
    assert spec.backup.storage_class == ""
    assert spec.backup.host_path == "/mnt/backup"
    assert spec.backup.keep == 3
    assert spec.backup.scope is BackupScope.ALL
    assert spec.backup.deadline_seconds == 900
    assert spec.backup.idle_timeout_seconds == 45
    assert spec.deletion_policy is DeletionPolicy.RETAIN
    assert not spec.backs_up_on_delete


def test_a_secret_ref_defaults_its_key() -> None:
    spec = parse_spec({**ORIGINAL_SPEC, "password": None, "passwordSecretRef": {"name": "s"}})
    assert spec.password_secret_ref == SecretKeyRef(name="s", key="password")


def test_delete_policy_never_backs_up() -> None:
    spec = parse_spec({**ORIGINAL_SPEC, "deletion_policy": "Delete"})
    assert spec.backup.on_delete
    assert not spec.backs_up_on_delete


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"storage_size": None}, "spec.storage_size", "Required value"),
        ({"image": None}, "spec.image", "Required value"),
        ({"database": None}, "spec.database", "Required value"),
        ({"password": None}, "spec.password", "exactly one of"),
        ({"passwordSecretRef": {"name": "s"}}, "spec.password", "exactly one of"),
        ({"storage_size": "lots"}, "spec.storage_size", "positive quantity"),
        ({"storage_size": "0Gi"}, "spec.storage_size", "positive quantity"),
        ({"storage_size": "-1Gi"}, "spec.storage_size", "positive quantity"),
        ({"storage_size": "1Gi\n"}, "spec.storage_size", "positive quantity"),
        ({"storage_size": True}, "spec.storage_size", "positive quantity"),
        ({"database": "bad`name"}, "spec.database", "must be a MySQL identifier"),
        ({"database": "-starts-with-dash"}, "spec.database", "must be a MySQL identifier"),
        ({"database": "x" * 65}, "spec.database", "at most 64"),
        ({"database": "MySQL"}, "spec.database", "system schema"),
        ({"database": "mysql_operator"}, "spec.database", "system schema"),
        ({"database": "MySQL_Operator"}, "spec.database", "system schema"),
        ({"database": "Performance_Schema"}, "spec.database", "system schema"),
        ({"database": 7}, "spec.database", "must be a string"),
        ({"image": "my sql"}, "spec.image", "must match"),
        ({"image": ""}, "spec.image", "must not be empty"),
        ({"password": ""}, "spec.password", "must not be empty"),
        ({"storage_class": "Not_A_Class"}, "spec.storage_class", "must match"),
        ({"host_path": "relative/dir"}, "spec.host_path", "absolute path"),
        ({"host_path": "/mnt/../etc"}, "spec.host_path", "absolute path"),
        ({"resources": {"requests": {"cpu": "a lot"}}}, "spec.resources.requests.cpu", "quantity"),
        ({"resources": {"requests": {"gpu": 1}}}, "spec.resources.requests.gpu", "unknown"),
        ({"resources": []}, "spec.resources", "must be an object"),
        (
            {"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}},
            "spec.resources.requests.memory",
            "must not exceed spec.resources.limits.memory",
        ),
        (
            {"resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "500m"}}},
            "spec.resources.requests.cpu",
            "must not exceed",
        ),
        ({"backup": {"keep": 0}}, "spec.backup.keep", "from 1 to"),
        ({"backup": {"keep": True}}, "spec.backup.keep", "from 1 to"),
        ({"backup": {"on_delete": "yes"}}, "spec.backup.on_delete", "true or false"),
        ({"backup": {"storage_size": "1 Gi"}}, "spec.backup.storage_size", "quantity"),
        ({"backup": {"host_path": "x"}}, "spec.backup.host_path", "absolute path"),
        ({"backup": {"scope": "everything"}}, "spec.backup.scope", "database, all"),
        ({"backup": {"scope": "ALL"}}, "spec.backup.scope", "database, all"),
        ({"backup": {"deadline_seconds": 299}}, "spec.backup.deadline_seconds", "from 300"),
        ({"backup": {"deadline_seconds": 2**31}}, "spec.backup.deadline_seconds", "from 300"),
        ({"backup": {"deadline_seconds": True}}, "spec.backup.deadline_seconds", "integer"),
        ({"backup": {"deadline_seconds": "900"}}, "spec.backup.deadline_seconds", "integer"),
        ({"backup": {"idle_timeout_seconds": 29}}, "spec.backup.idle_timeout_seconds", "from 30"),
        ({"backup": {"idle_timeout_seconds": 1.5}}, "spec.backup.idle_timeout_seconds", "integer"),
        ({"backup": {"retention": 3}}, "spec.backup.retention", "unknown field"),
        ({"deletion_policy": "Sometimes"}, "spec.deletion_policy", "BackupThenDelete"),
        ({"deletion_policy": ["Delete"]}, "spec.deletion_policy", "BackupThenDelete"),
        ({"storage_sise": "1Gi"}, "spec.storage_sise", "unknown field"),
        (
            {"password": None, "passwordSecretRef": {"name": "Bad Name"}},
            "spec.passwordSecretRef.name",
            "must match",
        ),
        (
            {"password": None, "passwordSecretRef": "a-secret"},
            "spec.passwordSecretRef",
            "must be an object",
        ),
    ],
)
def test_bad_specs_name_the_field(changes: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_instance(mysql_object(**changes))
    assert raised.value.field_path == field
    assert str(raised.value).startswith(f"{field}: ")
    assert problem in raised.value.problem


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        (None, "object"),
        ([], "object"),
        ({"metadata": {"name": "x", "namespace": "n", "uid": "u"}}, "spec"),
        ({"spec": ORIGINAL_SPEC}, "metadata"),
        ({**mysql_object(), "apiVersion": "v1"}, "apiVersion"),
        ({**mysql_object(), "metadata": {"namespace": "n", "uid": "u"}}, "metadata.name"),
        ({**mysql_object(), "metadata": {"name": "x", "uid": "u"}}, "metadata.namespace"),
        ({**mysql_object(), "metadata": {"name": "x", "namespace": "n"}}, "metadata.uid"),
        (
            {**mysql_object(), "metadata": {"name": "Upper", "namespace": "n", "uid": "u"}},
            "metadata.name",
        ),
        (
            {**mysql_object(), "metadata": {"name": "a" * 41, "namespace": "n", "uid": "u"}},
            "metadata.name",
        ),
        ({**mysql_object(), "spec": {1: "x"}}, "spec"),
    ],
)
def test_bad_objects_name_the_field(obj: object, field: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_instance(obj)
    assert raised.value.field_path == field


def test_database_names_with_hyphens_and_dollars_are_identifiers() -> None:
    for database in ("otus-database", "a$b", "_x", "9lives", "d" * 64):
        assert parse_spec({**ORIGINAL_SPEC, "database": database}).database == database


@pytest.mark.parametrize(
    "quantity", ["1Gi", "500Mi", "1.5Gi", "1e9", "2G", "1024", ".5Gi", "100k", "3E"]
)
def test_quantities_in_kubernetes_forms_are_accepted(quantity: str) -> None:
    assert parse_spec({**ORIGINAL_SPEC, "storage_size": quantity}).storage_size == quantity


def fuzz_values() -> list[object]:
    return [None, True, 0, -1, 1.5, "", " ", "x" * 5000, [], {}, [1], {"a": 1}, b"raw", object()]


@pytest.mark.parametrize("key", [*sorted(ORIGINAL_SPEC), "backup", "resources", "host_path"])
def test_bad_input_raises_nothing_but_spec_error(key: str) -> None:
    """Any value either parses or raises SpecError naming the field; nothing else escapes
    (an unexpected exception fails the test), and most of these values are refused."""
    refusals: list[str] = []
    for value in fuzz_values():
        try:
            parse_instance(mysql_object(**{key: value}))
        except SpecError as error:
            refusals.append(str(error))
    assert len(refusals) >= len(fuzz_values()) // 2
    assert [message for message in refusals if key not in message] == []


def test_the_deadline_bounds_are_accepted() -> None:
    deadline = parse_spec({**ORIGINAL_SPEC, "backup": {"deadline_seconds": 300}})
    assert deadline.backup.deadline_seconds == 300
    idle = parse_spec({**ORIGINAL_SPEC, "backup": {"idle_timeout_seconds": 30}})
    assert idle.backup.idle_timeout_seconds == 30


def test_an_empty_backup_section_takes_every_default() -> None:
    assert parse_spec({**ORIGINAL_SPEC, "backup": {}}) == parse_spec(ORIGINAL_SPEC)


@pytest.mark.parametrize(
    ("size", "deadline"),
    [
        ("1Gi", 3600 + 1800),
        ("500Mi", 3600 + 1800),  # part of a GiB counts as one
        ("10Gi", 3600 + 1800 * 10),
        ("10G", 3600 + 1800 * 10),  # 10^10 bytes is a little over 9 GiB
        ("1E", MAX_SECONDS),  # capped at what activeDeadlineSeconds holds
    ],
)
def test_the_job_deadline_scales_with_the_data_size(size: str, deadline: int) -> None:
    assert parse_spec({**ORIGINAL_SPEC, "storage_size": size}).job_deadline_seconds == deadline


def test_a_deadline_in_the_spec_wins() -> None:
    spec = parse_spec(
        {**ORIGINAL_SPEC, "storage_size": "100Gi", "backup": {"deadline_seconds": 600}}
    )
    assert spec.job_deadline_seconds == 600


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("1Gi", 2**30),
        ("1.5Gi", 3 * 2**29),
        ("500M", 500 * 10**6),
        ("1e3", 1000),
        ("2E+1", 20),
        ("100m", 1),  # a tenth of a byte, rounded up
        ("1.5", 2),
        ("1024", 1024),
        (".5Ki", 512),
    ],
)
def test_quantities_in_bytes(quantity: str, expected: int) -> None:
    assert quantity_bytes(quantity) == expected
