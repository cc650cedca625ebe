#!/usr/bin/env bash
# Aidline: local infrastructure (Kafka + PostgreSQL) without Docker.
#
#   deploy/local/infra.sh up       start both (in parallel), then print on stdout exactly:
#                                    KAFKA_BOOTSTRAP_SERVERS=<host:port>
#                                    DATABASE_URL=<url>
#                                  and write them, with `export`, to $AIDLINE_HOME/infra.env
#   deploy/local/infra.sh down     stop both (only what these scripts started)
#   deploy/local/infra.sh status   one line each; exit 0 only if both are running
#   deploy/local/infra.sh env      print the two lines, starting nothing
#
#   eval "$(deploy/local/infra.sh up)"   or   . .aidline/infra.env
#
# Honours KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL (an existing cluster / database is
# used as is), KAFKA_PORT, CONTROLLER_PORT, KAFKA_NODES, AIDLINE_PG_PORT, AIDLINE_HOME, AIDLINE_CACHE;
# see kafka.sh and postgres.sh. Progress goes to stderr.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
export AIDLINE_HOME="${AIDLINE_HOME:-$REPO_ROOT/.aidline}"
ENV_FILE="$AIDLINE_HOME/infra.env"

log() { printf 'infra: %s\n' "$*" >&2; }

# Every node of our own cluster (one, or KAFKA_NODES), unless an existing cluster is named.
kafka_bootstrap() { echo "${KAFKA_BOOTSTRAP_SERVERS:-$("$SCRIPT_DIR/kafka.sh" bootstrap)}"; }
database_url() {
  echo "${DATABASE_URL:-postgresql+asyncpg://aidline:aidline@127.0.0.1:${AIDLINE_PG_PORT:-5433}/aidline}"
}

print_env() {
  printf 'KAFKA_BOOTSTRAP_SERVERS=%s\n' "$(kafka_bootstrap)"
  printf 'DATABASE_URL=%s\n' "$(database_url)"
}

write_env_file() {
  mkdir -p "$AIDLINE_HOME"
  local tmp="$ENV_FILE.tmp.$$"
  {
    echo "# Written by deploy/local/infra.sh up on $(date -u +%Y-%m-%dT%H:%M:%SZ). Source it: . $ENV_FILE"
    printf 'export KAFKA_BOOTSTRAP_SERVERS=%q\n' "$(kafka_bootstrap)"
    printf 'export DATABASE_URL=%q\n' "$(database_url)"
  } >"$tmp"
  mv "$tmp" "$ENV_FILE"
}

cmd_up() {
  local t0 pg_pid pg_rc=0 kafka_rc=0
  t0="$(date +%s%3N)"
  # Both in parallel: PostgreSQL is ready long before the JVM.
  "$SCRIPT_DIR/postgres.sh" up >&2 &
  pg_pid=$!
  "$SCRIPT_DIR/kafka.sh" up >&2 || kafka_rc=$?
  wait "$pg_pid" || pg_rc=$?
  if (( kafka_rc != 0 || pg_rc != 0 )); then
    (( kafka_rc != 0 )) && log "ERROR: Kafka failed to start (see the kafka: lines above)"
    (( pg_rc != 0 )) && log "ERROR: PostgreSQL failed to start (see the postgres: lines above)"
    log "what is running stays running; stop it with: $0 down"
    exit 1
  fi
  write_env_file
  log "infrastructure ready in $(( ($(date +%s%3N) - t0) / 1000 )) s; variables also in $ENV_FILE"
  print_env
}

cmd_down() {
  local rc=0
  "$SCRIPT_DIR/kafka.sh" down >&2 || rc=1
  "$SCRIPT_DIR/postgres.sh" down >&2 || rc=1
  return "$rc"
}

cmd_status() {
  local rc=0
  "$SCRIPT_DIR/kafka.sh" status || rc=3
  "$SCRIPT_DIR/postgres.sh" status || rc=3
  return "$rc"
}

usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) print_env ;;
  *) usage ;;
esac
