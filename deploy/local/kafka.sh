#!/usr/bin/env bash
# Aidline: a local Kafka (KRaft, every node broker+controller) without Docker: one node by
# default, a cluster of KAFKA_NODES on loopback otherwise.
#
#   deploy/local/kafka.sh up        start (idempotent: only the nodes not running), wait until
#                                   every node serves
#   deploy/local/kafka.sh down      stop the nodes this script started (idempotent)
#   deploy/local/kafka.sh status    exit 0 if running (ours or external), 3 if not
#   deploy/local/kafka.sh logs [-f] last lines of server.log (LINES=100), -f follows (node 1)
#   deploy/local/kafka.sh bootstrap print the bootstrap servers (every node), starting nothing
#
# The broker jars come from Maven Central through deploy/kafka/pom.xml (needs java
# and mvn) into ${AIDLINE_CACHE:-$HOME/.cache/aidline}/kafka-<version>/libs, once.
# State (config, data, logs, pid, cluster id): ${AIDLINE_HOME:-<repo>/.aidline}/kafka, or
# with KAFKA_NODES>1 .../kafka-cluster/node-<id> (and the pid of node <id> in its kafka.pid).
#
# Environment:
#   KAFKA_BOOTSTRAP_SERVERS  if set to anything but our own 127.0.0.1:$KAFKA_PORT,
#                            `up` uses that cluster and starts nothing
#   KAFKA_PORT=9092 CONTROLLER_PORT=9093   node 1's; node <id> listens on each plus
#                            (id-1) * KAFKA_NODE_PORT_STEP (default 10)
#   KAFKA_NODES=1            3: a three-node cluster (internal topics replicated 3 times,
#                            min.insync.replicas 2)
#   KAFKA_EXTRA_CONFIG       a properties file appended to every node's server.properties
#                            (its keys win: e.g. TLS or SASL listeners)
#   KAFKA_FORMAT_ARGS        extra arguments to kafka-storage format, e.g.
#                            --add-scram SCRAM-SHA-512=[name=u,password=p]
#   KAFKA_START_TIMEOUT=60 KAFKA_STOP_TIMEOUT=30   seconds
#   KAFKA_VERSION            default: <kafka.version> of deploy/kafka/pom.xml
#   KAFKA_HEAP_OPTS          default: -Xmx512m -Xms256m (a cluster: -Xmx256m -Xms128m per
#                            node);  KAFKA_JVM_OPTS  extra JVM flags
#   KAFKA_CDS=1              class-data sharing: the JVM maps Kafka's classes from an archive
#                            (in the jar cache, per java and jars) instead of loading them from
#                            the jars; a broker started without one writes it when it stops
#                            (-XX:ArchiveClassesAtExit), every later start uses it. 0: off
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

KAFKA_PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${CONTROLLER_PORT:-9093}"
KAFKA_NODES="${KAFKA_NODES:-1}"
KAFKA_NODE_PORT_STEP="${KAFKA_NODE_PORT_STEP:-10}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
[[ "$KAFKA_NODES" =~ ^[1-9]$ ]] || { echo "kafka: ERROR: KAFKA_NODES must be 1-9 (got '$KAFKA_NODES')" >&2; exit 1; }

if (( KAFKA_NODES == 1 )); then
  CLUSTER_DIR="$AIDLINE_HOME/kafka"
  KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"
else
  # Small heaps: three JVMs share a 2-core machine with the services and the tests.
  CLUSTER_DIR="$AIDLINE_HOME/kafka-cluster"
  KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx256m -Xms128m}"
fi
CLUSTER_ID_FILE="$CLUSTER_DIR/cluster.id"
LOCK_FILE="$CLUSTER_DIR/.lock"

node_port() { echo $(( KAFKA_PORT + ($1 - 1) * KAFKA_NODE_PORT_STEP )); }
node_controller_port() { echo $(( CONTROLLER_PORT + ($1 - 1) * KAFKA_NODE_PORT_STEP )); }

# select_node <id>: the paths and ports the helpers below work on.
select_node() {
  NODE_ID="$1"
  if (( KAFKA_NODES == 1 )); then
    STATE_DIR="$CLUSTER_DIR"
  else
    STATE_DIR="$CLUSTER_DIR/node-$NODE_ID"
  fi
  DATA_DIR="$STATE_DIR/data"
  LOG_DIR="$STATE_DIR/logs"
  PID_FILE="$STATE_DIR/kafka.pid"
  CONFIG_FILE="$STATE_DIR/server.properties"
  NODE_PORT="$(node_port "$NODE_ID")"
  NODE_CONTROLLER_PORT="$(node_controller_port "$NODE_ID")"
}

