#!/usr/bin/env bash
# Headless Chromium for the browser tests (tests/browser): Debian's package, never a download
# by Playwright. Idempotent: does nothing when /usr/bin/chromium is already there.
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "browser.sh: /usr/bin/chromium is missing and apt-get is not available; install Chromium" >&2
  exit 1
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  SUDO="sudo"
fi
echo "==> installing Debian's chromium for the browser tests"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium >/dev/null
/usr/bin/chromium --version
