#!/usr/bin/env bash
# Debian packages that ShellEnv's workspaces need inside the sandbox: python3 with pytest, git, make, patch.
# Idempotent: installs only what is missing; needs root (apt-get). Usage: scripts/system_packages.sh
set -euo pipefail
PACKAGES=(python3 python3-pytest git make patch)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ShellEnv needs the Debian packages: ${missing[*]}; install them as root: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}"
