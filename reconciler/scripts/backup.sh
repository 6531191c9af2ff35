#!/bin/sh
# Dumps MySQL into BACKUP_DIR as a verified, compressed dump, and keeps the newest
# BACKUP_KEEP verified dumps. POSIX sh: it runs in the user's MySQL image.
#
# Naming and verification
# - Dumps are named dump-<10-digit sequence>.sql.gz. The sequence is 1 + the largest one
#   in BACKUP_DIR: the clock never orders dumps (a wrong clock cannot make an old dump
#   look new). `date` only fills the informational `created` field.
# - The dump is written to a hidden temporary file, checked (the dump tool exited 0, the
#   compressed bytes decompress to a stream that ends with the `-- Dump completed`
#   trailer, the size is not zero), synced and renamed. Then dump-<sequence>.meta records
#   its size and sha256 (written to a temporary file and renamed). The bytes are checked
#   and hashed as they are written, beside the dump instead of reading the file again
#   after it: one `tee` hands the dump tool's output to gzip and to `tail` (the trailer),
#   another hands gzip's output to the file and to `sha256sum`. The trailer is read
#   before compression, which costs a copy instead of a second decompression; every
#   compressed byte is still covered by gzip's and tee's exit statuses and by the sha256
#   that restore.sh checks, with a full decompression, before it applies anything.
#   A dump is *verified* only when its .meta names it with
#   the right size, so a failed or interrupted backup never leaves a verified dump behind;
#   its leftovers (temporary files, a .sql.gz without .meta) are removed on the next run.
# - An idle watchdog kills a dump whose output has not grown for
#   BACKUP_IDLE_TIMEOUT_SECONDS, and the backup fails.
# - BACKUP_FINAL=true (the last dump before the instance is deleted) first kills every
#   other client connection, then dumps under a global read lock (--lock-all-tables), so
#   no write can be acknowledged after the dump started. Otherwise --single-transaction.
# - Rotation is for scheduled dumps only (BACKUP_TRIGGER=schedule, recorded in each
#   .meta): a scheduled backup keeps the newest BACKUP_KEEP verified scheduled dumps,
#   never the one just written. Dumps a person asked for (manual), final dumps (delete),
#   dumps whose .meta names no trigger, unverified files and the legacy
#   dump-<UTC stamp>-<NNN>.sql dumps are never removed and do not count.
#
# Environment: MYSQL_HOST, MYSQL_PORT (3306), MYSQL_USER (root), MYSQL_PWD (read by the
# clients themselves: the password is never on a command line), MYSQL_DATABASE,
# BACKUP_DIR (/backup), BACKUP_KEEP (5), BACKUP_SCOPE (database | all), BACKUP_FINAL
# (false), BACKUP_TRIGGER (delete | manual | schedule; default delete), BACKUP_IDLE_TIMEOUT_SECONDS
# (600), INSTANCE_UID (recorded in the .meta), TERMINATION_LOG (/dev/termination-log;
# skipped when it cannot be written).
#
# Exit status: 0 success, 1 the backup failed (nothing new is verified, the previous
# dumps are untouched), 2 bad configuration.
set -eu
export LC_ALL=C

termination_log=${TERMINATION_LOG:-/dev/termination-log}
work=
partial=
meta_partial=

log() { printf 'backup: %s\n' "$*" >&2; }

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

die() {  # die STATUS REASON...
  status=$1
  shift
  trap - HUP INT TERM
  report "backup failed: $*"
  log "backup failed: $*"
  exit "$status"
}
fail() { die 1 "$*; the previous dumps are untouched"; }
bad_config() { die 2 "bad configuration: $*"; }

# Ends the background processes that have not finished, and removes what this run has
# not made verified. Runs on every exit.
cleanup() {
  if [ -n "$work" ]; then
    stop_children
    rm -rf "$work"
  fi
  if [ -n "$partial" ]; then rm -f "$partial"; fi
  if [ -n "$meta_partial" ]; then rm -f "$meta_partial"; fi
}
trap cleanup EXIT
trap 'die 1 "interrupted by a signal; the previous dumps are untouched"' HUP INT TERM

# -- configuration ------------------------------------------------------------------------

