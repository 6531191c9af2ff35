"""The backup-and-restore scenario's data and SQL: pure builders and parsers only.

- `fill_job`: a client Job (the instance's image, `mysql:5.7`, never pulled) that reaches
  the instance by its Service name as root, with MYSQL_PWD from the instance's credentials
  Secret, and fills table `filler` with random-ish rows until the table's `data_length`
  (information_schema, after ANALYZE TABLE) reaches the target: one row, then repeated
  `INSERT ... SELECT` that doubles the table, the last one only adding the rows still
  missing at the average row size so far. It prints one `fill rows=N data_length=B` line.
- `BASELINE_SCRIPT`: run inside the MySQL pod (bash, the pod's own root password): a
  `mysqldump --single-transaction` of the database to `wc -c` (dump only), then the same
  dump piped into `mysql` restoring into a fresh copy database of the same server; times
  from `date +%s.%N` in the pod. It prints one `baseline ...` line.
- `SQL_SCRIPT` runs one SQL text in the pod; `TABLE_CHECK_SQL` counts and checksums the
  table, to compare the restored data with the original.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from kubernetes import client

from bench.stats import parse_logfmt

TABLE: Final = "filler"
IMAGE: Final = "mysql:5.7"  # the local MariaDB image on the real node (hack/images/build)
MIB: Final = 1024 * 1024
MYSQL_WAIT_S: Final = 300
MAX_FILL_ROUNDS: Final = 200

# Six MD5s of RAND() per row: 192 hex characters that neither repeat nor compress well.
_ROW: Final = (
    "MD5(RAND()), CONCAT(" + ", ".join(["MD5(RAND())"] * 6) + "), FLOOR(RAND() * 2147483647)"
)

# Only constants go into the SQL texts here (hence the noqa): no input reaches them.
FILL_SCRIPT: Final = f"""\
set -eu
client=$(command -v mysql || command -v mariadb)
sql() {{
  "$client" --protocol=TCP --host="$MYSQL_HOST" --user=root --batch --skip-column-names \\
    --database="$MYSQL_DATABASE" "$@"
}}
waited=0
until sql -e 'SELECT 1' >/dev/null 2>&1; do
  [ "$waited" -lt {MYSQL_WAIT_S} ] || {{ echo "fill: $MYSQL_HOST did not answer" >&2; exit 1; }}
  sleep 2
  waited=$((waited + 2))
