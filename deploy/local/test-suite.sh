#!/usr/bin/env bash
# Aidline: the whole test suite, as `make test` runs it.
#
#   deploy/local/test-suite.sh [pytest arguments]
#
# Installs the tools the tests drive (test-tools.sh; with workers, helm builds in the background
# if it is not cached; HELM_IN_BACKGROUND=0/1 overrides), then:
#   TEST_WORKERS=0   one pytest, every test in line, on one broker and PostgreSQL (with-infra.sh)
#   TEST_WORKERS=N   (default 2) pytest-xdist with N workers (--dist loadgroup: tests/conftest.py keeps each
#                    module, and each folder sharing a fixture, on one worker; each worker has a
#                    database of its own) for every test but the isolated ones, and beside it a
#                    serial pytest of the isolated ones (`-m isolated`: they stop the broker,
#                    crash PostgreSQL, run a cluster or eight services) on a broker and
#                    PostgreSQL of their own: AIDLINE_HOME/isolated, KAFKA_PORT+50,
#                    CONTROLLER_PORT+50, AIDLINE_PG_PORT+50 (or AIDLINE_ISOLATED_KAFKA_PORT,
#                    AIDLINE_ISOLATED_CONTROLLER_PORT, AIDLINE_ISOLATED_PG_PORT). Its output goes
#                    to AIDLINE_HOME/isolated/pytest.log and is printed when both are done.
#   TEST_ISOLATED=beside (default) | after   after: the isolated tests run when the others are
#                    done, on the same broker and PostgreSQL (always so with an external
#                    KAFKA_BOOTSTRAP_SERVERS or DATABASE_URL: there is nothing of our own to break)
#
# Exits with the first failing pytest's status (5, "no tests collected", counts as a pass for
# one of the two when the other ran tests). Environment as with-infra.sh / infra.sh.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
cd "$REPO_ROOT"
PYTEST="$REPO_ROOT/.venv/bin/pytest"
WITH_INFRA="$SCRIPT_DIR/with-infra.sh"
TEST_WORKERS="${TEST_WORKERS:-2}"
TEST_ISOLATED="${TEST_ISOLATED:-beside}"
export AIDLINE_HOME="${AIDLINE_HOME:-$REPO_ROOT/.aidline/test}"

log() { printf 'test-suite: %s\n' "$*" >&2; }

[[ "$TEST_WORKERS" =~ ^[0-9]+$ ]] || { log "ERROR: TEST_WORKERS must be a number (got '$TEST_WORKERS')"; exit 2; }
[[ "$TEST_ISOLATED" == beside || "$TEST_ISOLATED" == after ]] \
  || { log "ERROR: TEST_ISOLATED must be beside or after (got '$TEST_ISOLATED')"; exit 2; }

# helm's first build (minutes of both cores) beside the tests only with workers: in line, it would
# compete with the first tests' services starting (a readiness wait of 60 s).
HELM_IN_BACKGROUND="${HELM_IN_BACKGROUND:-$(( TEST_WORKERS > 0 ))}" "$SCRIPT_DIR/test-tools.sh"

t0=$(date +%s)
if (( TEST_WORKERS == 0 )); then
  status=0
  "$WITH_INFRA" "$PYTEST" "$@" || status=$?
  log "done in $(( $(date +%s) - t0 )) s (serial), status $status"
  exit "$status"
fi

if [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" || -n "${DATABASE_URL:-}" ]]; then
  TEST_ISOLATED=after
fi

# One pytest's status, 5 (nothing collected: e.g. PYTEST_ARGS named only isolated tests) as 0.
passed() { (( $1 == 0 || $1 == 5 )); }

run_workers() {
  "$WITH_INFRA" "$PYTEST" -n "$TEST_WORKERS" --dist loadgroup -m "not isolated" "$@"
}

isolated_pid=""
isolated_log=""
# shellcheck disable=SC2329 # run by the trap
stop_isolated() {
  [[ -n "$isolated_pid" ]] && kill -TERM "$isolated_pid" 2>/dev/null || true
}

if [[ "$TEST_ISOLATED" == beside ]]; then
  iso_home="$AIDLINE_HOME/isolated"
  mkdir -p "$iso_home"
  isolated_log="$iso_home/pytest.log"
  iso_kafka="${AIDLINE_ISOLATED_KAFKA_PORT:-$(( ${KAFKA_PORT:-9092} + 50 ))}"
  iso_controller="${AIDLINE_ISOLATED_CONTROLLER_PORT:-$(( ${CONTROLLER_PORT:-9093} + 50 ))}"
  iso_pg="${AIDLINE_ISOLATED_PG_PORT:-$(( ${AIDLINE_PG_PORT:-5433} + 50 ))}"
  log "isolated tests beside, on Kafka :$iso_kafka and PostgreSQL :$iso_pg (log: $isolated_log)"
  AIDLINE_HOME="$iso_home" KAFKA_PORT="$iso_kafka" CONTROLLER_PORT="$iso_controller" \
    AIDLINE_PG_PORT="$iso_pg" "$WITH_INFRA" "$PYTEST" -m isolated "$@" \
    </dev/null >"$isolated_log" 2>&1 &
  isolated_pid=$!
  trap stop_isolated EXIT
fi

workers_status=0
run_workers "$@" || workers_status=$?
log "the tests on $TEST_WORKERS workers ended with status $workers_status after $(( $(date +%s) - t0 )) s"

isolated_status=0
if [[ -n "$isolated_pid" ]]; then
  log "waiting for the isolated tests (pid $isolated_pid) ..."
  wait "$isolated_pid" || isolated_status=$?
  isolated_pid=""
  echo "---------------- the isolated tests (serial, own broker and PostgreSQL) ----------------"
  cat "$isolated_log"
else
  "$WITH_INFRA" "$PYTEST" -m isolated "$@" || isolated_status=$?
fi
log "the isolated tests ended with status $isolated_status"

status=0
if ! passed "$workers_status"; then
  status=$workers_status
elif ! passed "$isolated_status"; then
  status=$isolated_status
elif (( workers_status == 5 && isolated_status == 5 )); then
  status=5
fi
log "done in $(( $(date +%s) - t0 )) s ($TEST_WORKERS workers, isolated tests $TEST_ISOLATED), status $status"
exit "$status"
