#!/usr/bin/env bash
# Vendor the dashboard's chart library (uPlot, MIT) from the npm registry into dspy_rl/dashboard/static/vendor/.
# The files are committed, so a fresh clone needs nothing at build or run time; rerun this only to upgrade
# (change VERSION, then update the SHA-256 sums below from the new files).
set -euo pipefail
VERSION=1.6.32
DEST="$(cd "$(dirname "$0")/.." && pwd)/dspy_rl/dashboard/static/vendor"
command -v npm >/dev/null || { echo "vendor_uplot.sh: npm is required (apt-get install npm)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "uplot@$VERSION" >/dev/null && tar xzf "uplot-$VERSION.tgz")
mkdir -p "$DEST"
cp "$tmp/package/dist/uPlot.iife.min.js" "$DEST/uPlot.iife.min.js"
cp "$tmp/package/dist/uPlot.min.css" "$DEST/uPlot.min.css"
cp "$tmp/package/LICENSE" "$DEST/uPlot.LICENSE"
echo "uplot $VERSION" > "$DEST/VERSION"
(cd "$DEST" && sha256sum uPlot.iife.min.js uPlot.min.css > SHA256SUMS)
echo "vendored uPlot $VERSION into $DEST"
