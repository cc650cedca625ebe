#!/usr/bin/env bash
# Aidline: a project-owned local PostgreSQL cluster without Docker.
#
#   deploy/local/postgres.sh up       install (Debian packages) if needed, init once, start, wait
#   deploy/local/postgres.sh down     stop it (pg_ctl -m fast), idempotent
#   deploy/local/postgres.sh status   exit 0 if running (ours or external), 3 if not
#   deploy/local/postgres.sh crash    restart it abruptly (pg_ctl -m immediate, as a power cut
#                                     would: no checkpoint, crash recovery at the next start)
#   deploy/local/postgres.sh remove   stop it and delete its folder, wherever it lives (make clean)
#
# The cluster lives in ${AIDLINE_HOME:-<repo>/.aidline}/postgres (or, when the postgres
# OS user cannot reach that folder, or as root in <repo>/.aidline, which `make run` closes to
# other users, /var/tmp/aidline-postgres-<hash>), listens on
# 127.0.0.1:${AIDLINE_PG_PORT:-5433} only, and has role aidline/aidline (SUPERUSER: tests
# create and drop schemas) owning database aidline. The Debian-managed cluster
# (pg_ctlcluster, port 5432) is never used or touched.
#
# Environment:
#   DATABASE_URL        if set to anything but our own URL, `up` uses it and starts nothing
#   AIDLINE_PG_PORT=5433  PG_START_TIMEOUT=60 (seconds)  AIDLINE_HOME
#   AIDLINE_PG_MAX_CONNECTIONS=500   (applied at the next start)
# Progress goes to stderr; `status` prints one line on stdout.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
AIDLINE_HOME="${AIDLINE_HOME:-$REPO_ROOT/.aidline}"
PG_PORT="${AIDLINE_PG_PORT:-5433}"
PG_START_TIMEOUT="${PG_START_TIMEOUT:-60}"
# Each service instance keeps a pool of 20 (and a few more); `make test` with workers runs
# several stacks at once.
PG_MAX_CONNECTIONS="${AIDLINE_PG_MAX_CONNECTIONS:-500}"
PG_USER_NAME=aidline
PG_PASSWORD=aidline
PG_DB_NAME=aidline
OUR_URL="postgresql+asyncpg://$PG_USER_NAME:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB_NAME"

log() { printf 'postgres: %s\n' "$*" >&2; }
die() {
  printf 'postgres: ERROR: %s\n' "$1" >&2
  shift
  local hint
  for hint in "$@"; do printf 'postgres:   fix: %s\n' "$hint" >&2; done
  exit 1
}
now_ms() { date +%s%3N; }

external_db() { # 0 if DATABASE_URL points somewhere else than our cluster
  [[ -n "${DATABASE_URL:-}" ]] || return 1
  case "$DATABASE_URL" in
    "$OUR_URL" | "postgresql://$PG_USER_NAME:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB_NAME") return 1 ;;
  esac
  return 0
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

port_owner() {
  command -v ss >/dev/null 2>&1 || { echo "unknown process"; return; }
  local line
  line="$(ss -ltnpH "sport = :$1" 2>/dev/null | head -n1 || true)"
  if [[ "$line" =~ pid=([0-9]+) ]]; then
    local pid="${BASH_REMATCH[1]}"
    printf 'pid %s: %s' "$pid" "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-160)"
  else
    echo "unknown process"
  fi
}

# --- binaries --------------------------------------------------------------

find_pg_bin() { # newest /usr/lib/postgresql/<major>/bin holding pg_ctl
  local d best="" best_major=0 major
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x "$d/pg_ctl" && -x "$d/initdb" ]] || continue
    major="$(basename "$(dirname "$d")")"
    [[ "$major" =~ ^[0-9]+$ ]] || continue
    if (( major > best_major )); then best="$d"; best_major=$major; fi
  done
  echo "$best"
}

ensure_installed() {
  PG_BIN="$(find_pg_bin)"
  [[ -n "$PG_BIN" ]] && return 0
  if [[ $EUID -ne 0 ]]; then
    die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin" \
      "sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql"
  fi
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL not installed and apt-get is missing" \
    "install the PostgreSQL server (pg_ctl, initdb) so that /usr/lib/postgresql/<major>/bin exists"
  log "PostgreSQL not installed: apt-get install -y postgresql (once, may take a minute) ..."
  local t0 alog="/tmp/aidline-apt-postgresql.log"
  t0="$(now_ms)"
  if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; } >"$alog" 2>&1; then
    tail -n 30 "$alog" >&2
    die "apt-get install postgresql failed (log: $alog)" \
      "check the Debian mirror / proxy, then rerun; or install postgresql by hand"
  fi
  PG_BIN="$(find_pg_bin)"
  [[ -n "$PG_BIN" ]] || die "postgresql installed but no /usr/lib/postgresql/*/bin/pg_ctl found (log: $alog)"
  log "installed PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') in $(( ($(now_ms) - t0) / 1000 )) s" \
      "(the Debian 'main' cluster it may create on 5432 is not used)"
}

# --- run as the postgres OS user (PostgreSQL refuses to run as root) --------

