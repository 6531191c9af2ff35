#!/bin/sh
# Dumps one database into BACKUP_DIR and keeps the newest BACKUP_KEEP dumps.
#
# The dump is written to a hidden temporary file and renamed only once mysqldump has
# succeeded and the dump ends with its completion trailer, so a failed or interrupted
# backup never replaces (or is mistaken for) the last good dump. Dumps are named
# dump-<UTC time>-<sequence>.sql, so that sorting the names sorts them by age.
#
# Environment: MYSQL_HOST, MYSQL_PORT (3306), MYSQL_USER (root), MYSQL_PWD (read by the
# client itself, so the password is never on a command line), MYSQL_DATABASE,
# BACKUP_DIR (/backup), BACKUP_KEEP (5).
set -eu
export LC_ALL=C

fail() { echo "backup: $*" >&2; exit 1; }

host=${MYSQL_HOST:?MYSQL_HOST is required}
port=${MYSQL_PORT:-3306}
user=${MYSQL_USER:-root}
database=${MYSQL_DATABASE:?MYSQL_DATABASE is required}
dir=${BACKUP_DIR:-/backup}
keep=${BACKUP_KEEP:-5}
: "${MYSQL_PWD:?MYSQL_PWD is required}"

# The same rule as the CRD: the name is passed as an argument, so no leading '-'.
case $database in
  -* | *[!A-Za-z0-9_\$-]*) fail "refusing database name '$database'" ;;
esac
case $keep in
  '' | *[!0-9]* | 0) fail "BACKUP_KEEP must be a positive integer, got '$keep'" ;;
esac
[ -d "$dir" ] || fail "backup directory $dir does not exist"
# MariaDB images from 11.0 on ship only the mariadb-* names.
dump_tool=$(command -v mysqldump || command -v mariadb-dump) ||
  fail "the image has neither mysqldump nor mariadb-dump"

# Leftovers of a backup that died mid-way are never valid dumps.
rm -f "$dir"/.dump-inprogress.*

# Within one second, the sequence number must exceed every existing one (not just fill a
# gap that pruning left), or the newest dump would sort as the oldest.
stamp=$(date -u +%Y%m%dT%H%M%SZ)
sequence=0
for dump in "$dir"/dump-"$stamp"-*.sql; do
  [ -e "$dump" ] || continue
  last=${dump##*-}
  last=$(printf '%s' "${last%.sql}" | sed 's/^0*//')  # no leading 0: not octal
  sequence=$((${last:-0} + 1))
done
final=$(printf '%s/dump-%s-%03d.sql' "$dir" "$stamp" "$sequence")
partial="$dir/.dump-inprogress.$$"
trap 'rm -f "$partial"' EXIT
trap 'exit 1' HUP INT TERM

echo "backup: dumping '$database' from $host:$port" >&2
"$dump_tool" --protocol=TCP --host="$host" --port="$port" --user="$user" \
  --single-transaction --routines --triggers --hex-blob \
  --default-character-set=utf8mb4 \
  "$database" >"$partial" || fail "mysqldump failed; the previous dumps are untouched"

last_line=$(tail -n 1 "$partial")
case $last_line in
  "-- Dump completed"*) ;;
  *) fail "the dump has no completion trailer; the previous dumps are untouched" ;;
esac

sync  # the data must be on disk before the rename makes it the newest dump
mv "$partial" "$final"
sync
echo "backup: wrote $final ($(wc -c <"$final") bytes)" >&2

# Keep the newest $keep dumps. The glob expands sorted (LC_ALL=C), oldest first.
count=0
for dump in "$dir"/dump-*.sql; do
  [ -e "$dump" ] && count=$((count + 1))
done
excess=$((count - keep))
for dump in "$dir"/dump-*.sql; do
  [ "$excess" -gt 0 ] || break
  echo "backup: removing old dump $dump" >&2
  rm -f "$dump"
  excess=$((excess - 1))
done
