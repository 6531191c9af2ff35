"""The reconciler's runtime settings: one frozen object, read from flags and the environment.

Every setting has a flag and an environment variable (`MYSQL_OPERATOR_<NAME>`); a flag
wins over the environment, which wins over the default. The defaults are safe for one
reconciler on one machine: a file state backend under the user's cache directory, a
handful of workers, health and metrics on loopback only. There is deliberately no default
passphrase: without one the reconciler refuses to start rather than encrypt secrets with
a well-known key.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Final

from reconciler.leases import DEFAULT_LEASE_NAME
from reconciler.selectors import Selector, SelectorError, parse_selector

ENV_PREFIX: Final = "MYSQL_OPERATOR_"
DEFAULT_PASSPHRASE_ENV: Final = "PULUMI_CONFIG_PASSPHRASE"  # noqa: S105 (a variable name)
DEFAULT_WORKERS: Final = 2
DEFAULT_RESYNC_S: Final = 300.0
DEFAULT_HTTP_ADDRESS: Final = "127.0.0.1:8080"
DEFAULT_PROJECT: Final = "mysql-operator"
DEFAULT_CLUSTER_DOMAIN: Final = "cluster.local"
DEFAULT_STUCK_AFTER_S: Final = 900.0
MAX_WORKERS: Final = 64
SERVICE_ACCOUNT_NAMESPACE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_DNS_NAME: Final = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the flag."""


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


@dataclass(frozen=True)
class SecretReference:
    """Where the state passphrase lives when it is not in the environment."""

    namespace: str
    name: str
    key: str = "passphrase"


@dataclass(frozen=True)
class PassphraseSource:
    """Either an environment variable's name or a Secret; never the passphrase itself."""

    env_var: str = DEFAULT_PASSPHRASE_ENV
    secret: SecretReference | None = None


@dataclass(frozen=True)
class HttpAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class LeaderElection:
    namespace: str  # where the Lease lives: the operator's own namespace
    lease_name: str
    identity: str  # unique per process: the pod's name and a random suffix


@dataclass(frozen=True)
class Settings:
    namespaces: tuple[str, ...]  # empty: every namespace
    workers: int
    state_dir: Path
    backend_url: str  # any Pulumi DIY backend URL: file://, s3://, gs://, azblob://
    passphrase: PassphraseSource
    resync_period_s: float
    http_address: HttpAddress
    kubeconfig: str | None  # None: $KUBECONFIG, ~/.kube/config, or in-cluster
    log_level: LogLevel
    label_selector: str = ""  # only MySQL objects with these labels (a Kubernetes selector)
    selector: Selector = field(default_factory=Selector)  # the same, parsed
    # Where spec host paths may point (None: nowhere; use a StorageClass).
    host_path_root: str | None = None
    # A reconcile running longer than this is stuck: /healthz fails, so it is restarted.
    stuck_after_s: float = DEFAULT_STUCK_AFTER_S
    project_name: str = DEFAULT_PROJECT
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN
    backoff_base_s: float = 2.0
    backoff_max_s: float = 300.0
    watch_timeout_s: int = 240  # server-side watch timeout; the watch reconnects after it
    # The image whose Python moves dumps to and from S3 in backup and restore Jobs (the
    # reconciler's own); None: instances with spec.backup.s3 are Stalled, saying so.
    transfer_image: str | None = None
    # Leader election on a Lease (`run` only): None runs without one. Several reconcilers
    # may then share a state backend: only the Lease's holder reconciles.
    leader_election: LeaderElection | None = None

    @property
    def watches_all_namespaces(self) -> bool:
        return not self.namespaces


