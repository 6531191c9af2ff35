#!/bin/bash
# Entrypoint of the local MariaDB image (hack/images/build). It honours the interface of
# the official `mysql` image, so manifests written for `mysql:5.7` run unchanged:
#
#   MYSQL_ROOT_PASSWORD / MYSQL_ROOT_PASSWORD_FILE   root's password (first start only)
#   MYSQL_ALLOW_EMPTY_PASSWORD=yes                   or allow an empty one
#   MYSQL_RANDOM_ROOT_PASSWORD=yes                   or generate one and log it
#   MYSQL_ROOT_HOST (default %)                      where root may connect from
#   MYSQL_DATABASE                                   a database to create
#   MYSQL_USER, MYSQL_PASSWORD[_FILE]                a user with all rights on it
#   /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz  run once, after the above
#   MYSQL_TCP_PORT (default 3306)                    the port to listen on
#   --datadir=DIR (an argument, or a config file's)  where the data lives
#
# Data lives in /var/lib/mysql, or in the server's --datadir, which may be an empty
# volume, a volume holding only lost+found, a directory that does not exist yet (it is
# created, as the server's user, under a writable parent), or a directory initialised by
# an earlier run (then nothing is re-created). A volume mounted at /var/lib/mysql with
# --datadir=/var/lib/mysql/mysql gives the server a directory of its own even where the
# volume's root is not (a kubelet-made subPath is root's).
#
# Started as root (the default), it makes the data directory and /run/mysqld the mysql
# user's and runs the server as mysql. Started as that user, uid and gid 999 as in the
# official image (runAsUser: 999, no capabilities: Pod Security "restricted"), it needs
# no privilege: the data directory, or the directory it is to be made in, must then be
# writable by uid 999 (fsGroup: 999, or a world-writable volume).
#
# The server runs in the foreground, logs to stderr, and shuts down cleanly on SIGTERM.
# Any command other than mysqld/mariadbd is run as given, so the image also serves as a
# client image (mysql, mysqldump).
set -eo pipefail
shopt -s nullglob

init_socket=/run/mysqld/init.sock

log() { printf '%s [Entrypoint]: %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S')" "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

# Reads VAR, or the file named by VAR_FILE, into VAR.
file_env() {
  local var=$1 file_var=${1}_FILE
  if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
    die "both $var and $file_var are set"
  fi
  if [ -n "${!file_var:-}" ]; then
    export "$var"="$(<"${!file_var}")"
  fi
  unset "$file_var"
}

# Escapes a value for a single-quoted SQL string, and a name for backquotes.
sql_string() {
  local v=${1//\\/\\\\}
  printf "'%s'" "${v//\'/\\\'}"
}
sql_name() { printf '`%s`' "${1//\`/\`\`}"; }

if [ "${1:0:1}" = - ]; then
  set -- mariadbd "$@"
fi
case "$1" in
mysqld | mariadbd | /usr/sbin/mysqld | /usr/sbin/mariadbd) ;;
*) exec "$@" ;;
esac

if [ -n "${MYSQL_TCP_PORT:-}" ]; then
  set -- "$1" --port="$MYSQL_TCP_PORT" "${@:2}"
fi

# The server's own view of its options, after its config files and arguments (the
# official image's way): a bad option fails here, before anything is created, and the
# data directory is whatever --datadir (in either spelling) or a config file says.
if ! help=$("$@" --verbose --help 2>&1); then
  # The error comes first, then all of the help.
  grep -F '[ERROR]' <<<"$help" >&2 || head -5 <<<"$help" >&2
  die "the server rejects its options (above)"
fi
# "datadir   /var/lib/mysql/", but not "--datadir=name   Path to the database root ..."
datadir=$(awk '$1 == "datadir" && /^[^ \t]/ { sub(/^[^ \t]+[ \t]+/, ""); print; exit }' \
  <<<"$help")
datadir=${datadir%/}
[ -n "$datadir" ] || die "the server's options name no data directory"
# Present while a first-start set-up has not finished; a restart then redoes it.
pending="$datadir/.entrypoint-init-pending"

as_mysql=()
if [ "$(id -u)" = 0 ]; then
  mkdir -p /run/mysqld "$datadir"
  chown mysql:mysql /run/mysqld "$datadir"
  # A volume from elsewhere may hold files of another owner; lost+found stays root's.
  find "$datadir" -mindepth 1 -maxdepth 1 ! -name lost+found ! -user mysql \
    -exec chown -R mysql:mysql {} +
  as_mysql=(setpriv --reuid=mysql --regid=mysql --init-groups --)
else
  # No privilege to lend: what the server writes must be writable by it already.
  me="uid $(id -u) (gid $(id -g), groups $(id -G))"
  mkdir -p "$datadir" 2>/dev/null ||
    die "$me cannot create the data directory $datadir: its parent must be writable"
  [ -w "$datadir" ] && [ -x "$datadir" ] || die "$me cannot write the data directory $datadir"
  [ -w /run/mysqld ] && [ -x /run/mysqld ] || die "$me cannot write /run/mysqld"
fi

# Runs SQL on the set-up server as root: over the socket as OS root (unix_socket, or
# root's still empty password), or with the password when an interrupted first start
# already set it. pick_sql_auth decides which, once the server is up.
sql_password=()
pick_sql_auth() {
  sql_password=()
  mariadb --protocol=socket --socket="$init_socket" -uroot -e 'SELECT 1' >/dev/null 2>&1 ||
    sql_password=(env MYSQL_PWD="${MYSQL_ROOT_PASSWORD:-}")
}
run_sql() {
  "${sql_password[@]}" mariadb --protocol=socket --socket="$init_socket" -uroot "$@"
}