host=${MYSQL_HOST:-}
port=${MYSQL_PORT:-3306}
user=${MYSQL_USER:-root}
database=${MYSQL_DATABASE:-}
dir=${BACKUP_DIR:-/backup}
keep=${BACKUP_KEEP:-5}
scope=${BACKUP_SCOPE:-database}
final=${BACKUP_FINAL:-false}
trigger=${BACKUP_TRIGGER:-delete}
idle_timeout=${BACKUP_IDLE_TIMEOUT_SECONDS:-600}
instance_uid=${INSTANCE_UID:-}

is_count() {  # a positive integer without leading zeros (not octal) that fits in 9 digits
  case $1 in
    '' | *[!0-9]* | 0* | ??????????*) return 1 ;;
  esac
}

[ -n "$host" ] || bad_config "MYSQL_HOST is required"
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
# The same rule as the CRD. The name is an argument of the dump tool: no leading '-'.
if [ -n "$database" ]; then
  case $database in
    -* | *[!A-Za-z0-9_\$-]*) bad_config "refusing database name '$database'" ;;
  esac
fi
is_count "$keep" || bad_config "BACKUP_KEEP must be a positive integer, got '$keep'"
is_count "$idle_timeout" ||
  bad_config "BACKUP_IDLE_TIMEOUT_SECONDS must be a positive integer, got '$idle_timeout'"
case $final in
  true | false) ;;
  *) bad_config "BACKUP_FINAL must be 'true' or 'false', got '$final'" ;;
esac
case $trigger in
  delete | manual | schedule) ;;
  *) bad_config "BACKUP_TRIGGER must be 'delete', 'manual' or 'schedule', got '$trigger'" ;;
esac
case $instance_uid in
  *[!A-Za-z0-9._-]*) bad_config "refusing INSTANCE_UID '$instance_uid'" ;;
esac
[ -d "$dir" ] || bad_config "backup directory $dir does not exist"
# A volume that cannot be written to now (full, read-only) may be fixed: retry, not refuse.
[ -w "$dir" ] || die 1 "backup directory $dir is not writable"

# MariaDB images from 11.0 on ship only the mariadb-* names.
dump_tool=$(command -v mysqldump || command -v mariadb-dump) ||
  bad_config "the image has neither mysqldump nor mariadb-dump"
client=$(command -v mysql || command -v mariadb) ||
  bad_config "the image has neither mysql nor mariadb"
for tool in gzip sha256sum mkfifo mktemp tee tail; do
  command -v "$tool" >/dev/null || bad_config "the image has no $tool"
done

# -- helpers ------------------------------------------------------------------------------

sql() {  # sql STATEMENT: runs it, prints the rows tab-separated
  "$client" --protocol=TCP --host="$host" --port="$port" --user="$user" \
    --connect-timeout=10 --batch --skip-column-names --execute="$1"
}

size_of() {
  if [ -e "$1" ]; then wc -c <"$1" | tr -d ' '; else echo 0; fi
}


# The meta file of a dump is dump-<sequence>.meta, next to dump-<sequence>.sql.gz.
meta_value() {  # meta_value FILE KEY
  sed -n "s/^$2=//p" "$1" | tail -n 1
}

