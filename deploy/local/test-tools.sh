#!/usr/bin/env bash
# The programs the tests drive besides Python: Debian's headless Chromium (tests/browser; never a
# download by Playwright), jq (the README's walk-through script, tests/e2e) and the OpenAPI client
# generator (tests/e2e/test_generated_clients.py). Idempotent: does nothing when all are there.
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

missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
command -v jq >/dev/null || missing+=(jq)
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
