"""Pure builders: names, labels and object specs for the installation, from an `InstallConfig`.

Nothing here declares a resource or reads anything but its arguments (except `load_crd`,
which reads the files the CRDs come from); `install.py` turns these into resources.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from pulumi_kubernetes.apps.v1 import (
    DeploymentSpecArgs,
    DeploymentStrategyArgs,
    RollingUpdateDeploymentArgs,
)
from pulumi_kubernetes.core.v1 import (
    CapabilitiesArgs,
    ContainerArgs,
    ContainerPortArgs,
    EmptyDirVolumeSourceArgs,
    EnvVarArgs,
    EnvVarSourceArgs,
    HTTPGetActionArgs,
    ObjectFieldSelectorArgs,
    PersistentVolumeClaimVolumeSourceArgs,
    PodSecurityContextArgs,
    PodSpecArgs,
    PodTemplateSpecArgs,
    ProbeArgs,
    ResourceRequirementsArgs,
    SeccompProfileArgs,
    SecretKeySelectorArgs,
    SecurityContextArgs,
    VolumeArgs,
    VolumeMountArgs,
)
from pulumi_kubernetes.meta.v1 import LabelSelectorArgs, ObjectMetaArgs
from pulumi_kubernetes.rbac.v1 import PolicyRuleArgs

from infra.config import InstallConfig
from infra.rbac import RULES, Rule
from reconciler.settings import DEFAULT_PASSPHRASE_ENV, ENV_PREFIX

APP: Final = "mysql-operator"
CRD_FILE: Final = Path(__file__).resolve().parent.parent / "crd" / "mysql.yaml"
BACKUP_CRD_FILE: Final = CRD_FILE.with_name("mysqlbackup.yaml")
HTTP_PORT: Final = 8080
STATE_MOUNT: Final = "/var/lib/mysql-operator"
PULUMI_HOME: Final = "/var/run/pulumi"
TMP: Final = "/tmp"  # noqa: S108 (an emptyDir mount point inside the container)
RUN_AS: Final = 65532  # the conventional "nonroot" uid and gid
PASSPHRASE_KEY: Final = "passphrase"  # noqa: S105 (a key name) = reconciler.settings.SecretReference.key's default
# The reconciler finishes the engine run in progress on SIGTERM (reconciler/runner.py).
TERMINATION_GRACE_S: Final = 300


@dataclass(frozen=True)
class Names:
    namespace: str
    service_account: str
    cluster_role: str  # cluster-scoped: the namespace keeps two installations apart
    cluster_role_binding: str
    role: str  # in each watched namespace, when the operator watches only some
    own_role: str  # in the operator's namespace: its pods, and the Lease with election
    state_claim: str
    state_volume: str  # cluster-scoped, only with stateHostPath
    passphrase_secret: str
    deployment: str
    host_path_policy: str  # cluster-scoped


def names_for(config: InstallConfig) -> Names:
    ns = config.namespace
    return Names(
        namespace=ns,
        service_account=APP,
        cluster_role=f"{APP}:{ns}",
        cluster_role_binding=f"{APP}:{ns}",
        role=f"{APP}:{ns}",
        own_role=f"{APP}-own-namespace",
        state_claim=f"{APP}-state",
        state_volume=f"{APP}-state-{ns}",
        passphrase_secret=f"{APP}-state-passphrase",
        deployment=APP,
        host_path_policy=f"{APP}-host-paths.{ns}",
    )


def labels_for(config: InstallConfig) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": APP,
        "app.kubernetes.io/instance": config.namespace,
        "app.kubernetes.io/component": "reconciler",
        "app.kubernetes.io/managed-by": "pulumi",
    }


def selector_for(config: InstallConfig) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/instance": config.namespace}


def metadata(config: InstallConfig, name: str, *, namespaced: bool = True) -> ObjectMetaArgs:
    return ObjectMetaArgs(
        name=name,
        namespace=config.namespace if namespaced else None,
        labels=labels_for(config),
    )


def policy_rules(
    rules: tuple[Rule, ...] = RULES, namespaces: tuple[str, ...] = ()
) -> list[PolicyRuleArgs]:
    """The rules as the API wants them; `namespaces` narrows a rule on Namespaces to those
    (by resourceNames), for an operator that watches only them."""
    return [
        PolicyRuleArgs(
            api_groups=list(rule.api_groups),
            resources=list(rule.resources),
            verbs=list(rule.verbs),
            resource_names=list(namespaces)
            if namespaces and rule.resources == ("namespaces",)
            else None,
        )
        for rule in rules
    ]


def host_path_policy(config: InstallConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ValidatingAdmissionPolicy and its binding's spec: MySQL objects may name host
    paths only under `hostPathRoot` (none at all without it), so a bad one is refused at
    admission, naming the field. An update that leaves a path as it was passes, so an
    object created before the rule can still be deleted (its finalizer removed)."""
    root = (config.host_path_root or "").rstrip("/")

    def rule(field: str, present: str, path: str) -> dict[str, str]:
        was = present.replace("object.", "oldObject.")
        old = path.replace("object.", "oldObject.")
        allowed = f"{path}.startsWith('{root}/')" if root else "false"
        where = f"under {root}/" if root else "nowhere: the operator allows no host path"
        return {
            "expression": (
                f"!({present}) || {allowed} "
                f"|| (request.operation == 'UPDATE' && ({was}) && {old} == {path})"
            ),
            "message": f"{field}: host paths are allowed {where}",
            "reason": "Forbidden",
        }

    policy = {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": [
                {
                    "apiGroups": ["otus.homework"],
                    "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": ["mysqls"],
                }
            ]
        },
        "validations": [
            rule("spec.host_path", "has(object.spec.host_path)", "object.spec.host_path"),
            rule(
                "spec.backup.host_path",
                "has(object.spec.backup) && has(object.spec.backup.host_path)",
                "object.spec.backup.host_path",
            ),
        ],
    }
    binding: dict[str, Any] = {"validationActions": ["Deny"]}
    if config.watched_namespaces:
        binding["matchResources"] = {
            "namespaceSelector": {
                "matchExpressions": [
                    {
                        "key": "kubernetes.io/metadata.name",
                        "operator": "In",
                        "values": list(config.watched_namespaces),
                    }
                ]
            }
        }
    return policy, binding


