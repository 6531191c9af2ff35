"""Parse a MySQL object into a frozen, validated `Instance`.

The CRD's schema rejects most bad input at admission, but the reconciler must not trust
that: objects can predate a schema change, and tests build them by hand. `parse_instance`
re-checks every rule the CRD states (and the same defaults), so the stack program only
ever sees valid input. Any problem raises `SpecError` naming the field, in the
`spec.storage_size: ...` style that the API server uses, so that the reconciler can put
it verbatim into a Stalled condition.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from enum import StrEnum
from typing import Final, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from reconciler.vocabulary import API_VERSION

# Names become Service names (DNS-1035 labels) and prefixes of Job names, whose pods carry
# a `job-name` label of at most 63 characters: 40 + len("-restore-") + 8 hex digits fits.
MAX_NAME_LENGTH: Final = 40
NAME_PATTERN: Final = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"

# An unsigned Kubernetes quantity (the sign is excluded: sizes must be positive).
QUANTITY_PATTERN: Final = (
    r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
# Identifiers are always quoted with backticks, so `otus-database` is fine. The first
# character may not be `-` because the scripts pass the name to mysqldump as an argument.
DATABASE_PATTERN: Final = r"^[A-Za-z0-9_$][A-Za-z0-9_$-]*$"
MAX_DATABASE_LENGTH: Final = 64
# `mysql_operator` holds the operator's record of where the data came from (restore.sh).
SYSTEM_SCHEMAS: Final = frozenset(
    {"mysql", "information_schema", "performance_schema", "sys", "mysql_operator"}
)
IMAGE_PATTERN: Final = r"^\S+$"
STORAGE_CLASS_PATTERN: Final = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$"
SECRET_NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"  # noqa: S105 (a pattern)
OBJECT_NAME_PATTERN: Final = SECRET_NAME_PATTERN  # a DNS subdomain, as any object's name
SECRET_KEY_PATTERN: Final = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 (a pattern)
# An S3 endpoint: scheme, host and optional port, nothing after (requests are path-style).
S3_ENDPOINT_PATTERN: Final = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$"
S3_BUCKET_PATTERN: Final = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
# Slash-separated segments of the characters S3 calls safe; no empty or `..` segment.
S3_PREFIX_PATTERN: Final = r"^([A-Za-z0-9!_.*()-]+(/[A-Za-z0-9!_.*()-]+)*)?$"
S3_REGION_PATTERN: Final = r"^[a-z0-9-]+$"
DEFAULT_S3_REGION: Final = "us-east-1"
DEFAULT_CA_KEY: Final = "ca.crt"
MAX_BACKUPS_KEPT: Final = 1000

DEFAULT_PASSWORD_KEY: Final = "password"  # noqa: S105 (a key name, not a password)
DEFAULT_BACKUPS_KEPT: Final = 5
DEFAULT_IDLE_TIMEOUT_S: Final = 600
DEFAULT_TIME_ZONE: Final = "UTC"
MAX_SCHEDULE_LENGTH: Final = 128
MAX_TIME_ZONE_LENGTH: Final = 64
MIN_IDLE_TIMEOUT_S: Final = 30
MIN_DEADLINE_S: Final = 300
MAX_SECONDS: Final = 2**31 - 1
# A backup or restore Job's deadline unless the spec sets one: an hour, plus half an hour
# per GiB of data storage. A stalled dump is caught sooner by the idle timeout.
BASE_DEADLINE_S: Final = 3600
DEADLINE_S_PER_GIB: Final = 1800


class SpecError(ValueError):
    """A MySQL object that cannot be turned into an instance; `field` names the culprit."""

    def __init__(self, field_path: str, problem: str) -> None:
        super().__init__(f"{field_path}: {problem}")
        self.field_path = field_path
        self.problem = problem


class BackupScope(StrEnum):
    """What a dump holds."""

    DATABASE = "database"  # spec.database only
    ALL = "all"  # every schema, with users and grants


class DeletionPolicy(StrEnum):
    """What happens to the data when the MySQL object is deleted."""

    BACKUP_THEN_DELETE = "BackupThenDelete"
    RETAIN = "Retain"  # the data PVC (and PV) outlive the instance
    DELETE = "Delete"  # no backup, whatever `backup.on_delete` says


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str = DEFAULT_PASSWORD_KEY


@dataclass(frozen=True)
class S3Store:
    """Where requested and scheduled dumps go instead of the backup volume: a bucket of
    an S3-compatible store, reached path-style, with the keys of a Secret in the
    instance's namespace (`access_key_id`, `secret_access_key`)."""

    endpoint: str
    bucket: str
    credentials_secret: str
    prefix: str = ""
    region: str = DEFAULT_S3_REGION
    ca_secret_ref: SecretKeyRef | None = None  # a CA bundle for an https endpoint

    def key_for(self, namespace: str, instance: str, backup: str) -> str:
        """The object key of one backup's dump."""
        parts = [self.prefix] if self.prefix else []
        return "/".join([*parts, namespace, instance, f"{backup}.sql.gz"])

    def url_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def to_spec(self) -> dict[str, object]:
        """The store as spec.backup.s3 states it; `parse_s3_store` reads it back."""
        found: dict[str, object] = {
            "endpoint": self.endpoint,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "region": self.region,
            "credentials_secret_ref": {"name": self.credentials_secret},
        }
        if self.ca_secret_ref is not None:
            found["ca_secret_ref"] = {
                "name": self.ca_secret_ref.name,
                "key": self.ca_secret_ref.key,
            }
        return found


