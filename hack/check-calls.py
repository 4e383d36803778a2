#!/usr/bin/env python3
"""Call circles between the files of a module: for each lib/<m>, which file uses a function
(or object) another file of the module defines, from the symbols of the built objects
(`nm`: defined T/D/B/R, undefined U). A set of two or more files that reach each other is a
circle: no file of it can be read or changed alone. Prints each circle with one use per
edge (`a.c -> b.c (b_fn)`) and `N passed, N failed` (one check per module).

usage: hack/check-calls.py BUILD_DIR [--allow MODULE ...]
--allow names modules whose circles are known and being removed elsewhere: they are
reported as such and not failed."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "pylib"))
from mmcheck import check, summary  # noqa: E402


def symbols(obj):
    out = subprocess.run(["nm", "--defined-only", obj], capture_output=True, text=True, check=True).stdout
    defined = {ln.split()[-1] for ln in out.splitlines() if len(ln.split()) == 3 and ln.split()[1] in "TDBR"}
    out = subprocess.run(["nm", "--undefined-only", obj], capture_output=True, text=True, check=True).stdout
    used = {ln.split()[-1] for ln in out.splitlines() if ln.split()}
    return defined, used


def circles(graph):
    """Strongly connected components of two or more nodes (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main(argv):
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    build, allow = argv[0], set(argv[2:]) if argv[1:2] == ["--allow"] else set()
    root = os.path.join(build, "lib")
    if not check(os.path.isdir(root), f"{root}: built objects (run make first)"):
        return summary()
    for m in sorted(os.listdir(root)):
        d = os.path.join(root, m)
        objs = sorted(f for f in os.listdir(d) if f.endswith(".o")) if os.path.isdir(d) else []
        if not objs:
            continue
        syms = {f[:-2] + ".c": symbols(os.path.join(d, f)) for f in objs}
        owner = {s: f for f, (defs, _) in syms.items() for s in defs}
        graph, why = {}, {}
        for f, (_, used) in syms.items():
            graph[f] = set()
            for s in sorted(used):
                g = owner.get(s)
                if g and g != f:
                    graph[f].add(g)
                    why.setdefault((f, g), s)
        found = circles(graph)
        for comp in found:
            edges = ", ".join(f"{a} -> {b} ({why[(a, b)]})" for a in comp for b in sorted(graph[a]) if b in comp)
            print(f"lib/{m}: call circle between {', '.join(comp)}: {edges}"
                  + (" (known, allowed)" if m in allow else ""))
        check(not found or m in allow, f"lib/{m}: no call circle between its files")
    return summary()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
