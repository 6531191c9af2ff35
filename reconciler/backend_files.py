"""What the driver reads straight from a directory (`file://`) state backend, without a
CLI run: whether a stack has a checkpoint, how many Kubernetes objects it holds, whether
it has pending operations, whether it is locked, which metadata sidecars a crash left
unreadable; and the files of a new, empty stack, made from those of one the CLI created.
Also what an exported state records of the last `up` (for previews).
Functions of paths and file contents only; a file that cannot be read that way (another
backend, a compressed or half-written file) answers "cannot tell", and the driver then
asks the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import yaml

KUBERNETES_PREFIX: Final = "kubernetes:"
PROVIDER_TYPE_PREFIX: Final = "pulumi:providers:"


def backend_directory(url: str) -> Path | None:
    """The directory of a `file://` backend (its query options dropped), else None."""
    if not url.startswith("file://"):
        return None
    return Path(url.removeprefix("file://").split("?", 1)[0])


def _stack_folders(directory: Path, project: str) -> tuple[Path, Path]:
    """Where checkpoints sit: the project-scoped layout (stacks/<project>/), then the
    legacy flat one."""
    stacks = directory / ".pulumi" / "stacks"
    return stacks / project, stacks


def _lock_dirs(directory: Path, project: str, stack: str) -> list[Path]:
    """The stack's lock directories: .pulumi/locks/<...>/<project>/<stack>/; the middle
    part differs between backend layouts, so they are looked for anywhere below."""
    locks = directory / ".pulumi" / "locks"
    if not locks.is_dir():
        return []
    return [
        found for found in locks.rglob(stack) if found.is_dir() and found.parent.name == project
    ]


def checkpoint_file(directory: Path, project: str, stack: str) -> Path | None:
    """The stack's checkpoint file, if it has one."""
    for folder in _stack_folders(directory, project):
        path = folder / f"{stack}.json"
        if path.is_file():
            return path
    return None


def some_stack(directory: Path, project: str) -> str | None:
    """The name of one stack that has a checkpoint (the first by name), if any."""
    for folder in _stack_folders(directory, project):
        if folder.is_dir():
            names = sorted(path.name.removesuffix(".json") for path in folder.glob("*.json"))
            if names:
                return names[0]
    return None


def latest_deployment(path: Path) -> Mapping[str, Any] | None:
    """The checkpoint's latest deployment; None when the file cannot be read as JSON."""
    try:
        return deployment_of(path.read_bytes())
    except OSError:
        return None


def deployment_of(content: bytes) -> Mapping[str, Any] | None:
    """A checkpoint file's latest deployment ({} for a stack never deployed); None when the
    content is not a checkpoint in JSON (half-written, or compressed)."""
    try:
        checkpoint = json.loads(content).get("checkpoint", {})
    except (ValueError, AttributeError):
        return None
    latest = checkpoint.get("latest") if isinstance(checkpoint, Mapping) else None
    return latest if isinstance(latest, Mapping) else {}


def deployed_kubernetes_objects(deployment: Mapping[str, Any] | None) -> int:
    if not deployment:
        return 0
    resources = deployment.get("resources") or []
    return sum(
        1
        for resource in resources
        if str(resource.get("type", "")).startswith(KUBERNETES_PREFIX)
        and not str(resource.get("type", "")).startswith(PROVIDER_TYPE_PREFIX)
    )


# How a decrypted secret looks in `pulumi stack export --show-secrets`: the secret
# signature, and the value as JSON text.
SECRET_SIGNATURE_KEY: Final = "4dabf18193072939515e22adb298388d"  # noqa: S105 (a marker)
SECRET_SIGNATURE: Final = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 (a marker)
PROVIDER_TYPE: Final = "pulumi:providers:kubernetes"
SECRET_TYPE: Final = "kubernetes:core/v1:Secret"  # noqa: S105 (a type name)


