#!/bin/sh
# Restores a verified dump from BACKUP_DIR into a new instance, once MySQL answers.
# POSIX sh: it runs in the user's MySQL image.
#
# The server itself records what the operator did with it, in mysql_operator.lifecycle
# (uid, event, detail, at): one row per step, keyed by INSTANCE_UID (the MySQL object's
# uid, one lifetime of the instance). Dumps never contain that table.
# 1. A `restored`, `initialized` or `kept` row for this uid: this lifetime's restore has
#    already finished (the Job was retried). Nothing to do.
# 2. A `restoring` row for this uid: a restore of this lifetime was interrupted. The dump
#    it names is applied again (dumps drop and re-create every table they hold).
# 3. Rows of other uids only: the data volume outlived an earlier lifetime of this
#    instance and holds its data. No dump is applied; a `kept` row records that. If that
#    lifetime's restore never finished (a `restoring` row and no `restored`, `initialized`
#    or `kept` one), the volume holds half a dump that no client ever saw: the dump it names
#    is applied again, as in 2, never kept.
# 4. No row: the target must be empty (tables in scope), or the restore refuses (exit 3)
#    rather than overwrite data or serve data the operator did not restore. The dump is
#    RESTORE_SOURCE, or the dump with the highest sequence that has its .meta record, or
#    (with none) the newest legacy dump-*.sql. No dump at all: an `initialized` row and an
#    empty start. The dump's size and sha256 (against its .meta) and its trailer are
#    checked before anything is applied: a damaged dump stops the restore (exit 4), it is
#    never skipped in favour of an older dump or an empty start.
# 5. Apply, under an idle watchdog. The `restored` row is written by the same client
#    session, after the whole dump (and, for BACKUP_SCOPE=all, FLUSH PRIVILEGES).
#
# Environment: as backup.sh (MYSQL_*, BACKUP_DIR, BACKUP_SCOPE, TERMINATION_LOG), plus
# INSTANCE_UID (required), RESTORE_SOURCE (latest | a dump file name),
# RESTORE_WAIT_SECONDS (300): how long to wait for MySQL, RESTORE_IDLE_TIMEOUT_SECONDS
# (600): how long the client may read nothing before the watchdog kills it,
# RESTORE_STREAM_CHECKED (false): true when the Job's download already decompressed the
# dump to its end and wrote its last line into the .meta as `trailer=` (the size and
# sha256 are still checked here).
#
# Exit status: 0 restored, initialized, kept or already done; 1 retryable failure;
# 2 bad configuration; 3 target not empty; 4 dump missing or corrupt.
set -eu
export LC_ALL=C

termination_log=${TERMINATION_LOG:-/dev/termination-log}
work=

log() { printf 'restore: %s\n' "$*" >&2; }

