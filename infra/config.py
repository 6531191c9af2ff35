"""The installation's stack configuration: read once, validated, frozen.

Every key lives in the project's namespace (`pulumi config set mysql-operator:<key>`, or
just `pulumi config set <key>` inside the project). `read_config` is the only function
that touches `pulumi.Config`; `parse_config` is pure and names the key in every error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import pulumi

from reconciler.settings import DEFAULT_WORKERS, MAX_WORKERS, LogLevel

DEFAULT_NAMESPACE: Final = "mysql-operator"
DEFAULT_PULL_POLICY: Final = "IfNotPresent"
DEFAULT_STATE_SIZE: Final = "1Gi"
PULL_POLICIES: Final = ("Always", "IfNotPresent", "Never")
# A DNS-1123 label: namespaces and the names derived from them.
_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY: Final = re.compile(
    r"^(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


@dataclass(frozen=True)
class Resources:
    cpu_request: str = "100m"
    memory_request: str = "256Mi"
    cpu_limit: str = "2"
    memory_limit: str = "2Gi"


@dataclass(frozen=True)
class InstallConfig:
    image: str
    namespace: str = DEFAULT_NAMESPACE
    image_pull_policy: str = DEFAULT_PULL_POLICY
    watched_namespaces: tuple[str, ...] = ()  # empty: every namespace
    label_selector: str | None = None  # only MySQL objects with these labels
    host_path_root: str | None = None  # spec host paths allowed only below it (None: none)
    backend_url: str | None = None  # None: the file backend on the state claim
    workers: int = DEFAULT_WORKERS
    log_level: LogLevel = LogLevel.INFO
    state_storage_size: str = DEFAULT_STATE_SIZE
    state_storage_class: str | None = None  # None: the cluster's default class
    # A static hostPath volume, for clusters without a provisioner.
    state_host_path: str | None = None
    kubeconfig: str | None = None  # None: the provider's ambient $KUBECONFIG / ~/.kube/config
    context: str | None = None
    resources: Resources = field(default_factory=Resources)
    # The reconciler runs with --leader-elect and may touch a Lease in its namespace. The
    # Deployment keeps one replica: the file backend has one writer (docs/design.md).
    leader_election: bool = False
    # A Secret in `namespace` with access_key_id and secret_access_key, for an S3
    # backendUrl: they reach the reconciler as the AWS variables the CLI reads.
    backend_credentials_secret: str | None = None

    @property
    def uses_state_claim(self) -> bool:
        return self.backend_url is None

    @property
    def replicas(self) -> int:
        """Two with a remote backend and leader election (one leads, one stands by);
        otherwise one: the state claim has a single writer."""
        return 2 if self.leader_election and not self.uses_state_claim else 1


# The raw value of one key: a string, or a list for watchedNamespaces given as an object.
RawValue = str | list[str] | None


def parse_config(raw: Mapping[str, RawValue]) -> InstallConfig:
    """Validates raw key values (absent keys are missing or None) into an `InstallConfig`."""

    def text(key: str) -> str | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string")
        return value.strip() or None

    image = text("image")
    if image is None:
        raise ConfigError(
            "image: required, the reconciler image (e.g. registry/mysql-operator:1.0)"
        )
    if any(c.isspace() for c in image):
        raise ConfigError(f"image: must not contain whitespace: {image!r}")
    namespace = text("namespace") or DEFAULT_NAMESPACE
    _label("namespace", namespace)
    pull_policy = text("imagePullPolicy") or DEFAULT_PULL_POLICY
    if pull_policy not in PULL_POLICIES:
        raise ConfigError(f"imagePullPolicy: one of {list(PULL_POLICIES)}, not {pull_policy!r}")
    watched = _namespaces(raw.get("watchedNamespaces"))
    label_selector = text("labelSelector")
    host_path_root = text("hostPathRoot")
    if host_path_root is not None and (
        not re.fullmatch(r"/[A-Za-z0-9._/-]+", host_path_root)
        or ".." in host_path_root.split("/")
        or host_path_root.rstrip("/") == ""
    ):
        raise ConfigError(
            f"hostPathRoot: an absolute directory other than / (letters, digits, '.', '_', "
            f"'-' and '/'): {host_path_root!r}"
        )
    backend_url = text("backendUrl")
    if backend_url is not None and "://" not in backend_url:
        raise ConfigError(f"backendUrl: not a URL: {backend_url!r}")
    workers = _int("workers", text("workers"), DEFAULT_WORKERS)
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"workers: between 1 and {MAX_WORKERS}")
    level_text = (text("logLevel") or LogLevel.INFO.value).upper()
    try:
        log_level = LogLevel(level_text)
    except ValueError:
        raise ConfigError(f"logLevel: one of {[lv.value for lv in LogLevel]}") from None
    host_path = text("stateHostPath")
    if host_path is not None and (not host_path.startswith("/") or ".." in host_path.split("/")):
        raise ConfigError(f"stateHostPath: an absolute path without '..': {host_path!r}")
    storage_class = raw.get("stateStorageClass")
    if storage_class is not None and not isinstance(storage_class, str):
        raise ConfigError("stateStorageClass: expected a string")
    credentials_secret = text("backendCredentialsSecret")
    if credentials_secret is not None:
        if backend_url is None:
            raise ConfigError("backendCredentialsSecret: only with backendUrl")
        _label("backendCredentialsSecret", credentials_secret)
    leader_election = (text("leaderElection") or "false").lower()
    if leader_election not in ("true", "false"):
        raise ConfigError(f"leaderElection: 'true' or 'false', not {leader_election!r}")
    defaults = Resources()
    return InstallConfig(
        leader_election=leader_election == "true",
        backend_credentials_secret=credentials_secret,
        image=image,
        namespace=namespace,
        image_pull_policy=pull_policy,
        watched_namespaces=watched,
        label_selector=label_selector,
        host_path_root=host_path_root,
        backend_url=backend_url,
        workers=workers,
        log_level=log_level,
        state_storage_size=_quantity("stateStorageSize", text("stateStorageSize"))
        or DEFAULT_STATE_SIZE,
        # "" is kept: it means "no class", which binds only to a static volume.
        state_storage_class=storage_class.strip() if storage_class is not None else None,
        state_host_path=host_path,
        kubeconfig=text("kubeconfig"),
        context=text("context"),
        resources=Resources(
            cpu_request=_quantity("cpuRequest", text("cpuRequest")) or defaults.cpu_request,
            memory_request=_quantity("memoryRequest", text("memoryRequest"))
            or defaults.memory_request,
            cpu_limit=_quantity("cpuLimit", text("cpuLimit")) or defaults.cpu_limit,
            memory_limit=_quantity("memoryLimit", text("memoryLimit")) or defaults.memory_limit,
        ),
    )


KEYS: Final = (
    "image",
    "namespace",
    "imagePullPolicy",
    "watchedNamespaces",
    "labelSelector",
    "hostPathRoot",
    "backendUrl",
    "workers",
    "logLevel",
    "stateStorageSize",
    "stateStorageClass",
    "stateHostPath",
    "kubeconfig",
    "context",
    "cpuRequest",
    "memoryRequest",
    "cpuLimit",
    "memoryLimit",
    "leaderElection",
    "backendCredentialsSecret",
)
SECRET_KEYS: Final = ("passphrase",)


def read_config(config: pulumi.Config) -> InstallConfig:
    """Reads every key from the stack's configuration (the only impure function here)."""
    raw: dict[str, RawValue] = {}
    for key in KEYS:
        value = config.get(key)
        if key == "watchedNamespaces" and value is not None and value.lstrip().startswith("["):
            listed = config.get_object(key)
            if not isinstance(listed, list) or not all(isinstance(v, str) for v in listed):
                raise ConfigError("watchedNamespaces: a list of namespace names")
            raw[key] = [str(v) for v in listed]
        else:
            raw[key] = value
    return parse_config(raw)


def read_passphrase(config: pulumi.Config) -> pulumi.Output[str] | None:
    """The optional `passphrase` key, which must be set with `--secret`."""
    return config.get_secret("passphrase")


def _label(key: str, value: str) -> str:
    if len(value) > 63 or not _LABEL.match(value):
        raise ConfigError(f"{key}: not a DNS-1123 label: {value!r}")
    return value


def _namespaces(value: RawValue) -> tuple[str, ...]:
    items = value if isinstance(value, list) else (value or "").split(",")
    names = [item.strip() for item in items if item.strip()]
    for name in names:
        _label("watchedNamespaces", name)
    return tuple(dict.fromkeys(names))


def _int(key: str, value: str | None, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{key}: not an integer: {value!r}") from None


def _quantity(key: str, value: str | None) -> str | None:
    if value is not None and not _QUANTITY.match(value):
        raise ConfigError(f"{key}: not a quantity such as 1Gi or 500m: {value!r}")
    return value