def load_crd(path: Path = CRD_FILE) -> dict[str, Any]:
    """The CRD exactly as the file declares it (YAML anchors resolved)."""
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict) or document.get("kind") != "CustomResourceDefinition":
        raise ValueError(f"{path}: not a CustomResourceDefinition")
    return document


def _from_secret(name: str, secret: str, key: str) -> EnvVarArgs:
    """A variable that holds a Secret's value, by reference only."""
    return EnvVarArgs(
        name=name,
        value_from=EnvVarSourceArgs(secret_key_ref=SecretKeySelectorArgs(name=secret, key=key)),
    )


def operator_env(config: InstallConfig, names: Names) -> list[EnvVarArgs]:
    """The reconciler's settings (reconciler/settings.py reads `MYSQL_OPERATOR_<NAME>`)."""

    def setting(name: str, value: str) -> EnvVarArgs:
        return EnvVarArgs(name=ENV_PREFIX + name, value=value)

    env = [
        setting("STATE_DIR", STATE_MOUNT),
        setting("WORKERS", str(config.workers)),
        # Probes come from the kubelet, so listen on the pod's address, not loopback.
        setting("HTTP_ADDRESS", f"0.0.0.0:{HTTP_PORT}"),
        setting("LOG_LEVEL", config.log_level.value),
        # Backup and restore Jobs of instances with spec.backup.s3 run this same image to
        # move their dumps (python3 -m reconciler.transfer).
        setting("TRANSFER_IMAGE", config.image),
    ]
    if config.watched_namespaces:
        env.append(setting("NAMESPACES", ",".join(config.watched_namespaces)))
    if config.label_selector is not None:
        env.append(setting("LABEL_SELECTOR", config.label_selector))
    if config.host_path_root is not None:
        env.append(setting("HOST_PATH_ROOT", config.host_path_root))
    if config.backend_url is not None:
        env.append(setting("BACKEND_URL", config.backend_url))
    if config.backend_credentials_secret is not None:
        # The state store's keys, only ever as references to the Secret.
        env += [
            _from_secret(name, config.backend_credentials_secret, key)
            for name, key in (
                ("AWS_ACCESS_KEY_ID", "access_key_id"),
                ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
            )
        ]
    if config.leader_election:
        env.append(setting("LEADER_ELECT", "true"))
    # The pod's name and namespace: the Lease's holder identity and namespace, and where
    # the holder of a stack lock (a pod's name) is looked up.
    env += [
        EnvVarArgs(
            name=name,
            value_from=EnvVarSourceArgs(field_ref=ObjectFieldSelectorArgs(field_path=path)),
        )
        for name, path in (
            ("POD_NAME", "metadata.name"),
            ("POD_NAMESPACE", "metadata.namespace"),
        )
    ]
    env += [
        # The passphrase only ever travels as a reference to the Secret.
        _from_secret(DEFAULT_PASSPHRASE_ENV, names.passphrase_secret, PASSPHRASE_KEY),
        # The CLI writes its workspace files under PULUMI_HOME; the root filesystem is
        # read-only, so that is an emptyDir (the image puts the provider plugin on PATH).
        EnvVarArgs(name="PULUMI_HOME", value=PULUMI_HOME),
        EnvVarArgs(name="HOME", value=TMP),
        # The CLI (built without cgo) needs a user name when the image's /etc/passwd
        # lacks the pod's uid.
        EnvVarArgs(name="USER", value=APP),
        EnvVarArgs(name="PULUMI_SKIP_UPDATE_CHECK", value="true"),
        EnvVarArgs(name="PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", value="true"),
        EnvVarArgs(name="PYTHONDONTWRITEBYTECODE", value="1"),
    ]
    return env