done
target=$((TARGET_MIB * {MIB}))
sql -e "CREATE TABLE {TABLE} (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  k CHAR(32) NOT NULL, v VARCHAR(255) NOT NULL, n INT NOT NULL) ENGINE=InnoDB"
sql -e "INSERT INTO {TABLE} (k, v, n) VALUES ({_ROW})"
rows=1
rounds=0
while :; do
  sql -e "ANALYZE TABLE {TABLE}" >/dev/null
  size=$(sql -e "SELECT data_length FROM information_schema.tables
    WHERE table_schema = DATABASE() AND table_name = '{TABLE}'")
  [ "$size" -lt "$target" ] || break
  rounds=$((rounds + 1))
  [ "$rounds" -le {MAX_FILL_ROUNDS} ] || {{ echo "fill: no progress at $size bytes" >&2; exit 1; }}
  want=$(( (target - size) / (size / rows + 1) + 1 ))
  [ "$want" -le "$rows" ] || want=$rows
  added=$(sql -e "INSERT INTO {TABLE} (k, v, n) SELECT {_ROW} FROM {TABLE} LIMIT $want;
    SELECT ROW_COUNT()")
  rows=$((rows + added))
  echo "fill: $rows rows, $size bytes before this round" >&2
done
echo "fill rows=$rows data_length=$size"
"""  # noqa: S608

# Arguments: the SQL text.
SQL_SCRIPT: Final = """\
set -euo pipefail
export MYSQL_PWD="$MYSQL_ROOT_PASSWORD"
client=$(command -v mysql || command -v mariadb)
"$client" --user=root --batch --skip-column-names -e "$1"
"""

# Arguments: the database, the copy database.
BASELINE_SCRIPT: Final = """\
set -euo pipefail
export MYSQL_PWD="$MYSQL_ROOT_PASSWORD"
client=$(command -v mysql || command -v mariadb)
dump=$(command -v mysqldump || command -v mariadb-dump)
database=$1
copy=$2
"$client" --user=root -e "DROP DATABASE IF EXISTS \\`$copy\\`; CREATE DATABASE \\`$copy\\`"
dump_start=$(date +%s.%N)
dump_bytes=$("$dump" --user=root --single-transaction "$database" | wc -c)
dump_end=$(date +%s.%N)
"$dump" --user=root --single-transaction "$database" | "$client" --user=root "$copy"
pipe_end=$(date +%s.%N)
echo "baseline dump_bytes=$dump_bytes dump_start=$dump_start dump_end=$dump_end" \\
  "pipe_end=$pipe_end"
"""


def table_check_sql(database: str) -> str:
    """Two result lines: the row count, then `<db>.<table>\\t<checksum>`."""
    return (
        f"SELECT COUNT(*) FROM `{database}`.`{TABLE}`;"  # noqa: S608 (the spec's database)
        f" CHECKSUM TABLE `{database}`.`{TABLE}`"
    )


def drop_database_sql(database: str) -> str:
    return f"DROP DATABASE IF EXISTS `{database}`"


def copy_database(database: str) -> str:
    return f"{database}_copy"


def storage_size(size_mb: int) -> str:
    """The claims' nominal size: the data, its copy and the server's own files (hostPath
    volumes do not enforce it; the spec should not claim less than is written)."""
    return f"{max(1, math.ceil(size_mb * 3 / 1024))}Gi"


def phase_timeout_s(size_mb: int) -> float:
    """How long one step (fill, backup, restore, the baseline) may take for size_mb."""
    return 600.0 + 3.0 * size_mb


def fill_job(
    *, name: str, service: str, database: str, secret: str, key: str, size_mb: int
) -> client.V1Job:
    password = client.V1EnvVarSource(
        secret_key_ref=client.V1SecretKeySelector(name=secret, key=key)
    )
    container = client.V1Container(
        name="fill",
        image=IMAGE,
        image_pull_policy="Never",
        command=["sh", "-c", FILL_SCRIPT],
        env=[
            client.V1EnvVar(name="MYSQL_HOST", value=service),
            client.V1EnvVar(name="MYSQL_DATABASE", value=database),
            client.V1EnvVar(name="TARGET_MIB", value=str(size_mb)),
            client.V1EnvVar(name="MYSQL_PWD", value_from=password),
        ],
    )
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name, labels={"app.kubernetes.io/part-of": "bench"}),
        spec=client.V1JobSpec(
            backoff_limit=0,
            active_deadline_seconds=int(phase_timeout_s(size_mb)),
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(restart_policy="Never", containers=[container])
            ),
        ),
    )


@dataclass(frozen=True)
class Filled:
    rows: int
    data_length: int  # bytes


def _last_line(output: str, prefix: str) -> dict[str, str]:
    for line in reversed(output.splitlines()):
        if line.startswith(prefix + " "):
            return parse_logfmt(line)
    raise ValueError(f"no `{prefix} ...` line in: {output[-500:]!r}")


def parse_fill(log: str) -> Filled:
    fields = _last_line(log, "fill")
    return Filled(rows=int(fields["rows"]), data_length=int(fields["data_length"]))


@dataclass(frozen=True)
class Baseline:
    dump_bytes: int
    dump_only_s: float
    pipe_s: float


def parse_baseline(output: str) -> Baseline:
    fields = _last_line(output, "baseline")
    dump_start, dump_end = float(fields["dump_start"]), float(fields["dump_end"])
    return Baseline(
        dump_bytes=int(fields["dump_bytes"]),
        dump_only_s=round(dump_end - dump_start, 3),
        pipe_s=round(float(fields["pipe_end"]) - dump_end, 3),
    )


@dataclass(frozen=True)
class TableCheck:
    rows: int
    checksum: str


def parse_table_check(output: str) -> TableCheck:
    lines = [line for line in output.splitlines() if line.strip()]
    if len(lines) != 2:
        raise ValueError(f"expected a count and a checksum line, got {output!r}")
    return TableCheck(rows=int(lines[0]), checksum=lines[1].split("\t")[-1].strip())