def parse_s3_store(raw: object) -> S3Store | None:
    """A store recorded with `S3Store.to_spec`; None when it is missing or invalid."""
    try:
        return _s3(raw, "store")
    except SpecError:
        return None


@dataclass(frozen=True)
class RestoreFrom:
    """A new instance restores this MySQLBackup (same namespace) instead of the newest
    dump of its own name."""

    backup: str


@dataclass(frozen=True)
class ResourceAmounts:
    cpu: str | None = None
    memory: str | None = None


@dataclass(frozen=True)
class ComputeResources:
    requests: ResourceAmounts = ResourceAmounts()
    limits: ResourceAmounts = ResourceAmounts()


@dataclass(frozen=True)
class BackupSpec:
    storage_size: str
    storage_class: str | None = None
    host_path: str | None = None
    on_delete: bool = True
    keep: int = DEFAULT_BACKUPS_KEPT
    scope: BackupScope = BackupScope.DATABASE
    deadline_seconds: int | None = None  # None: scales with the data storage's size
    idle_timeout_seconds: int = DEFAULT_IDLE_TIMEOUT_S
    schedule: str | None = None  # a 5-field cron expression, in time_zone
    time_zone: str = DEFAULT_TIME_ZONE
    s3: S3Store | None = None


class DriftMode(StrEnum):
    """What a hand edit of the instance's Deployment or Services leads to."""

    HEAL = "Heal"  # an `up --refresh` puts the declared state back, and an Event says what
    REPORT = "Report"  # only the DriftDetected condition


