#!/usr/bin/env bash
# crds/ is the source of the MaskingPolicy CRD; the Helm chart ships an identical copy in
# charts/maskmesh/crds/ (Helm reads CRDs only from inside the chart).
#   hack/sync-crds.sh          copy crds/*.yaml (not kustomization.yaml) into the chart
#   hack/sync-crds.sh --check  exit 1, naming the files, when the copies differ
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/crds"
dst="$root/charts/maskmesh/crds"
mode="${1:-sync}"
case "$mode" in sync|--check) ;; *) echo "usage: $0 [--check]" >&2; exit 2 ;; esac

want=()
for f in "$src"/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] && continue
    want+=("$(basename "$f")")
done
[ ${#want[@]} -gt 0 ] || { echo "sync-crds: no CRD in $src" >&2; exit 1; }

bad=0
if [ "$mode" = --check ]; then
    for f in "${want[@]}"; do
        if ! cmp -s "$src/$f" "$dst/$f"; then
            echo "sync-crds: charts/maskmesh/crds/$f differs from crds/$f (run hack/sync-crds.sh)" >&2
            bad=1
        fi
    done
    for f in "$dst"/*.yaml; do
        [ -e "$f" ] || continue
        case " ${want[*]} " in *" $(basename "$f") "*) ;; *)
            echo "sync-crds: charts/maskmesh/crds/$(basename "$f") has no source in crds/" >&2; bad=1 ;;
        esac
    done
    [ "$bad" -eq 0 ] && echo "sync-crds: charts/maskmesh/crds/ matches crds/"
    exit "$bad"
fi

mkdir -p "$dst"
for f in "$dst"/*.yaml; do
    [ -e "$f" ] || continue
    case " ${want[*]} " in *" $(basename "$f") "*) ;; *) rm -f "$f"; echo "sync-crds: removed $f" ;; esac
done
for f in "${want[@]}"; do
    cp "$src/$f" "$dst/$f"
done
echo "sync-crds: copied ${want[*]} into charts/maskmesh/crds/"