def default_state_dir(environ: Mapping[str, str]) -> Path:
    cache = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME", "/root")) / ".cache")
    return Path(cache) / "mysql-operator" / "state"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags shared by `run` and `preview`; their defaults come from the environment."""
    parser.add_argument(
        "--namespace",
        dest="namespaces",
        action="append",
        help="watch only this namespace (repeatable; comma lists allowed); default: all",
    )
    parser.add_argument("--workers", help=f"parallel reconciles (default {DEFAULT_WORKERS})")
    parser.add_argument("--state-dir", help="where the file state backend keeps stacks")
    parser.add_argument(
        "--backend-url", help="a Pulumi DIY backend URL; default file://<state-dir>"
    )
    parser.add_argument(
        "--passphrase-env",
        help=f"variable holding the state passphrase (default {DEFAULT_PASSPHRASE_ENV})",
    )
    parser.add_argument(
        "--passphrase-secret", help="namespace/name[/key] of a Secret holding the passphrase"
    )
    parser.add_argument("--resync-period", help="seconds between full re-lists")
    parser.add_argument("--http-address", help="host:port for /healthz and /metrics")
    parser.add_argument("--kubeconfig", help="kubeconfig path; default $KUBECONFIG or in-cluster")
    parser.add_argument("--log-level", choices=[level.value for level in LogLevel])
    parser.add_argument(
        "--label-selector",
        help="reconcile only MySQL objects matching this label selector (e.g. to shard)",
    )
    parser.add_argument(
        "--host-path-root",
        help="allow spec host paths only under this directory (default: none allowed)",
    )
    parser.add_argument(
        "--transfer-image",
        help="image that moves dumps to and from S3 in Jobs (the reconciler's own image); "
        "without it, spec.backup.s3 cannot be used",
    )
    parser.add_argument(
        "--stuck-after",
        help=f"seconds after which a running reconcile counts as stuck for /healthz "
        f"(default {DEFAULT_STUCK_AFTER_S:.0f})",
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags only `run` has."""
    parser.add_argument(
        "--leader-elect",
        action="store_const",
        const="true",
        help="reconcile only while holding a Lease, so that several replicas may run",
    )
    parser.add_argument(
        "--leader-election-namespace",
        help="the Lease's namespace (default: $POD_NAMESPACE, or the pod's own namespace)",
    )
    parser.add_argument(
        "--leader-election-name", help=f"the Lease's name (default {DEFAULT_LEASE_NAME})"
    )


