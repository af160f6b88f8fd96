#!/usr/bin/env bash
# System packages the project uses beyond Python: Debian's chromium (the dashboard's browser tests drive it headless).
# Installs what is missing with apt-get when run as root (or with passwordless sudo); otherwise says what to install
# and exits 0, so `make setup` still works (the browser tests then skip, naming the reason).
set -euo pipefail
PACKAGES=(chromium)
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  echo "system_deps.sh: missing ${missing[*]}; install with: sudo apt-get install -y ${missing[*]} (browser tests skip until then)" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system_deps.sh: missing ${missing[*]} and no apt-get here; install chromium with your package manager" >&2
  exit 0
fi
echo "system_deps.sh: installing ${missing[*]} (of ${PACKAGES[*]}) with apt-get"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
  || echo "system_deps.sh: apt-get could not install ${missing[*]}; browser tests will skip" >&2
