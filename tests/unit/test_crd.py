"""Offline checks of crd/mysql.yaml: identity, structure, and agreement with the parser.

CEL rules cannot be evaluated here (the API server does that in the integration tier),
but the OpenAPI part can: a small validator covering the keywords the CRD uses checks
that the original example is accepted, that a missing storage_size is reported as
`spec.storage_size: Required value`, and that schema and parser agree on samples.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler import spec as spec_module
from reconciler import vocabulary
from reconciler.backup_objects import final_backup_object
from reconciler.policy import storage_fields
from reconciler.spec import SpecError, parse_spec
from reconciler.status import JobPhase, JobRecord
from tests.unit.builders import instance

pytestmark = pytest.mark.unit

CRD_PATH = Path(__file__).resolve().parents[2] / "crd" / "mysql.yaml"
ORIGINAL_SPEC: dict[str, Any] = {
    "image": "mysql:5.7",
    "database": "otus-database",
    "password": "otuspassword",
    "storage_size": "1Gi",
}


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    loaded = yaml.safe_load(CRD_PATH.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def version(crd: dict[str, Any]) -> dict[str, Any]:
    (only,) = crd["spec"]["versions"]
    assert isinstance(only, dict)
    return only


@pytest.fixture(scope="module")
def spec_schema(version: dict[str, Any]) -> dict[str, Any]:
    schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert isinstance(schema, dict)
    return schema


# -- a validator for the OpenAPI keywords the CRD uses --------------------------------------


def validate(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Errors in the API server's `path: problem` form; CEL rules are not evaluated."""
    if schema.get("x-kubernetes-int-or-string"):
        if isinstance(value, bool) or not isinstance(value, int | str):
            return [f"{path}: Invalid value: must be an integer or a string"]
    else:
        expected = {"object": dict, "string": str, "integer": int, "boolean": bool}[schema["type"]]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            return [f"{path}: Invalid value: must be of type {schema['type']}"]
    errors: list[str] = []
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{path}: Invalid value: too short")
        if len(value) > schema.get("maxLength", 1 << 30):
            errors.append(f"{path}: Too long")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: Invalid value: should match '{schema['pattern']}'")
    if isinstance(value, int) and not isinstance(value, bool):
        if value < schema.get("minimum", -(1 << 63)):
            errors.append(f"{path}: Invalid value: should be at least {schema['minimum']}")
        if value > schema.get("maximum", 1 << 63):
            errors.append(f"{path}: Invalid value: should be at most {schema['maximum']}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: Unsupported value")
    if isinstance(value, dict):
        for required in schema.get("required", []):
            if required not in value:
                errors.append(f"{path}.{required}: Required value")
        for key, item in value.items():
            if key in schema.get("properties", {}):
                errors.extend(validate(item, schema["properties"][key], f"{path}.{key}"))
    return errors


