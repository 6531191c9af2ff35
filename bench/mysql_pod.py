"""Commands inside an instance's MySQL pod, through `kubectl exec` (the pod's own root
password from its environment; the server's own clients, over its socket)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client

from bench.dataset import (
    BASELINE_SCRIPT,
    SQL_SCRIPT,
    Baseline,
    TableCheck,
    parse_baseline,
    parse_table_check,
    table_check_sql,
)
from reconciler.names import selector_for
from reconciler.spec import Instance

CONTAINER = "mysql"  # the Deployment's container (reconciler/program.py)


def selector_text(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def pod_ready(pod: client.V1Pod) -> bool:
    if pod.metadata is None or pod.metadata.deletion_timestamp is not None:
        return False
    conditions = (pod.status and pod.status.conditions) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


@dataclass
class MysqlPod:
    core: client.CoreV1Api
    kubeconfig: Path
    instance: Instance

    def name(self) -> str:
        """The instance's Ready database pod (the Deployment has one replica)."""
        listed = self.core.list_namespaced_pod(
            self.instance.namespace, label_selector=selector_text(selector_for(self.instance))
        )
        ready = [pod for pod in listed.items if pod_ready(pod)]
        if len(ready) != 1:
            raise RuntimeError(f"expected one Ready database pod, found {len(ready)}")
        metadata = ready[0].metadata
        assert metadata is not None  # pod_ready checked it
        return str(metadata.name)

    def bash(self, script: str, *args: str, timeout_s: float) -> str:
        argv = [
            "kubectl",
            f"--kubeconfig={self.kubeconfig}",
            f"--namespace={self.instance.namespace}",
            "exec",
            self.name(),
            f"--container={CONTAINER}",
            "--",
            "bash",
            "-c",
            script,
            "bash",  # $0
            *args,
        ]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"in the MySQL pod: not done after {timeout_s:.0f}s") from None
        if done.returncode != 0:
            raise RuntimeError(f"in the MySQL pod, exit {done.returncode}: {done.stderr[-2000:]}")
        return done.stdout

    def sql(self, text: str, timeout_s: float = 600) -> str:
        return self.bash(SQL_SCRIPT, text, timeout_s=timeout_s)

    def table_check(self, database: str, timeout_s: float) -> TableCheck:
        return parse_table_check(self.sql(table_check_sql(database), timeout_s))

    def baseline(self, database: str, copy: str, timeout_s: float) -> Baseline:
        return parse_baseline(self.bash(BASELINE_SCRIPT, database, copy, timeout_s=timeout_s))
