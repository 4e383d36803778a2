#!/usr/bin/env bash
# Builds maskmesh's images from the top-level Dockerfile, one target per binary, named as
# hack/images.env says (REGISTRY, TAG and the names; environment variables override REGISTRY
# and TAG).
#
# Usage: hack/build-images.sh [--push] [--platform P] [NAME...]   build (and push) NAMEs, or all
#        hack/build-images.sh --list                                print the references only
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_file="$root/hack/images.env"

# KEY=value lines of images.env, unless the environment already sets KEY
while IFS='=' read -r key value; do
    case "$key" in ''|\#*) continue ;; esac
    [[ "$key" =~ ^[A-Z_][A-Z0-9_]*$ ]] || { echo "build-images: bad line in $env_file: $key" >&2; exit 1; }
    [ -n "${!key:-}" ] || printf -v "$key" '%s' "$value"
done <"$env_file"
all=("$CONTROLLER_IMAGE" "$WEBHOOK_IMAGE" "$PROXY_IMAGE" "$STREAM_IMAGE" "$MASKCTL_IMAGE")

push=0
list=0
platform=""
names=()
while [ $# -gt 0 ]; do
    case "$1" in
        --push) push=1; shift ;;
        --list) list=1; shift ;;
        --platform) [ $# -ge 2 ] || { echo "build-images: --platform needs a value" >&2; exit 2; }
                    platform="$2"; shift 2 ;;
        -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "build-images: unknown option $1" >&2; exit 2 ;;
        *) names+=("$1"); shift ;;
    esac
done
[ ${#names[@]} -gt 0 ] || names=("${all[@]}")
for n in "${names[@]}"; do
    case " ${all[*]} " in *" $n "*) ;; *)
        echo "build-images: unknown image $n (one of: ${all[*]})" >&2; exit 2 ;;
    esac
done

if [ "$list" -eq 1 ]; then
    for n in "${names[@]}"; do echo "$REGISTRY/$n:$TAG"; done
    exit 0
fi

if ! command -v docker >/dev/null 2>&1; then
    echo "build-images: the docker client is not installed" >&2
    exit 1
fi
if ! err="$(docker info --format '{{.ServerVersion}}' 2>&1 >/dev/null)" || \
   ! docker info >/dev/null 2>&1; then
    echo "build-images: no Docker engine is running (docker info: ${err:-no answer})." >&2
    echo "build-images: start dockerd, or point DOCKER_HOST at an engine, then run this again." >&2
    exit 1
fi

args=(--file "$root/Dockerfile")
[ -n "$platform" ] && args+=(--platform "$platform")
for n in "${names[@]}"; do
    ref="$REGISTRY/$n:$TAG"
    echo "build-images: $ref (target $n)" >&2
    DOCKER_BUILDKIT=1 docker build "${args[@]}" --target "$n" --tag "$ref" \
        --label "org.opencontainers.image.version=$TAG" "$root"
    if [ "$push" -eq 1 ]; then
        docker push "$ref"
    fi
done
echo "build-images: built ${#names[@]} image(s)" >&2
