#!/usr/bin/env python3
"""Turns an OCI image archive into the OCI runtime bundle an appliance boots.

usage: tools/oci2bundle.py IMAGE.tar OUT_DIR [--ready SPEC] [--platform linux/amd64]
                           [-- ARGS...]

IMAGE.tar is an OCI image layout (oci-layout, index.json, blobs/) or a `docker save`
archive (manifest.json). SPEC is tcp:PORT, http:PORT[/PATH] (an answer to a GET),
log:PATTERN or start (ready once started).
OUT_DIR gets rootfs/ (the layers applied in order, whiteouts
honoured, owners, modes, times, devices and xattrs kept), config.json (the runtime spec from
the image config: entrypoint and command, env, user, working directory) and `ready` when a
readiness spec is given or the image exposes exactly one TCP port. Prints a JSON summary
(image digest, name, args, ready) on stdout.

The app shares the VM's network and hostname (no network or UTS namespace): the VM is the
sandbox, its NIC and hostname are the app's. Run as root: files keep their owners.

Layers are untrusted: every path is resolved inside rootfs (a symlink never leads a write
outside it), `..` never climbs above it, and member types other than files, directories,
links, devices and fifos are refused.
"""
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile

MAX_HOPS = 40
CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
        "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
# The mounts every container gets (as `runc spec` has them, without the cgroup tree).
MOUNTS = [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
     "options": ["nosuid", "noexec", "nodev", "ro"]},
]
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Fatal(Exception):
    pass


def parts_of(path):
    return [p for p in path.split("/") if p not in ("", ".")]


def resolve(root, rel, follow_last):
    """rel's host path inside root, following symlinks as if root were /."""
    todo = parts_of(rel)
    cur = []
    hops = 0
    while todo:
        c = todo.pop(0)
        if c == "..":
            if cur:
                cur.pop()
            continue
        path = os.path.join(root, *cur, c)
        if os.path.islink(path) and (todo or follow_last):
            hops += 1
            if hops > MAX_HOPS:
                raise Fatal(f"{rel}: too many levels of symbolic links")
            target = os.readlink(path)
            if target.startswith("/"):
                cur = []
            todo = parts_of(target) + todo
            continue
        cur.append(c)
    return os.path.join(root, *cur)


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


class Archive:
    """Blobs of an image archive, read without unpacking it to disk."""

    def __init__(self, path):
        try:
            self.tar = tarfile.open(path, "r:*")
        except (OSError, tarfile.TarError) as e:
            raise Fatal(f"{path}: not a readable tar archive ({e})")
        self.names = {os.path.normpath(m.name): m for m in self.tar.getmembers()
                      if m.isfile()}

    def open(self, name):
        m = self.names.get(os.path.normpath(name))
        if not m:
            raise Fatal(f"the archive has no {name}")
        return self.tar.extractfile(m)

    def json(self, name):
        try:
            return json.load(self.open(name))
        except ValueError as e:
            raise Fatal(f"{name}: not JSON ({e})")

    def has(self, name):
        return os.path.normpath(name) in self.names


def blob_name(digest):
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest or ""):
        raise Fatal(f"unsupported or malformed digest {digest!r}")
    return "blobs/sha256/" + digest[7:]


def pick_manifest(ar, index, platform):
    want_os, want_arch = platform.split("/", 1)
    for d in index.get("manifests", []):
        mt = d.get("mediaType", "")
        p = d.get("platform") or {}
        if p and (p.get("os"), p.get("architecture")) != (want_os, want_arch):
            continue
        if mt.endswith("image.index.v1+json") or mt.endswith("manifest.list.v2+json"):
            return pick_manifest(ar, ar.json(blob_name(d["digest"])), platform)
        return d
    raise Fatal(f"no image for {platform} in the archive")


def load_oci(ar, platform):
    desc = pick_manifest(ar, ar.json("index.json"), platform)
    manifest = ar.json(blob_name(desc["digest"]))
    config = ar.json(blob_name(manifest["config"]["digest"]))
    layers = [(blob_name(l["digest"]), l.get("mediaType", "")) for l in manifest["layers"]]
    name = (desc.get("annotations") or {}).get("io.containerd.image.name", "")
    return desc["digest"], name, config, layers


