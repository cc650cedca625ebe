#!/usr/bin/env bash
# The programs the tests drive besides Python: Debian's headless Chromium (tests/browser; never a
# download by Playwright), jq, kcat and uuidgen (the docs' recipes, tests/e2e), the OpenAPI client
# generator (tests/e2e/test_generated_clients.py) and helm (the chart,
# tests/integration/test_helm_chart.py; built from its Go module into the cache, as the Kafka jars
# are kept). Idempotent: does nothing when all are there.
set -euo pipefail
cd "$(dirname "$0")/../.."

# openapi-python-client in an environment of its own under .aidline/tools (its pins, typer
# < 0.28, differ from the project's), installed by the project's locked uv.
GENERATOR_VERSION=0.29.1
TOOLS=.aidline/tools
if ! "$TOOLS/bin/openapi-python-client" --version 2>/dev/null | grep -q "$GENERATOR_VERSION"; then
  echo "==> installing openapi-python-client $GENERATOR_VERSION into $TOOLS"
  UV_TOOL_DIR="$TOOLS/uv" UV_TOOL_BIN_DIR="$TOOLS/bin" .venv/bin/uv tool install --quiet --force \
    "openapi-python-client==$GENERATOR_VERSION"
fi

# helm: `go install` from the Go module proxy, once per version (~7 min on two busy cores with
# nothing cached). The folder is the version (a `go install` binary says only "v4.3"); the build
# lands in a temporary folder first, so a binary there is a whole one.
# HELM_IN_BACKGROUND=1 (deploy/local/test-suite.sh sets it with TEST_WORKERS > 0): the build runs on while the tests
# that do not need helm run; tests/integration/test_helm_chart.py waits for it (tests/infra.py,
# wait_for_helm), and fails with the build's log if it failed. Its pid is in build.pid, its
# output in build.log and its exit status, once it ended, in build.status.
HELM_VERSION=v4.3.2
HELM_DIR="${AIDLINE_CACHE:-${HOME:-/root}/.cache/aidline}/helm-$HELM_VERSION"
build_helm() {
  local build
  build=$(mktemp -d "$HELM_DIR/build.XXXXXX") \
    && GOBIN="$build" GOFLAGS=-buildvcs=false go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" \
    && mv "$build/helm" "$HELM_DIR/helm" \
    && rmdir "$build"
}
if [[ ! -x "$HELM_DIR/helm" ]]; then
  if ! command -v go >/dev/null; then
    echo "test-tools.sh: helm $HELM_VERSION is built with Go 1.26+, which is missing" >&2
    exit 1
  fi
  mkdir -p "$HELM_DIR"
  pid=$(cat "$HELM_DIR/build.pid" 2>/dev/null || true)
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
    echo "==> helm $HELM_VERSION is being built already (pid $pid, log $HELM_DIR/build.log)"
  elif [[ "${HELM_IN_BACKGROUND:-0}" == 1 ]]; then
    echo "==> building helm $HELM_VERSION into $HELM_DIR in the background (log: $HELM_DIR/build.log)"
    rm -f "$HELM_DIR/build.status"
    export -f build_helm
    export HELM_DIR HELM_VERSION
    # shellcheck disable=SC2016 # expanded by the inner shell
    setsid nohup bash -c 'echo $$ >"$HELM_DIR/build.pid"; rc=0; build_helm || rc=$?;
      echo "$rc" >"$HELM_DIR/build.status.tmp"; mv "$HELM_DIR/build.status.tmp" "$HELM_DIR/build.status"' \
      </dev/null >"$HELM_DIR/build.log" 2>&1 &
  else
    echo "==> building helm $HELM_VERSION into $HELM_DIR (go install, once)"
    build_helm
  fi
fi

missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
command -v jq >/dev/null || missing+=(jq)
# The docs' recipes (tests/e2e/test_doc_recipes.py): Kafka from the shell, and uuidgen.
command -v kcat >/dev/null || missing+=(kcat)
command -v uuidgen >/dev/null || missing+=(uuid-runtime)
(( ${#missing[@]} == 0 )) && exit 0

if ! command -v apt-get >/dev/null; then
  echo "test-tools.sh: missing ${missing[*]} and apt-get is not available; install them" >&2
  exit 1
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  SUDO="sudo"
fi
echo "==> installing Debian packages for the tests: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