OUR_BOOTSTRAP=""
QUORUM_VOTERS=""
for ((i = 1; i <= KAFKA_NODES; i++)); do
  OUR_BOOTSTRAP+="${OUR_BOOTSTRAP:+,}127.0.0.1:$(node_port "$i")"
  QUORUM_VOTERS+="${QUORUM_VOTERS:+,}$i@127.0.0.1:$(node_controller_port "$i")"
done
# Internal topics (consumer groups, transactions): as many replicas as the cluster allows, up
# to 3, and with 3 two in sync, so losing one node loses nothing and stops nothing.
INTERNAL_REPLICATION=$(( KAFKA_NODES < 3 ? KAFKA_NODES : 3 ))
INTERNAL_MIN_ISR=$(( INTERNAL_REPLICATION > 1 ? INTERNAL_REPLICATION - 1 : 1 ))
select_node 1

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
  pid="$(port_owner_pid "$NODE_PORT")"
  if [[ -n "$pid" ]] && is_our_broker_pid "$pid"; then
    echo "$pid" >"$PID_FILE"
    echo "$pid"
  fi
  return 0
}

external_cluster() { # 0 if KAFKA_BOOTSTRAP_SERVERS points somewhere else than our broker
  [[ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]] || return 1
  case "$KAFKA_BOOTSTRAP_SERVERS" in
    "$OUR_BOOTSTRAP" | "127.0.0.1:$KAFKA_PORT" | "localhost:$KAFKA_PORT")
      # Same address as ours (e.g. infra.env was sourced): manage our own broker.
      return 1 ;;
  esac
  return 0
}

take_lock() {
  mkdir -p "$CLUSTER_DIR"
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
  # The template's variables, replaced with sed (no envsubst needed).
  sed -e "s|\${KAFKA_PORT}|$NODE_PORT|g" \
      -e "s|\${CONTROLLER_PORT}|$NODE_CONTROLLER_PORT|g" \
      -e "s|\${KAFKA_DATA_DIR}|$DATA_DIR|g" \
      -e "s|\${KAFKA_NODE_ID}|$NODE_ID|g" \
      -e "s|\${KAFKA_QUORUM_VOTERS}|$QUORUM_VOTERS|g" \
      -e "s|\${KAFKA_INTERNAL_REPLICATION}|$INTERNAL_REPLICATION|g" \
      -e "s|\${KAFKA_INTERNAL_MIN_ISR}|$INTERNAL_MIN_ISR|g" \
      "$KAFKA_DEPLOY_DIR/server.properties" >"$tmp"
  if [[ -n "${KAFKA_EXTRA_CONFIG:-}" ]]; then
    [[ -r "$KAFKA_EXTRA_CONFIG" ]] || die "KAFKA_EXTRA_CONFIG=$KAFKA_EXTRA_CONFIG cannot be read"
    { echo; echo "# ---- $KAFKA_EXTRA_CONFIG (KAFKA_EXTRA_CONFIG): later keys win ----"
      sed -e "s|\${KAFKA_NODE_ID}|$NODE_ID|g" "$KAFKA_EXTRA_CONFIG"; } >>"$tmp"
  fi
  mv "$tmp" "$CONFIG_FILE"
}

java_cp() { echo "$LIBS_DIR/*"; }

# --- class-data sharing (KAFKA_CDS) ------------------------------------------

cds_archive() { # the archive for this java and these jars, in the jar cache
  local key
  key="$({ "$JAVA" -version 2>&1; libs_fingerprint; } | sha256sum | cut -c1-16)"
  echo "$KAFKA_HOME/cds-$key.jsa"
}

# cds_promote: the archive the selected node wrote at its last stop becomes the shared one
# (copied, then renamed into place: a start never sees half of it).
cds_promote() {
  local made="$STATE_DIR/kafka-cds.jsa" archive
  [[ -s "$made" ]] || return 0
  [[ -n "${JAVA:-}" ]] || check_java
  archive="$(cds_archive)"
  if [[ ! -s "$archive" ]] && cp "$made" "$archive.tmp.$$" 2>/dev/null; then
    mv "$archive.tmp.$$" "$archive"
    log "class-data sharing archive for the next starts: $archive"
  fi
  rm -f "$made" "$archive.tmp.$$"
}

cds_opts() { # sets CDS_OPTS for the selected node
  CDS_OPTS=()
  [[ "${KAFKA_CDS:-1}" == 1 ]] || return 0
  cds_promote
  local archive
  archive="$(cds_archive)"
  if [[ -s "$archive" ]]; then
    CDS_OPTS=(-XX:SharedArchiveFile="$archive" -Xshare:auto)
  else
    CDS_OPTS=(-XX:ArchiveClassesAtExit="$STATE_DIR/kafka-cds.jsa")
  fi
}

