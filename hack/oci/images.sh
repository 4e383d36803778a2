#!/usr/bin/env bash
# Container images without Docker or a registry: OCI image-layout archives written by
# hack/oci/oci-image.py from this machine's binaries, imported into the local cluster's
# containerd (namespace k8s.io). Pods use them with imagePullPolicy Never.
#
# Usage: hack/oci/images.sh cluster BIN    pause + CoreDNS (BIN: hack/k8s/build.sh's directory)
#        hack/oci/images.sh project        maskmesh's images (the Dockerfile's stages, the names
#                                          of hack/images.env) + the e2e test apps and client
#        hack/oci/images.sh import SET     ctr import SET's archives (cluster|project)
#        hack/oci/images.sh refs SET       print SET's image references
# Archives go to build/oci/<set>/ (OCI_DIR overrides). REGISTRY and TAG override images.env.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
. "$root/hack/cluster/lib.sh"
out="${OCI_DIR:-$root/build/oci}"
tool="$root/hack/oci/oci-image.py"

# hack/images.env, unless the environment already sets a key (as hack/build-images.sh does)
while IFS='=' read -r key value; do
    case "$key" in ''|\#*) continue ;; esac
    [ -n "${!key:-}" ] || printf -v "$key" '%s' "$value"
done <"$root/hack/images.env"
MM_TESTAPP_IMAGE=maskmesh.local/mm-testapp:dev
MM_CLIENT_IMAGE=maskmesh.local/e2e-client:dev
MM_E2E_APPS_IMAGE=maskmesh.local/e2e-apps:dev

refs() {
    case "$1" in
        cluster) echo "$MM_PAUSE_IMAGE $MM_COREDNS_IMAGE" ;;
        project) echo "$REGISTRY/$CONTROLLER_IMAGE:$TAG $REGISTRY/$WEBHOOK_IMAGE:$TAG" \
                      "$REGISTRY/$PROXY_IMAGE:$TAG $REGISTRY/$STREAM_IMAGE:$TAG" \
                      "$REGISTRY/$MASKCTL_IMAGE:$TAG" \
                      "$MM_TESTAPP_IMAGE $MM_CLIENT_IMAGE $MM_E2E_APPS_IMAGE" ;;
        *) echo "images: unknown set $1 (cluster|project)" >&2; exit 2 ;;
    esac
}
archive() { echo "$out/$1/$(echo "$2" | tr '/:' '__').tar"; }
# fresh ARCHIVE INPUT...: the archive exists and is newer than every input (a rerun, as in
# make e2e-cluster twice, then skips minutes of ldd, tar and gzip on a busy machine)
fresh() {
    local a=$1 f
    shift
    [ -f "$a" ] || return 1
    for f in "$@" "$tool" "${BASH_SOURCE[0]}"; do [ "$a" -nt "$f" ] || return 1; done
}

build_cluster() {
    local bin=$1 dir="$out/cluster"
    mkdir -p "$dir"
    [ -x "$bin/coredns" ] || { echo "images: no $bin/coredns (hack/k8s/build.sh)" >&2; exit 1; }
    if fresh "$(archive cluster "$MM_PAUSE_IMAGE")" "$root/hack/oci/pause.c" &&
       fresh "$(archive cluster "$MM_COREDNS_IMAGE")" "$bin/coredns"; then
        echo "images: the cluster's archives are up to date" >&2
        return 0
    fi
    # the pause program: static, so the image is the one file
    cc -static -Os -std=c11 -Wall -Wextra -Werror -o "$dir/mm-pause" "$root/hack/oci/pause.c"
    python3 "$tool" --ref "$MM_PAUSE_IMAGE" --out "$(archive cluster "$MM_PAUSE_IMAGE")" \
        --file "$dir/mm-pause:/pause" --entrypoint '["/pause"]' --user 65535:65535
    python3 "$tool" --ref "$MM_COREDNS_IMAGE" --out "$(archive cluster "$MM_COREDNS_IMAGE")" \
        --file "$bin/coredns:/coredns" --entrypoint '["/coredns"]' --expose 53/udp --expose 53
}

