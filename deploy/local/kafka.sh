#!/usr/bin/env bash
# Aidline: a local single-node Kafka broker (KRaft combined mode) without Docker.
#
#   deploy/local/kafka.sh up        start (idempotent), wait until it serves
#   deploy/local/kafka.sh down      stop the broker this script started (idempotent)
#   deploy/local/kafka.sh status    exit 0 if running (ours or external), 3 if not
#   deploy/local/kafka.sh logs [-f] last lines of server.log (LINES=100), -f follows
#
# The broker jars come from Maven Central through deploy/kafka/pom.xml (needs java
# and mvn) into ${AIDLINE_CACHE:-$HOME/.cache/aidline}/kafka-<version>/libs, once.
# State (config, data, logs, pid, cluster id): ${AIDLINE_HOME:-<repo>/.aidline}/kafka.
#
# Environment:
#   KAFKA_BOOTSTRAP_SERVERS  if set to anything but our own 127.0.0.1:$KAFKA_PORT,
#                            `up` uses that cluster and starts nothing
#   KAFKA_PORT=9092 CONTROLLER_PORT=9093
#   KAFKA_START_TIMEOUT=60 KAFKA_STOP_TIMEOUT=30   seconds
#   KAFKA_VERSION            default: <kafka.version> of deploy/kafka/pom.xml
#   KAFKA_HEAP_OPTS          default: -Xmx512m -Xms256m;  KAFKA_JVM_OPTS  extra JVM flags
#   JAVA_HOME                java to use (default: java on PATH; 17+)
#   AIDLINE_HOME AIDLINE_CACHE
# Progress goes to stderr; `status` prints one line on stdout.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
KAFKA_DEPLOY_DIR="$REPO_ROOT/deploy/kafka"
POM="$KAFKA_DEPLOY_DIR/pom.xml"

AIDLINE_HOME="${AIDLINE_HOME:-$REPO_ROOT/.aidline}"
AIDLINE_CACHE="${AIDLINE_CACHE:-${HOME:-/root}/.cache/aidline}"
STATE_DIR="$AIDLINE_HOME/kafka"
DATA_DIR="$STATE_DIR/data"
LOG_DIR="$STATE_DIR/logs"
PID_FILE="$STATE_DIR/kafka.pid"
CONFIG_FILE="$STATE_DIR/server.properties"
CLUSTER_ID_FILE="$STATE_DIR/cluster.id"
LOCK_FILE="$STATE_DIR/.lock"

KAFKA_PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${CONTROLLER_PORT:-9093}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"
OUR_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"

log() { printf 'kafka: %s\n' "$*" >&2; }
die() {
  printf 'kafka: ERROR: %s\n' "$1" >&2
  shift
  local hint
  for hint in "$@"; do printf 'kafka:   fix: %s\n' "$hint" >&2; done
  exit 1
}

now_ms() { date +%s%3N; }

pom_kafka_version() {
  sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1
}
KAFKA_VERSION="${KAFKA_VERSION:-$(pom_kafka_version)}"
[[ -n "$KAFKA_VERSION" ]] || die "cannot read <kafka.version> from $POM" "set KAFKA_VERSION"
KAFKA_HOME="$AIDLINE_CACHE/kafka-$KAFKA_VERSION"
LIBS_DIR="$KAFKA_HOME/libs"
LIBS_MARKER="$KAFKA_HOME/.libs-complete"

# --- helpers ---------------------------------------------------------------

port_open() { # port -> 0 if something accepts TCP connections on 127.0.0.1:port
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

port_owner() { # port -> "pid=N cmd" of the listener, best effort
  command -v ss >/dev/null 2>&1 || { echo "unknown process (install iproute2 for details)"; return; }
  local line
  line="$(ss -ltnpH "sport = :$1" 2>/dev/null | head -n1 || true)"
  if [[ "$line" =~ pid=([0-9]+) ]]; then
    local pid="${BASH_REMATCH[1]}"
    printf 'pid %s: %s' "$pid" "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-160)"
  else
    echo "unknown process"
  fi
}

port_owner_pid() {
  command -v ss >/dev/null 2>&1 || return 0
  local line
  line="$(ss -ltnpH "sport = :$1" 2>/dev/null | head -n1 || true)"
  [[ "$line" =~ pid=([0-9]+) ]] && echo "${BASH_REMATCH[1]}"
  return 0
}

is_our_broker_pid() { # pid -> 0 if it is a live kafka.Kafka started with our config
  local pid="$1" cmd
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  [[ "$cmd" == *kafka.Kafka* && "$cmd" == *"$CONFIG_FILE"* ]]
}

our_pid() { # prints the pid of our running broker, or nothing
  local pid=""
  [[ -f "$PID_FILE" ]] && pid="$(tr -dc '0-9' <"$PID_FILE")"
  if [[ -n "$pid" ]] && is_our_broker_pid "$pid"; then
    echo "$pid"
    return 0
  fi
  # The pid file may be gone while our broker still listens: adopt it.
  pid="$(port_owner_pid "$KAFKA_PORT")"
  if [[ -n "$pid" ]] && is_our_broker_pid "$pid"; then
    echo "$pid" >"$PID_FILE"
    echo "$pid"
  fi
  return 0
}

external_cluster() { # 0 if KAFKA_BOOTSTRAP_SERVERS points somewhere else than our broker
  [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]] || return 1
  case "$KAFKA_BOOTSTRAP_SERVERS" in
    "$OUR_BOOTSTRAP" | "localhost:$KAFKA_PORT")
      # Same address as ours (e.g. infra.env was sourced): manage our own broker.
      return 1 ;;
  esac
  return 0
}

