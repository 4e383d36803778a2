#!/usr/bin/env bash
# Builds the Kubernetes components of the local cluster from the Go modules pinned in
# hack/k8s/go.mod (Kubernetes), hack/k8s/kube-router/go.mod (kube-router, for NetworkPolicy) and
# hack/k8s/coredns/go.mod (CoreDNS), into a cache
# outside the clone, so a second run, another worktree and CI's fresh clone reuse them.
#
# Usage: hack/k8s/build.sh            build what is missing; prints the bin directory last
#        hack/k8s/build.sh --print    print the bin directory only (nothing is built)
#        hack/k8s/build.sh --only CMD...   build only these Kubernetes commands if missing
#                                     (e.g. kube-apiserver kubectl for hack/check-crd-live.sh)
# Environment: MM_K8S_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/maskmesh/k8s)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' "$here/go.mod")"
kr_version="$(awk '$1 == "require" && $2 == "github.com/cloudnativelabs/kube-router/v2" { print $3 }' "$here/kube-router/go.mod")"
dns_version="$(awk '$1 == "require" && $2 == "github.com/coredns/coredns" { print $3 }' "$here/coredns/go.mod")"
[ -n "$version" ] && [ -n "$kr_version" ] && [ -n "$dns_version" ] || {
    echo "k8s/build: no versions in $here/go.mod, kube-router/go.mod, coredns/go.mod" >&2; exit 1; }
cache="${MM_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/maskmesh/k8s}"
# one directory per set of versions: a change of any pin builds afresh beside the old one
bin="$cache/$version-kube-router$kr_version-coredns$dns_version/bin"
if [ "${1:-}" = --print ]; then echo "$bin"; exit 0; fi

k8s_cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
only=0
if [ "${1:-}" = --only ]; then
    shift
    [ $# -gt 0 ] || { echo "k8s/build: --only needs commands (${k8s_cmds[*]})" >&2; exit 2; }
    for c in "$@"; do
        [[ " ${k8s_cmds[*]} " == *" $c "* ]] || { echo "k8s/build: --only: $c is none of ${k8s_cmds[*]}" >&2; exit 2; }
    done
    k8s_cmds=("$@"); only=1
fi
# all_there: fills missing[]; true when nothing wanted is missing
# kube-router is built from a copy of its module source with hack/k8s/kube-router/*.patch
# applied (the module cache stays pristine); the stamp beside the binary is the patches' hash,
# so a binary built without them (or with older ones) is built again.
kr_patches=("$here"/kube-router/*.patch)
kr_stamp="$(cat "${kr_patches[@]}" | sha256sum | cut -c1-16)"
kr_built() { [ -x "$bin/kube-router" ] && [ "$(cat "$bin/kube-router.patches" 2>/dev/null)" = "$kr_stamp" ]; }
all_there() {
    missing=()
    for c in "${k8s_cmds[@]}"; do [ -x "$bin/$c" ] || missing+=("$c"); done
    # with --only, kube-router and CoreDNS are not wanted
    [ ${#missing[@]} -eq 0 ] && { [ $only -eq 1 ] || { kr_built && [ -x "$bin/coredns" ]; }; }
}
if all_there; then echo "$bin"; exit 0; fi
command -v go >/dev/null || { echo "k8s/build: go is not installed (golang-go or go.dev/dl)" >&2; exit 1; }
mkdir -p "$bin"
# One build at a time per cache: .ci/run starts one in the background, and cluster-up or
# check-crd-live.sh then waits here for it and finds the binaries built.
exec 8>"$cache/.build.lock"
if ! flock -n 8; then
    echo "k8s/build: another build of $bin runs; waiting for it" >&2
    flock 8
fi
if all_there; then echo "$bin"; exit 0; fi
tmp="$(mktemp -d "$bin/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# The version the binaries report (kubectl version, /version, helm's kubeVersion checks) is
# set at link time, as Kubernetes' own build does (hack/lib/version.sh there).
minor="${version#v1.}"; minor="${minor%%.*}"
vpkgs=(k8s.io/component-base/version k8s.io/client-go/pkg/version)
ldflags="-s -w"
for p in "${vpkgs[@]}"; do
    ldflags+=" -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
# Static binaries, as Kubernetes releases them; nice: the machine's two cores are shared.
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -trimpath"
start=$SECONDS
if [ ${#missing[@]} -gt 0 ]; then
    echo "k8s/build: building ${missing[*]} $version (a first build takes many minutes)" >&2
    pkgs=()
    for c in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
    (cd "$here" && nice -n 10 go build -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
    for c in "${missing[@]}"; do mv "$tmp/$c" "$bin/$c"; done
fi
if [ $only -eq 0 ] && ! kr_built; then
    echo "k8s/build: building kube-router $kr_version with ${kr_patches[*]##*/}" >&2
    (cd "$here/kube-router" && go mod download github.com/cloudnativelabs/kube-router/v2)
    kr_src="$(cd "$here/kube-router" && go list -m -f '{{.Dir}}' github.com/cloudnativelabs/kube-router/v2)"
    # a patched copy of the module, and a copy of our go.mod that replaces the module by it
    cp -r "$kr_src" "$tmp/kube-router-src" && chmod -R u+w "$tmp/kube-router-src"
    for p in "${kr_patches[@]}"; do
        patch --quiet --forward -p1 -d "$tmp/kube-router-src" <"$p" ||
            { echo "k8s/build: $p does not apply to kube-router $kr_version" >&2; exit 1; }
    done
    cp "$here/kube-router/go.mod" "$tmp/go.mod" && cp "$here/kube-router/go.sum" "$tmp/go.sum"
    echo "replace github.com/cloudnativelabs/kube-router/v2 => $tmp/kube-router-src" >>"$tmp/go.mod"
    (cd "$here/kube-router" && nice -n 10 go build -modfile "$tmp/go.mod" -ldflags "-s -w" \
        -o "$tmp/kube-router" github.com/cloudnativelabs/kube-router/v2/cmd/kube-router)
    mv "$tmp/kube-router" "$bin/kube-router"
    echo "$kr_stamp" >"$bin/kube-router.patches"
fi
if [ $only -eq 0 ] && [ ! -x "$bin/coredns" ]; then
    echo "k8s/build: building coredns $dns_version" >&2
    (cd "$here/coredns" && nice -n 10 go build -ldflags "-s -w" -o "$tmp/coredns" \
        github.com/coredns/coredns)
    mv "$tmp/coredns" "$bin/coredns"
fi
echo "k8s/build: built in $((SECONDS - start))s" >&2
echo "$bin"