# Writes the one line that Kubernetes shows as the container's termination message.
report() {
  case $termination_log in
    */*) log_dir=${termination_log%/*} ;;
    *) log_dir=. ;;
  esac
  if [ -w "${log_dir:-/}" ] || [ -w "$termination_log" ]; then
    printf '%s\n' "$1" 2>/dev/null >"$termination_log" || true
  fi
}

finish() {  # finish STATUS MESSAGE: the one outcome of this run
  trap - HUP INT TERM
  report "$2"
  log "$2"
  exit "$1"
}
succeed() { finish 0 "$*"; }
fail() { finish 1 "restore failed: $*"; }
bad_config() { finish 2 "restore failed: bad configuration: $*"; }

cleanup() {
  if [ -n "$work" ]; then
    stop_children
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'fail "interrupted by a signal"' HUP INT TERM

# -- configuration ------------------------------------------------------------------------

host=${MYSQL_HOST:-}
port=${MYSQL_PORT:-3306}
user=${MYSQL_USER:-root}
database=${MYSQL_DATABASE:-}
dir=${BACKUP_DIR:-/backup}
scope=${BACKUP_SCOPE:-database}
uid=${INSTANCE_UID:-}
source=${RESTORE_SOURCE:-latest}
wait_seconds=${RESTORE_WAIT_SECONDS:-300}
idle_timeout=${RESTORE_IDLE_TIMEOUT_SECONDS:-600}
stream_checked=${RESTORE_STREAM_CHECKED:-false}

is_count() {  # a positive integer without leading zeros (not octal) that fits in 9 digits
  case $1 in
    '' | *[!0-9]* | 0* | ??????????*) return 1 ;;
  esac
}

[ -n "$host" ] || bad_config "MYSQL_HOST is required"
case $stream_checked in
  true | false) ;;
  *) bad_config "RESTORE_STREAM_CHECKED must be 'true' or 'false', got '$stream_checked'" ;;
esac
[ -n "${MYSQL_PWD:-}" ] || bad_config "MYSQL_PWD is required"
is_count "$port" || bad_config "MYSQL_PORT must be a port number, got '$port'"
case $user in
  '' | -*) bad_config "refusing MYSQL_USER '$user'" ;;
esac
case $scope in
  database) [ -n "$database" ] || bad_config "MYSQL_DATABASE is required with BACKUP_SCOPE=database" ;;
  all) ;;
  *) bad_config "BACKUP_SCOPE must be 'database' or 'all', got '$scope'" ;;
esac
# The same rule as the CRD. The name is an argument of the client: no leading '-'.
if [ -n "$database" ]; then
  case $database in
    -* | *[!A-Za-z0-9_\$-]*) bad_config "refusing database name '$database'" ;;
  esac
fi
# A Kubernetes uid; it is put into SQL string literals, so nothing that needs quoting.
case $uid in
  '') bad_config "INSTANCE_UID is required" ;;
  *[!A-Za-z0-9._-]*) bad_config "refusing INSTANCE_UID '$uid'" ;;
esac
[ "${#uid}" -le 64 ] || bad_config "INSTANCE_UID is longer than 64 characters"
case $source in
  latest) ;;
  */* | *[!A-Za-z0-9._-]*) bad_config "refusing RESTORE_SOURCE '$source'" ;;
  dump-*.sql.gz | dump-*.sql) ;;
  *) bad_config "RESTORE_SOURCE must be 'latest' or a dump-*.sql.gz file name, got '$source'" ;;
esac
case $wait_seconds in
  '' | *[!0-9]* | ??????????*) bad_config "RESTORE_WAIT_SECONDS must be an integer, got '$wait_seconds'" ;;
esac
is_count "$idle_timeout" ||
  bad_config "RESTORE_IDLE_TIMEOUT_SECONDS must be a positive integer, got '$idle_timeout'"
[ -d "$dir" ] || bad_config "backup directory $dir does not exist"

# MariaDB images from 11.0 on ship only the mariadb-* names.
client=$(command -v mysql || command -v mariadb) ||
  bad_config "the image has neither mysql nor mariadb"
for tool in gzip sha256sum mkfifo mktemp; do
  command -v "$tool" >/dev/null || bad_config "the image has no $tool"
done

# -- helpers ------------------------------------------------------------------------------

connect() {  # the client's connection options; the password comes from MYSQL_PWD
  "$client" --protocol=TCP --host="$host" --port="$port" --user="$user" \
    --connect-timeout=10 "$@"
}
sql() {  # sql STATEMENT: runs it, prints the rows tab-separated
  connect --batch --skip-column-names --execute="$1"
}
# A query whose failure is a retryable failure of the restore.
query() {
  sql "$1" 2>"$work/sql.err" || fail "$2: $(tail -n 1 "$work/sql.err")"
}

size_of() {
  if [ -e "$1" ]; then wc -c <"$1" | tr -d ' '; else echo 0; fi
}

sha256_of() {
  sum=$(sha256sum <"$1")
  printf '%s\n' "${sum%% *}"
}