def load_docker(ar):
    m = ar.json("manifest.json")
    if not isinstance(m, list) or len(m) != 1:
        raise Fatal("manifest.json must describe exactly one image")
    m = m[0]
    raw = ar.open(m["Config"]).read()
    config = json.loads(raw)
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    name = (m.get("RepoTags") or [""])[0]
    return digest, name, config, [(l, "") for l in m["Layers"]]


def open_layer(ar, name, media_type):
    """A streaming tar reader for the layer (gzip, xz, bzip2 or plain; zstd through zstd)."""
    f = ar.open(name)
    head = f.read(4)
    f.seek(0)
    if head == b"\x28\xb5\x2f\xfd" or "zstd" in media_type:
        try:
            out = subprocess.run(["zstd", "-dc"], input=f.read(), capture_output=True,
                                 check=True)
        except (OSError, subprocess.CalledProcessError):
            raise Fatal(f"{name}: a zstd layer needs the zstd program")
        return tarfile.open(fileobj=io.BytesIO(out.stdout), mode="r:")
    return tarfile.open(fileobj=f, mode="r|*")


def set_attrs(path, m, is_link):
    os.lchown(path, m.uid, m.gid)
    if not is_link:
        os.chmod(path, stat.S_IMODE(m.mode))
    for k, v in (m.pax_headers or {}).items():
        if k.startswith("SCHILY.xattr."):
            try:
                os.setxattr(path, k[13:], v.encode("utf-8", "surrogateescape"),
                            follow_symlinks=False)
            except OSError:
                pass  # an xattr this filesystem cannot hold


def apply_layer(root, tf, dir_times):
    made = set()  # what this layer created: an opaque whiteout keeps it
    for m in tf:
        name = "/".join(parts_of(m.name))
        if ".." in name.split("/"):
            raise Fatal(f"layer member {m.name!r} climbs out of the root")
        if not name:
            if m.isdir():
                dir_times[root] = m.mtime
            continue
        parent, base = os.path.split(name)
        if base == ".wh..wh..opq":
            d = resolve(root, parent, True)
            if os.path.isdir(d):
                for e in os.listdir(d):
                    if os.path.join(parent, e) not in made:
                        remove(os.path.join(d, e))
            continue
        if base.startswith(".wh."):
            remove(resolve(root, os.path.join(parent, base[4:]), False))
            continue
        path = resolve(root, name, False)
        if m.isdir():
            if not os.path.isdir(path) or os.path.islink(path):
                remove(path)
                os.makedirs(path)
            dir_times[path] = m.mtime
        else:
            remove(path)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if m.isreg():
                with open(path, "wb") as out:
                    shutil.copyfileobj(tf.extractfile(m), out)
            elif m.issym():
                os.symlink(m.linkname, path)
            elif m.islnk():
                os.link(resolve(root, m.linkname, False), path, follow_symlinks=False)
            elif m.ischr() or m.isblk():
                kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
                os.mknod(path, kind | 0o600, os.makedev(m.devmajor, m.devminor))
            elif m.isfifo():
                os.mkfifo(path)
            else:
                raise Fatal(f"layer member {m.name!r}: unsupported type {m.type!r}")
        made.add(name)
        if not m.islnk():
            set_attrs(path, m, m.issym())
            if not m.isdir():
                os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)