# True when META names its dump with the right size: the dump is verified.
verified() {
  verified_dump=${1##*/}
  verified_dump=${verified_dump%.meta}.sql.gz
  [ -f "$dir/$verified_dump" ] || return 1
  [ "$(meta_value "$1" file)" = "$verified_dump" ] || return 1
  [ "$(meta_value "$1" size)" = "$(size_of "$dir/$verified_dump")" ]
}

# The 10-digit sequence in a dump or meta file name, or nothing.
sequence_in() {
  seq_part=${1##*/}
  seq_part=${seq_part#dump-}
  seq_part=${seq_part%.sql.gz}
  seq_part=${seq_part%.meta}
  case $seq_part in
    [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]) printf '%s\n' "$seq_part" ;;
  esac
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
# to $work/NAME.pid and, once it ends, its exit status to $work/NAME.rc. Checking for
# the .rc file, rather than `kill -0`, is not fooled by a not yet reaped process.
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

CHILDREN='dump split gzip tee hash check'
any_running() {
  for child in $CHILDREN; do
    if running "$child"; then return 0; fi
  done
  return 1
}
all_finished() {
  for child in $CHILDREN; do
    finished "$child" || return 1
  done
}

stop_children() {
  for child in $CHILDREN; do
    if running "$child"; then kill "$(cat "$work/$child.pid")" 2>/dev/null || true; fi
  done
  waited=0
  while [ "$waited" -lt 25 ] && any_running; do
    sleep 0.2 2>/dev/null || sleep 1
    waited=$((waited + 1))
  done
}

# -- leftovers and the next sequence -------------------------------------------------------

# Whatever an interrupted run left is never a valid dump.
rm -rf "$dir"/.dump-inprogress.* "$dir"/.meta-inprogress.* "$dir"/.backup-work.*
for dump in "$dir"/dump-*.sql.gz; do
  [ -e "$dump" ] || continue
  if [ ! -e "${dump%.sql.gz}.meta" ]; then
    log "removing ${dump##*/}: an unverified leftover of an interrupted backup"
    rm -f "$dump"
  fi
done

largest=0
for file in "$dir"/dump-*.sql.gz "$dir"/dump-*.meta; do
  [ -e "$file" ] || continue
  digits=$(sequence_in "$file")
  [ -n "$digits" ] || continue
  number=${digits#"${digits%%[!0]*}"}  # no leading zeros: not octal
  if [ "${number:-0}" -gt "$largest" ]; then largest=$number; fi
done
sequence=$((largest + 1))
[ "$sequence" -le 9999999999 ] || fail "the dump sequence is exhausted"
name=$(printf 'dump-%010d' "$sequence")
dump_file=$name.sql.gz
meta_file=$name.meta

# -- the dump ------------------------------------------------------------------------------

# Scratch space (a FIFO, the tools' exit statuses): /tmp, or the backup volume.
work=$(mktemp -d "${TMPDIR:-/tmp}/backup.XXXXXX" 2>/dev/null ||
  mktemp -d "$dir/.backup-work.XXXXXX") || fail "cannot create a temporary directory"
server_version=$(sql 'SELECT VERSION()' 2>"$work/connect.err") ||
  fail "cannot query MySQL at $host:$port: $(tail -n 1 "$work/connect.err")"

if [ "$final" = true ]; then
  # The final dump must hold every acknowledged write: no other client may keep writing.
  # Server threads (and replication's senders) are left alone.
  ids=$(sql "SELECT id FROM information_schema.processlist
    WHERE id <> CONNECTION_ID()
      AND command <> 'Daemon' AND command NOT LIKE 'Binlog Dump%'
      AND user NOT IN ('system user', 'event_scheduler')") ||
    fail "cannot list the client connections"
  killed=0
  for id in $ids; do
    case $id in *[!0-9]*) continue ;; esac
    # A connection that ended in the meantime is not an error.
    if sql "KILL $id" 2>/dev/null; then killed=$((killed + 1)); fi
  done
  log "final dump: killed $killed client connections"
fi

set -- --protocol=TCP --host="$host" --port="$port" --user="$user" \
  --hex-blob --default-character-set=utf8mb4 --routines --events --triggers \
  --ignore-table=mysql_operator.lifecycle
if [ "$final" = true ]; then
  # A global read lock for the whole dump: writes wait until the dump has ended.
  set -- "$@" --lock-all-tables
else
  set -- "$@" --single-transaction
fi
if [ "$scope" = all ]; then
  set -- "$@" --all-databases --flush-privileges
  what="all databases"
else
  set -- "$@" "$database"
  what="'$database'"
fi

partial="$dir/.dump-inprogress.$sequence.$$"
mkfifo "$work/dumped" "$work/to-gzip" "$work/to-check" "$work/compressed" "$work/to-hash"
log "dumping $what from $host:$port (server $server_version, final=$final) into $dump_file"
# dump -> tee -> gzip -> tee -> the file and the hash; the first tee also feeds the
# trailer check. All at once.
spawn hash "$work/to-hash" "$work/sha256" "$work/hash.err" sha256sum
spawn tee "$work/compressed" "$work/to-hash" "$work/tee.err" tee "$partial"
spawn gzip "$work/to-gzip" "$work/compressed" "$work/gzip.err" gzip -c
spawn check "$work/to-check" "$work/tail" "$work/check.err" tail -n 1
spawn split "$work/dumped" "$work/to-gzip" "$work/split.err" tee "$work/to-check"
spawn dump /dev/null "$work/dumped" "$work/dump.err" "$dump_tool" "$@"

show_tool_errors() {
  if [ -s "$work/dump.err" ]; then sed 's/^/backup: dump tool: /' "$work/dump.err" >&2; fi
}

last_size=-1
progress_at=$(now)
while ! all_finished; do
  nap
  size=$(size_of "$partial" 2>/dev/null) || size=0
  if [ "$size" != "$last_size" ]; then
    last_size=$size
    progress_at=$(now)
  elif [ $(($(now) - progress_at)) -ge "$idle_timeout" ]; then
    stop_children
    show_tool_errors
    fail "the dump made no progress for ${idle_timeout}s (stuck at $size compressed bytes), so the watchdog killed it"
  fi
done

show_tool_errors
# A write that failed (a full volume) ends tee first, and then gzip and the dump tool die
# of their closed pipes: tee's own message says why.
tee_status=$(cat "$work/tee.rc")
[ "$tee_status" = 0 ] ||
  fail "writing the dump failed (tee exited with status $tee_status): $(tail -n 1 "$work/tee.err")"
dump_status=$(cat "$work/dump.rc")
[ "$dump_status" = 0 ] ||
  fail "${dump_tool##*/} exited with status $dump_status: $(tail -n 1 "$work/dump.err")"
gzip_status=$(cat "$work/gzip.rc")
[ "$gzip_status" = 0 ] ||
  fail "gzip exited with status $gzip_status: $(tail -n 1 "$work/gzip.err")"
split_status=$(cat "$work/split.rc")
[ "$split_status" = 0 ] ||
  fail "passing the dump on failed (tee exited with status $split_status): $(tail -n 1 "$work/split.err")"
check_status=$(cat "$work/check.rc")
[ "$check_status" = 0 ] || fail "reading the dump's trailer failed (tail exited with status $check_status)"
hash_status=$(cat "$work/hash.rc")
[ "$hash_status" = 0 ] || fail "sha256sum exited with status $hash_status"
size=$(size_of "$partial")
[ "$size" -gt 0 ] || fail "the dump is empty"
trailer=$(cat "$work/tail")
case $trailer in
  '-- Dump completed'*) ;;
  *) fail "the dump does not end with the '-- Dump completed' trailer" ;;
esac

# On disk before the rename makes it a dump, and the dump before its .meta.
sync
mv "$partial" "$dir/$dump_file"
partial="$dir/$dump_file"  # until the .meta is written, a failure removes it again
sha256=$(cat "$work/sha256")
sha256=${sha256%% *}
case $sha256 in
  [0-9a-f]*) [ "${#sha256}" = 64 ] || fail "sha256sum printed no digest" ;;
  *) fail "sha256sum printed no digest" ;;
