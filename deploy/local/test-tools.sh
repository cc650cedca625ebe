#!/usr/bin/env bash
# The programs the tests drive besides Python: Debian's headless Chromium (tests/browser; never a
# download by Playwright) and jq (the README's walk-through script, tests/e2e). Idempotent: does
# nothing when both are there.
set -euo pipefail

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
