"""Each toolchain binary reports the version it was pinned to."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.toolchain_pins import go_requirement, python_pins

pytestmark = pytest.mark.integration


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def test_pulumi_cli_reports_its_pin(toolchain_bin: Path) -> None:
    pinned = go_requirement("pulumi", "github.com/pulumi/pulumi/pkg/v3")
    assert run(str(toolchain_bin / "pulumi"), "version").strip() == pinned


def test_provider_plugin_is_installed_at_the_sdk_release(toolchain_bin: Path) -> None:
    plugins = json.loads(run(str(toolchain_bin / "pulumi"), "plugin", "ls", "--json"))
    kubernetes = [p["version"] for p in plugins if p["name"] == "kubernetes"]
    assert python_pins()["pulumi-kubernetes"] in kubernetes


def test_kubectl_reports_its_pin(toolchain_bin: Path) -> None:
    pinned = go_requirement("kubernetes", "k8s.io/kubernetes")
    client = json.loads(run(str(toolchain_bin / "kubectl"), "version", "--client", "-o", "json"))
    assert client["clientVersion"]["gitVersion"] == pinned


@pytest.mark.parametrize("binary", ["kube-apiserver", "kube-controller-manager", "kube-scheduler"])
def test_control_plane_binaries_report_their_pin(toolchain_bin: Path, binary: str) -> None:
    pinned = go_requirement("kubernetes", "k8s.io/kubernetes")
    assert run(str(toolchain_bin / binary), "--version").split() == ["Kubernetes", pinned]


def test_etcd_reports_its_pin(toolchain_bin: Path) -> None:
    pinned = go_requirement("etcd", "go.etcd.io/etcd/server/v3").lstrip("v")
    match = re.search(r"etcd Version: (\S+)", run(str(toolchain_bin / "etcd"), "--version"))
    assert match is not None
    assert match[1] == pinned