def revealed(value: Any) -> Any:
    """`value` with every decrypted secret replaced by its plain value."""
    if isinstance(value, Mapping):
        if value.get(SECRET_SIGNATURE_KEY) == SECRET_SIGNATURE and "plaintext" in value:
            return revealed(json.loads(value["plaintext"]))
        return {key: revealed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [revealed(item) for item in value]
    return value


@dataclass(frozen=True)
class Recorded:
    """What a stack's state says about its last `up`: the provider's inputs (kubeconfig
    and context, as the program declared them) and the password its Secret holds."""

    kubeconfig: str | None
    context: str | None
    password: str | None = field(repr=False)


def recorded(deployment: Mapping[str, Any], secret_name: str, key: str) -> Recorded:
    """Read from an export with secrets shown (`pulumi stack export --show-secrets`)."""
    kubeconfig = context = password = None
    for resource in deployment.get("resources") or []:
        kind, inputs = resource.get("type"), revealed(resource.get("inputs") or {})
        if kind == PROVIDER_TYPE:
            kubeconfig, context = inputs.get("kubeconfig"), inputs.get("context")
        elif kind == SECRET_TYPE and (inputs.get("metadata") or {}).get("name") == secret_name:
            password = (inputs.get("stringData") or {}).get(key)
    return Recorded(
        kubeconfig=str(kubeconfig) if kubeconfig is not None else None,
        context=str(context) if context is not None else None,
        password=str(password) if password is not None else None,
    )


def drop_pending_operations(deployment: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """A copy of an exported checkpoint without pending operations, and how many there were."""
    cleaned = dict(deployment)
    pending = cleaned.pop("pending_operations", None) or []
    return cleaned, len(pending)


# fileblob (the `file://` backend's storage layer) keeps each file's content type and MD5 in
# a `<file>.attrs` sidecar. It truncates and rewrites the sidecar in place before it
# renames the new file into place, so a process killed between the two leaves an empty
# sidecar, and every later read of that file fails with "EOF": the stack can no longer be
# exported, updated or destroyed. The sidecar holds nothing the state needs; without one,
# fileblob reads the file as application/octet-stream.
SIDECAR_SUFFIX: Final = ".attrs"


def is_broken_sidecar(path: Path) -> bool:
    """Whether a sidecar exists and cannot be read as the JSON object fileblob writes."""
    try:
        return not isinstance(json.loads(path.read_bytes()), dict)
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True


def broken_sidecars(directory: Path) -> list[Path]:
    """Unreadable sidecars of the files every stack operation reads: checkpoints, their
    backups and locks (history and backup copies are only written)."""
    root = directory / ".pulumi"
    return sorted(
        path
        for folder in (root / "stacks", root / "locks")
        if folder.is_dir()
        for path in folder.rglob(f"*{SIDECAR_SUFFIX}")
        if is_broken_sidecar(path)
    )


def broken_stack_sidecars(directory: Path, project: str, stack: str) -> list[Path]:
    """Unreadable sidecars of one stack's checkpoint, its backup and its locks."""
    candidates = [
        folder / f"{stack}.json{extra}{SIDECAR_SUFFIX}"
        for folder in _stack_folders(directory, project)
        for extra in ("", ".bak")
    ]
    candidates += [
        path
        for found in _lock_dirs(directory, project, stack)
        for path in found.glob(f"*{SIDECAR_SUFFIX}")
    ]
    return [path for path in candidates if is_broken_sidecar(path)]


def lock_files(directory: Path, project: str, stack: str) -> list[Path]:
    """The stack's lock files, one per holder."""
    return sorted(
        path
        for found in _lock_dirs(directory, project, stack)
        for path in found.glob("*.json")
        if path.is_file()
    )


# A new stack's files: its configuration `Pulumi.<stack>.yaml` in the work directory, which
# holds only the passphrase's salt and a value encrypted with the key derived from it, and
# its checkpoint, whose empty latest deployment names the same salt. `pulumi stack init`
# writes both after one key derivation (a million PBKDF2 rounds) in a CLI process of its
# own. The salt is not secret and verifies the passphrase for any stack, so the files of a
# stack the CLI created, with the stack's name changed, make another empty stack that the
# CLI reads exactly as one it created.
CHECKPOINT_VERSION: Final = 3
SALT_KEY: Final = "encryptionsalt"


@dataclass(frozen=True)
class StackTemplate:
    """A new, empty stack's files, as the CLI wrote them for one stack of this backend."""

    folder: Path  # the backend layout's folder of checkpoints
    organization_and_project: str  # the checkpoint's stack name without the stack
    latest: Mapping[str, Any]  # the empty latest deployment: manifest and secrets provider
    config_text: str  # the stack configuration file: the salt only


def config_file(work_dir: Path, stack: str) -> Path:
    return work_dir / f"Pulumi.{stack}.yaml"


def stack_template(
    directory: Path, project: str, stack: str, work_dir: Path
) -> StackTemplate | None:
    """The files of `stack`, just created by the CLI, as a template; None when they are not
    what this module knows how to copy (other configuration, another secrets provider or
    checkpoint version, resources already), and the CLI then creates every stack."""
    path = checkpoint_file(directory, project, stack)
    if path is None:
        return None
    try:
        stored = json.loads(path.read_text())
        config_text = config_file(work_dir, stack).read_text()
        config = yaml.safe_load(config_text)
    except (OSError, ValueError, yaml.YAMLError):
        return None
    if not isinstance(stored, dict) or stored.get("version") != CHECKPOINT_VERSION:
        return None
    checkpoint = stored.get("checkpoint")
    if not isinstance(checkpoint, dict):
        return None
    latest = checkpoint.get("latest")
    qualified = str(checkpoint.get("stack", ""))
    if not isinstance(latest, dict) or not qualified.endswith(f"/{stack}"):
        return None
    providers = latest.get("secrets_providers") or {}
    if (
        not isinstance(config, dict)
        or set(config) != {SALT_KEY}
        or providers.get("type") != "passphrase"
        or (providers.get("state") or {}).get("salt") != config[SALT_KEY]
        or latest.get("resources")
        or latest.get("pending_operations")
    ):
        return None
    return StackTemplate(
        folder=path.parent,
        organization_and_project=qualified.removesuffix(f"/{stack}"),
        latest=latest,
        config_text=config_text,
    )


def new_checkpoint(template: StackTemplate, stack: str, now: datetime) -> str:
    """The checkpoint of a new, empty stack named `stack`, created at `now`."""
    latest = dict(template.latest)
    latest["manifest"] = {**latest.get("manifest", {}), "time": now.isoformat()}
    checkpoint = {"stack": f"{template.organization_and_project}/{stack}", "latest": latest}
    return json.dumps({"version": CHECKPOINT_VERSION, "checkpoint": checkpoint})