def _probe(*, period_s: int, failures: int) -> ProbeArgs:
    return ProbeArgs(
        http_get=HTTPGetActionArgs(path="/healthz", port="http"),
        period_seconds=period_s,
        timeout_seconds=5,
        failure_threshold=failures,
    )


def reconciler_container(config: InstallConfig, names: Names) -> ContainerArgs:
    resources = config.resources
    return ContainerArgs(
        name="reconciler",
        image=config.image,
        image_pull_policy=config.image_pull_policy,
        args=["run"],
        env=operator_env(config, names),
        ports=[ContainerPortArgs(name="http", container_port=HTTP_PORT)],
        # /healthz turns 503 when a watch loop has been silent too long (reconciler/http.py).
        liveness_probe=_probe(period_s=20, failures=3),
        readiness_probe=_probe(period_s=10, failures=1),
        resources=ResourceRequirementsArgs(
            requests={"cpu": resources.cpu_request, "memory": resources.memory_request},
            limits={"cpu": resources.cpu_limit, "memory": resources.memory_limit},
        ),
        security_context=SecurityContextArgs(
            run_as_non_root=True,
            read_only_root_filesystem=True,
            allow_privilege_escalation=False,
            capabilities=CapabilitiesArgs(drop=["ALL"]),
        ),
        volume_mounts=[
            VolumeMountArgs(name="state", mount_path=STATE_MOUNT),
            VolumeMountArgs(name="pulumi-home", mount_path=PULUMI_HOME),
            VolumeMountArgs(name="tmp", mount_path=TMP),
        ],
    )


def reconciler_volumes(config: InstallConfig, names: Names) -> list[VolumeArgs]:
    state = (
        VolumeArgs(
            name="state",
            persistent_volume_claim=PersistentVolumeClaimVolumeSourceArgs(
                claim_name=names.state_claim
            ),
        )
        if config.uses_state_claim
        # With a remote backend the state dir holds only the workspace and the lock file.
        else VolumeArgs(name="state", empty_dir=EmptyDirVolumeSourceArgs())
    )
    return [
        state,
        VolumeArgs(name="pulumi-home", empty_dir=EmptyDirVolumeSourceArgs()),
        VolumeArgs(name="tmp", empty_dir=EmptyDirVolumeSourceArgs()),
    ]


def deployment_spec(config: InstallConfig, names: Names) -> DeploymentSpecArgs:
    return DeploymentSpecArgs(
        # Two reconcilers must never drive the same stacks (docs/design.md). One replica
        # is recreated, so that a rollout never overlaps two pods; two (leader election on
        # a remote backend) roll one at a time, so that one always stands by.
        replicas=config.replicas,
        strategy=DeploymentStrategyArgs(type="Recreate")
        if config.replicas == 1
        else DeploymentStrategyArgs(
            type="RollingUpdate",
            rolling_update=RollingUpdateDeploymentArgs(max_surge=1, max_unavailable=0),
        ),
        revision_history_limit=3,
        selector=LabelSelectorArgs(match_labels=selector_for(config)),
        template=PodTemplateSpecArgs(
            metadata=ObjectMetaArgs(labels=labels_for(config)),
            spec=PodSpecArgs(
                service_account_name=names.service_account,
                termination_grace_period_seconds=TERMINATION_GRACE_S,
                security_context=PodSecurityContextArgs(
                    run_as_non_root=True,
                    run_as_user=RUN_AS,
                    run_as_group=RUN_AS,
                    fs_group=RUN_AS,  # the state claim is writable by the reconciler
                    seccomp_profile=SeccompProfileArgs(type="RuntimeDefault"),
                ),
                containers=[reconciler_container(config, names)],
                volumes=reconciler_volumes(config, names),
            ),
        ),
    )