build_project() {
    local dir="$out/project" n apps
    mkdir -p "$dir"
    # the gRPC service and WebSocket app of e2e/suite/protocols.sh (static Go, cached)
    apps="$("$root/e2e/apps/build.sh" | tail -1)"
    local inputs=("$root/Dockerfile" "$root"/bin/* "$root/build/tools/mm-testapp" /bin/busybox /usr/bin/curl
                  "$apps" "$root/tests/grpc/shop.protoset")
    local r stale=0
    for r in $(refs project); do fresh "$(archive project "$r")" "${inputs[@]}" || stale=1; done
    if [ $stale = 0 ]; then
        echo "images: the project's archives are up to date" >&2
        return 0
    fi
    for n in "$CONTROLLER_IMAGE" "$WEBHOOK_IMAGE" "$PROXY_IMAGE" "$STREAM_IMAGE" "$MASKCTL_IMAGE"; do
        python3 "$tool" --ref "$REGISTRY/$n:$TAG" --out "$(archive project "$REGISTRY/$n:$TAG")" \
            --dockerfile "$root/Dockerfile" --target "$n" --bin-dir "$root/bin"
    done
    [ -x "$root/build/tools/mm-testapp" ] || { echo "images: build/tools/mm-testapp is missing (make units)" >&2; exit 1; }
    python3 "$tool" --ref "$MM_TESTAPP_IMAGE" --out "$(archive project "$MM_TESTAPP_IMAGE")" \
        --file "$root/build/tools/mm-testapp:/usr/local/bin/mm-testapp" \
        --entrypoint '["/usr/local/bin/mm-testapp"]' --user 65532:65532
    python3 "$tool" --ref "$MM_E2E_APPS_IMAGE" --out "$(archive project "$MM_E2E_APPS_IMAGE")" \
        --file "$apps:/usr/local/bin/mm-e2e-apps" --file "$root/tests/grpc/shop.protoset:/etc/mm-e2e/shop.protoset" \
        --entrypoint '["/usr/local/bin/mm-e2e-apps"]' --user 65532:65532
    # the client the suite execs into: busybox (sh, sleep, nc, wget) and curl
    local links=() c
    for c in sh ash sleep cat echo ls nc wget env true false test grep sed head tail wc id hostname; do
        links+=(--link "/bin/$c=busybox")
    done
    python3 "$tool" --ref "$MM_CLIENT_IMAGE" --out "$(archive project "$MM_CLIENT_IMAGE")" \
        --file /bin/busybox:/usr/bin/busybox --file /usr/bin/curl "${links[@]}" \
        --entrypoint '["/bin/sleep"]' --cmd '["infinity"]' --user 65532:65532
}

import() {
    local ref f have
    for ref in $(refs "$1"); do
        f="$(archive "$1" "$ref")"
        [ -f "$f" ] || { echo "images: $f is missing (hack/oci/images.sh $1 ...)" >&2; exit 1; }
        ctr --address "$MM_CONTAINERD_SOCK" -n k8s.io images import "$f" >/dev/null
        have="$(ctr --address "$MM_CONTAINERD_SOCK" -n k8s.io images ls -q)"
        grep -qxF "$ref" <<<"$have" ||
            { echo "images: $ref is not in containerd after importing $f" >&2; exit 1; }
    done
    echo "images: imported $(refs "$1" | wc -w) image(s) of set $1" >&2
}

case "${1:-}" in
    cluster) [ $# -eq 2 ] || { echo "usage: $0 cluster BIN" >&2; exit 2; }; build_cluster "$2" ;;
    project) build_project ;;
    import) [ $# -eq 2 ] || { echo "usage: $0 import SET" >&2; exit 2; }; import "$2" ;;
    refs) refs "${2:-}" ;;
    *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
