"""The effects stay where ENGINEERING.md section 1 puts them: only `reconciler.kube` may
import the kubernetes client, and only `reconciler.driver` the Automation API."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final

import pytest

pytestmark = pytest.mark.unit

PACKAGE: Final = Path(__file__).resolve().parents[2] / "reconciler"
GATEWAYS: Final = {"kubernetes": "kube.py", "pulumi.automation": "driver.py"}


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            modules.add(node.module)
            # `from pulumi import automation` imports pulumi.automation too.
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def reaches(module: str, forbidden: str) -> bool:
    return module == forbidden or module.startswith(forbidden + ".")


def test_the_package_has_modules_to_check() -> None:
    names = {path.name for path in PACKAGE.glob("*.py")}
    assert set(GATEWAYS.values()) <= names


@pytest.mark.parametrize(("forbidden", "owner"), sorted(GATEWAYS.items()))
def test_only_the_gateway_imports_its_client(forbidden: str, owner: str) -> None:
    offenders = {
        path.name: sorted(m for m in imported_modules(path) if reaches(m, forbidden))
        for path in sorted(PACKAGE.glob("*.py"))
        if path.name != owner
    }
    assert {name: found for name, found in offenders.items() if found} == {}
    assert any(reaches(m, forbidden) for m in imported_modules(PACKAGE / owner))


def test_the_checker_sees_both_import_forms(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import kubernetes.client\nfrom pulumi import automation as auto\n")
    found = imported_modules(sample)
    assert reaches("kubernetes.client", "kubernetes")
    assert any(reaches(m, "pulumi.automation") for m in found)
    assert any(reaches(m, "kubernetes") for m in found)
