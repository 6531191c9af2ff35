"""The ClusterRole against what the reconciler really calls, derived from its source.

Two sources of need, both read with `ast` so that a change on either side fails here:

- reconciler/kube.py, the only module that calls the Kubernetes API: every method of a
  kubernetes client API object that it references, mapped to (apiGroup, resource, verb);
  a list method used by a function that streams (`watch.Watch().stream`), directly or
  through a helper method it calls, also needs `watch`;
- reconciler/program.py: the pulumi_kubernetes resource classes it declares
  (`k8s.<group>.v1.<Kind>`), each managed by the provider with MANAGE verbs, plus the
  Events the provider reads while it waits for a deletion. Nothing is awaited
  (`pulumi.com/skipAwait`), so no awaiter reads ReplicaSets, Pods or Endpoints.

The role must allow every need, and grant nothing else.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final

import pytest

from infra.rbac import API_GROUP, LEASE_RULES, MANAGE, OWN_POD_RULES, READ, RULES, permissions
from reconciler.program import SKIP_AWAIT
from reconciler.vocabulary import API_GROUP as RECONCILER_API_GROUP

pytestmark = pytest.mark.unit

ROOT: Final = Path(__file__).resolve().parents[2]
KUBE: Final = ROOT / "reconciler" / "kube.py"
PROGRAM: Final = ROOT / "reconciler" / "program.py"

Permission = tuple[str, str, str]

MYSQLS: Final = (API_GROUP, "mysqls")
BACKUPS: Final = (API_GROUP, "mysqlbackups")
# kube.py keeps one CustomObjectsApi per resource; these attributes name the resource.
CUSTOM_OBJECT_ATTRIBUTES: Final = {"custom": "mysqls", "backup_records": "mysqlbackups"}
CLAIMS: Final = ("", "persistentvolumeclaims")
VOLUMES: Final = ("", "persistentvolumes")
# Only with leader election, and only in the operator's namespace (a Role of its own).
LEASES: Final = ("coordination.k8s.io", "leases")
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
    ("CustomObjectsApi/mysqlbackups", "list_cluster_custom_object"): (*BACKUPS, "list"),
    ("CustomObjectsApi/mysqlbackups", "list_namespaced_custom_object"): (*BACKUPS, "list"),
    ("CustomObjectsApi/mysqlbackups", "get_namespaced_custom_object"): (*BACKUPS, "get"),
    ("CustomObjectsApi/mysqlbackups", "create_namespaced_custom_object"): (*BACKUPS, "create"),
    ("CustomObjectsApi/mysqlbackups", "delete_namespaced_custom_object"): (*BACKUPS, "delete"),
    ("CustomObjectsApi/mysqlbackups", "patch_namespaced_custom_object_status"): (
        API_GROUP,
        "mysqlbackups/status",
        "patch",
    ),
    ("CoreV1Api", "create_namespaced_event"): ("", "events", "create"),
    ("CoreV1Api", "list_namespaced_event"): ("", "events", "list"),
    ("CoreV1Api", "read_namespaced_secret"): ("", "secrets", "get"),
    ("CoreV1Api", "create_namespaced_secret"): ("", "secrets", "create"),
    ("CoreV1Api", "delete_namespaced_secret"): ("", "secrets", "delete"),
    ("CoreV1Api", "list_namespaced_secret"): ("", "secrets", "list"),
    ("CoreV1Api", "list_secret_for_all_namespaces"): ("", "secrets", "list"),
    ("CoreV1Api", "read_namespace"): ("", "namespaces", "get"),
    ("CoreV1Api", "read_namespaced_persistent_volume_claim"): (*CLAIMS, "get"),
    ("CoreV1Api", "list_namespaced_persistent_volume_claim"): (*CLAIMS, "list"),
    ("CoreV1Api", "list_persistent_volume_claim_for_all_namespaces"): (*CLAIMS, "list"),
    ("CoreV1Api", "patch_namespaced_persistent_volume_claim"): (*CLAIMS, "patch"),
    ("CoreV1Api", "delete_namespaced_persistent_volume_claim"): (*CLAIMS, "delete"),
    ("CoreV1Api", "read_persistent_volume"): (*VOLUMES, "get"),
    ("CoreV1Api", "list_persistent_volume"): (*VOLUMES, "list"),
    ("CoreV1Api", "patch_persistent_volume"): (*VOLUMES, "patch"),
    ("CoreV1Api", "delete_persistent_volume"): (*VOLUMES, "delete"),
    ("CoreV1Api", "list_namespaced_pod"): ("", "pods", "list"),
    ("DiscoveryV1Api", "list_namespaced_endpoint_slice"): (
        "discovery.k8s.io",
        "endpointslices",
        "list",
    ),
    ("CoreV1Api", "list_pod_for_all_namespaces"): ("", "pods", "list"),
    ("CoreV1Api", "list_namespaced_service"): ("", "services", "list"),
    ("AppsV1Api", "read_namespaced_deployment"): ("apps", "deployments", "get"),
    ("AppsV1Api", "list_namespaced_deployment"): ("apps", "deployments", "list"),
    ("BatchV1Api", "read_namespaced_job"): ("batch", "jobs", "get"),
    ("BatchV1Api", "create_namespaced_job"): ("batch", "jobs", "create"),
    ("BatchV1Api", "list_namespaced_job"): ("batch", "jobs", "list"),
    ("BatchV1Api", "list_job_for_all_namespaces"): ("batch", "jobs", "list"),
    ("StorageV1Api", "read_storage_class"): ("storage.k8s.io", "storageclasses", "get"),
    ("CoreV1Api", "read_namespaced_service"): ("", "services", "get"),
    ("CoreV1Api", "read_namespaced_pod"): ("", "pods", "get"),
    ("CoordinationV1Api", "read_namespaced_lease"): (*LEASES, "get"),
    ("CoordinationV1Api", "create_namespaced_lease"): (*LEASES, "create"),
    ("CoordinationV1Api", "replace_namespaced_lease"): (*LEASES, "update"),
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
# What the provider reads besides the objects it manages: the Events of what it waits on.
PROVIDER_READS: Final = (("", "events"),)


def _api_classes(tree: ast.Module) -> dict[str, str]:
    """`self.<attr> = client.<Api>(...)` assignments: attr -> API class name, with the
    resource for the CustomObjectsApi attributes other than `custom` (the MySQL objects)."""
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
                    api = node.value.func.attr
                    if api == "CustomObjectsApi":
                        assert target.attr in CUSTOM_OBJECT_ATTRIBUTES, target.attr
                        if CUSTOM_OBJECT_ATTRIBUTES[target.attr] != "mysqls":
                            api = f"{api}/{CUSTOM_OBJECT_ATTRIBUTES[target.attr]}"
                    found[target.attr] = api
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


def _self_calls(function: ast.AST) -> set[str]:
    """Names of the `self.<method>(...)` calls in the function."""
    return {
        node.func.attr
        for node in ast.walk(function)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "self"
    }


def reconciler_needs() -> set[Permission]:
    tree = ast.parse(KUBE.read_text())
    apis = _api_classes(tree)
    assert apis, "reconciler/kube.py creates no kubernetes API objects?"
    functions = {
        node.name: node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name != "__init__"
    }
    needs: set[Permission] = set()
    unknown: list[tuple[str, str]] = []
    for function in functions.values():
        references = _api_references(function, apis)
        helpers = [functions[name] for name in _self_calls(function) if name in functions]
        reached = references.union(*(_api_references(helper, apis) for helper in helpers))
        watching = _streams(function)
        for api, method in reached:
            permission = METHOD_PERMISSIONS.get((api, method))
            if permission is None:
                unknown.append((api, method))
                continue
            if (api, method) in references:
                needs.add(permission)
            if watching and method.startswith("list_"):
                needs.add((permission[0], permission[1], "watch"))
    assert not unknown, f"reconciler/kube.py calls unmapped API methods: {sorted(set(unknown))}"
    return needs


def program_kinds() -> dict[str, str]:
    """The pulumi_kubernetes classes reconciler/program.py declares: kind -> API group."""
    tree = ast.parse(PROGRAM.read_text())
    aliases = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name == "pulumi_kubernetes"
    }
    assert aliases, "reconciler/program.py no longer imports pulumi_kubernetes as a module?"
    kinds: dict[str, str] = {}
    for node in ast.walk(tree):
        # k8s.<group>.<version>.<Kind>
        if not (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and isinstance(node.value.value, ast.Attribute)
            and isinstance(node.value.value.value, ast.Name)
            and node.value.value.value.id in aliases
        ):
            continue
        module_group = node.value.value.attr
        if node.attr.endswith("Args") or module_group == "meta":
            continue
        assert module_group in GROUPS, f"unknown pulumi_kubernetes group {module_group}"
        kinds[node.attr] = GROUPS[module_group]
    return kinds


def program_needs() -> set[Permission]:
    needs: set[Permission] = set()
    for kind, group in program_kinds().items():
        assert kind in PLURALS, f"reconciler/program.py declares {kind}: map it in PLURALS"
        needs |= {(group, PLURALS[kind], verb) for verb in MANAGE}
    for read_group, resource in PROVIDER_READS:
        needs |= {(read_group, resource, verb) for verb in READ}
    return needs


def test_the_scans_find_what_the_reconciler_is_known_to_do() -> None:
    needs = reconciler_needs()
    assert {
        (API_GROUP, "mysqls", "list"),
        (API_GROUP, "mysqls", "watch"),
        (API_GROUP, "mysqls", "patch"),
        (API_GROUP, "mysqls/status", "patch"),
        (API_GROUP, "mysqlbackups", "create"),
        (API_GROUP, "mysqlbackups", "watch"),
        ("batch", "jobs", "create"),
        (API_GROUP, "mysqlbackups/status", "patch"),
        ("", "events", "create"),
        ("", "namespaces", "get"),
        # The loops that wake an instance: its claims, pods and Jobs.
        ("", "persistentvolumeclaims", "watch"),
        ("", "pods", "watch"),
        ("batch", "jobs", "watch"),
        # Keeping and releasing volumes.
        ("", "persistentvolumes", "patch"),
        ("", "persistentvolumeclaims", "delete"),
    } <= needs
    assert ("", "persistentvolumes", "watch") not in needs, "volumes are read, not watched"
    assert set(program_kinds()) == set(PLURALS)


# Needs only in the operator's own namespace (its Role there).
OWN_NAMESPACE_NEEDS: Final = {("", "pods", "get")}


def watched_needs() -> set[Permission]:
    """What the reconciler needs in the namespaces it watches (and cluster-wide)."""
    return {
        need
        for need in reconciler_needs()
        if need[:2] != LEASES and need not in OWN_NAMESPACE_NEEDS
    }


def test_the_role_allows_everything_the_reconciler_calls() -> None:
    missing = watched_needs() - permissions()
    assert not missing, f"the ClusterRole does not allow {sorted(missing)}"


def test_the_lease_role_is_exactly_what_leader_election_calls() -> None:
    lease_needs = {need for need in reconciler_needs() if need[:2] == LEASES}
    assert lease_needs == {(*LEASES, "get"), (*LEASES, "create"), (*LEASES, "update")}
    assert permissions(LEASE_RULES) == lease_needs
    assert not {granted[:2] for granted in permissions()} & {LEASES}, "Leases cluster-wide"


def test_the_own_namespace_role_reads_exactly_the_operators_pods() -> None:
    # A stack lock's holder is a pod of the operator's (stale_locks.py).
    assert reconciler_needs() >= OWN_NAMESPACE_NEEDS
    assert permissions(OWN_POD_RULES) == OWN_NAMESPACE_NEEDS
    assert not OWN_NAMESPACE_NEEDS & permissions(), "pods readable one by one cluster-wide"


def test_the_role_allows_everything_the_stack_program_manages() -> None:
    missing = program_needs() - permissions()
    assert not missing, f"the ClusterRole does not allow {sorted(missing)}"


def test_the_role_grants_nothing_beyond_those_needs() -> None:
    extra = permissions() - watched_needs() - program_needs()
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


def test_no_finalizers_subresource_because_nothing_sets_owner_references() -> None:
    """`mysqls/finalizers` is only needed to set `blockOwnerDeletion: true`; the program
    sets no owner references at all (the garbage collector must never act on them)."""
    source = PROGRAM.read_text() + (ROOT / "reconciler" / "manifests.py").read_text()
    assert "ownerReferences" not in source
    assert "owner_references" not in source
    assert not any("mysqls/finalizers" in rule.resources for rule in RULES)


def test_no_awaiter_reads_because_nothing_is_awaited() -> None:
    assert SKIP_AWAIT == "pulumi.com/skipAwait"
    granted = {(group, resource) for group, resource, _verb in permissions()}
    for group, resource in (("apps", "replicasets"), ("", "endpoints")):
        assert (group, resource) not in granted, resource
