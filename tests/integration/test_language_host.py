"""`pulumi up` of a Pulumi.yaml Python project goes through the toolchain's language host.

This is the path that `pulumi up` of infra/ takes: the CLI starts pulumi-language-python,
which runs the program with the official exec script, passing config and secrets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from kubernetes import client

from tests.support import TEST_PASSPHRASE

pytestmark = pytest.mark.integration

PROGRAM = """\
import pulumi
import pulumi_kubernetes as k8s

config = pulumi.Config()
namespace = config.require("namespace")
provider = k8s.Provider("local", kubeconfig=config.require("kubeconfig"))
ns = k8s.core.v1.Namespace(
    "ns",
    metadata={"name": namespace},
    opts=pulumi.ResourceOptions(provider=provider),
)
k8s.core.v1.ConfigMap(
    "greeting",
    metadata={"name": "greeting", "namespace": namespace},
    data={"greeting": config.require("greeting")},
    opts=pulumi.ResourceOptions(provider=provider, depends_on=[ns]),
)
pulumi.export("token", config.require_secret("token"))
pulumi.export("stack", pulumi.get_stack())
"""


def test_pulumi_up_of_a_python_project(
    tmp_path: Path, kubeconfig: Path, api_client: client.ApiClient, namespace_name: str
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: langhost-it
            runtime:
              name: python
              options:
                virtualenv: {Path(sys.prefix)}
            backend:
              url: file://{tmp_path / "state"}
            """
        )
    )
    (project / "__main__.py").write_text(PROGRAM)
    (tmp_path / "state").mkdir()
    env = {
        **os.environ,
        "PULUMI_CONFIG_PASSPHRASE": TEST_PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
    }

    def pulumi(*args: str) -> str:
        result = subprocess.run(
            ["pulumi", "--non-interactive", *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    pulumi("stack", "init", "dev", "--secrets-provider", "passphrase")
    pulumi("config", "set", "namespace", namespace_name)
    pulumi("config", "set", "kubeconfig", str(kubeconfig))
    pulumi("config", "set", "greeting", "hello")
    pulumi("config", "set", "--secret", "token", "s3cr3t-value")

    preview = json.loads(pulumi("preview", "--json"))
    assert preview["changeSummary"] == {"create": 4}

    pulumi("up", "--yes", "--skip-preview")
    core = client.CoreV1Api(api_client)
    assert core.read_namespaced_config_map("greeting", namespace_name).data == {"greeting": "hello"}
    outputs = json.loads(pulumi("stack", "output", "--json", "--show-secrets"))
    assert outputs == {"stack": "dev", "token": "s3cr3t-value"}
    # The secret stays encrypted in the state file.
    state = "".join(p.read_text() for p in (tmp_path / "state").rglob("*.json"))
    assert "s3cr3t-value" not in state

    second = json.loads(pulumi("preview", "--json"))
    assert second["changeSummary"] == {"same": 4}

    pulumi("destroy", "--yes", "--skip-preview")
    remaining = core.list_namespaced_config_map(namespace_name).items
    assert all(cm.metadata.name != "greeting" for cm in remaining)
