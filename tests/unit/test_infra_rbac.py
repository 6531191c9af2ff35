"""The ClusterRole against what the reconciler really calls, derived from its source.

Two sources of need, both read with `ast` so that a change on either side fails here:

- reconciler/kube.py, the only module that calls the Kubernetes API: every method of a
  kubernetes client API object that it references, mapped to (apiGroup, resource, verb);
  a list method handed to `watch.Watch().stream` also needs `watch`;
- reconciler/program.py: the pulumi_kubernetes resource classes it imports, each managed
  by the provider with MANAGE verbs, plus the objects the provider's awaiters watch for
  that kind (pulumi-kubernetes 4.25, provider/pkg/await/{deployment,job,service}.go).

The role must allow every need, and grant nothing else.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final

import pytest

from infra.rbac import API_GROUP, MANAGE, READ, RULES, permissions
from reconciler.spec import API_GROUP as RECONCILER_API_GROUP

pytestmark = pytest.mark.unit

ROOT: Final = Path(__file__).resolve().parents[2]
KUBE: Final = ROOT / "reconciler" / "kube.py"
PROGRAM: Final = ROOT / "reconciler" / "program.py"

Permission = tuple[str, str, str]

MYSQLS: Final = (API_GROUP, "mysqls")
# (API class, method) -> (apiGroup, resource, verb). A method missing here fails the test:
# add it with the permission it needs, and the rule to infra/rbac.py.
METHOD_PERMISSIONS: Final[dict[tuple[str, str], Permission]] = {
    ("CustomObjectsApi", "list_cluster_custom_object"): (*MYSQLS, "list"),
    ("CustomObjectsApi", "list_namespaced_custom_object"): (*MYSQLS, "list"),
    ("CustomObjectsApi", "get_namespaced_custom_object"): (*MYSQLS, "get"),
    ("CustomObjectsApi", "patch_namespaced_custom_object"): (*MYSQLS, "patch"),
    ("CustomObjectsApi", "patch_namespaced_custom_object_status"): (
        API_GROUP,
        "mysqls/status",
        "patch",
    ),
    ("CoreV1Api", "create_namespaced_event"): ("", "events", "create"),
    ("CoreV1Api", "read_namespaced_secret"): ("", "secrets", "get"),
    ("CoreV1Api", "read_namespace"): ("", "namespaces", "get"),
}
# pulumi_kubernetes module group -> API group.
GROUPS: Final = {"core": "", "apps": "apps", "batch": "batch"}
PLURALS: Final = {
    "Secret": "secrets",
    "ConfigMap": "configmaps",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "PersistentVolume": "persistentvolumes",
    "Deployment": "deployments",
    "Service": "services",
    "Job": "jobs",
}
# What the provider's awaiters watch besides the object itself, by kind.
AWAIT_READS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "Deployment": (("apps", "replicasets"), ("", "pods"), ("", "persistentvolumeclaims")),
    "Job": (("", "pods"),),
    "Service": (("", "endpoints"),),
}


def _api_classes(tree: ast.Module) -> dict[str, str]:
    """`self.<attr> = client.<Api>(...)` assignments: attr -> API class name."""
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute)
            and node.value.func.attr.endswith("Api")
        ):
            for target in node.targets:
                if isinstance(target, ast.Attribute):
                    found[target.attr] = node.value.func.attr
    return found


def _api_references(function: ast.AST, apis: dict[str, str]) -> set[tuple[str, str]]:
    """(API class, method) for every `self.<api>.<method>` in the function."""
    return {
        (apis[node.value.attr], node.attr)
        for node in ast.walk(function)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr in apis
    }


def _streams(function: ast.AST) -> bool:
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "stream"
        for node in ast.walk(function)
    )


def reconciler_needs() -> set[Permission]:
    tree = ast.parse(KUBE.read_text())
    apis = _api_classes(tree)
    assert apis, "reconciler/kube.py creates no kubernetes API objects?"
    needs: set[Permission] = set()
    unknown: list[tuple[str, str]] = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef) or function.name == "__init__":
            continue
        watching = _streams(function)
        for api, method in _api_references(function, apis):
            permission = METHOD_PERMISSIONS.get((api, method))
            if permission is None:
                unknown.append((api, method))
                continue
            needs.add(permission)
            if watching and method.startswith("list_"):
                needs.add((permission[0], permission[1], "watch"))
    assert not unknown, f"reconciler/kube.py calls unmapped API methods: {sorted(unknown)}"
    return needs


def program_kinds() -> dict[str, str]:
    """Resource classes reconciler/program.py imports from pulumi_kubernetes: kind -> group."""
    kinds: dict[str, str] = {}
    for node in ast.walk(ast.parse(PROGRAM.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "pulumi_kubernetes."
        ):
            module_group = (node.module or "").split(".")[1]
            for alias in node.names:
                if alias.name.endswith("Args") or module_group == "meta":
                    continue
                assert module_group in GROUPS, f"unknown pulumi_kubernetes group {node.module}"
                kinds[alias.name] = GROUPS[module_group]
    return kinds


def program_needs() -> set[Permission]:
    needs: set[Permission] = set()
    for kind, group in program_kinds().items():
        assert kind in PLURALS, f"reconciler/program.py declares {kind}: map it in PLURALS"
        needs |= {(group, PLURALS[kind], verb) for verb in MANAGE}
        for read_group, resource in AWAIT_READS.get(kind, ()):
            needs |= {(read_group, resource, verb) for verb in READ}
    return needs


def test_the_scans_find_what_the_reconciler_is_known_to_do() -> None:
    needs = reconciler_needs()
    assert {
        (API_GROUP, "mysqls", "list"),
        (API_GROUP, "mysqls", "watch"),
        (API_GROUP, "mysqls", "patch"),
        (API_GROUP, "mysqls/status", "patch"),
        ("", "events", "create"),
        ("", "namespaces", "get"),
    } <= needs
    assert set(program_kinds()) == set(PLURALS)


def test_the_role_allows_everything_the_reconciler_calls() -> None:
    missing = reconciler_needs() - permissions()
    assert not missing, f"the ClusterRole does not allow {sorted(missing)}"


def test_the_role_allows_everything_the_stack_program_manages() -> None:
    missing = program_needs() - permissions()
    assert not missing, f"the ClusterRole does not allow {sorted(missing)}"


def test_the_role_grants_nothing_beyond_those_needs() -> None:
    extra = permissions() - reconciler_needs() - program_needs()
    assert not extra, f"the ClusterRole grants more than needed: {sorted(extra)}"


def test_no_wildcards_and_no_duplicates() -> None:
    for rule in RULES:
        for value in (*rule.api_groups, *rule.resources, *rule.verbs):
            assert "*" not in value, rule
        assert len(set(rule.verbs)) == len(rule.verbs), rule
    listed = [
        (group, resource, verb)
        for rule in RULES
        for group in rule.api_groups
        for resource in rule.resources
        for verb in rule.verbs
    ]
    assert len(listed) == len(set(listed)), "a permission is granted twice"


def test_the_api_group_is_the_reconcilers() -> None:
    assert API_GROUP == RECONCILER_API_GROUP


def test_no_finalizers_subresource_because_owners_never_block_deletion() -> None:
    """`mysqls/finalizers` is only needed to set `blockOwnerDeletion: true`."""
    values = [
        keyword.value
        for node in ast.walk(ast.parse(PROGRAM.read_text()))
        if isinstance(node, ast.Call)
        for keyword in node.keywords
        if keyword.arg == "block_owner_deletion"
    ]
    assert values, "reconciler/program.py sets no owner references any more?"
    assert all(isinstance(v, ast.Constant) and v.value is False for v in values)
    assert not any("mysqls/finalizers" in rule.resources for rule in RULES)