take_lock() {
  mkdir -p "$STATE_DIR"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$LOCK_FILE"
    flock -w 180 9 || die "another kafka.sh holds $LOCK_FILE for 3 min" \
      "wait for it, or check for a hung kafka.sh process"
  fi
}

tail_log() {
  local f
  for f in "$LOG_DIR/server.log" "$LOG_DIR/kafka.out"; do
    if [[ -s "$f" ]]; then
      printf 'kafka: ---- last 40 lines of %s ----\n' "$f" >&2
      tail -n 40 "$f" >&2
      printf 'kafka: ---- end of %s ----\n' "$f" >&2
    fi
  done
}

# --- up steps --------------------------------------------------------------

check_java() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    JAVA="$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    JAVA="$(command -v java)"
  else
    die "java not found (neither \$JAVA_HOME/bin/java nor java on PATH); Kafka $KAFKA_VERSION needs Java 17+" \
      "apt-get install -y openjdk-17-jre-headless   (or set JAVA_HOME to a JDK 17+)"
  fi
  local v
  v="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
  if [[ -n "$v" && "$v" -lt 17 ]]; then
    die "$JAVA is Java $v; Kafka $KAFKA_VERSION needs Java 17+" "set JAVA_HOME to a JDK 17+"
  fi
}

libs_fingerprint() { # changes when the pom or the requested version changes
  { echo "$KAFKA_VERSION"; cat "$POM"; } | sha256sum | cut -d' ' -f1
}

resolve_jars() {
  local fp
  fp="$(libs_fingerprint)"
  if [[ -f "$LIBS_MARKER" && "$(cat "$LIBS_MARKER")" == "$fp" ]] \
     && compgen -G "$LIBS_DIR/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found: needed once to fetch the Kafka $KAFKA_VERSION jars" \
    "apt-get install -y maven" "or unpack the jars yourself into $LIBS_DIR and: echo $fp > $LIBS_MARKER"
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS_DIR (once) ..."
  local t0 tmp mvn_log
  t0="$(now_ms)"
  mkdir -p "$KAFKA_HOME"
  tmp="$(mktemp -d "$KAFKA_HOME/libs.tmp.XXXXXX")"
  mvn_log="$KAFKA_HOME/mvn.log"
  if ! mvn -B -q -f "$POM" \
        -Dmaven.repo.local="$AIDLINE_CACHE/m2" \
        -Dkafka.version="$KAFKA_VERSION" \
        dependency:copy-dependencies \
        -DincludeScope=runtime \
        -DoutputDirectory="$tmp" >"$mvn_log" 2>&1; then
    tail -n 30 "$mvn_log" >&2 || true
    rm -rf "$tmp"
    die "mvn could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (full log: $mvn_log)" \
      "check that Maven Central is reachable (proxy settings in ~/.m2/settings.xml)" \
      "or try another version: KAFKA_VERSION=4.0.1 $0 up"
  fi
  compgen -G "$tmp/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null \
    || { rm -rf "$tmp"; die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn (see $mvn_log)"; }
  chmod 755 "$tmp"
  rm -rf "$LIBS_DIR"
  mv "$tmp" "$LIBS_DIR"
  echo "$fp" >"$LIBS_MARKER"
  log "jars ready: $(find "$LIBS_DIR" -name '*.jar' | wc -l) jars, $(du -sh "$LIBS_DIR" | cut -f1), in $(( ($(now_ms) - t0) / 1000 )) s"
}