newline='
'
# Prints the last line of the (decompressed) file; fails if it does not decompress.
last_line_of() {
  case $1 in
    *.gz) tail_lines=$( { gzip -dc <"$1" 2>/dev/null && echo '#stream-ok'; } | tail -n 2) ;;
    *) tail_lines=$( { cat <"$1" && echo '#stream-ok'; } | tail -n 2) ;;
  esac
  case $tail_lines in
    *'#stream-ok') ;;
    *) return 1 ;;
  esac
  tail_lines=${tail_lines%'#stream-ok'}
  tail_lines=${tail_lines%"$newline"}  # the newline that ended the last line
  last_line=${tail_lines##*$newline}
  printf '%s\n' "$last_line"
}

meta_value() {  # meta_value FILE KEY
  sed -n "s/^$2=//p" "$1" | tail -n 1
}

# Seconds on a monotonic clock (/proc/uptime); without /proc, a count of naps.
naps=0
now() {
  if read -r up _ 2>/dev/null </proc/uptime; then echo "${up%%.*}"; else echo "$naps"; fi
}
nap() {
  if [ -r /proc/uptime ]; then
    sleep 0.2 2>/dev/null || sleep 1
  else
    sleep 1
    naps=$((naps + 1))
  fi
}

# spawn NAME IN OUT ERR COMMAND...: runs COMMAND in the background with its input and
# output redirected (inside the background process: opening a FIFO blocks). Its pid goes
# to $work/NAME.pid and, once it ends, its exit status to $work/NAME.rc.
spawn() {
  spawn_name=$1 spawn_in=$2 spawn_out=$3 spawn_err=$4
  shift 4
  (
    "$@" <"$spawn_in" >"$spawn_out" 2>"$spawn_err" &
    echo "$!" >"$work/$spawn_name.pid"
    spawn_rc=0
    wait "$!" || spawn_rc=$?
    echo "$spawn_rc" >"$work/$spawn_name.rc"
  ) &
}
finished() { [ -s "$work/$1.rc" ]; }
running() { [ -s "$work/$1.pid" ] && ! finished "$1"; }

unpack_pid=
stop_children() {
  if running client; then kill "$(cat "$work/client.pid")" 2>/dev/null || true; fi
  # The reading side then ends of a broken pipe; a decompressor that is not blocked on
  # the pipe is ended here.
  if [ -n "$unpack_pid" ]; then kill "$unpack_pid" 2>/dev/null || true; fi
  waited=0
  while [ "$waited" -lt 25 ] && running client; do
    sleep 0.2 2>/dev/null || sleep 1
    waited=$((waited + 1))
  done
}

# rchar (bytes read so far) of a spawned process, or nothing once it has ended. Where
# /proc/<pid>/io cannot be read, a value that changes every second: no watchdog, rather
# than one that kills a restore that is making progress.
read_so_far() {
  [ -s "$work/$1.pid" ] || return 0
  watched=$(cat "$work/$1.pid")
  rchar=$(sed -n 's/^rchar: //p' "/proc/$watched/io" 2>/dev/null) || rchar=
  if [ -z "$rchar" ] && [ -d "/proc/$watched" ] && ! finished "$1"; then
    echo "unwatched $(now)"
  else
    echo "$rchar"
  fi
}

# -- checking a dump ------------------------------------------------------------------------

corrupt() { finish 4 "dump $dump is corrupt: $*"; }

