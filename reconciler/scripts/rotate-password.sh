#!/bin/sh
# Gives every root account of a running server a new password. POSIX sh: it runs in the
# user's MySQL image. The rotation Job runs it inline (`sh -c`), not from the scripts
# ConfigMap, so that the ConfigMap (and every instance's inputs fingerprint) stays as it is.
#
# 1. Connect over TCP with OLD_PASSWORD, the password the server has. If the server
#    accepts NEW_PASSWORD instead, an earlier run of this rotation already changed it:
#    verify and report success. If it accepts neither, fail at once (exit 3).
# 2. ALTER USER for every root account (mysql.user, user = 'root'), in one session, with
#    sql_mode cleared so that backslash escapes in the literal mean what they say.
# 3. Verify with a new connection and NEW_PASSWORD. If that or any ALTER USER failed, set
#    OLD_PASSWORD back on every root account it can and fail (exit 1), saying whether the
#    old password connects again.
#
# The passwords come only from the environment (the Job reads them from a Secret); the
# client gets them through MYSQL_PWD and the SQL through stdin, never the command line.
#
# Environment: MYSQL_HOST, MYSQL_PORT (3306), OLD_PASSWORD, NEW_PASSWORD, TERMINATION_LOG
# (/dev/termination-log), ROTATE_WAIT_SECONDS (120): how long to wait for the server.
#
# Exit status: 0 rotated (or already rotated); 1 failed and rolled back, or the server did
# not answer; 2 bad configuration; 3 the server accepts neither password.
set -u
export LC_ALL=C

termination_log=${TERMINATION_LOG:-/dev/termination-log}

log() { printf 'rotate-password: %s\n' "$*" >&2; }

# The one line Kubernetes shows as the container's termination message, and the log's last.
report() {
  log "$1"
  printf '%s\n' "$1" 2>/dev/null >"$termination_log" || true
}

fail() {
  report "failed: $2"
  exit "$1"
}

[ -n "${MYSQL_HOST:-}" ] || fail 2 "MYSQL_HOST is not set"
[ -n "${OLD_PASSWORD:-}" ] || fail 2 "OLD_PASSWORD is not set"
[ -n "${NEW_PASSWORD:-}" ] || fail 2 "NEW_PASSWORD is not set"
port=${MYSQL_PORT:-3306}
wait_seconds=${ROTATE_WAIT_SECONDS:-120}
client=$(command -v mysql || command -v mariadb) || fail 2 "no mysql client in the image"

# A SQL string literal: backslashes and quotes escaped (sql_mode is cleared for the
# session, so backslash escapes apply). The x keeps trailing newlines through $(...).
literal() {
  escaped=$(printf '%sx' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g")
  printf "'%s'" "${escaped%x}"
}

# Runs the SQL on stdin as root with the password $1 (more client options after it);
# prints the rows, and keeps the client's errors in $errors.
as_root() {
  password_used=$1
  shift
  MYSQL_PWD=$password_used "$client" --protocol=TCP --host="$MYSQL_HOST" --port="$port" \
    --user=root --batch --skip-column-names --connect-timeout=5 "$@" 2>"$errors"
}

# The client's first error line, without the statement text a syntax error quotes, and
# without a password in it, ever.
first_error() {
  line=$(grep -m 1 '^ERROR' "$errors" | sed -e 's/ near .*//')
  case "$line" in
  *"$OLD_PASSWORD"* | *"$NEW_PASSWORD"*) line=$(printf '%s' "$line" | cut -d ' ' -f 1-3) ;;
  esac
  printf '%s' "${line:-no error message}"
}

errors=$(mktemp) || fail 2 "cannot create a temporary file"
trap 'rm -f "$errors"' EXIT

# Which password the server takes (old or new), waiting while it does not answer; one
# that answers and refuses both fails at once.
current=
deadline=$(($(date +%s) + wait_seconds))
while :; do
  if echo 'SELECT 1' | as_root "$OLD_PASSWORD" >/dev/null; then
    current=old
    break
  fi
  old_error=$(first_error)
  if echo 'SELECT 1' | as_root "$NEW_PASSWORD" >/dev/null; then
    current=new
    break
  fi
  new_error=$(first_error)
  case "$old_error $new_error" in
  *"ERROR 1045"*"ERROR 1045"*)
    fail 3 "the server at $MYSQL_HOST:$port accepts neither the applied nor the new root password" ;;
  esac
  if [ "$(date +%s)" -ge "$deadline" ]; then
    fail 1 "the server at $MYSQL_HOST:$port did not answer within ${wait_seconds}s: ${new_error:-no error}"
  fi
  sleep 2
done

# Sets password $1 on every root account the server lists, connected with password $2.
# An account the server lists but cannot alter (ERROR 1396: a host-name account the
# server ignores, as with skip-name-resolve) is skipped and counted in $skipped; any
# other error fails.
alter_all() {
  hosts=$(echo "SELECT host FROM mysql.user WHERE user = 'root'" | as_root "$2") || return 1
  [ -n "$hosts" ] || return 1
  sql="SET SESSION sql_mode = '';"
  password=$(literal "$1")
  # Host names hold no newline; each line is one account.
  while IFS= read -r host; do
    sql="$sql
ALTER USER 'root'@$(literal "$host") IDENTIFIED BY $password;"
  done <<EOF
$hosts
EOF
  printf '%s\n' "$sql" | as_root "$2" --force >/dev/null
  if grep '^ERROR' "$errors" | grep -qv '^ERROR 1396 '; then
    return 1
  fi
  skipped=$(grep -c '^ERROR 1396 ' "$errors")
  return 0
}

skipped=0
if [ "$current" = new ]; then
  echo 'SELECT 1' | as_root "$NEW_PASSWORD" >/dev/null ||
    fail 1 "the server took the new password, then refused it: $(first_error)"
  report "rotated: the server already had the new password"
  exit 0
fi

# Puts the old password back on every root account it can reach, through whichever
# password connects; succeeds when the old password connects again.
roll_back() {
  alter_all "$OLD_PASSWORD" "$NEW_PASSWORD" || alter_all "$OLD_PASSWORD" "$OLD_PASSWORD"
  echo 'SELECT 1' | as_root "$OLD_PASSWORD" >/dev/null
}

if ! alter_all "$NEW_PASSWORD" "$OLD_PASSWORD"; then
  cause=$(first_error)
  roll_back || fail 1 "ALTER USER failed ($cause), and the old password does not connect after the rollback: $(first_error)"
  fail 1 "ALTER USER failed, the old password is back: $cause"
fi

if ! echo 'SELECT 1' | as_root "$NEW_PASSWORD" >/dev/null; then
  cause=$(first_error)
  roll_back || fail 1 "a new connection was refused ($cause), and the old password does not connect after the rollback: $(first_error)"
  fail 1 "a new connection with the new password was refused, the old password is back: $cause"
fi

count=$(($(printf '%s\n' "$hosts" | wc -l) - skipped))
if [ "$skipped" -gt 0 ]; then
  report "rotated: $count root account(s) have the new password; $skipped the server ignores were skipped"
else
  report "rotated: $count root account(s) have the new password"
fi
