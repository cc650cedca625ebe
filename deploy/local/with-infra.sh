#!/usr/bin/env bash
# Aidline: run a command with Kafka and PostgreSQL up, e.g. for `make test`:
#
#   deploy/local/with-infra.sh python -m pytest -q
#
# Notes which of Kafka / PostgreSQL were already running, runs `infra.sh up`, exports
# KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL, runs the command, then stops only what it
# started itself (also on Ctrl-C / SIGTERM / SIGHUP), and exits with the command's status.
# Set AIDLINE_KEEP_INFRA=1 to leave everything running afterwards.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf 'with-infra: %s\n' "$*" >&2; }

if (( $# == 0 )); then
  sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi

kafka_was_running=0
pg_was_running=0
"$SCRIPT_DIR/kafka.sh" status >/dev/null 2>&1 && kafka_was_running=1
"$SCRIPT_DIR/postgres.sh" status >/dev/null 2>&1 && pg_was_running=1

child=""
cleaned=0
# shellcheck disable=SC2329 # run by the traps below
cleanup() {
  (( cleaned )) && return 0
  cleaned=1
  if [[ "${AIDLINE_KEEP_INFRA:-0}" == 1 ]]; then
    log "AIDLINE_KEEP_INFRA=1: leaving the infrastructure running"
    return 0
  fi
  if (( ! kafka_was_running )); then
    "$SCRIPT_DIR/kafka.sh" down >&2 || log "WARNING: stopping Kafka failed"
  fi
  if (( ! pg_was_running )); then
    "$SCRIPT_DIR/postgres.sh" down >&2 || log "WARNING: stopping PostgreSQL failed"
  fi
  if (( kafka_was_running || pg_was_running )); then
    log "left running what was running before:$( ((kafka_was_running)) && echo ' kafka')$( ((pg_was_running)) && echo ' postgres')"
  fi
}

# SIGTERM / SIGHUP to this script: pass it on to the command, then wait for it.
# SIGINT (Ctrl-C) already reaches the command: it shares our process group.
# shellcheck disable=SC2329
on_signal() {
  local sig="$1"
  log "got SIG$sig"
  if [[ -n "$child" && "$sig" != INT ]]; then
    kill -s "$sig" "$child" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP

env_out="$("$SCRIPT_DIR/infra.sh" up)" || { log "ERROR: infra.sh up failed"; exit 1; }
while IFS='=' read -r key value; do
  case "$key" in
    KAFKA_BOOTSTRAP_SERVERS | DATABASE_URL) export "$key=$value" ;;
  esac
done <<<"$env_out"
log "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS DATABASE_URL=$DATABASE_URL"
log "running: $*"

# Run the command in the background (so signals to this script are handled at once),
# restoring the default SIGINT/SIGQUIT that bash would otherwise ignore there,
# and keeping our stdin.
( trap - INT QUIT; exec "$@" ) <&0 &
child=$!
status=0
while :; do
  set +e
  wait "$child"
  status=$?
  set -e
  # A trapped signal interrupts wait (status >128) while the command may still run.
  kill -0 "$child" 2>/dev/null && continue
  # Ended. If that wait was interrupted, bash still holds the real status: fetch it
  # (127 means the status was already reported by the wait above).
  set +e
  wait "$child" 2>/dev/null
  s2=$?
  set -e
  (( s2 != 127 )) && status=$s2
  break
done
log "command exited with status $status"
exit "$status"