def lookup(root, file, key, col):
    """The row of /etc/passwd or /etc/group (inside root) whose name or number is key.
    Only a regular file is read: the image's FIFO or device there would hang or read the
    host's."""
    try:
        fd = os.open(resolve(root, file, True), os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        with os.fdopen(fd) as f:
            for line in f:
                row = line.rstrip("\n").split(":")
                if len(row) > col and (row[0] == key or row[2] == key):
                    return row
    except OSError:
        pass
    return None


def user_of(root, spec):
    spec = spec or "0"
    name, _, group = spec.partition(":")
    row = lookup(root, "etc/passwd", name, 3)
    if name.isdigit():
        uid = int(name)
    elif row:
        uid = int(row[2])
    else:
        raise Fatal(f"user {name!r} is not in the image's /etc/passwd")
    gid = int(row[3]) if row and row[3].isdigit() else 0
    if group:
        g = lookup(root, "etc/group", group, 2)
        if group.isdigit():
            gid = int(group)
        elif g:
            gid = int(g[2])
        else:
            raise Fatal(f"group {group!r} is not in the image's /etc/group")
    home = row[5] if row and len(row) > 5 else "/"
    return {"uid": uid, "gid": gid}, home


def runtime_spec(root, cfg, args):
    c = cfg.get("config") or {}
    argv = args or (c.get("Entrypoint") or []) + (c.get("Cmd") or [])
    if not argv:
        raise Fatal("the image has no entrypoint or command; give one after --")
    env = list(c.get("Env") or [])
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_PATH)
    user, home = user_of(root, c.get("User"))
    if not any(e.startswith("HOME=") for e in env):
        env.append("HOME=" + home)
    return {
        "ociVersion": "1.1.0",
        "process": {
            "terminal": False,
            "user": user,
            "args": argv,
            "env": env,
            "cwd": c.get("WorkingDir") or "/",
            "capabilities": {k: list(CAPS) for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": False},
        "mounts": [dict(m) for m in MOUNTS],
        "linux": {
            "resources": {},
            # The VM is the sandbox: its network and hostname are the app's.
            "namespaces": [{"type": t} for t in ("pid", "ipc", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/sched_debug", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }


def check_ready(spec):
    if spec == "start":
        return ""
    kind, _, arg = spec.partition(":")
    if kind == "tcp" and arg.isdigit() and 0 < int(arg) < 65536:
        return spec
    port, slash, path = arg.partition("/")
    if (kind == "http" and port.isdigit() and 0 < int(port) < 65536 and len(path) < 240
            and not any(c.isspace() for c in path)):
        return spec
    if kind == "log" and arg and len(arg) < 256 and "\n" not in arg:
        return spec
    raise Fatal(f"readiness {spec!r}: tcp:PORT (1-65535), http:PORT[/PATH], log:PATTERN "
                "(under 256 bytes) or start")


def default_ready(cfg):
    ports = [p for p in ((cfg.get("config") or {}).get("ExposedPorts") or {})
             if p.endswith("/tcp") or "/" not in p]
    return f"tcp:{ports[0].split('/')[0]}" if len(ports) == 1 else ""


def main(argv):
    args, ready, platform = [], None, "linux/amd64"
    if "--" in argv:
        i = argv.index("--")
        argv, args = argv[:i], argv[i + 1:]
    pos = []
    it = iter(argv)
    for a in it:
        if a == "--ready":
            ready = next(it, None)
        elif a == "--platform":
            platform = next(it, "")
        else:
            pos.append(a)
    if len(pos) != 2 or ready == "" or "/" not in platform:
        raise Fatal(__doc__.strip().splitlines()[2].strip())
    image, out = pos
    ar = Archive(image)
    if ar.has("index.json"):
        digest, name, cfg, layers = load_oci(ar, platform)
    elif ar.has("manifest.json"):
        digest, name, cfg, layers = load_docker(ar)
    else:
        raise Fatal(f"{image}: neither an OCI layout (index.json) nor a docker archive")
    root = os.path.join(out, "rootfs")
    os.makedirs(root)
    os.chmod(root, 0o755)
    dir_times = {}
    for n, (blob, mt) in enumerate(layers):
        try:
            with open_layer(ar, blob, mt) as tf:
                apply_layer(root, tf, dir_times)
        except (tarfile.TarError, EOFError, OSError) as e:
            raise Fatal(f"layer {n + 1} ({blob}): {e}")
    for path in sorted(dir_times, key=len, reverse=True):
        if os.path.isdir(path):
            os.utime(path, (dir_times[path], dir_times[path]), follow_symlinks=False)
    spec = runtime_spec(root, cfg, args)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(spec, f, indent=1)
    ready = check_ready(ready) if ready else default_ready(cfg)
    if ready:
        with open(os.path.join(out, "ready"), "w") as f:
            f.write(ready + "\n")
    # The same image gives the same bundle, byte for byte: its disk image then hashes the
    # same and keeps its snapshot.
    for p in ("config.json", "ready", "."):
        if os.path.exists(os.path.join(out, p)):
            os.utime(os.path.join(out, p), (0, 0))
    if root not in dir_times:
        os.utime(root, (0, 0))
    json.dump({"digest": digest, "name": name, "args": spec["process"]["args"],
               "ready": ready}, sys.stdout)
    print()


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Fatal as e:
        print(f"oci2bundle: fatal: {e}", file=sys.stderr)
        sys.exit(1)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as e:
        print(f"oci2bundle: fatal: malformed image metadata ({e!r})", file=sys.stderr)
        sys.exit(1)
