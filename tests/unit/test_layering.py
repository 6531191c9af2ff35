"""The effects stay where docs/design.md ("Layers") puts them: only `reconciler.kube` may
import the kubernetes client, only `reconciler.driver` the Automation API, and only the
program and the driver Pulumi at all. The pure core (the decisions, the manifests, the
queue) imports none of them, not even through another module of the package, so that it
can be tested and reasoned about without an SDK."""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Final

import pytest

pytestmark = pytest.mark.unit

PACKAGE: Final = Path(__file__).resolve().parents[2] / "reconciler"
# A client and the only modules that may import it.
OWNERS: Final = {
    "kubernetes": {"kube.py"},
    "pulumi.automation": {"driver.py"},
    "pulumi": {"program.py", "driver.py"},
    "pulumi_kubernetes": {"program.py", "driver.py"},
}
SDKS: Final = ("pulumi", "pulumi_kubernetes", "kubernetes")
PURE: Final = (
    "vocabulary",
    "spec",
    "names",
    "desired",
    "manifests",
    "live",
    "status",
    "conditions",
    "volumes",
    "observation",
    "actions",
    "policy",
    "lifecycle",
    "teardown",
    "reconcile",
    "fingerprint",
    "queue",
    "selectors",
    "engine_events",
    "runs",
    "transitions",
    "backup_objects",
    "requested_backups",
    "schedules",
    "transfer_jobs",
    "history",
    "storage",
    "drift",
    "passwords",
    "leases",
    "stale_locks",
)


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


def sdk_imports(path: Path) -> list[str]:
    return sorted(m for m in imported_modules(path) if any(reaches(m, sdk) for sdk in SDKS))


@cache
def package_imports(name: str) -> frozenset[str]:
    """The package's own modules that `reconciler/<name>.py` imports directly."""
    found = set()
    for module in imported_modules(PACKAGE / f"{name}.py"):
        parts = module.split(".")
        if parts[0] == "reconciler" and len(parts) > 1 and (PACKAGE / f"{parts[1]}.py").exists():
            found.add(parts[1])
    return frozenset(found - {name})


def closure(name: str) -> set[str]:
    """`name` and every package module it imports, directly or through others."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(package_imports(current))
    return seen


def test_the_package_has_the_modules_to_check() -> None:
    names = {path.stem for path in PACKAGE.glob("*.py")}
    assert set(PURE) <= names
    assert {owner.removesuffix(".py") for owners in OWNERS.values() for owner in owners} <= names


@pytest.mark.parametrize(("client", "owners"), sorted(OWNERS.items()))
def test_only_its_owners_import_a_client(client: str, owners: set[str]) -> None:
    offenders = {
        path.name: sorted(m for m in imported_modules(path) if reaches(m, client))
        for path in sorted(PACKAGE.glob("*.py"))
        if path.name not in owners
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_each_gateway_does_import_its_client() -> None:
    assert any(reaches(m, "kubernetes") for m in imported_modules(PACKAGE / "kube.py"))
    assert any(reaches(m, "pulumi.automation") for m in imported_modules(PACKAGE / "driver.py"))
    assert any(reaches(m, "pulumi_kubernetes") for m in imported_modules(PACKAGE / "program.py"))


@pytest.mark.parametrize("name", PURE)
def test_a_pure_module_reaches_no_sdk_even_indirectly(name: str) -> None:
    found = {module: sdk_imports(PACKAGE / f"{module}.py") for module in sorted(closure(name))}
    assert {module: sdks for module, sdks in found.items() if sdks} == {}


def test_the_closure_sees_an_indirect_import() -> None:
    # The executor imports the driver, which imports the Automation API.
    assert "driver" in closure("executor")
    assert any(sdk_imports(PACKAGE / f"{module}.py") for module in closure("executor"))


def test_the_checker_sees_both_import_forms(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import kubernetes.client\nfrom pulumi import automation as auto\n")
    found = imported_modules(sample)
    assert any(reaches(m, "pulumi.automation") for m in found)
    assert any(reaches(m, "kubernetes") for m in found)
    assert not reaches("kubernetes_asyncio", "kubernetes")


def test_importing_the_pure_core_loads_no_sdk() -> None:
    # What the AST cannot see (an import inside a function that runs at import time, a
    # dependency that pulls an SDK in) shows up in sys.modules of a fresh interpreter.
    script = (
        "import importlib, sys\n"
        f"for name in {list(PURE)!r}:\n"
        "    importlib.import_module('reconciler.' + name)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(SDKS)!r}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PACKAGE.parent,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.strip() == "[]"
