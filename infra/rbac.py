"""The reconciler's role: a reviewed constant, not generated.

Installed for every namespace, the rules form one ClusterRole. With `watchedNamespaces`,
the namespaced rules become a Role in each watched namespace and only the cluster-scoped
ones (PersistentVolumes, reading the watched Namespaces) stay in a ClusterRole: the
operator then cannot read a Secret, or touch a workload, anywhere else.

Two callers use the service account's credentials, and the role is the union of what
each needs, with no wildcard anywhere:

1. The reconciler's own calls, all in `reconciler/kube.py` (the only module that talks to
   the Kubernetes API): list/watch/get/patch of `mysqls` (finalizers are a metadata patch
   on the object itself), patch of `mysqls/status`; get, list, watch, create and delete
   of `mysqlbackups` and patch of their status (the record of each final and scheduled
   backup, the backups people ask for, retention of scheduled ones); create of core
   `events` and reading them (why a claim is Pending); get, list and watch of `secrets`
   (a user's password Secret, watched by its consent label) and create and delete of
   them (a password rotation's Secret); get of `namespaces` (is it Terminating?); the
   instance's claims (get, list and watch to wake the instance, patch and delete to
   release them), their volumes (get and list, patch to keep them `Retain`, delete a
   static one after a verified backup), pods and Jobs (list and watch to wake the
   instance, get to read how a Job ended, create for the Jobs of a requested backup and
   of a password rotation), and Deployments and Services (is the instance's workload
   still there?).
2. The per-instance stack program's Kubernetes provider (`reconciler/program.py`), which
   manages Secrets, ConfigMaps, PersistentVolumeClaims, PersistentVolumes, Deployments,
   Services and Jobs: it creates and updates them with server-side apply (patch), reads
   them (get), deletes them and waits for a deletion to finish (list, watch), and reads
   the Events of what it waits on. Nothing it declares waits for readiness
   (`pulumi.com/skipAwait`), so it needs no access to ReplicaSets, Pods or Endpoints.

Not granted, on purpose: `mysqls/finalizers` (needed only to set an owner reference with
`blockOwnerDeletion: true`, and the program sets no owner references), `create`/`delete`
of `mysqls`, pod logs, and anything in `events.k8s.io`. tests/unit/test_infra_rbac.py
derives the needs from the reconciler's source and fails when either side drifts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

API_GROUP: Final = "otus.homework"  # = reconciler.spec.API_GROUP; checked by the tests

MANAGE: Final = ("get", "list", "watch", "create", "update", "patch", "delete")
READ: Final = ("get", "list", "watch")


@dataclass(frozen=True)
class Rule:
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]


RULES: Final[tuple[Rule, ...]] = (
    # The reconciler: the MySQL objects, their status, and events about them.
    Rule((API_GROUP,), ("mysqls",), ("get", "list", "watch", "patch")),
    Rule((API_GROUP,), ("mysqls/status",), ("patch",)),
    # Backups: the records of final and scheduled backups are created (they outlive the
    # instance); the ones people create are watched and their status written; scheduled
    # ones beyond backup.keep are deleted, as their dumps are rotated.
    Rule((API_GROUP,), ("mysqlbackups",), ("get", "list", "watch", "create", "delete")),
    Rule((API_GROUP,), ("mysqlbackups/status",), ("patch",)),
    Rule(("",), ("events",), ("create", "get", "list", "watch")),
    Rule(("",), ("namespaces",), ("get",)),
    # The stack program's objects, managed by the Kubernetes provider (and read, patched
    # or released by the reconciler).
    Rule(("",), ("secrets", "configmaps", "services", "persistentvolumeclaims"), MANAGE),
    Rule(("",), ("persistentvolumes",), MANAGE),
    # Whether a claim's StorageClass lets it grow, read when the spec grows it.
    Rule(("storage.k8s.io",), ("storageclasses",), ("get",)),
    Rule(("apps",), ("deployments",), MANAGE),
    Rule(("batch",), ("jobs",), MANAGE),
    # The pods of the server and of the Jobs: how they are doing.
    Rule(("",), ("pods",), ("list", "watch")),
    # Whether the client Service routes to the server yet (Ready means it does).
    Rule(("discovery.k8s.io",), ("endpointslices",), ("list",)),
)


# In the operator's own namespace only (a Role there): its own pods, to tell whether the
# holder of a stack lock still runs (reconciler/stale_locks.py).
OWN_POD_RULES: Final[tuple[Rule, ...]] = (Rule(("",), ("pods",), ("get",)),)
# With leader election: the Lease, in the operator's own namespace only (the same Role).
LEASE_RULES: Final[tuple[Rule, ...]] = (
    Rule(("coordination.k8s.io",), ("leases",), ("get", "create", "update")),
)


# Resources without a namespace: only these need a ClusterRole when the operator watches
# some namespaces only.
CLUSTER_SCOPED: Final = frozenset(
    {("", "persistentvolumes"), ("", "namespaces"), ("storage.k8s.io", "storageclasses")}
)


def _cluster_scoped(rule: Rule) -> bool:
    scoped = {
        (g, r.split("/")[0]) in CLUSTER_SCOPED for g in rule.api_groups for r in rule.resources
    }
    if len(scoped) != 1:
        raise ValueError(f"a rule mixes cluster-scoped and namespaced resources: {rule}")
    return scoped.pop()


def cluster_rules(rules: tuple[Rule, ...] = RULES) -> tuple[Rule, ...]:
    return tuple(rule for rule in rules if _cluster_scoped(rule))


def namespaced_rules(rules: tuple[Rule, ...] = RULES) -> tuple[Rule, ...]:
    return tuple(rule for rule in rules if not _cluster_scoped(rule))


def permissions(rules: tuple[Rule, ...] = RULES) -> frozenset[tuple[str, str, str]]:
    """Every (apiGroup, resource, verb) the rules grant."""
    return frozenset(
        (group, resource, verb)
        for rule in rules
        for group in rule.api_groups
        for resource in rule.resources
        for verb in rule.verbs
    )