def load_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Merges parsed flags over `MYSQL_OPERATOR_*` variables over the defaults."""

    def pick(flag: object, name: str) -> str | None:
        if flag is not None:
            return str(flag)
        return environ.get(ENV_PREFIX + name) or None

    namespaces = _namespaces(args.namespaces, environ.get(ENV_PREFIX + "NAMESPACES"))
    workers = _positive_int(pick(args.workers, "WORKERS"), "--workers", DEFAULT_WORKERS)
    if workers > MAX_WORKERS:
        raise SettingsError(f"--workers: at most {MAX_WORKERS}")
    state_dir_text = pick(args.state_dir, "STATE_DIR")
    state_dir = Path(state_dir_text) if state_dir_text else default_state_dir(environ)
    if not state_dir.is_absolute():
        state_dir = Path.cwd() / state_dir
    backend_url = pick(args.backend_url, "BACKEND_URL") or f"file://{state_dir}"
    if "://" not in backend_url:
        raise SettingsError(f"--backend-url: not a URL: {backend_url!r}")
    passphrase = PassphraseSource(
        env_var=pick(args.passphrase_env, "PASSPHRASE_ENV") or DEFAULT_PASSPHRASE_ENV,
        secret=_secret_reference(pick(args.passphrase_secret, "PASSPHRASE_SECRET")),
    )
    resync = _positive_float(
        pick(args.resync_period, "RESYNC_PERIOD"), "--resync-period", DEFAULT_RESYNC_S
    )
    selector_text = (pick(getattr(args, "label_selector", None), "LABEL_SELECTOR") or "").strip()
    try:
        selector = parse_selector(selector_text)
    except SelectorError as error:
        raise SettingsError(f"--label-selector: {error}") from None
    level_text = (pick(args.log_level, "LOG_LEVEL") or LogLevel.INFO.value).upper()
    try:
        log_level = LogLevel(level_text)
    except ValueError:
        raise SettingsError(f"--log-level: not one of {[lv.value for lv in LogLevel]}") from None
    return Settings(
        namespaces=namespaces,
        workers=workers,
        state_dir=state_dir,
        backend_url=backend_url,
        passphrase=passphrase,
        resync_period_s=resync,
        http_address=_http_address(pick(args.http_address, "HTTP_ADDRESS") or DEFAULT_HTTP_ADDRESS),
        kubeconfig=pick(args.kubeconfig, "KUBECONFIG"),
        log_level=log_level,
        label_selector=selector_text,
        selector=selector,
        host_path_root=_host_path_root(
            pick(getattr(args, "host_path_root", None), "HOST_PATH_ROOT")
        ),
        stuck_after_s=_positive_float(
            pick(getattr(args, "stuck_after", None), "STUCK_AFTER"),
            "--stuck-after",
            DEFAULT_STUCK_AFTER_S,
        ),
        transfer_image=_image(pick(getattr(args, "transfer_image", None), "TRANSFER_IMAGE")),
        leader_election=_leader_election(
            pick(getattr(args, "leader_elect", None), "LEADER_ELECT"),
            pick(getattr(args, "leader_election_namespace", None), "LEADER_ELECTION_NAMESPACE"),
            pick(getattr(args, "leader_election_name", None), "LEADER_ELECTION_NAME"),
            environ,
        ),
    )


def parse_settings(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Convenience for tests and callers without their own parser."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return load_settings(parser.parse_args(list(argv)), os.environ if environ is None else environ)


def _namespaces(flags: list[str] | None, env: str | None) -> tuple[str, ...]:
    raw = flags if flags else ([env] if env else [])
    names = [part.strip() for item in raw for part in item.split(",") if part.strip()]
    return tuple(dict.fromkeys(names))  # dedupe, keep order


def _positive_int(text: str | None, flag: str, default: int) -> int:
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{flag}: not an integer: {text!r}") from None
    if value < 1:
        raise SettingsError(f"{flag}: must be at least 1")
    return value


def _positive_float(text: str | None, flag: str, default: float) -> float:
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{flag}: not a number: {text!r}") from None
    if not value > 0:
        raise SettingsError(f"{flag}: must be positive")
    return value


def _secret_reference(text: str | None) -> SecretReference | None:
    if text is None:
        return None
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise SettingsError(f"--passphrase-secret: expected namespace/name[/key], got {text!r}")
    return SecretReference(*parts)


def _host_path_root(text: str | None) -> str | None:
    if text is None:
        return None
    if not text.startswith("/") or ".." in text.split("/") or text.rstrip("/") == "":
        raise SettingsError(f"--host-path-root: an absolute directory other than /: {text!r}")
    return text.rstrip("/")


def _image(text: str | None) -> str | None:
    if text is None:
        return None
    if not text.strip() or any(c.isspace() for c in text):
        raise SettingsError(f"--transfer-image: an image reference without spaces: {text!r}")
    return text


def _leader_election(
    enabled: str | None, namespace: str | None, name: str | None, environ: Mapping[str, str]
) -> LeaderElection | None:
    if enabled is None or enabled.lower() == "false":
        return None
    if enabled.lower() != "true":
        raise SettingsError(f"--leader-elect: 'true' or 'false', got {enabled!r}")
    namespace = namespace or environ.get("POD_NAMESPACE") or _own_namespace()
    if not namespace:
        raise SettingsError(
            "--leader-election-namespace: required outside a pod (or set $POD_NAMESPACE)"
        )
    lease_name = name or DEFAULT_LEASE_NAME
    for flag, value in (
        ("--leader-election-namespace", namespace),
        ("--leader-election-name", lease_name),
    ):
        if not _DNS_NAME.fullmatch(value):
            raise SettingsError(f"{flag}: not a valid Kubernetes name: {value!r}")
    # Two processes must never share an identity: a restarted pod keeps its name.
    holder = environ.get("POD_NAME") or socket.gethostname()
    return LeaderElection(namespace, lease_name, f"{holder}_{uuid.uuid4().hex[:10]}")


def _own_namespace() -> str | None:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
    except OSError:
        return None


def _http_address(text: str) -> HttpAddress:
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise SettingsError(f"--http-address: expected host:port, got {text!r}")
    return HttpAddress(host or "127.0.0.1", int(port_text))
