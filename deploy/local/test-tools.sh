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
HELM_VERSION=v4.3.2
HELM_DIR="${AIDLINE_CACHE:-${HOME:-/root}/.cache/aidline}/helm-$HELM_VERSION"
if [[ ! -x "$HELM_DIR/helm" ]]; then
  if ! command -v go >/dev/null; then
    echo "test-tools.sh: helm $HELM_VERSION is built with Go 1.26+, which is missing" >&2
    exit 1
  fi
  echo "==> building helm $HELM_VERSION into $HELM_DIR (go install, once)"
  mkdir -p "$HELM_DIR"
  build=$(mktemp -d "$HELM_DIR/build.XXXXXX")
  GOBIN="$build" GOFLAGS=-buildvcs=false go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  mv "$build/helm" "$HELM_DIR/helm"
  rmdir "$build"
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
