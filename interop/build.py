"""Build the kernel peer: a Debian cloud kernel and a busybox initramfs, cached.

The host kernel has no l2tp, so the peer is a Linux kernel booted under QEMU (TCG). The
kernel comes from Debian's ``linux-image-cloud-amd64`` metapackage resolved to the real
image package, fetched with ``apt-get download`` and unpacked with ``dpkg -x`` (never
installed). The initramfs holds static busybox, iproute2's ``ip`` with the shared
libraries ``ldd`` names, and the l2tp and virtio modules with their dependencies, loaded
in dependency order by /init. Every step is skipped when its output already exists.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from interop.guest import INIT_SCRIPT

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("L2TPV3_INTEROP_CACHE", REPO / "build" / "interop"))
METAPACKAGE = "linux-image-cloud-amd64"
# What the VM needs: the l2tp family for the kernel peer, virtio for its NIC.
MODULES = (
    "virtio_pci", "virtio_net",
    "l2tp_core", "l2tp_netlink", "l2tp_eth", "l2tp_ip", "l2tp_ip6", "l2tp_debugfs",
    "sch_netem",  # to reorder what the kernel sends (tests of our sequencer)
    # ESP (issue 9): xfrm and the algorithms of `ip xfrm state`, loaded by hand (the
    # guest has no modprobe); xfrm SAs also need drbg and jitterentropy_rng.
    "xfrm_user", "esp4", "esp6", "authenc", "authencesn", "seqiv", "echainiv",
    "ctr", "ghash_generic", "gcm", "chacha_generic", "poly1305_generic", "chacha20poly1305",
    "jitterentropy_rng", "drbg",
    # per-VLAN sessions (issue 10): the man page's l2tpeth0.5 in brvlan5, kernel side
    "8021q", "bridge",
)  # fmt: skip
# iproute2 binaries copied in with their shared libraries (busybox has weaker ones).
IPROUTE2 = ("ip", "tc")
HOST_TOOLS = ("apt-get", "apt-cache", "dpkg", "ldd", "qemu-system-x86_64", "gcc")
# Small static helpers compiled for the guest (source in interop/tools/).
GUEST_TOOLS = ("l2tpstats", "espinudp")
TOOLS_SRC = Path(__file__).resolve().parent / "tools"


@dataclass(frozen=True)
class Artifacts:
    kernel: Path
    initrd: Path
    release: str  # e.g. 6.1.0-56-cloud-amd64
    package: str  # the image package and version it came from


class BuildError(Exception):
    pass


def _run(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def image_package() -> str:
    """The real image package behind the metapackage (linux-image-<abi>-cloud-amd64)."""
    out = _run("apt-cache", "depends", METAPACKAGE)
    found: list[str] = re.findall(r"Depends:\s+(linux-image-\S+-cloud-amd64)\b", out)
    if not found:
        raise BuildError(f"{METAPACKAGE} resolves to no image package (apt-get update?)")
    return found[0]


def _unpack_kernel(root: Path) -> tuple[Path, str, str]:
    pkg = image_package()
    debdir = CACHE / "deb"
    debdir.mkdir(parents=True, exist_ok=True)
    debs = sorted(debdir.glob(f"{pkg}_*.deb"))
    if not debs:
        _run("apt-get", "download", "-q", pkg, cwd=debdir)
        debs = sorted(debdir.glob(f"{pkg}_*.deb"))
    if not debs:
        raise BuildError(f"apt-get download {pkg} produced no .deb")
    deb = debs[-1]
    if not (root / "boot").is_dir():
        _run("dpkg", "-x", str(deb), str(root))
    vmlinuz = sorted((root / "boot").glob("vmlinuz-*"))
    if not vmlinuz:
        raise BuildError(f"{deb.name} holds no vmlinuz")
    release = vmlinuz[0].name.removeprefix("vmlinuz-")
    return vmlinuz[0], release, deb.name.removesuffix(".deb")


def _module_paths(moddir: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for ko in moddir.rglob("*.ko*"):
        found[ko.name.split(".ko")[0].replace("-", "_")] = ko
    return found


def _depends(ko: Path) -> list[str]:
    # The .modinfo section holds NUL-separated key=value strings; depends= lists what
    # must be loaded first (what modules.dep would say, without needing depmod).
    data = ko.read_bytes()
    if ko.suffix == ".xz" or ko.suffix == ".zst":
        raise BuildError(f"{ko.name}: compressed modules are not supported")
    m = re.search(rb"\0depends=([^\0]*)\0", data)
    if m is None:
        return []
    return [d.decode() for d in m.group(1).split(b",") if d]


def module_order(moddir: Path, wanted: tuple[str, ...] = MODULES) -> list[Path]:
    """Modules and their dependencies, each after everything it depends on."""
    paths = _module_paths(moddir)
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        if name not in paths:
            # Built into this kernel: nothing to load.
            builtin = moddir.parent / "modules.builtin"
            if builtin.exists() and f"/{name}.ko" in builtin.read_text():
                return
            raise BuildError(f"module {name} is neither in the package nor built in")
        for dep in _depends(paths[name]):
            visit(dep)
        order.append(paths[name])

    for name in wanted:
        visit(name)
    return order


def _shared_libs(binary: str) -> list[Path]:
    libs = []
    for line in _run("ldd", binary).splitlines():
        m = re.search(r"(/\S+)\s+\(0x", line)
        if m:
            libs.append(Path(m.group(1)))
    return libs


class _Cpio:
    """Minimal writer for the "newc" format the kernel unpacks as initramfs."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1
        self.dirs: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes = b"") -> None:
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
        self.ino += 1
        hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.buf.write(hdr + name.encode() + b"\0")
        self.buf.write(b"\0" * (-(len(hdr) + len(name) + 1) % 4))
        self.buf.write(data + b"\0" * (-len(data) % 4))

    def mkdir(self, name: str) -> None:
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self.dirs:
                self.dirs.add(d)
                self._entry(d, 0o040755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        name = name.strip("/")
        if "/" in name:
            self.mkdir(name.rsplit("/", 1)[0])
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name: str, target: str) -> None:
        name = name.strip("/")
        if "/" in name:
            self.mkdir(name.rsplit("/", 1)[0])
        self._entry(name, 0o120777, target.encode())

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def compile_guest_tools() -> dict[str, Path]:
    """Static binaries of interop/tools/*.c (rebuilt when the source changes)."""
    out = {}
    for name in GUEST_TOOLS:
        src = TOOLS_SRC / f"{name}.c"
        binary = CACHE / name
        stamp = CACHE / f"{name}.src"
        if not binary.exists() or not stamp.exists() or stamp.read_bytes() != src.read_bytes():
            CACHE.mkdir(parents=True, exist_ok=True)
            try:
                _run("gcc", "-static", "-O2", "-Wall", "-o", str(binary), str(src))
            except BuildError as exc:
                raise BuildError(f"{exc} (needs gcc and libc6-dev)") from None
            stamp.write_bytes(src.read_bytes())
        out[name] = binary
    return out