render_config() {
  mkdir -p "$DATA_DIR" "$LOG_DIR"
  local tmp="$CONFIG_FILE.tmp"
  if command -v envsubst >/dev/null 2>&1; then
    # shellcheck disable=SC2016 # the list of variables envsubst may replace
    KAFKA_PORT="$KAFKA_PORT" CONTROLLER_PORT="$CONTROLLER_PORT" KAFKA_DATA_DIR="$DATA_DIR" \
      envsubst '${KAFKA_PORT} ${CONTROLLER_PORT} ${KAFKA_DATA_DIR}' \
      <"$KAFKA_DEPLOY_DIR/server.properties" >"$tmp"
  else
    sed -e "s|\${KAFKA_PORT}|$KAFKA_PORT|g" \
        -e "s|\${CONTROLLER_PORT}|$CONTROLLER_PORT|g" \
        -e "s|\${KAFKA_DATA_DIR}|$DATA_DIR|g" \
        "$KAFKA_DEPLOY_DIR/server.properties" >"$tmp"
  fi
  mv "$tmp" "$CONFIG_FILE"
}

java_cp() { echo "$LIBS_DIR/*"; }

format_storage() {
  if [[ -f "$DATA_DIR/meta.properties" ]]; then
    return 0
  fi
  local cid
  if [[ -s "$CLUSTER_ID_FILE" ]]; then
    cid="$(cat "$CLUSTER_ID_FILE")"
  else
    cid="$("$JAVA" -cp "$(java_cp)" -Dlog4j2.configurationFile="$KAFKA_DEPLOY_DIR/log4j2.xml" \
           -Dkafka.logs.dir="$LOG_DIR" -Dkafka.console.level=ERROR \
           kafka.tools.StorageTool random-uuid 2>>"$LOG_DIR/format.log" | tail -n1)"
    [[ "$cid" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "could not generate a cluster id (got '$cid'; see $LOG_DIR/format.log)"
    echo "$cid" >"$CLUSTER_ID_FILE"
  fi
  log "formatting storage in $DATA_DIR (cluster id $cid) ..."
  if ! "$JAVA" -cp "$(java_cp)" -Dlog4j2.configurationFile="$KAFKA_DEPLOY_DIR/log4j2.xml" \
        -Dkafka.logs.dir="$LOG_DIR" -Dkafka.console.level=ERROR \
        kafka.tools.StorageTool format -t "$cid" -c "$CONFIG_FILE" >>"$LOG_DIR/format.log" 2>&1; then
    tail -n 20 "$LOG_DIR/format.log" >&2
    die "kafka-storage format failed (log: $LOG_DIR/format.log)" \
      "if $DATA_DIR holds data from another Kafka version or cluster: $0 down && rm -rf $STATE_DIR"
  fi
  echo "$KAFKA_VERSION" >"$STATE_DIR/formatted-with-version"
}

started_in_log_since() { # byte offset -> 0 if server.log has "Kafka Server started" after it
  local f="$LOG_DIR/server.log" off="$1" size
  [[ -f "$f" ]] || return 1
  size="$(stat -c %s "$f")"
  (( size < off )) && off=0 # rotated
  tail -c +"$((off + 1))" "$f" | grep -q "Kafka Server started"
}

wait_ready() { # pid log_offset t0
  local pid="$1" off="$2" t0="$3" deadline
  deadline=$(( t0 + KAFKA_START_TIMEOUT * 1000 ))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      tail_log
      die "the broker (pid $pid) exited during start-up (logs in $LOG_DIR)" \
        "read the log above; '$0 logs' shows more" \
        "a corrupt or foreign data dir: $0 down && rm -rf $STATE_DIR"
    fi
    if port_open "$KAFKA_PORT" && started_in_log_since "$off"; then
      return 0
    fi
    if (( $(now_ms) >= deadline )); then
      tail_log
      log "stopping the half-started broker (pid $pid)"
      stop_pid "$pid"
      die "the broker did not start within ${KAFKA_START_TIMEOUT}s (logs in $LOG_DIR)" \
        "read the log above; raise KAFKA_START_TIMEOUT on a slow or busy machine"
    fi
    sleep 0.25
  done
}

cmd_up() {
  if external_cluster; then
    log "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS is set: using that existing cluster, starting nothing"
    return 0
  fi
  take_lock
  local pid t0 off
  pid="$(our_pid)"
  if [[ -n "$pid" ]]; then
    if port_open "$KAFKA_PORT"; then
      log "already running (pid $pid, $OUR_BOOTSTRAP)"
      return 0
    fi
    log "our broker (pid $pid) is up but not serving yet: waiting ..."
    wait_ready "$pid" "$(cat "$STATE_DIR/start-log-offset" 2>/dev/null || echo 0)" "$(now_ms)"
    log "ready on $OUR_BOOTSTRAP (pid $pid)"
    return 0
  fi
  rm -f "$PID_FILE"

  local p
  for p in "$KAFKA_PORT" "$CONTROLLER_PORT"; do
    if port_open "$p"; then
      die "port 127.0.0.1:$p is in use by something that is not our broker ($(port_owner "$p"))" \
        "stop that process, or choose free ports: KAFKA_PORT=$((KAFKA_PORT + 100)) CONTROLLER_PORT=$((CONTROLLER_PORT + 100)) $0 up" \
        "if it is a Kafka you want to use: export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$p"
    fi
  done
  [[ "$KAFKA_PORT" != "$CONTROLLER_PORT" ]] || die "KAFKA_PORT and CONTROLLER_PORT are both $KAFKA_PORT" "give them different values"

  check_java
  resolve_jars
  render_config
  format_storage

  off=0
  [[ -f "$LOG_DIR/server.log" ]] && off="$(stat -c %s "$LOG_DIR/server.log")"
  echo "$off" >"$STATE_DIR/start-log-offset"
  : >"$LOG_DIR/kafka.out"
  log "starting Kafka $KAFKA_VERSION on $OUR_BOOTSTRAP (controller :$CONTROLLER_PORT, state $STATE_DIR) ..."
  t0="$(now_ms)"
  # setsid: own session, so Ctrl-C in the calling terminal does not reach the broker.
  # The inner shell writes its own pid and then execs java, so the pid file is java's.
  # shellcheck disable=SC2086,SC2016 # word-split the JVM opts; $$ is the inner shell's
  (
    exec 9>&- # do not hand the lock fd to the broker
    cd "$STATE_DIR"
    exec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
      "$JAVA" $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
      -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$KAFKA_DEPLOY_DIR/log4j2.xml" \
      -Dkafka.logs.dir="$LOG_DIR" -Dkafka.console.level=WARN \
      ${KAFKA_JVM_OPTS:-} \
      -cp "$(java_cp)" kafka.Kafka "$CONFIG_FILE"
  ) </dev/null >>"$LOG_DIR/kafka.out" 2>&1 &
  local launcher=$!
  # Wait (briefly) for the pid file written by the launched process.
  local _
  for _ in $(seq 1 100); do
    [[ -s "$PID_FILE" ]] && break
    kill -0 "$launcher" 2>/dev/null || break
    sleep 0.05
  done
  pid="$(tr -dc '0-9' <"$PID_FILE" 2>/dev/null || true)"
  [[ -n "$pid" ]] || { tail_log; die "the broker process did not start (see $LOG_DIR/kafka.out)"; }
  wait_ready "$pid" "$off" "$t0"
  local ms=$(( $(now_ms) - t0 ))
  log "started Kafka $KAFKA_VERSION on $OUR_BOOTSTRAP (pid $pid) in $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s"
}

stop_pid() { # SIGTERM, wait KAFKA_STOP_TIMEOUT, then SIGKILL
  local pid="$1" deadline
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$(( $(date +%s) + KAFKA_STOP_TIMEOUT ))
  while kill -0 "$pid" 2>/dev/null; do
    if (( $(date +%s) >= deadline )); then
      log "pid $pid still alive after ${KAFKA_STOP_TIMEOUT}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  rm -f "$PID_FILE"
}

cmd_down() {
  take_lock
  local pid
  pid="$(our_pid)"
  if [[ -z "$pid" ]]; then
    rm -f "$PID_FILE"
    log "not running (nothing to stop)"
    return 0
  fi
  log "stopping broker pid $pid (SIGTERM, up to ${KAFKA_STOP_TIMEOUT}s) ..."
  local t0
  t0="$(now_ms)"
  stop_pid "$pid"
  log "stopped in $(( ($(now_ms) - t0) / 1000 )) s"
}

cmd_status() {
  local pid
  pid="$(our_pid)"
  if [[ -n "$pid" ]] && port_open "$KAFKA_PORT"; then
    echo "kafka: running (pid $pid, $OUR_BOOTSTRAP, Kafka $KAFKA_VERSION, state $STATE_DIR)"
    return 0
  fi
  if [[ -n "$pid" ]]; then
    echo "kafka: starting (pid $pid, port $KAFKA_PORT not open yet)"
    return 3
  fi
  if external_cluster; then
    echo "kafka: external cluster KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS (not managed here)"
    return 0
  fi
  if port_open "$KAFKA_PORT"; then
    echo "kafka: not running; but port $KAFKA_PORT is used by another process ($(port_owner "$KAFKA_PORT"))"
  else
    echo "kafka: not running"
  fi
  return 3
}

cmd_logs() {
  local f="$LOG_DIR/server.log"
  [[ -f "$f" ]] || die "no log yet at $f" "start the broker: $0 up"
  if [[ "${1:-}" == "-f" ]]; then
    exec tail -n "${LINES:-100}" -F "$f"
  fi
  tail -n "${LINES:-100}" "$f"
}

usage() {
  sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  *) usage ;;
esac