# Checks $dump against its .meta (size, sha256) and its trailer; sets size, sha256 and
# sequence. Exits 4 when the dump is missing or does not match.
check_dump() {
  # The name goes into SQL string literals: nothing there needs quoting.
  case $dump in
    dump-*.sql.gz | dump-*.sql) ;;
    *) finish 4 "dump $dump not found: not a dump file name" ;;
  esac
  case $dump in
    */* | *[!A-Za-z0-9._-]*) finish 4 "dump $dump not found: not a dump file name" ;;
  esac
  path=$dir/$dump
  [ -f "$path" ] || finish 4 "dump $dump not found"
  size=$(size_of "$path")
  # The hash and the decompressing trailer check each read the whole dump: they run side
  # by side, and their results are read in the order below. A dump the Job's download
  # decompressed as it arrived is not decompressed again: its .meta holds the trailer.
  rm -f "$work/trailer"
  trailer_pid=
  if [ "$stream_checked" = false ]; then
    (
      if trailer=$(last_line_of "$path"); then printf '%s\n' "$trailer" >"$work/trailer"; fi
    ) &
    trailer_pid=$!
  fi
  sha256=$(sha256_of "$path")
  if [ -n "$trailer_pid" ]; then wait "$trailer_pid" || true; fi
  case $dump in
    *.sql.gz)
      meta=${path%.sql.gz}.meta
      [ -f "$meta" ] || corrupt "it has no verification record ${meta##*/}"
      [ "$(meta_value "$meta" file)" = "$dump" ] || corrupt "${meta##*/} names another file"
      expected=$(meta_value "$meta" size)
      [ "$size" = "$expected" ] || corrupt "size is $size bytes, ${meta##*/} says $expected"
      expected=$(meta_value "$meta" sha256)
      [ "$sha256" = "$expected" ] || corrupt "sha256 is $sha256, ${meta##*/} says $expected"
      sequence=$(meta_value "$meta" sequence)
      case $sequence in
        '' | *[!0-9]*) corrupt "${meta##*/} has no valid sequence" ;;
      esac
      ;;
    *) sequence=legacy ;;  # dump-<UTC stamp>-<NNN>.sql from the previous backup script
  esac
  if [ "$stream_checked" = true ]; then
    case $dump in
      *.sql.gz) meta_value "$meta" trailer >"$work/trailer" ;;
    esac
    [ -s "$work/trailer" ] || corrupt "${meta##*/} has no trailer from the download's check"
  fi
  [ -f "$work/trailer" ] || corrupt "it does not decompress"
  trailer=$(cat "$work/trailer")
  case $trailer in
    '-- Dump completed'*) ;;
    *) corrupt "it does not end with the '-- Dump completed' trailer" ;;
  esac
}

# -- applying a dump ------------------------------------------------------------------------

# The dump, then (only if it was read in full) the statements that complete the restore.
unpack() {
  case $dump in
    *.gz) gzip -dc <"$dir/$dump" || return ;;
    *) cat <"$dir/$dump" || return ;;
  esac
  if [ "$scope" = all ]; then echo 'FLUSH PRIVILEGES;'; fi
  echo "INSERT INTO mysql_operator.lifecycle (uid, event, detail)
    VALUES ('$uid', 'restored', '$dump sequence=$sequence sha256=$sha256');"
}

apply_dump() {
  if [ "$scope" = all ]; then
    set --
    target="all databases"
  else
    set -- --database="$database"
    target="'$database'"
  fi
  log "applying $dump (sequence=$sequence, $size bytes) to $target"
  mkfifo "$work/pipe"
  spawn client "$work/pipe" "$work/client.out" "$work/client.err" \
    "$client" --protocol=TCP --host="$host" --port="$port" --user="$user" \
    --connect-timeout=10 --batch "$@"
  unpack >"$work/pipe" 2>"$work/unpack.err" &
  unpack_pid=$!
  # The watchdog: the client reads the dump and the server's answers; when it has read
  # nothing for the idle timeout, the apply is stuck.
  last_read=-1
  progress_at=$(now)
  while ! finished client; do
    nap
    so_far=$(read_so_far client)
    if [ "$so_far" != "$last_read" ]; then
      last_read=$so_far
      progress_at=$(now)
    elif [ $(($(now) - progress_at)) -ge "$idle_timeout" ]; then
      stop_children
      fail "applying $dump made no progress for ${idle_timeout}s, so the watchdog killed it; the next run applies it again"
    fi
  done
  # The client has ended, so the reading side ends too (at worst of a broken pipe).
  unpack_status=0
  wait "$unpack_pid" || unpack_status=$?
  unpack_pid=
  if [ -s "$work/client.err" ]; then sed 's/^/restore: client: /' "$work/client.err" >&2; fi
  client_status=$(cat "$work/client.rc")
  [ "$client_status" = 0 ] ||
    fail "applying $dump failed (status $client_status): $(tail -n 1 "$work/client.err"); the next run applies it again"
  [ "$unpack_status" = 0 ] ||
    fail "reading $dump failed (status $unpack_status): $(tail -n 1 "$work/unpack.err"); the next run applies it again"
  succeed "restored $dump sequence=$sequence size=$size sha256=$sha256"
}

