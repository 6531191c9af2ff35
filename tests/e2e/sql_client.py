"""SQL against an instance on the real node, the way an application does it: a pod that
connects to the instance's Service by name, as root, with the password from the
instance's Secret (never on a command line)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final

from kubernetes import client

from tests.harness import Harness
from tests.support import eventually

JOB_TIMEOUT_S: Final = 300.0
CLIENT_IMAGE: Final = "mysql:5.7"  # the local MariaDB image, tagged so
CLIENT_UID: Final = 999  # its mysql user


@dataclass(frozen=True)
class JobOutcome:
    succeeded: bool
    log: str


def _job(
    name: str,
    instance: str,
    host: str,
    script: str,
    deadline_s: int,
    password_from: tuple[str, str] | None = None,
) -> client.V1Job:
    """`password_from`: (Secret, key) of the password; the instance's credentials Secret
    (what the operator's own Jobs use) by default."""
    secret, key = password_from or (f"{instance}-credentials", "password")
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name, labels={"e2e-client": instance}),
        spec=client.V1JobSpec(
            backoff_limit=0,
            active_deadline_seconds=deadline_s,
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"e2e-client": instance}),
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    # Admitted by a namespace that enforces Pod Security "restricted".
                    automount_service_account_token=False,
                    security_context=client.V1PodSecurityContext(
                        run_as_non_root=True,
                        run_as_user=CLIENT_UID,
                        run_as_group=CLIENT_UID,
                        seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
                    ),
                    containers=[
                        client.V1Container(
                            name="sql",
                            image=CLIENT_IMAGE,
                            image_pull_policy="Never",
                            security_context=client.V1SecurityContext(
                                allow_privilege_escalation=False,
                                capabilities=client.V1Capabilities(drop=["ALL"]),
                            ),
                            command=["sh", "-c", script],
                            env=[
                                client.V1EnvVar(name="MYSQL_HOST", value=host),
                                client.V1EnvVar(
                                    name="MYSQL_PWD",
                                    value_from=client.V1EnvVarSource(
                                        secret_key_ref=client.V1SecretKeySelector(
                                            name=secret, key=key
                                        )
                                    ),
                                ),
                            ],
                        )
                    ],
                ),
            ),
        ),
    )


def start_job(
    harness: Harness,
    instance: str,
    script: str,
    *,
    host: str | None = None,
    deadline_s: int = 300,
    password_from: tuple[str, str] | None = None,
) -> str:
    name = f"sql-{uuid.uuid4().hex[:8]}"
    job = _job(name, instance, host or instance, script, deadline_s, password_from)
    harness.batch.create_namespaced_job(harness.namespace, job)
    return name


def wait_job(harness: Harness, name: str, timeout_s: float = JOB_TIMEOUT_S) -> JobOutcome:
    def state() -> str:
        status = harness.batch.read_namespaced_job_status(name, harness.namespace).status
        return "succeeded" if status.succeeded else "failed" if status.failed else "running"

    final = eventually(state, lambda s: s != "running", timeout_s=timeout_s, what=f"Job {name}")
    pods = harness.core.list_namespaced_pod(
        harness.namespace, label_selector=f"job-name={name}"
    ).items
    assert pods, f"Job {name} ended {final} without a pod"
    log: str = harness.core.read_namespaced_pod_log(str(pods[0].metadata.name), harness.namespace)
    return JobOutcome(final == "succeeded", log)


# Like an application's connection pool: a new client retries its first connection for a
# while (kube-proxy may take a second to route a Service that was just created).
CONNECT = (
    'for i in $(seq 30); do mysql -h "$MYSQL_HOST" -uroot --connect-timeout=2 -e "SELECT 1" '
    ">/dev/null 2>&1 && break; sleep 1; done; "
)


def sql(
    harness: Harness,
    instance: str,
    database: str,
    statements: str,
    *,
    user: str = "root",
    password_from: tuple[str, str] | None = None,
) -> str:
    """Runs SQL through the instance's Service; returns the rows, tab-separated."""
    script = CONNECT.replace("-uroot", f"-u{user}") + (
        f'mysql -h "$MYSQL_HOST" -u{user} "{database}" --batch --skip-column-names '
        f'-e "{statements}"'
    )
    outcome = wait_job(harness, start_job(harness, instance, script, password_from=password_from))
    assert outcome.succeeded, outcome.log
    return outcome.log


def connects(harness: Harness, instance: str, password_from: tuple[str, str]) -> bool:
    """Whether root connects through the instance's Service with that password (a few
    tries, as a client that just started would)."""
    script = (
        "for i in 1 2 3 4 5; do "
        'mysql -h "$MYSQL_HOST" -uroot --connect-timeout=2 -e "SELECT 1" && exit 0; sleep 2; '
        "done; exit 1"
    )
    return wait_job(
        harness, start_job(harness, instance, script, password_from=password_from)
    ).succeeded


def write_rows(
    harness: Harness, instance: str, database: str, count: int, table: str = "kept"
) -> None:
    """Creates `table` and inserts rows 1..count, in one statement."""
    values = ",".join(f"({n},'row-{n}')" for n in range(1, count + 1))
    sql(
        harness,
        instance,
        database,
        f"CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(32)); "
        f"INSERT INTO {table} VALUES {values};",
    )


def count_rows(harness: Harness, instance: str, database: str, table: str = "kept") -> int:
    return int(sql(harness, instance, database, f"SELECT COUNT(*) FROM {table};").split()[0])


def writer_script(database: str, table: str = "acked") -> str:
    """Connects as an application does (retrying at first), then inserts rows 1, 2, 3 ...
    one transaction each, printing `acked N` after the server acknowledged N; stops after
    a few consecutive failures (clients cut off)."""
    return CONNECT + (
        f'mysql -h "$MYSQL_HOST" -uroot "{database}" -e '
        f'"CREATE TABLE IF NOT EXISTS {table} (id INT PRIMARY KEY)" || exit 1; '
        "n=1; failures=0; "
        "while [ $failures -lt 5 ]; do "
        f'  if mysql -h "$MYSQL_HOST" -uroot "{database}" --connect-timeout=2 '
        f'-e "INSERT INTO {table} VALUES ($n)" 2>/dev/null; '
        '  then echo "acked $n"; n=$((n+1)); failures=0; '
        "  else failures=$((failures+1)); sleep 1; fi; "
        "done; echo done"
    )
