#!/usr/bin/env bash
# The browser test drives Debian's Chromium (playwright-core downloads no browser).
# Installs the `chromium` package when it is missing and this user can.
set -euo pipefail
chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ -x "$chromium" ]; then exit 0; fi
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; else sudo="none"; fi
  if [ "$sudo" != none ]; then
    echo "Installing Debian's chromium for the browser test…"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
    exit 0
  fi
fi
echo "The browser test needs Chromium at $chromium: install Debian's 'chromium' package, or set CHROMIUM_PATH." >&2
exit 1
