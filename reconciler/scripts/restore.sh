#!/bin/sh
# Restores the newest dump in BACKUP_DIR into MYSQL_DATABASE, once MySQL answers.
#
# - No dump: nothing to do, success.
# - The database already has tables: they are kept and the dump is not applied, so a
#   retained data volume is never overwritten by an older dump. The one exception is a
#   restore that this script started and did not finish (a marker file on the backup
#   volume says so): it is applied again, which is safe because the dump drops and
#   re-creates every table it holds.
#
# Environment: as backup.sh, plus RESTORE_WAIT_SECONDS (300): how long to wait for MySQL.
set -eu
export LC_ALL=C

fail() { echo "restore: $*" >&2; exit 1; }

host=${MYSQL_HOST:?MYSQL_HOST is required}
port=${MYSQL_PORT:-3306}
user=${MYSQL_USER:-root}
database=${MYSQL_DATABASE:?MYSQL_DATABASE is required}
dir=${BACKUP_DIR:-/backup}
wait_seconds=${RESTORE_WAIT_SECONDS:-300}
: "${MYSQL_PWD:?MYSQL_PWD is required}"

case $database in
  -* | *[!A-Za-z0-9_\$-]*) fail "refusing database name '$database'" ;;
esac
case $wait_seconds in
  '' | *[!0-9]*) fail "RESTORE_WAIT_SECONDS must be an integer, got '$wait_seconds'" ;;
esac

newest=
for dump in "$dir"/dump-*.sql; do
  [ -e "$dump" ] && newest=$dump  # sorted oldest first, so the last one wins
done
if [ -z "$newest" ]; then
  echo "restore: no dump in $dir; nothing to restore" >&2
  exit 0
fi

client=$(command -v mysql || command -v mariadb) ||
  fail "the image has neither mysql nor mariadb"

sql() {
  "$client" --protocol=TCP --host="$host" --port="$port" --user="$user" \
    --batch --skip-column-names "$@"
}

# The Job starts after the Deployment is ready, but readiness can flap; wait for real.
waited=0
until sql -e 'SELECT 1' >/dev/null 2>&1; do
  [ "$waited" -lt "$wait_seconds" ] || fail "MySQL at $host:$port did not answer in ${wait_seconds}s"
  sleep 2
  waited=$((waited + 2))
done

marker="$dir/.restore-inprogress-$database"
sql -e "CREATE DATABASE IF NOT EXISTS \`$database\`"
tables=$(sql -e "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '$database'")
if [ "$tables" != 0 ] && [ ! -e "$marker" ]; then
  echo "restore: '$database' already has $tables tables; keeping them, not applying $newest" >&2
  exit 0
fi

echo "restore: applying $newest to '$database'" >&2
: >"$marker"
sync
sql --database="$database" <"$newest" || fail "applying $newest failed; the next run retries it"
rm -f "$marker"
echo "restore: restored '$database' from $newest" >&2