create_marker_table() {
  query "CREATE DATABASE IF NOT EXISTS mysql_operator;
    CREATE TABLE IF NOT EXISTS mysql_operator.lifecycle (
      uid VARCHAR(64), event VARCHAR(32), detail VARCHAR(512),
      at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)" "cannot create mysql_operator.lifecycle" >/dev/null
}

# restore_dump record|resume: checks $dump and applies it (the script ends there). `record`
# first writes this lifetime's `restoring` row; `resume` finds it written by a run before.
restore_dump() {
  check_dump
  if [ "$scope" = database ]; then
    query "CREATE DATABASE IF NOT EXISTS \`$database\`" "cannot create '$database'" >/dev/null
  fi
  if [ "$1" = record ]; then
    create_marker_table
    query "INSERT INTO mysql_operator.lifecycle (uid, event, detail)
      VALUES ('$uid', 'restoring', '$dump')" "cannot record the restore's start" >/dev/null
  fi
  apply_dump
}

# -- waiting for MySQL ----------------------------------------------------------------------

# Scratch space (a FIFO, the client's exit status): /tmp, or the backup volume. Leftovers
# of an earlier run go if they can: a named backup's claim is mounted read-only.
rm -rf "$dir"/.restore-work.* 2>/dev/null || true
work=$(mktemp -d "${TMPDIR:-/tmp}/restore.XXXXXX" 2>/dev/null ||
  mktemp -d "$dir/.restore-work.XXXXXX") || fail "cannot create a temporary directory"

# The Job starts after the Deployment is ready, but readiness can flap; wait for real.
started=$(now)
until sql 'SELECT 1' >/dev/null 2>"$work/connect.err"; do
  [ $(($(now) - started)) -lt "$wait_seconds" ] ||
    fail "MySQL at $host:$port did not answer in ${wait_seconds}s: $(tail -n 1 "$work/connect.err")"
  sleep 2
  naps=$((naps + 2))
done

# -- what happened to this instance so far --------------------------------------------------