@dataclass(frozen=True)
class MySQLSpec:
    image: str
    database: str
    storage_size: str
    backup: BackupSpec
    # repr=False: specs end up in log lines and exception messages.
    password: str | None = field(default=None, repr=False)
    password_secret_ref: SecretKeyRef | None = None
    storage_class: str | None = None
    host_path: str | None = None
    resources: ComputeResources = ComputeResources()
    deletion_policy: DeletionPolicy = DeletionPolicy.BACKUP_THEN_DELETE
    restore_from: RestoreFrom | None = None
    drift: DriftMode = DriftMode.HEAL

    @property
    def backs_up_on_delete(self) -> bool:
        return self.backup.on_delete and self.deletion_policy is not DeletionPolicy.DELETE

    @property
    def job_deadline_seconds(self) -> int:
        """How long a backup or restore Job may run in all."""
        if self.backup.deadline_seconds is not None:
            return self.backup.deadline_seconds
        gibibytes = -(-quantity_bytes(self.storage_size) // 2**30)  # rounded up
        return min(MAX_SECONDS, BASE_DEADLINE_S + DEADLINE_S_PER_GIB * gibibytes)


@dataclass(frozen=True)
class Instance:
    """One MySQL object: its identity (the uid goes into owner references) and its spec."""

    name: str
    namespace: str
    uid: str
    spec: MySQLSpec


def parse_instance(obj: object) -> Instance:
    """Validates a MySQL object (as the API returns it, a dict) into an `Instance`."""
    root = _mapping(obj, "object")
    api_version = root.get("apiVersion")
    if api_version is not None and api_version != API_VERSION:
        raise SpecError("apiVersion", f"must be {API_VERSION}, not {api_version!r}")
    metadata = _mapping(root.get("metadata"), "metadata")
    name = _string(metadata, "name", "metadata", max_length=MAX_NAME_LENGTH)
    if not re.fullmatch(NAME_PATTERN, name):
        raise SpecError(
            "metadata.name",
            "must be a DNS-1035 label: lower-case letters, digits and '-', starting with a "
            "letter and ending with a letter or digit",
        )
    namespace = _string(metadata, "namespace", "metadata", max_length=63)
    uid = _string(metadata, "uid", "metadata", max_length=128)
    return Instance(name=name, namespace=namespace, uid=uid, spec=parse_spec(root.get("spec")))


SPEC_FIELDS: Final = frozenset(
    {
        "image",
        "database",
        "password",
        "passwordSecretRef",
        "storage_size",
        "storage_class",
        "host_path",
        "resources",
        "backup",
        "deletion_policy",
        "restore_from",
        "drift",
    }
)


def parse_spec(raw: object) -> MySQLSpec:
    """Validates the `spec` of a MySQL object; errors are `SpecError` naming the field."""
    spec = _mapping(raw, "spec")
    _reject_unknown(spec, SPEC_FIELDS, "spec")
    image = _string(spec, "image", "spec", pattern=IMAGE_PATTERN, max_length=512)
    database = _database(spec)
    password, secret_ref = _password(spec)
    storage_size = _quantity(spec, "storage_size", "spec")
    return MySQLSpec(
        image=image,
        database=database,
        password=password,
        password_secret_ref=secret_ref,
        storage_size=storage_size,
        storage_class=_optional_storage_class(spec, "spec"),
        host_path=_optional_host_path(spec, "spec"),
        resources=_resources(spec.get("resources")),
        backup=_backup(spec.get("backup"), default_size=storage_size),
        deletion_policy=_choice(spec, "deletion_policy", DeletionPolicy.BACKUP_THEN_DELETE),
        restore_from=_restore_from(spec.get("restore_from")),
        drift=_choice(spec, "drift", DriftMode.HEAL),
    )


def _restore_from(raw: object) -> RestoreFrom | None:
    if raw is None:
        return None
    path = "spec.restore_from"
    restore_from = _mapping(raw, path)
    _reject_unknown(restore_from, frozenset({"backup"}), path)
    return RestoreFrom(
        _string(restore_from, "backup", path, pattern=OBJECT_NAME_PATTERN, max_length=253)
    )


def _database(spec: Mapping[str, object]) -> str:
    database = _string(spec, "database", "spec", max_length=MAX_DATABASE_LENGTH)
    if not re.fullmatch(DATABASE_PATTERN, database):
        raise SpecError(
            "spec.database",
            f"must be a MySQL identifier: letters, digits, '_', '$' and '-' "
            f"(not first), at most {MAX_DATABASE_LENGTH} characters; got {database!r}",
        )
    if database.lower() in SYSTEM_SCHEMAS:
        raise SpecError("spec.database", f"{database!r} is a MySQL system schema")
    return database


def _password(spec: Mapping[str, object]) -> tuple[str | None, SecretKeyRef | None]:
    has_password = spec.get("password") is not None
    has_ref = spec.get("passwordSecretRef") is not None
    if has_password == has_ref:
        raise SpecError(
            "spec.password",
            "exactly one of spec.password and spec.passwordSecretRef must be set",
        )
    if has_password:
        return _string(spec, "password", "spec", max_length=1024), None
    ref = _mapping(spec["passwordSecretRef"], "spec.passwordSecretRef")
    path = "spec.passwordSecretRef"
    _reject_unknown(ref, frozenset({"name", "key"}), path)
    return None, SecretKeyRef(
        name=_string(ref, "name", path, pattern=SECRET_NAME_PATTERN, max_length=253),
        key=_string(ref, "key", path, pattern=SECRET_KEY_PATTERN, max_length=253)
        if "key" in ref
        else DEFAULT_PASSWORD_KEY,
    )


def _resources(raw: object) -> ComputeResources:
    if raw is None:
        return ComputeResources()
    path = "spec.resources"
    resources = _mapping(raw, path)
    _reject_unknown(resources, frozenset({"requests", "limits"}), path)
    parsed = ComputeResources(
        requests=_amounts(resources.get("requests"), f"{path}.requests"),
        limits=_amounts(resources.get("limits"), f"{path}.limits"),
    )
    for kind in ("cpu", "memory"):
        request, limit = getattr(parsed.requests, kind), getattr(parsed.limits, kind)
        if (
            request is not None
            and limit is not None
            and quantity_value(request) > quantity_value(limit)
        ):
            raise SpecError(
                f"{path}.requests.{kind}",
                f"must not exceed {path}.limits.{kind} ({limit}); got {request!r}",
            )
    return parsed


def _amounts(raw: object, path: str) -> ResourceAmounts:
    if raw is None:
        return ResourceAmounts()
    amounts = _mapping(raw, path)
    _reject_unknown(amounts, frozenset({"cpu", "memory"}), path)
    return ResourceAmounts(
        cpu=_optional_quantity(amounts, "cpu", path),
        memory=_optional_quantity(amounts, "memory", path),
    )


BACKUP_FIELDS: Final = frozenset(
    {
        "storage_size",
        "storage_class",
        "host_path",
        "on_delete",
        "keep",
        "scope",
        "deadline_seconds",
        "idle_timeout_seconds",
        "schedule",
        "time_zone",
        "s3",
    }
)


def _backup(raw: object, *, default_size: str) -> BackupSpec:
    if raw is None:
        return BackupSpec(storage_size=default_size)
    path = "spec.backup"
    backup = _mapping(raw, path)
    _reject_unknown(backup, BACKUP_FIELDS, path)
    on_delete = backup.get("on_delete", True)
    if not isinstance(on_delete, bool):
        raise SpecError(f"{path}.on_delete", f"must be true or false, not {on_delete!r}")
    keep = backup.get("keep", DEFAULT_BACKUPS_KEPT)
    # bool is an int in Python; `keep: true` is still a type error.
    if not isinstance(keep, int) or isinstance(keep, bool) or not 1 <= keep <= MAX_BACKUPS_KEPT:
        raise SpecError(f"{path}.keep", f"must be an integer from 1 to {MAX_BACKUPS_KEPT}")
    size = _optional_quantity(backup, "storage_size", path)
    scope_text = backup.get("scope", BackupScope.DATABASE.value)
    scopes = {scope.value: scope for scope in BackupScope}
    if scope_text not in scopes:
        raise SpecError(f"{path}.scope", f"must be one of {', '.join(scopes)}; got {scope_text!r}")
    deadline = _optional_int(backup, "deadline_seconds", path, MIN_DEADLINE_S, MAX_SECONDS)
    idle = _optional_int(backup, "idle_timeout_seconds", path, MIN_IDLE_TIMEOUT_S, MAX_SECONDS)
    return BackupSpec(
        storage_size=size if size is not None else default_size,
        storage_class=_optional_storage_class(backup, path),
        host_path=_optional_host_path(backup, path),
        on_delete=on_delete,
        keep=keep,
        scope=scopes[str(scope_text)],
        deadline_seconds=deadline,
        idle_timeout_seconds=idle if idle is not None else DEFAULT_IDLE_TIMEOUT_S,
        schedule=_schedule(backup, path),
        time_zone=_time_zone(backup, path),
        s3=_s3(backup.get("s3"), f"{path}.s3"),
    )


S3_FIELDS: Final = frozenset(
    {"endpoint", "bucket", "prefix", "region", "credentials_secret_ref", "ca_secret_ref"}
)


def _s3(raw: object, path: str) -> S3Store | None:
    if raw is None:
        return None
    s3 = _mapping(raw, path)
    _reject_unknown(s3, S3_FIELDS, path)
    credentials = _mapping(s3.get("credentials_secret_ref"), f"{path}.credentials_secret_ref")
    _reject_unknown(credentials, frozenset({"name"}), f"{path}.credentials_secret_ref")
    ca_secret_ref = None
    if s3.get("ca_secret_ref") is not None:
        ca_path = f"{path}.ca_secret_ref"
        ca = _mapping(s3["ca_secret_ref"], ca_path)
        _reject_unknown(ca, frozenset({"name", "key"}), ca_path)
        ca_secret_ref = SecretKeyRef(
            _string(ca, "name", ca_path, pattern=SECRET_NAME_PATTERN, max_length=253),
            _string(ca, "key", ca_path, pattern=SECRET_KEY_PATTERN, max_length=253)
            if ca.get("key") is not None
            else DEFAULT_CA_KEY,
        )
    endpoint = _string(s3, "endpoint", path, pattern=S3_ENDPOINT_PATTERN, max_length=512)
    if ca_secret_ref is not None and not endpoint.startswith("https://"):
        raise SpecError(f"{path}.ca_secret_ref", "needs an https:// endpoint")
    return S3Store(
        endpoint=endpoint.rstrip("/"),
        bucket=_string(s3, "bucket", path, pattern=S3_BUCKET_PATTERN, max_length=63),
        credentials_secret=_string(
            credentials,
            "name",
            f"{path}.credentials_secret_ref",
            pattern=SECRET_NAME_PATTERN,
            max_length=253,
        ),
        prefix=_string(
            s3, "prefix", path, pattern=S3_PREFIX_PATTERN, max_length=512, allow_empty=True
        )
        if s3.get("prefix") is not None
        else "",
        region=_string(s3, "region", path, pattern=S3_REGION_PATTERN, max_length=64)
        if s3.get("region") is not None
        else DEFAULT_S3_REGION,
        ca_secret_ref=ca_secret_ref,
    )


def _schedule(backup: Mapping[str, object], path: str) -> str | None:
    raw = backup.get("schedule")
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw.split()) != 5 or len(raw) > MAX_SCHEDULE_LENGTH:
        raise SpecError(
            f"{path}.schedule",
            "must be a cron expression of 5 fields (minute hour day-of-month month "
            f"day-of-week), such as '0 3 * * *'; got {raw!r}",
        )
    try:
        CronSim(raw, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as error:
        raise SpecError(f"{path}.schedule", f"{error} in {raw!r}") from None
    return raw


def _time_zone(backup: Mapping[str, object], path: str) -> str:
    raw = backup.get("time_zone", DEFAULT_TIME_ZONE)
    if not isinstance(raw, str) or not raw or len(raw) > MAX_TIME_ZONE_LENGTH:
        raise SpecError(f"{path}.time_zone", f"must be an IANA time zone name; got {raw!r}")
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise SpecError(
            f"{path}.time_zone", f"unknown time zone {raw!r} (an IANA name such as Europe/Paris)"
        ) from None
    return raw


def _optional_int(
    parent: Mapping[str, object], key: str, path: str, low: int, high: int
) -> int | None:
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SpecError(f"{path}.{key}", f"must be an integer from {low} to {high}")
    return value


_Choice = TypeVar("_Choice", bound=StrEnum)


def _choice(spec: Mapping[str, object], key: str, default: _Choice) -> _Choice:
    """spec.<key>, one of the values of `default`'s enum (`default` when unset)."""
    raw = spec.get(key, default.value)
    for choice in type(default):
        if raw == choice.value:
            return choice
    allowed = ", ".join(choice.value for choice in type(default))
    raise SpecError(f"spec.{key}", f"must be one of {allowed}; got {raw!r}")


def _optional_storage_class(parent: Mapping[str, object], path: str) -> str | None:
    if parent.get("storage_class") is None:
        return None
    return _string(
        parent,
        "storage_class",
        path,
        pattern=STORAGE_CLASS_PATTERN,
        max_length=253,
        allow_empty=True,  # "" is Kubernetes' way to ask for no class (static binding)
    )


def _optional_host_path(parent: Mapping[str, object], path: str) -> str | None:
    if parent.get("host_path") is None:
        return None
    host_path = _string(parent, "host_path", path, max_length=1024)
    if not host_path.startswith("/") or ".." in host_path.split("/"):
        raise SpecError(f"{path}.host_path", "must be an absolute path without '..'")
    return host_path


def _quantity(parent: Mapping[str, object], key: str, path: str) -> str:
    quantity = _optional_quantity(parent, key, path)
    if quantity is None:
        raise SpecError(f"{path}.{key}", "Required value")
    return quantity


def _optional_quantity(parent: Mapping[str, object], key: str, path: str) -> str | None:
    raw = parent.get(key)
    if raw is None:
        return None
    # YAML turns `cpu: 1` into an int; Kubernetes accepts both forms.
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or not re.fullmatch(QUANTITY_PATTERN, raw) or _is_zero(raw):
        raise SpecError(f"{path}.{key}", f"must be a positive quantity such as 1Gi; got {raw!r}")
    return raw


_SUFFIXES: Final[dict[str, int | Decimal]] = {
    "": 1,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}


def quantity_value(quantity: str) -> Decimal:
    """A valid Kubernetes quantity (QUANTITY_PATTERN) as an exact number of units."""
    match = re.fullmatch(r"([0-9.]+)(.*)", quantity)
    if match is None:
        raise ValueError(f"not a quantity: {quantity!r}")
    number, suffix = Decimal(match[1]), match[2]
    if suffix in _SUFFIXES:
        return number * Decimal(_SUFFIXES[suffix])
    return number * Decimal(10) ** Decimal(suffix[1:])  # a decimal exponent: e3, E+6


def quantity_bytes(quantity: str) -> int:
    """A valid Kubernetes quantity in whole units, rounded up."""
    return int(quantity_value(quantity).to_integral_value(rounding=ROUND_CEILING))


def _is_zero(quantity: str) -> bool:
    mantissa = re.match(r"^[0-9.]+", quantity)
    try:
        return mantissa is None or Decimal(mantissa[0]) == 0
    except InvalidOperation:
        return True


def _string(
    parent: Mapping[str, object],
    key: str,
    path: str,
    *,
    pattern: str | None = None,
    max_length: int,
    allow_empty: bool = False,
) -> str:
    field_path = f"{path}.{key}"
    value = parent.get(key)
    if value is None:
        raise SpecError(field_path, "Required value")
    if not isinstance(value, str):
        raise SpecError(field_path, f"must be a string, not {type(value).__name__}")
    if not value and not allow_empty:
        raise SpecError(field_path, "must not be empty")
    if len(value) > max_length:
        raise SpecError(field_path, f"must be at most {max_length} characters")
    if pattern is not None and not re.fullmatch(pattern, value):
        raise SpecError(field_path, f"must match {pattern}; got {value!r}")
    return value


def _mapping(value: object, path: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        if value is None:
            raise SpecError(path, "Required value")
        raise SpecError(path, f"must be an object, not {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise SpecError(path, f"has a non-string key {key!r}")
    return value


def _reject_unknown(value: Mapping[str, object], known: frozenset[str], path: str) -> None:
    # The API server prunes unknown fields; this catches typos in hand-built objects.
    unknown = sorted(set(value) - known)
    if unknown:
        raise SpecError(f"{path}.{unknown[0]}", "unknown field")
