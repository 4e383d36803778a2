#!/usr/bin/env python3
"""Writes a container image as an OCI image-layout tarball, without a container engine.

The image is one layer: the files given (with the shared libraries their ELF files need, as
ldd on this Debian machine finds them) in a minimal root filesystem. What runs, as whom and on
which ports comes from a target stage of the Dockerfile (ENTRYPOINT, USER, EXPOSE, WORKDIR,
and the Debian packages its RUN apt-get install lines add), so that `make images` (Docker) and
these archives describe the same images. `ctr -n k8s.io images import FILE` loads the result.

Usage:
  oci-image.py --ref REF --out FILE.tar [--dockerfile F --target T] [--entrypoint JSON]
               [--user U] [--file SRC[:DST]]... [--package DEB]... [--expose PORT]...
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile

# Created in every image: what runtimes and programs expect to find.
BASE_DIRS = {"dev": 0o755, "etc": 0o755, "proc": 0o755, "sys": 0o755,
             "tmp": 0o1777, "usr": 0o755, "usr/local": 0o755, "usr/local/bin": 0o755,
             "var": 0o755, "run": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755,
             "usr/lib": 0o755, "usr/lib64": 0o755}
# Debian's merged /usr: /bin, /lib, ... are links into /usr, as on the machine the files come from.
BASE_LINKS = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64",
              "var/run": "../run"}
BASE_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/sbin/nologin\n"
                  "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    "etc/group": "root:x:0:\nnonroot:x:65532:\n",
    "etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
}


def fail(msg):
    sys.exit("oci-image: " + msg)


def dockerfile_stage(path, target):
    """The settings of stage `target` and of the stages it is built FROM, in this file."""
    stages, cur = {}, None
    with open(path) as f:
        text = re.sub(r"\\\n", " ", f.read())
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            if not m:
                fail(f"{path}:{lineno}: cannot read FROM")
            cur = {"from": m.group(1), "entrypoint": None, "user": None, "expose": [],
                   "workdir": None, "packages": [], "copies": []}
            stages[m.group(2) or m.group(1)] = cur
        elif cur is None:
            continue
        elif word == "ENTRYPOINT":
            cur["entrypoint"] = json.loads(rest)
        elif word == "USER":
            cur["user"] = rest.strip()
        elif word == "EXPOSE":
            cur["expose"] += rest.split()
        elif word == "WORKDIR":
            cur["workdir"] = rest.strip()
        elif word == "COPY" and "--from=build" in rest:
            args = [a for a in shlex.split(rest) if not a.startswith("--")]
            cur["copies"].append((args[0], args[-1]))
        elif word == "RUN":
            for m in re.finditer(r"apt-get install\s+((?:-\S+\s+)*)([^&;|]+)", rest):
                cur["packages"] += m.group(2).split()
    if target not in stages:
        fail(f"{path}: no stage {target}")
    chain, name = [], target
    while name in stages:
        chain.insert(0, stages[name])
        name = stages[name]["from"]
    out = {"entrypoint": None, "user": None, "expose": [], "workdir": None, "packages": [],
           "copies": []}
    for st in chain:
        for k in ("entrypoint", "user", "workdir"):
            if st[k] is not None:
                out[k] = st[k]
        out["expose"] += st["expose"]
    # the last stage's own files and packages (the runtime base's libraries come from ldd;
    # what it copies in to check is deleted there)
    out["copies"] = chain[-1]["copies"]
    out["packages"] = chain[-1]["packages"]
    return out


def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def ldd(path):
    """The shared libraries `path` loads (absolute paths), the dynamic loader included."""
    r = subprocess.run(["ldd", path], capture_output=True, text=True)
    if r.returncode != 0:  # static binaries: "not a dynamic executable"
        return []
    libs = []
    for line in r.stdout.splitlines():
        if "not found" in line:
            fail(f"{path}: {line.strip()}")
        m = re.search(r"(/\S+)\s+\(0x", line)
        if m:
            libs.append(m.group(1))
    return libs


def package_files(pkg):
    r = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"Debian package {pkg} is not installed on this machine (dpkg -L: {r.stderr.strip()})")
    skip = ("/usr/share/doc", "/usr/share/man", "/usr/share/lintian", "/usr/share/bug")
    files = [p for p in r.stdout.splitlines()
             if p and not p.startswith(skip) and (os.path.isfile(p) or os.path.islink(p))]
    # the commands its maintainer scripts made with update-alternatives (iptables -> iptables-nft)
    real = {os.path.realpath(p) for p in files}
    for d in ("/usr/bin", "/usr/sbin"):
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if os.path.islink(p) and os.readlink(p).startswith("/etc/alternatives/") and \
                    os.path.realpath(p) in real:
                files.append(p)
    return files


class Layer:
    def __init__(self):
        self.entries = {}  # path in image -> (kind, data)

    def add_dir(self, dst, mode=0o755):
        dst = dst.strip("/")
        parts = dst.split("/")
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i])
            if p and p not in self.entries:
                self.entries[p] = ("dir", BASE_DIRS.get(p, mode))

    def add_bytes(self, dst, data, mode=0o644):
        dst = dst.strip("/")
        self.add_dir(os.path.dirname(dst))
        self.entries[dst] = ("bytes", (data, mode))

    def add_host(self, src, dst=None, follow_libs=True):
        """A file of this machine at `dst` (default: the same path); symlinks stay symlinks
        and their targets come along; ELF files bring their shared libraries."""
        # the file's own name in its directory's real place (/lib/x -> /usr/lib/x)
        src = os.path.join(os.path.realpath(os.path.dirname(src)), os.path.basename(src))
        dst = (dst or src).strip("/")
        if dst in self.entries:
            return
        self.add_dir(os.path.dirname(dst))
        if os.path.islink(src) and dst == src.strip("/"):
            target = os.readlink(src)
            self.entries[dst] = ("link", target)
            self.add_host(os.path.normpath(os.path.join(os.path.dirname(src), target)))
            return
        real = os.path.realpath(src)
        if not os.path.isfile(real):
            fail(f"{src}: no such file")
        self.entries[dst] = ("file", real)
        if follow_libs and is_elf(real):
            for lib in ldd(real):
                self.add_host(lib)

    def tar(self):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
            for path in sorted(self.entries):
                kind, data = self.entries[path]
                ti = tarfile.TarInfo(path)
                ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 0, 0, 0, "", ""
                if kind == "dir":
                    ti.type, ti.mode = tarfile.DIRTYPE, data
                    t.addfile(ti)
                elif kind == "link":
                    ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, data, 0o777
                    t.addfile(ti)
                elif kind == "bytes":
                    ti.size, ti.mode = len(data[0]), data[1]
                    t.addfile(ti, io.BytesIO(data[0]))
                else:
                    st = os.stat(data)
                    ti.size, ti.mode = st.st_size, st.st_mode & 0o7777
                    with open(data, "rb") as f:
                        t.addfile(ti, f)
        return buf.getvalue()


def blob(out, data):
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    out.addfile(info, io.BytesIO(data))
    return {"digest": f"sha256:{digest}", "size": len(data)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", required=True, help="image name, e.g. ghcr.io/maskmesh/x:0.1.0")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dockerfile")
    ap.add_argument("--target")
    ap.add_argument("--bin-dir", default="bin", help="where the Dockerfile's /src/bin/ files are")
    ap.add_argument("--entrypoint", help="JSON array")
    ap.add_argument("--cmd", help="JSON array")
    ap.add_argument("--user")
    ap.add_argument("--expose", action="append", default=[])
    ap.add_argument("--file", action="append", default=[], help="SRC[:DST]")
    ap.add_argument("--link", action="append", default=[], help="DST=TARGET: a symlink")
    ap.add_argument("--package", action="append", default=[], help="a Debian package's files")
    a = ap.parse_args()

    conf = {"entrypoint": None, "user": None, "expose": [], "workdir": None, "packages": [],
            "copies": []}
    if a.dockerfile:
        if not a.target:
            fail("--dockerfile needs --target")
        conf = dockerfile_stage(a.dockerfile, a.target)
    layer = Layer()
    for d, mode in BASE_DIRS.items():
        layer.add_dir(d, mode)
    for path, target in BASE_LINKS.items():
        layer.entries[path] = ("link", target)
    for path, text in BASE_FILES.items():
        layer.add_bytes(path, text.encode())
    for src, dst in conf["copies"]:
        if not src.startswith("/src/bin/"):
            fail(f"{a.dockerfile}: COPY from {src}: only /src/bin/ files are known here")
        layer.add_host(os.path.join(a.bin_dir, src[len("/src/bin/"):]), dst)
    for f in a.file:
        src, _, dst = f.partition(":")
        layer.add_host(src, dst or None)
    for pkg in conf["packages"] + a.package:
        if pkg in ("ca-certificates",):
            layer.add_host("/etc/ssl/certs/ca-certificates.crt")
            continue
        for p in package_files(pkg):
            layer.add_host(p)
    for ln in a.link:
        dst, _, target = ln.partition("=")
        layer.add_dir(os.path.dirname(dst.strip("/")))
        layer.entries[dst.strip("/")] = ("link", target)

    raw = layer.tar()
    gz = gzip.compress(raw, mtime=0)
    entrypoint = json.loads(a.entrypoint) if a.entrypoint else conf["entrypoint"]
    user = a.user or conf["user"]
    config = {
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Entrypoint": entrypoint, "WorkingDir": conf["workdir"] or "/"},
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
        "history": [{"created_by": f"hack/oci/oci-image.py {a.target or ''}".strip()}],
    }
    if a.cmd:
        config["config"]["Cmd"] = json.loads(a.cmd)
    if user:
        config["config"]["User"] = user
    ports = conf["expose"] + a.expose
    if ports:
        config["config"]["ExposedPorts"] = {(p if "/" in p else p + "/tcp"): {} for p in ports}

    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmp"
    with tarfile.open(tmp, "w") as out:
        layer_desc = blob(out, gz)
        config_desc = blob(out, json.dumps(config, sort_keys=True).encode())
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": dict(config_desc, mediaType="application/vnd.oci.image.config.v1+json"),
                    "layers": [dict(layer_desc, mediaType="application/vnd.oci.image.layer.v1.tar+gzip")]}
        man_desc = blob(out, json.dumps(manifest, sort_keys=True).encode())
        tag = a.ref.rsplit(":", 1)[1] if ":" in a.ref.rsplit("/", 1)[-1] else "latest"
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": [dict(man_desc,
                                    mediaType="application/vnd.oci.image.manifest.v1+json",
                                    platform={"architecture": "amd64", "os": "linux"},
                                    annotations={"io.containerd.image.name": a.ref,
                                                 "org.opencontainers.image.ref.name": tag})]}
        for name, data in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                           ("index.json", json.dumps(index, sort_keys=True).encode())):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode = len(data), 0, 0o644
            out.addfile(ti, io.BytesIO(data))
    os.replace(tmp, a.out)
    print(f"oci-image: {a.ref} -> {a.out} ({len(gz) >> 10} KiB, {len(layer.entries)} entries)")


if __name__ == "__main__":
    main()