marker_table=$(query "SELECT COUNT(*) FROM information_schema.tables
  WHERE table_schema = 'mysql_operator' AND table_name = 'lifecycle'" \
  "cannot look for mysql_operator.lifecycle")
if [ "$marker_table" != 0 ]; then
  # 1. Finished in this lifetime: a retried Job.
  done_row=$(query "SELECT CONCAT(event, ' ', IFNULL(detail, '')) FROM mysql_operator.lifecycle
    WHERE uid = '$uid' AND event IN ('restored', 'initialized', 'kept')
    ORDER BY at DESC LIMIT 1" "cannot read mysql_operator.lifecycle")
  if [ -n "$done_row" ]; then succeed "already done: $done_row"; fi

  # 2. Interrupted in this lifetime: apply the same dump again.
  dump=$(query "SELECT detail FROM mysql_operator.lifecycle
    WHERE uid = '$uid' AND event = 'restoring' ORDER BY at DESC LIMIT 1" \
    "cannot read mysql_operator.lifecycle")
  if [ -n "$dump" ]; then
    log "a restore of $dump in this lifetime was interrupted; applying it again"
    restore_dump resume
  fi

  # 3. Data of an earlier lifetime of this instance: keep it, apply nothing, unless that
  # lifetime's own restore was interrupted.
  other=$(query "SELECT uid FROM mysql_operator.lifecycle WHERE uid <> '$uid'
    ORDER BY at DESC LIMIT 1" "cannot read mysql_operator.lifecycle")
  if [ -n "$other" ]; then
    case $other in
      *[!A-Za-z0-9._-]*) fail "mysql_operator.lifecycle holds an unexpected uid" ;;
    esac
    finished=$(query "SELECT COUNT(*) FROM mysql_operator.lifecycle WHERE uid = '$other'
      AND event IN ('restored', 'initialized', 'kept')" "cannot read mysql_operator.lifecycle")
    dump=$(query "SELECT detail FROM mysql_operator.lifecycle
      WHERE uid = '$other' AND event = 'restoring' ORDER BY at DESC LIMIT 1" \
      "cannot read mysql_operator.lifecycle")
    if [ "$finished" = 0 ] && [ -n "$dump" ]; then
      log "lifetime $other was interrupted while restoring $dump; applying it again"
      restore_dump record
    fi
    query "INSERT INTO mysql_operator.lifecycle (uid, event, detail)
      SELECT '$uid', 'kept', LEFT(CONCAT('data from lifetime ', uid), 512)
      FROM mysql_operator.lifecycle WHERE uid <> '$uid' ORDER BY at DESC LIMIT 1" \
      "cannot record the kept data" >/dev/null
    succeed "kept existing data of lifetime $other"
  fi
fi

# -- 4. a new instance: the target must be empty ---------------------------------------------

if [ "$scope" = database ]; then
  tables=$(query "SELECT COUNT(*) FROM information_schema.tables
    WHERE table_schema = '$database'" "cannot count the tables")
  where="database '$database'"
else
  user_schemas="table_schema NOT IN
    ('mysql', 'information_schema', 'performance_schema', 'sys', 'mysql_operator')"
  tables=$(query "SELECT COUNT(*) FROM information_schema.tables WHERE $user_schemas" \
    "cannot count the tables")
  where="schemas $(query "SELECT GROUP_CONCAT(DISTINCT table_schema ORDER BY table_schema
    SEPARATOR ', ') FROM information_schema.tables WHERE $user_schemas" "cannot list the schemas")"
fi
if [ "$tables" != 0 ]; then
  finish 3 "target not empty: $tables tables in $where that the operator did not restore; refusing to overwrite or to serve them"
fi

dump=
if [ "$source" != latest ]; then
  dump=$source
else
  # The newest dump that a backup finished: the one with the highest sequence that has
  # its .meta. The glob expands sorted (LC_ALL=C), zero-padded sequences oldest first.
  # If that dump fails its checks, the restore stops (exit 4): it never falls back to an
  # older dump or to an empty start in silence. A .sql.gz without .meta is a leftover of
  # an interrupted backup, and is ignored.
  for meta in "$dir"/dump-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9].meta; do
    if [ -e "$meta" ]; then
      dump=${meta##*/}
      dump=${dump%.meta}.sql.gz
    fi
  done
  # Legacy names (dump-<UTC stamp>-<NNN>.sql) sort oldest first too.
  if [ -z "$dump" ]; then
    for legacy in "$dir"/dump-*.sql; do
      case ${legacy##*/} in
        *[!A-Za-z0-9._-]*) log "ignoring ${legacy##*/}: not a dump file name" ;;
        *) if [ -e "$legacy" ]; then dump=${legacy##*/}; fi ;;
      esac
    done
  fi
fi
if [ -z "$dump" ]; then
  create_marker_table
  query "INSERT INTO mysql_operator.lifecycle (uid, event, detail)
    VALUES ('$uid', 'initialized', 'no dump found')" "cannot record the empty start" >/dev/null
  succeed "no dump; starting empty"
fi

restore_dump record
