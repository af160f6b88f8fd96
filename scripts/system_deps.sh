#!/usr/bin/env bash
# Debian packages the project uses beyond Python, installed when missing (idempotent; `make setup` runs it):
#   python3 python3-pytest git make patch   ShellEnv's workspaces run them inside the sandbox
#   chromium                                the dashboard's browser tests drive it headless
#   bubblewrap                              bench/shell_env.py compares the sandbox against bwrap
# As root (or with passwordless sudo) it installs with apt-get; otherwise it names what to install and exits 0, so
# `make setup` still works (the tests that need a missing package then fail or skip naming it).
set -euo pipefail
PACKAGES=(python3 python3-pytest git make patch chromium bubblewrap)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system_deps.sh: missing ${missing[*]} and no apt-get here; install them with your package manager" >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  echo "system_deps.sh: missing ${missing[*]}; install with: sudo apt-get install -y ${missing[*]}" >&2
  exit 0
fi
echo "system_deps.sh: installing ${missing[*]} with apt-get"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
  || echo "system_deps.sh: apt-get could not install ${missing[*]}" >&2