def make_initramfs(moddir: Path, busybox: str, tools: dict[str, str]) -> tuple[bytes, list[str]]:
    cpio = _Cpio()
    for d in ("dev", "proc", "sys", "tmp", "bin", "sbin", "etc", "root"):
        cpio.mkdir(d)
    cpio.file("bin/busybox", Path(busybox).read_bytes(), 0o755)
    for name, binary in compile_guest_tools().items():
        cpio.file(f"sbin/{name}", binary.read_bytes(), 0o755)
    libs: set[Path] = set()
    for name, path in tools.items():
        cpio.file(f"sbin/{name}", Path(path).read_bytes(), 0o755)
        libs.update(_shared_libs(path))
    for lib in sorted(libs):
        real = lib.resolve()
        cpio.file(str(lib), real.read_bytes(), 0o755)
        if str(lib).startswith("/lib/"):
            # Merged-/usr hosts resolve /lib through /usr/lib; keep both spellings.
            cpio.file("usr" + str(lib), real.read_bytes(), 0o755)
    order = module_order(moddir)
    names = []
    for ko in order:
        cpio.file(f"lib/modules/{ko.name}", ko.read_bytes())
        names.append(ko.name)
    cpio.file("etc/modules.order", ("\n".join(names) + "\n").encode())
    cpio.file("init", INIT_SCRIPT.encode(), 0o755)
    return gzip.compress(cpio.finish(), compresslevel=6, mtime=0), names


def build(verbose: bool = False) -> Artifacts:
    """Fetch and unpack the kernel, write the initramfs; reuse what is already built."""
    missing = [t for t in HOST_TOOLS if shutil.which(t) is None]
    busybox = next((p for p in ("/bin/busybox", "/usr/bin/busybox") if os.path.exists(p)), None)
    tools = {
        name: shutil.which(name) or shutil.which(name, path="/sbin:/usr/sbin") for name in IPROUTE2
    }
    if busybox is None:
        missing.append("busybox (busybox-static)")
    missing += [f"{name} (iproute2)" for name, path in tools.items() if path is None]
    if missing:
        raise BuildError("missing host tools: " + ", ".join(missing))
    assert busybox is not None
    if subprocess.run(["ldd", busybox], capture_output=True).returncode == 0:
        raise BuildError(f"{busybox} is dynamically linked: install busybox-static")
    root = CACHE / "root"
    kernel, release, package = _unpack_kernel(root)
    initrd = CACHE / f"initrd-{release}.img"
    stamp = CACHE / f"initrd-{release}.stamp"
    sources = "".join((TOOLS_SRC / f"{n}.c").read_text() for n in GUEST_TOOLS)
    inputs = f"{package}\n{INIT_SCRIPT}\n{MODULES}\n{IPROUTE2}\n{sources}"
    if not initrd.exists() or not stamp.exists() or stamp.read_text() != inputs:
        moddir = root / "lib" / "modules" / release / "kernel"
        data, names = make_initramfs(moddir, busybox, {n: str(p) for n, p in tools.items()})
        tmp = initrd.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(initrd)
        stamp.write_text(inputs)
        if verbose:
            print(f"initramfs {initrd} ({len(data)} bytes), modules: {' '.join(names)}")
    if verbose:
        print(f"kernel {kernel} from {package}", file=sys.stderr)
    return Artifacts(kernel=kernel, initrd=initrd, release=release, package=package)