start_setup_server() {
  log "starting a set-up server (no networking)"
  "${as_mysql[@]}" "$@" --skip-networking --socket="$init_socket" --skip-log-bin &
  setup_pid=$!
  trap 'kill -TERM $setup_pid 2>/dev/null; wait $setup_pid; exit 143' TERM INT
  local i
  for i in $(seq 120); do
    # ping succeeds once the server answers, even if it refuses the login.
    if mariadb-admin --socket="$init_socket" -uroot --connect-timeout=1 ping >/dev/null 2>&1; then
      pick_sql_auth
      return
    fi
    kill -0 "$setup_pid" 2>/dev/null || die "the set-up server exited"
    sleep 0.5
  done
  die "the set-up server did not start in 60s"
}

stop_setup_server() {
  kill -TERM "$setup_pid"
  wait "$setup_pid" || die "the set-up server did not shut down cleanly"
  trap - TERM INT
  log "set-up server stopped"
}

set_up() {
  file_env MYSQL_ROOT_PASSWORD
  file_env MYSQL_PASSWORD
  if [ -z "${MYSQL_ROOT_PASSWORD:-}" ] && [ -z "${MYSQL_ALLOW_EMPTY_PASSWORD:-}" ] &&
    [ -z "${MYSQL_RANDOM_ROOT_PASSWORD:-}" ]; then
    die "the database is uninitialised and no password option is given: set one of
    MYSQL_ROOT_PASSWORD, MYSQL_ALLOW_EMPTY_PASSWORD or MYSQL_RANDOM_ROOT_PASSWORD"
  fi
  if [ -z "${MYSQL_ROOT_PASSWORD:-}" ] && [ -n "${MYSQL_RANDOM_ROOT_PASSWORD:-}" ]; then
    # head closes the pipe early, so tr dies of SIGPIPE: not a failure here.
    MYSQL_ROOT_PASSWORD=$(set +o pipefail; tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32)
    log "GENERATED ROOT PASSWORD: $MYSQL_ROOT_PASSWORD"
  fi
  local root_host=${MYSQL_ROOT_HOST:-%}
  local password
  password=$(sql_string "${MYSQL_ROOT_PASSWORD:-}")

  start_setup_server "$@"
  # root@localhost keeps working with the password, and for OS root inside the container
  # through the socket; anonymous and other root accounts go, then root@ROOT_HOST comes.
  local sql="
    SET SESSION sql_log_bin = 0;
    DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost');
    DELETE FROM mysql.proxies_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost');
    FLUSH PRIVILEGES;
    ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket
      OR mysql_native_password USING PASSWORD($password);"
  if [ "$root_host" != localhost ]; then
    sql+="
    CREATE USER 'root'@$(sql_string "$root_host") IDENTIFIED BY $password;
    GRANT ALL ON *.* TO 'root'@$(sql_string "$root_host") WITH GRANT OPTION;"
  fi
  if [ -n "${MYSQL_DATABASE:-}" ]; then
    log "creating database $MYSQL_DATABASE"
    sql+="
    CREATE DATABASE IF NOT EXISTS $(sql_name "$MYSQL_DATABASE");"
  fi
  if [ -n "${MYSQL_USER:-}" ] && [ -n "${MYSQL_PASSWORD:-}" ]; then
    [ "$MYSQL_USER" = root ] && die "MYSQL_USER=root is not allowed; use MYSQL_ROOT_PASSWORD"
    log "creating user $MYSQL_USER"
    sql+="
    CREATE OR REPLACE USER $(sql_string "$MYSQL_USER")@'%' IDENTIFIED BY $(sql_string "$MYSQL_PASSWORD");"
    if [ -n "${MYSQL_DATABASE:-}" ]; then
      sql+="
    GRANT ALL ON $(sql_name "$MYSQL_DATABASE").* TO $(sql_string "$MYSQL_USER")@'%';"
    fi
  fi
  run_sql <<<"$sql" || die "setting up users and databases failed"

  local f
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
    *.sh)
      log "running $f"
      # shellcheck disable=SC1090
      . "$f"
      ;;
    *.sql)
      log "running $f"
      run_sql ${MYSQL_DATABASE:+"$MYSQL_DATABASE"} <"$f"
      ;;
    *.sql.gz)
      log "running $f"
      gzip -dc "$f" | run_sql ${MYSQL_DATABASE:+"$MYSQL_DATABASE"}
      ;;
    *) log "ignoring $f" ;;
    esac
  done
  stop_setup_server
}

if [ ! -d "$datadir/mysql" ]; then
  log "initialising an empty data directory $datadir"
  "${as_mysql[@]}" touch "$pending"
  # Its stdout is only advice for interactive installs; errors go to stderr.
  "${as_mysql[@]}" mariadb-install-db --datadir="$datadir" --skip-test-db \
    --auth-root-authentication-method=normal --skip-name-resolve --skip-log-bin \
    --rpm >/dev/null || die "mariadb-install-db failed"
fi
if [ -e "$pending" ]; then
  set_up "$@"
  rm -f "$pending"
  log "first-start set-up complete"
else
  log "data directory $datadir is initialised already; keeping its users and databases"
fi

log "starting $*"
exec "${as_mysql[@]}" "$@"
