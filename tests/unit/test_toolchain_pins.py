"""The pins that must agree across files do agree."""

from __future__ import annotations

import re

import pytest

from tests.toolchain_pins import TOOLCHAIN, go_requirement, python_pins

pytestmark = pytest.mark.unit


def test_provider_plugin_release_matches_python_sdk() -> None:
    env = (TOOLCHAIN / "versions.env").read_text()
    match = re.search(r"^KUBERNETES_PROVIDER_RELEASE=(\S+)$", env, re.MULTILINE)
    assert match is not None
    assert python_pins()["pulumi-kubernetes"] == match[1]


def test_pulumi_cli_is_at_least_the_python_sdk() -> None:
    cli = go_requirement("pulumi", "github.com/pulumi/pulumi/pkg/v3").lstrip("v")
    sdk = go_requirement("pulumi", "github.com/pulumi/pulumi/sdk/v3").lstrip("v")
    assert cli == sdk, "pkg/v3 and sdk/v3 must be built at the same version"
    python_sdk = python_pins()["pulumi"]
    assert tuple(map(int, cli.split("."))) >= tuple(map(int, python_sdk.split(".")))


def test_kubernetes_staging_modules_use_the_published_twin() -> None:
    gomod = (TOOLCHAIN / "kubernetes" / "go.mod").read_text()
    version = go_requirement("kubernetes", "k8s.io/kubernetes")
    minor_patch = version.removeprefix("v1.")
    replaces = re.findall(r"^\s*(k8s\.io/\S+) => (k8s\.io/\S+) (v\S+)$", gomod, re.MULTILINE)
    assert len(replaces) > 20
    for source, target, twin in replaces:
        assert source == target
        assert twin == f"v0.{minor_patch}", f"{source} must be replaced by its v0 twin"