format_storage() {
  if [[ -f "$DATA_DIR/meta.properties" ]]; then
    return 0
  fi
  local cid
  if [[ -s "$CLUSTER_ID_FILE" ]]; then
    cid="$(cat "$CLUSTER_ID_FILE")"
  else
    # What `kafka-storage random-uuid` prints, without starting a JVM for it: 16 random bytes,
    # base64url without padding, never starting with "-" (Kafka's Uuid.randomUuid).
    cid="-"
    while [[ "$cid" == -* ]]; do
      cid="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    done
    [[ "$cid" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "could not generate a cluster id (got '$cid')"
    echo "$cid" >"$CLUSTER_ID_FILE"
  fi
  log "formatting storage in $DATA_DIR (cluster id $cid) ..."
  local extra=()
  # An array, not word splitting: SCRAM credentials hold [ ] that a glob would match.
  [[ -n "${KAFKA_FORMAT_ARGS:-}" ]] && read -r -a extra <<<"$KAFKA_FORMAT_ARGS"
  # The broker's class-data sharing archive serves the format tool too (most classes are the
  # same); never one made here (CDS_OPTS is for the broker: see launch_node).
  local cds=()
  [[ "${CDS_OPTS[0]:-}" == -XX:SharedArchiveFile=* ]] && cds=("${CDS_OPTS[@]}")
  if ! "$JAVA" "${cds[@]}" -cp "$(java_cp)" -Dlog4j2.configurationFile="$KAFKA_DEPLOY_DIR/log4j2.xml" \
        -Dkafka.logs.dir="$LOG_DIR" -Dkafka.console.level=ERROR \
        kafka.tools.StorageTool format -t "$cid" -c "$CONFIG_FILE" "${extra[@]}" \
        >>"$LOG_DIR/format.log" 2>&1; then
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
    if port_open "$NODE_PORT" && started_in_log_since "$off"; then
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

# launch_node: start the selected node's JVM in the background; sets LAUNCHED_PID and
# LAUNCHED_OFFSET (where its server.log stood, to find this start's "started" line).
launch_node() {
  local p
  for p in "$NODE_PORT" "$NODE_CONTROLLER_PORT"; do
    if port_open "$p"; then
      die "port 127.0.0.1:$p is in use by something that is not our broker ($(port_owner "$p"))" \
        "stop that process, or choose free ports: KAFKA_PORT=$((KAFKA_PORT + 100)) CONTROLLER_PORT=$((CONTROLLER_PORT + 100)) $0 up" \
        "if it is a Kafka you want to use: export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$p"
    fi
  done
  rm -f "$PID_FILE"
  render_config
  cds_opts
  format_storage

  local off=0
  [[ -f "$LOG_DIR/server.log" ]] && off="$(stat -c %s "$LOG_DIR/server.log")"
  echo "$off" >"$STATE_DIR/start-log-offset"
  : >"$LOG_DIR/kafka.out"
  log "starting Kafka $KAFKA_VERSION node $NODE_ID on 127.0.0.1:$NODE_PORT (controller :$NODE_CONTROLLER_PORT, state $STATE_DIR) ..."
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
      "${CDS_OPTS[@]}" ${KAFKA_JVM_OPTS:-} \
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
  LAUNCHED_PID="$(tr -dc '0-9' <"$PID_FILE" 2>/dev/null || true)"
  LAUNCHED_OFFSET="$off"
  [[ -n "$LAUNCHED_PID" ]] || { tail_log; die "node $NODE_ID did not start (see $LOG_DIR/kafka.out)"; }
}

cmd_up() {
  if external_cluster; then
    log "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS is set: using that existing cluster, starting nothing"
    return 0
  fi
  take_lock
  local id pid t0 ports=()
  for ((id = 1; id <= KAFKA_NODES; id++)); do
    ports+=("$(node_port "$id")" "$(node_controller_port "$id")")
  done
  if [[ "$(printf '%s\n' "${ports[@]}" | sort -u | wc -l)" != "${#ports[@]}" ]]; then
    die "the nodes' ports overlap: ${ports[*]} (KAFKA_PORT=$KAFKA_PORT CONTROLLER_PORT=$CONTROLLER_PORT KAFKA_NODE_PORT_STEP=$KAFKA_NODE_PORT_STEP)" \
      "give CONTROLLER_PORT=KAFKA_PORT+1 and a KAFKA_NODE_PORT_STEP of at least 2"
  fi
  t0="$(now_ms)"
  # Every node not running is launched first, then all are awaited: a KRaft node serves only
  # once a majority of the controllers is up, so waiting for each in turn would never end.
  local waiting=() offsets=() pids=()
  for ((id = 1; id <= KAFKA_NODES; id++)); do
    select_node "$id"
    pid="$(our_pid)"
    if [[ -n "$pid" ]]; then
      if port_open "$NODE_PORT"; then
        log "node $NODE_ID already running (pid $pid, 127.0.0.1:$NODE_PORT)"
        continue
      fi
      log "node $NODE_ID (pid $pid) is up but not serving yet: waiting ..."
      waiting+=("$id") pids+=("$pid") offsets+=("$(cat "$STATE_DIR/start-log-offset" 2>/dev/null || echo 0)")
      continue
    fi
    if [[ -z "${JAVA:-}" ]]; then
      check_java
      resolve_jars
    fi
    launch_node
    waiting+=("$id") pids+=("$LAUNCHED_PID") offsets+=("$LAUNCHED_OFFSET")
  done
  local k
  for k in "${!waiting[@]}"; do
    select_node "${waiting[$k]}"
    wait_ready "${pids[$k]}" "${offsets[$k]}" "$t0"
  done
  (( ${#waiting[@]} == 0 )) && return 0
  local ms=$(( $(now_ms) - t0 ))
  log "started Kafka $KAFKA_VERSION node(s) ${waiting[*]} of $OUR_BOOTSTRAP in $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s"
}

stop_pid() { # SIGTERM, wait KAFKA_STOP_TIMEOUT, then SIGKILL
  local pid="$1" deadline
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$(( $(date +%s) + KAFKA_STOP_TIMEOUT ))
  while kill -0 "$pid" 2>/dev/null; do
    if (( $(date +%s) >= deadline )); then
      log "pid $pid still alive after ${KAFKA_STOP_TIMEOUT}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      KILLED=1 # a class-data sharing archive it was writing may be cut short
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  rm -f "$PID_FILE"
}

cmd_down() {
  take_lock
  local id pid stopping=() t0
  t0="$(now_ms)"
  # SIGTERM to every node at once: a node stopped last, alone, would wait for a controller
  # majority that is gone before its stop timeout ends.
  for ((id = 1; id <= KAFKA_NODES; id++)); do
    select_node "$id"
    pid="$(our_pid)"
    rm -f "$PID_FILE"
    [[ -n "$pid" ]] || continue
    kill -TERM "$pid" 2>/dev/null || true
    stopping+=("$pid")
  done
  if (( ${#stopping[@]} == 0 )); then
    log "not running (nothing to stop)"
    return 0
  fi
  log "stopping broker pid(s) ${stopping[*]} (SIGTERM, up to ${KAFKA_STOP_TIMEOUT}s) ..."
  for pid in "${stopping[@]}"; do
    stop_pid "$pid"
  done
  log "stopped in $(( ($(now_ms) - t0) / 1000 )) s"
  if [[ "${KAFKA_CDS:-1}" == 1 ]]; then
    for ((id = 1; id <= KAFKA_NODES; id++)); do
      select_node "$id"
      if (( ${KILLED:-0} )); then
        rm -f "$STATE_DIR/kafka-cds.jsa"
      else
        cds_promote
      fi
    done
  fi
}

cmd_status() {
  local id pid running=() starting=0
  for ((id = 1; id <= KAFKA_NODES; id++)); do
    select_node "$id"
    pid="$(our_pid)"
    if [[ -n "$pid" ]] && port_open "$NODE_PORT"; then
      running+=("$pid")
    elif [[ -n "$pid" ]]; then
      starting=1
    fi
  done
  if (( ${#running[@]} == KAFKA_NODES )); then
    echo "kafka: running (pid ${running[*]}, $OUR_BOOTSTRAP, Kafka $KAFKA_VERSION, state $CLUSTER_DIR)"
    return 0
  fi
  if (( ${#running[@]} > 0 || starting )); then
    echo "kafka: ${#running[@]} of $KAFKA_NODES node(s) serving ($OUR_BOOTSTRAP)"
    return 3
  fi
  if external_cluster; then
    echo "kafka: external cluster KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS (not managed here)"
    return 0
  fi
  select_node 1
  if port_open "$NODE_PORT"; then
    echo "kafka: not running; but port $NODE_PORT is used by another process ($(port_owner "$NODE_PORT"))"
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
  sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  bootstrap) echo "$OUR_BOOTSTRAP" ;;
  *) usage ;;
esac