esac
meta_partial="$dir/.meta-inprogress.$sequence.$$"
{
  echo "sequence=$sequence"
  echo "file=$dump_file"
  echo "size=$size"
  echo "sha256=$sha256"
  echo "scope=$scope"
  echo "database=$database"
  echo "server_version=$server_version"
  echo "instance_uid=$instance_uid"
  echo "final=$final"
  echo "trigger=$trigger"
  echo "created=$(date -u +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || true)"  # informational only
} >"$meta_partial"
sync
mv "$meta_partial" "$dir/$meta_file"
meta_partial=
partial=
sync
log "wrote $dump_file ($size bytes, sha256 $sha256)"

# -- rotation -------------------------------------------------------------------------------

# The glob expands sorted (LC_ALL=C); zero-padded sequences sort oldest first.
verified_names=
count=0
for meta in "$dir"/dump-*.meta; do
  [ "$trigger" = schedule ] || break
  [ -e "$meta" ] || continue
  [ -n "$(sequence_in "$meta")" ] || continue
  [ "$(meta_value "$meta" trigger)" = schedule ] || continue
  if verified "$meta"; then
    meta_name=${meta##*/}
    verified_names="$verified_names ${meta_name%.meta}"
    count=$((count + 1))
  else
    log "ignoring ${meta##*/}: it does not match its dump"
  fi
done
excess=$((count - keep))
for old in $verified_names; do
  [ "$excess" -gt 0 ] || break
  [ "$old" != "$name" ] || continue  # never the dump just written
  log "removing old dump $old.sql.gz"
  rm -f "$dir/$old.meta"  # first: a dump without .meta is only an unverified leftover
  rm -f "$dir/$old.sql.gz"
  excess=$((excess - 1))
done
sync

report "dump=$dump_file sequence=$sequence size=$size sha256=$sha256 server_version=$server_version"
exit 0
