#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed: the web app's browser test drives it through
# Playwright (whose own browser download is never used). Installs the package if missing.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
echo "Chromium is not installed: installing Debian's package" >&2
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