as_pg() {
  if [[ $EUID -eq 0 ]]; then
    if command -v runuser >/dev/null 2>&1; then
      runuser -u postgres -- "$@"
    else
      su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

pick_state_dir() {
  local wanted="$AIDLINE_HOME/postgres"
  if [[ $EUID -ne 0 ]]; then
    PG_STATE="$wanted"
    return
  fi
  id postgres >/dev/null 2>&1 || die "OS user 'postgres' does not exist" \
    "apt-get install -y postgresql (creates it), or: useradd --system --home /var/lib/postgresql postgres"
  mkdir -p "$AIDLINE_HOME"
  # `make run` makes the repository's state folder its owner's alone (0700: it holds the
  # development tokens, shared/cli/run.py), and a cluster inside it would lose its folder while
  # it runs (`make test` beside `make run`: PostgreSQL stops at its next checkpoint). A new one
  # goes elsewhere; one made there before stays.
  local private="$REPO_ROOT/.aidline" why=""
  if [[ "$AIDLINE_HOME/" == "$private/"* && ! -d "$wanted/data" ]]; then
    why="$private becomes its owner's alone when \`make run\` starts"
  elif ! as_pg test -x "$AIDLINE_HOME" 2>/dev/null; then
    why="the postgres OS user cannot enter $AIDLINE_HOME (a parent folder is not traversable)"
  fi
  if [[ -z "$why" ]]; then
    PG_STATE="$wanted"
  else
    local h
    h="$(printf '%s' "$AIDLINE_HOME" | sha256sum | cut -c1-12)"
    PG_STATE="/var/tmp/aidline-postgres-$h"
    if [[ "${1:-}" != quiet ]]; then
      log "$why:"
      log "  using $PG_STATE for the cluster instead"
    fi
  fi
}

set_paths() {
  PGDATA_DIR="$PG_STATE/data"
  PG_LOG="$PG_STATE/postgres.log"
  # Unix socket paths are limited to ~107 bytes.
  PG_SOCK_DIR="$PG_STATE/run"
  if (( ${#PG_SOCK_DIR} > 80 )); then
    PG_SOCK_DIR="/tmp/aidline-pg-$(printf '%s' "$PG_STATE" | sha256sum | cut -c1-12)"
  fi
}

pg_running() { [[ -f "$PGDATA_DIR/PG_VERSION" ]] && as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; }

pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2 >/dev/null 2>&1; }

# shellcheck disable=SC2120 # extra psql arguments are optional
psql_admin() { # run SQL as the postgres superuser through our socket
  as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK_DIR" -p "$PG_PORT" -U postgres -d postgres "$@"
}

write_conf() {
  # Rewritten on every start so port / socket changes take effect.
  as_pg tee "$PGDATA_DIR/aidline.conf" >/dev/null <<EOF
# Written by deploy/local/postgres.sh on each start: edits are overwritten.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK_DIR'
max_connections = $PG_MAX_CONNECTIONS
shared_buffers = 128MB
fsync = on
logging_collector = off
log_min_messages = warning
log_timezone = 'UTC'
timezone = 'UTC'
EOF
}

init_cluster() {
  [[ -f "$PGDATA_DIR/PG_VERSION" ]] && return 0
  log "initializing a new cluster in $PGDATA_DIR ..."
  if [[ $EUID -eq 0 ]]; then
    mkdir -p "$PG_STATE"
    chown postgres:postgres "$PG_STATE"
    chmod 700 "$PG_STATE"
  else
    mkdir -p "$PG_STATE"
  fi
  local initlog="$PG_STATE/initdb.log"
  if ! as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres -E UTF8 --locale=C \
        --auth-local=trust --auth-host=scram-sha-256 >"$initlog" 2>&1; then
    tail -n 20 "$initlog" >&2
    die "initdb failed (log: $initlog)" "remove the half-made folder and retry: rm -rf $PGDATA_DIR"
  fi
  echo "include_if_exists = 'aidline.conf'" | as_pg tee -a "$PGDATA_DIR/postgresql.conf" >/dev/null
}

ensure_role_and_db() {
  # shellcheck disable=SC2119
  psql_admin <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER_NAME') THEN
    CREATE ROLE $PG_USER_NAME LOGIN SUPERUSER PASSWORD '$PG_PASSWORD';
  ELSE
    ALTER ROLE $PG_USER_NAME LOGIN SUPERUSER PASSWORD '$PG_PASSWORD';
  END IF;
END
\$\$;
SELECT 'CREATE DATABASE $PG_DB_NAME OWNER $PG_USER_NAME'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB_NAME')\gexec
SQL
}

start_failed() {
  printf 'postgres: ---- last 40 lines of %s ----\n' "$PG_LOG" >&2
  tail -n 40 "$PG_LOG" >&2 2>/dev/null || true
  printf 'postgres: ---- end of log ----\n' >&2
  die "$1 (log: $PG_LOG)" \
    "read the log above; raise PG_START_TIMEOUT on a slow machine" \
    "a broken data dir can be recreated (data is lost): $0 down; rm -rf $PG_STATE"
}

cmd_up() {
  if external_db; then
    log "DATABASE_URL is set: using that database ($(sed -E 's#://([^:/@]*):[^@]*@#://\1:***@#' <<<"$DATABASE_URL")), starting nothing"
    return 0
  fi
  ensure_installed
  pick_state_dir
  set_paths
  local version
  version="$("$PG_BIN/postgres" --version | awk '{print $3}')"

  if pg_running; then
    if pg_ready; then
      ensure_role_and_db || die "cluster runs but creating role/database failed" "see $PG_LOG"
      log "already running (PostgreSQL $version, 127.0.0.1:$PG_PORT, data $PGDATA_DIR)"
      return 0
    fi
  else
    if port_open "$PG_PORT"; then
      die "port 127.0.0.1:$PG_PORT is in use by something that is not our cluster ($(port_owner "$PG_PORT"))" \
        "stop that process, or use another port: AIDLINE_PG_PORT=$((PG_PORT + 1)) $0 up" \
        "or point the project at that server: export DATABASE_URL=postgresql+asyncpg://USER:PASS@127.0.0.1:$PG_PORT/DB"
    fi
  fi

  init_cluster
  mkdir -p "$PG_SOCK_DIR"
  [[ $EUID -eq 0 ]] && chown postgres:postgres "$PG_SOCK_DIR"
  local t0
  t0="$(now_ms)"
  if ! pg_running; then
    write_conf
    log "starting PostgreSQL $version on 127.0.0.1:$PG_PORT (data $PGDATA_DIR) ..."
    # pg_ctl -w waits (bounded by -t) until the server accepts connections and
    # notices if it dies; the postmaster runs in its own session (Ctrl-C safe).
    if ! as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PG_LOG" -w -t "$PG_START_TIMEOUT" start >/dev/null 2>&1; then
      start_failed "pg_ctl start failed or timed out after ${PG_START_TIMEOUT}s"
    fi
  fi
  # Confirm over TCP, as the application connects (bounded).
  local deadline=$(( $(date +%s) + PG_START_TIMEOUT ))
  until pg_ready; do
    pg_running || start_failed "the server exited during start-up"
    (( $(date +%s) < deadline )) || start_failed "not ready on 127.0.0.1:$PG_PORT within ${PG_START_TIMEOUT}s"
    sleep 0.2
  done
  ensure_role_and_db || die "creating role/database failed" "see $PG_LOG"
  local ms=$(( $(now_ms) - t0 ))
  log "started PostgreSQL $version on 127.0.0.1:$PG_PORT in $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s (role/db $PG_USER_NAME ready)"
}

cmd_down() {
  PG_BIN="$(find_pg_bin)"
  if [[ -z "$PG_BIN" ]]; then
    log "not installed, nothing to stop"
    return 0
  fi
  pick_state_dir quiet
  set_paths
  if ! pg_running; then
    log "not running (nothing to stop)"
    return 0
  fi
  log "stopping (pg_ctl -m fast) ..."
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null \
    || die "pg_ctl stop failed (log: $PG_LOG)" "as postgres: $PG_BIN/pg_ctl -D $PGDATA_DIR -m immediate stop"
  log "stopped"
}

cmd_remove() { # `make clean`: the cluster stopped and its folder gone, wherever it lives
  cmd_down
  [[ -n "$PG_BIN" ]] || return 0
  if [[ "$PG_SOCK_DIR" == /tmp/aidline-pg-* ]]; then rm -rf "$PG_SOCK_DIR"; fi
  if [[ -d "$PG_STATE" ]]; then
    rm -rf "$PG_STATE"
    log "removed $PG_STATE"
  fi
}

cmd_crash() {
  PG_BIN="$(find_pg_bin)"
  [[ -n "$PG_BIN" ]] || die "not installed" "deploy/local/postgres.sh up"
  pick_state_dir quiet
  set_paths
  pg_running || die "our cluster is not running (an external DATABASE_URL is never touched)" \
    "deploy/local/postgres.sh up"
  log "stopping abruptly (pg_ctl -m immediate) ..."
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m immediate -w -t 60 stop >/dev/null \
    || die "pg_ctl stop -m immediate failed (log: $PG_LOG)"
  cmd_up
}

cmd_status() {
  PG_BIN="$(find_pg_bin)"
  if [[ -n "$PG_BIN" ]]; then
    pick_state_dir quiet
    set_paths
    if pg_running; then
      if pg_ready; then
        echo "postgres: running (127.0.0.1:$PG_PORT, data $PGDATA_DIR)"
        return 0
      fi
      echo "postgres: starting (not accepting connections yet, data $PGDATA_DIR)"
      return 3
    fi
  fi
  if external_db; then
    echo "postgres: external database from DATABASE_URL (not managed here)"
    return 0
  fi
  if [[ -z "$PG_BIN" ]]; then
    echo "postgres: not installed (up installs it)"
  elif port_open "$PG_PORT"; then
    echo "postgres: not running; but port $PG_PORT is used by another process ($(port_owner "$PG_PORT"))"
  else
    echo "postgres: not running"
  fi
  return 3
}

usage() {
  sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  crash) cmd_crash ;;
  remove) cmd_remove ;;
  *) usage ;;
esac
