"""The repository's Pulumi project (Pulumi.yaml, infra/) driven by the real CLI in tests.

The project (Pulumi.yaml, infra/, crd/ and reconciler/, which infra imports its settings
names from) is copied to a temporary directory, so that `pulumi stack init` writes its
stack file there; the state goes to a file backend beside it, with passphrase secrets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.conftest import REPO_ROOT, pulumi_cli_on_path
from tests.support import TEST_PASSPHRASE

STACK: Final = "test"
CRD_NAME: Final = "mysqls.otus.homework"
BACKUP_CRD_NAME: Final = "mysqlbackups.otus.homework"
COMMAND_TIMEOUT_S: Final = 600
COPIED: Final = ("infra", "crd", "reconciler")


@dataclass(frozen=True)
class Project:
    directory: Path
    backend: Path
    env: dict[str, str]

    def pulumi(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [pulumi_cli_on_path(), *args, "--non-interactive", "--color", "never"],
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        assert result.returncode == 0, (
            f"pulumi {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
        return result


def copy_project(target: Path) -> Path:
    target.mkdir(parents=True)
    shutil.copy2(REPO_ROOT / "Pulumi.yaml", target / "Pulumi.yaml")
    for name in COPIED:
        shutil.copytree(
            REPO_ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    return target


def new_project(work_dir: Path, kubeconfig: Path, config: Mapping[str, str]) -> Project:
    """A fresh stack of the copied project, configured with `config` (plain values)."""
    backend = work_dir / "state"
    backend.mkdir(parents=True)
    env = {
        **os.environ,
        "PULUMI_BACKEND_URL": f"file://{backend}",
        "PULUMI_CONFIG_PASSPHRASE": TEST_PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        # The language host runs the program with this venv's interpreter.
        "PULUMI_PYTHON_CMD": sys.executable,
        "KUBECONFIG": str(kubeconfig),
    }
    project = Project(copy_project(work_dir / "project"), backend, env)
    project.pulumi("stack", "init", STACK, "--secrets-provider", "passphrase")
    for key, value in {"kubeconfig": str(kubeconfig), **config}.items():
        project.pulumi("config", "set", key, value)
    return project


def exists(read: Callable[[], Any]) -> bool:
    try:
        read()
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def ignore_404(call: Callable[[], Any]) -> None:
    try:
        call()
    except ApiException as error:
        if error.status != 404:
            raise


def crd_exists(api_client: client.ApiClient) -> bool:
    extensions = client.ApiextensionsV1Api(api_client)
    return exists(lambda: extensions.read_custom_resource_definition(CRD_NAME))


def remove_installation(api_client: client.ApiClient, namespace: str, *, crd: bool) -> None:
    """Removes what `pulumi destroy` keeps (and what a failed test left); the CRD too
    when `crd`, i.e. when the caller was the one to create it."""
    core, rbac = client.CoreV1Api(api_client), client.RbacAuthorizationV1Api(api_client)
    name = f"mysql-operator:{namespace}"
    ignore_404(lambda: core.delete_namespace(namespace))
    ignore_404(lambda: core.delete_persistent_volume(f"mysql-operator-state-{namespace}"))
    ignore_404(lambda: rbac.delete_cluster_role_binding(name))
    ignore_404(lambda: rbac.delete_cluster_role(name))
    if crd:
        extensions = client.ApiextensionsV1Api(api_client)
        ignore_404(lambda: extensions.delete_custom_resource_definition(CRD_NAME))
        ignore_404(lambda: extensions.delete_custom_resource_definition(BACKUP_CRD_NAME))