def apply_defaults(value: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    defaulted = copy.deepcopy(value)
    for key, child in schema.get("properties", {}).items():
        if key not in defaulted and "default" in child:
            defaulted[key] = copy.deepcopy(child["default"])
        if isinstance(defaulted.get(key), dict):
            defaulted[key] = apply_defaults(defaulted[key], child)
    return defaulted


# -- identity -------------------------------------------------------------------------------


def test_identity(crd: dict[str, Any], version: dict[str, Any]) -> None:
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "mysqls.otus.homework"
    spec = crd["spec"]
    assert spec["group"] == "otus.homework" == vocabulary.API_GROUP
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "MySQL" == vocabulary.KIND
    assert spec["names"]["plural"] == "mysqls" == vocabulary.PLURAL
    assert version["name"] == "v1"
    assert version["served"]
    assert version["storage"]
    assert version["subresources"] == {"status": {}}


def test_printer_columns(version: dict[str, Any]) -> None:
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert list(columns) == ["Ready", "Reason", "Image", "Storage", "Age"]
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Reason"] == '.status.conditions[?(@.type=="Ready")].reason'
    assert columns["Image"] == ".spec.image"
    assert columns["Storage"] == ".spec.storage_size"
    assert columns["Age"] == ".metadata.creationTimestamp"


# -- structure ------------------------------------------------------------------------------


def structural_problems(schema: dict[str, Any], path: str) -> list[str]:
    """The structural-schema rules that a typo most often breaks."""
    problems: list[str] = []
    if schema.get("x-kubernetes-int-or-string"):
        # The only anyOf a structural schema allows to carry types is exactly this one.
        if schema.get("anyOf") != [{"type": "integer"}, {"type": "string"}] or "type" in schema:
            problems.append(f"{path}: int-or-string must be anyOf [integer, string] and no type")
    elif "type" not in schema:
        problems.append(f"{path}: no type")
    for keyword in ("anyOf", "allOf", "oneOf"):
        for branch in schema.get(keyword, []):
            if "type" in branch and not schema.get("x-kubernetes-int-or-string"):
                problems.append(f"{path}: type inside {keyword}")
    for key, child in schema.get("properties", {}).items():
        problems.extend(structural_problems(child, f"{path}.{key}"))
    if isinstance(schema.get("items"), dict):
        problems.extend(structural_problems(schema["items"], f"{path}[]"))
    return problems


def test_the_schema_is_structural(version: dict[str, Any]) -> None:
    root = version["schema"]["openAPIV3Schema"]
    assert structural_problems(root, "") == []
    assert "metadata" not in root.get("properties", {})


def rules(schema: dict[str, Any]) -> list[str]:
    return [v["rule"] for v in schema.get("x-kubernetes-validations", [])]


def test_cel_rules_are_present(version: dict[str, Any], spec_schema: dict[str, Any]) -> None:
    exactly_one = [rule for rule in rules(spec_schema) if "has(self.passwordSecretRef)" in rule]
    assert exactly_one == ["has(self.password) != has(self.passwordSecretRef)"]
    quantity_rules = [
        v["rule"] for v in spec_schema["properties"]["storage_size"]["x-kubernetes-validations"]
    ]
    assert any("isQuantity(self)" in rule for rule in quantity_rules)
    root_rules = [
        v["rule"] for v in version["schema"]["openAPIV3Schema"]["x-kubernetes-validations"]
    ]
    assert any(f"<= {spec_module.MAX_NAME_LENGTH}" in rule for rule in root_rules)


def schema_at(spec_schema: dict[str, Any], path: str) -> dict[str, Any]:
    """The schema of `spec.a.b` (a path as storage_fields names it)."""
    schema = spec_schema
    for part in path.removeprefix("spec.").split("."):
        schema = schema["properties"][part]
    return schema


@pytest.mark.parametrize("path", sorted(storage_fields(instance())))
def test_every_immutable_storage_field_can_be_neither_changed_nor_set_later(
    spec_schema: dict[str, Any], path: str
) -> None:
    # The reconciler stalls on such a change (policy.storage_fields); the API server
    # should refuse it first. `self == oldSelf` catches a changed value, a transition
    # rule on spec catches a value added or removed.
    assert "self == oldSelf" in rules(schema_at(spec_schema, path)), path
    relative = path.removeprefix("spec.")
    transition = [
        rule
        for rule in rules(spec_schema)
        if f"has(self.{relative})" in rule and f"has(oldSelf.{relative})" in rule
    ]
    assert len(transition) == 1, f"{path}: no rule against setting or unsetting it"
    assert "==" in transition[0]


def test_the_password_may_change_it_is_rotated(spec_schema: dict[str, Any]) -> None:
    assert rules(spec_schema["properties"]["password"]) == []


def test_the_storage_may_grow_but_not_shrink(spec_schema: dict[str, Any]) -> None:
    assert any(
        "compareTo(quantity(oldSelf)) >= 0" in rule
        for rule in rules(spec_schema["properties"]["storage_size"])
    )


def test_the_reserved_database_names_match_the_parser(spec_schema: dict[str, Any]) -> None:
    (rule,) = rules(spec_schema["properties"]["database"])
    listed = re.search(r"in \[(.*)\]", rule)
    assert listed is not None, rule
    names = {name.strip().strip("'") for name in listed[1].split(",")}
    assert names == spec_module.SYSTEM_SCHEMAS
    assert "mysql_operator" in names
    assert "lowerAscii()" in rule, "matched case-insensitively, as the parser does"


def test_the_backup_fields_match_the_parser(spec_schema: dict[str, Any]) -> None:
    backup = spec_schema["properties"]["backup"]["properties"]
    assert set(backup) == spec_module.BACKUP_FIELDS
    assert backup["scope"]["enum"] == [scope.value for scope in spec_module.BackupScope]
    assert backup["scope"]["default"] == spec_module.BackupScope.DATABASE.value
    deadline = backup["deadline_seconds"]
    assert (deadline["minimum"], deadline["maximum"]) == (
        spec_module.MIN_DEADLINE_S,
        spec_module.MAX_SECONDS,
    )
    assert "default" not in deadline, "unset means: scale with the data size"
    idle = backup["idle_timeout_seconds"]
    assert (idle["minimum"], idle["maximum"], idle["default"]) == (
        spec_module.MIN_IDLE_TIMEOUT_S,
        spec_module.MAX_SECONDS,
        spec_module.DEFAULT_IDLE_TIMEOUT_S,
    )


def test_the_spec_fields_match_the_parser(spec_schema: dict[str, Any]) -> None:
    assert set(spec_schema["properties"]) == spec_module.SPEC_FIELDS


def test_required_fields(spec_schema: dict[str, Any]) -> None:
    assert sorted(spec_schema["required"]) == ["database", "image", "storage_size"]


def test_patterns_match_the_parser(spec_schema: dict[str, Any]) -> None:
    properties = spec_schema["properties"]
    quantity = spec_module.QUANTITY_PATTERN
    assert properties["storage_size"]["pattern"] == quantity
    assert properties["backup"]["properties"]["storage_size"]["pattern"] == quantity
    assert (
        properties["resources"]["properties"]["limits"]["properties"]["cpu"]["pattern"] == quantity
    )
    assert properties["database"]["pattern"] == spec_module.DATABASE_PATTERN
    assert properties["database"]["maxLength"] == spec_module.MAX_DATABASE_LENGTH
    assert properties["image"]["pattern"] == spec_module.IMAGE_PATTERN
    assert properties["storage_class"]["pattern"] == spec_module.STORAGE_CLASS_PATTERN
    ref = properties["passwordSecretRef"]["properties"]
    assert ref["name"]["pattern"] == spec_module.SECRET_NAME_PATTERN
    assert ref["key"]["pattern"] == spec_module.SECRET_KEY_PATTERN
    assert ref["key"]["default"] == spec_module.DEFAULT_PASSWORD_KEY
    policies = properties["deletion_policy"]
    assert policies["enum"] == [p.value for p in spec_module.DeletionPolicy]
    assert policies["default"] == spec_module.DeletionPolicy.BACKUP_THEN_DELETE.value
    keep = properties["backup"]["properties"]["keep"]
    assert keep["default"] == spec_module.DEFAULT_BACKUPS_KEPT
    assert keep["maximum"] == spec_module.MAX_BACKUPS_KEPT


# -- behaviour ------------------------------------------------------------------------------


def test_the_original_example_is_valid(spec_schema: dict[str, Any]) -> None:
    assert validate(ORIGINAL_SPEC, spec_schema, "spec") == []


def test_a_missing_storage_size_is_a_required_value(spec_schema: dict[str, Any]) -> None:
    without_size = {k: v for k, v in ORIGINAL_SPEC.items() if k != "storage_size"}
    assert validate(without_size, spec_schema, "spec") == ["spec.storage_size: Required value"]
    with pytest.raises(SpecError, match=r"^spec\.storage_size: Required value$"):
        parse_spec(without_size)


def test_crd_defaults_equal_parser_defaults(spec_schema: dict[str, Any]) -> None:
    example = {**ORIGINAL_SPEC, "backup": {}}
    assert parse_spec(apply_defaults(example, spec_schema)) == parse_spec(ORIGINAL_SPEC)


SAMPLES: list[dict[str, Any]] = [
    {},
    {"database": "bad`name"},
    {"database": "-x"},
    {"database": "d" * 65},
    {"database": "a$b_c-d"},
    {"storage_size": "1 Gi"},
    {"storage_size": "1.5Gi"},
    {"storage_size": "1e3"},
    {"storage_size": "+1Gi"},
    {"image": ""},
    {"image": "a b"},
    {"storage_class": "Fast"},
    {"storage_class": ""},
    {"host_path": "rel"},
    {"resources": {"requests": {"cpu": 2, "memory": "1Gi"}}},
    {"resources": {"limits": {"cpu": "two"}}},
    {"resources": {"limits": {"cpu": 0}}},
    {"backup": {"keep": 0}},
    {"backup": {"keep": 1001}},
    {"backup": {"keep": 3, "on_delete": False}},
    {"backup": {"scope": "all"}},
    {"backup": {"scope": "server"}},
    {"backup": {"deadline_seconds": 299}},
    {"backup": {"deadline_seconds": 300}},
    {"backup": {"deadline_seconds": 2**31}},
    {"backup": {"deadline_seconds": "600"}},
    {"backup": {"idle_timeout_seconds": 29}},
    {"backup": {"idle_timeout_seconds": 30}},
    {"deletion_policy": "Retain"},
    {"deletion_policy": "retain"},
    {"password": None, "passwordSecretRef": {"name": "s", "key": "k"}},
    {"password": None, "passwordSecretRef": {"name": "S"}},
]


@pytest.mark.parametrize("changes", SAMPLES)
def test_schema_and_parser_agree(spec_schema: dict[str, Any], changes: dict[str, Any]) -> None:
    sample = {**ORIGINAL_SPEC, **changes}
    sample = {key: value for key, value in sample.items() if value is not None}
    schema_errors = validate(sample, spec_schema, "spec")
    rejected_field: str | None = None
    try:
        parse_spec(apply_defaults(sample, spec_schema))
    except SpecError as error:
        rejected_field = error.field_path
    if rejected_field is None:
        assert schema_errors == []
    else:
        assert schema_errors, f"the parser rejects {rejected_field}, the schema accepts it"
        assert any(e.startswith(f"{rejected_field}:") for e in schema_errors), schema_errors


# -- crd/mysqlbackup.yaml -------------------------------------------------------------------

BACKUP_CRD_PATH = CRD_PATH.with_name("mysqlbackup.yaml")


@pytest.fixture(scope="module")
def backup_version() -> dict[str, Any]:
    loaded = yaml.safe_load(BACKUP_CRD_PATH.read_text())
    assert loaded["metadata"]["name"] == f"{vocabulary.BACKUP_PLURAL}.{vocabulary.API_GROUP}"
    names = loaded["spec"]["names"]
    assert (names["kind"], names["plural"]) == (vocabulary.BACKUP_KIND, vocabulary.BACKUP_PLURAL)
    assert loaded["spec"]["scope"] == "Namespaced"
    (only,) = loaded["spec"]["versions"]
    assert isinstance(only, dict)
    return only


def test_backup_printer_columns(backup_version: dict[str, Any]) -> None:
    columns = {c["name"]: c["jsonPath"] for c in backup_version["additionalPrinterColumns"]}
    assert columns == {
        "Instance": ".spec.instance",
        "Phase": ".status.phase",
        "Trigger": ".status.trigger",
        "Size": ".status.sizeBytes",
        "Age": ".metadata.creationTimestamp",
    }


def test_the_backup_schema_is_structural(backup_version: dict[str, Any]) -> None:
    root = backup_version["schema"]["openAPIV3Schema"]
    assert structural_problems(root, "") == []
    assert backup_version["subresources"] == {"status": {}}
    instance_field = root["properties"]["spec"]["properties"]["instance"]
    assert rules(instance_field) == ["self == oldSelf"]


def without_removals(value: Any) -> Any:
    """A merge patch's null means "remove": what the object holds after the patch."""
    if isinstance(value, dict):
        return {k: without_removals(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_removals(v) for v in value]
    return value


def validate_with_lists(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """`validate`, extended to the arrays of objects the status has (conditions)."""
    if schema.get("type") == "array":
        if not isinstance(value, list):
            return [f"{path}: Invalid value: must be of type array"]
        return [
            error
            for index, item in enumerate(value)
            for error in validate_with_lists(item, schema["items"], f"{path}[{index}]")
        ]
    if schema.get("type") == "object" and isinstance(value, dict):
        flat = {k: v for k, v in schema.items() if k not in ("properties", "required")}
        errors = validate(
            {k: v for k, v in value.items() if k not in schema.get("properties", {})}, flat, path
        )
        for required in schema.get("required", []):
            if required not in value:
                errors.append(f"{path}.{required}: Required value")
        for key, item in value.items():
            if key in schema.get("properties", {}):
                errors.extend(validate_with_lists(item, schema["properties"][key], f"{path}.{key}"))
        return sorted(set(errors))
    return validate(value, schema, path)


@pytest.mark.parametrize("phase", list(JobPhase))
def test_what_the_operator_writes_fits_the_backup_schema(
    backup_version: dict[str, Any], phase: JobPhase
) -> None:
    root = backup_version["schema"]["openAPIV3Schema"]
    line = f"dump=dump-0000000001.sql.gz sequence=1 size=10 sha256={'0' * 64} server_version=8.0"
    written = final_backup_object(
        namespace="ns",
        instance="db",
        uid="uid-1",
        name="db-20260101120000",
        started_at="2026-01-01T12:00:00Z",
        record=JobRecord(attempt=2, job="db-backup-1-2", phase=phase, message=line),
        now=datetime(2026, 1, 1, 12, 5, tzinfo=UTC),
    )
    document = without_removals({**written.manifest, "status": written.status})
    properties = root["properties"]
    assert validate_with_lists(document["spec"], properties["spec"], "spec") == []
    assert validate_with_lists(document["status"], properties["status"], "status") == []
    assert set(document["status"]) <= set(properties["status"]["properties"])


def test_the_backup_example_fits_the_schema_and_names_the_mysql_example(
    backup_version: dict[str, Any],
) -> None:
    examples = CRD_PATH.parents[1] / "examples"
    request = yaml.safe_load((examples / "mysqlbackup.yaml").read_text())
    instance = yaml.safe_load((examples / "mysql.yaml").read_text())
    assert (request["apiVersion"], request["kind"]) == ("otus.homework/v1", "MySQLBackup")
    schema = backup_version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert validate_with_lists(request["spec"], schema, "spec") == []
    assert request["spec"]["instance"] == instance["metadata"]["name"]
