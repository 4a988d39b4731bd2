"""The shared, read-only Debian root filesystem every sandbox node boots from, built once and cached."""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import os
import shutil
import time
from pathlib import Path

from kubeboot.sandbox.host import run
from kubeboot.sandbox.state import cache_root

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# What a freshly installed minimal server has, and nothing Kubernetes-specific: the roles install the rest.
# python3-grpcio: the test stand-in kubelet speaks CRI (gRPC) to containerd with it. The list is part of the cache
# key: changing it builds a new root filesystem.
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "iproute2", "sudo", "kmod",
    "procps", "iputils-ping", "ca-certificates", "less", "python3-grpcio",
)
PREPARE_VERSION = "1"  # bump when prepare() changes what it writes

# Kernel options that, when built in (=y), make `modprobe NAME` succeed on a real host with this kernel.
BUILTIN_MODULES = {
    "CONFIG_BRIDGE": "kernel/net/bridge/bridge.ko",
    "CONFIG_BRIDGE_NETFILTER": "kernel/net/bridge/br_netfilter.ko",
    "CONFIG_OVERLAY_FS": "kernel/fs/overlayfs/overlay.ko",
    "CONFIG_VXLAN": "kernel/drivers/net/vxlan/vxlan.ko",
    "CONFIG_VETH": "kernel/drivers/net/veth.ko",
    "CONFIG_MACVLAN": "kernel/drivers/net/macvlan.ko",
    "CONFIG_TUN": "kernel/drivers/net/tun.ko",
    "CONFIG_DUMMY": "kernel/drivers/net/dummy.ko",
    "CONFIG_NET_IPIP": "kernel/net/ipv4/ipip.ko",
    "CONFIG_NF_CONNTRACK": "kernel/net/netfilter/nf_conntrack.ko",
    "CONFIG_NF_NAT": "kernel/net/netfilter/nf_nat.ko",
    "CONFIG_NF_TABLES": "kernel/net/netfilter/nf_tables.ko",
    "CONFIG_IP_SET": "kernel/net/netfilter/ipset/ip_set.ko",
    "CONFIG_IP_NF_IPTABLES": "kernel/net/ipv4/netfilter/ip_tables.ko",
    "CONFIG_IP_NF_FILTER": "kernel/net/ipv4/netfilter/iptable_filter.ko",
    "CONFIG_IP_NF_NAT": "kernel/net/ipv4/netfilter/iptable_nat.ko",
    "CONFIG_IP_NF_MANGLE": "kernel/net/ipv4/netfilter/iptable_mangle.ko",
    "CONFIG_IP_VS": "kernel/net/netfilter/ipvs/ip_vs.ko",
    "CONFIG_IP_VS_RR": "kernel/net/netfilter/ipvs/ip_vs_rr.ko",
    "CONFIG_IP_VS_WRR": "kernel/net/netfilter/ipvs/ip_vs_wrr.ko",
    "CONFIG_IP_VS_SH": "kernel/net/netfilter/ipvs/ip_vs_sh.ko",
    "CONFIG_IP_VS_WLC": "kernel/net/netfilter/ipvs/ip_vs_wlc.ko",
    "CONFIG_NFSD": "kernel/fs/nfsd/nfsd.ko",
    "CONFIG_NFS_FS": "kernel/fs/nfs/nfs.ko",
    "CONFIG_NFS_V4": "kernel/fs/nfs/nfsv4.ko",
    "CONFIG_SUNRPC": "kernel/net/sunrpc/sunrpc.ko",
}


def kernel_builtin_modules() -> list[str]:
    """modules.builtin lines for this host's kernel, from /proc/config.gz (empty when it is absent)."""
    config = Path("/proc/config.gz")
    if not config.exists():
        return []
    enabled = {
        line.split("=", 1)[0]
        for line in gzip.decompress(config.read_bytes()).decode().splitlines()
        if line.endswith("=y")
    }
    return sorted(path for option, path in BUILTIN_MODULES.items() if option in enabled)


def cache_key(mirror: str) -> str:
    text = "\n".join([SUITE, mirror, PREPARE_VERSION, os.uname().release, *PACKAGES, *kernel_builtin_modules()])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def rootfs_path(mirror: str = DEFAULT_MIRROR) -> Path:
    return cache_root() / "rootfs" / f"{SUITE}-{cache_key(mirror)}"


def ensure_rootfs(mirror: str = DEFAULT_MIRROR, log: Path | None = None) -> tuple[Path, float]:
    """Return the cached rootfs, building it first when missing; the float is the build time (0 if cached)."""
    target = rootfs_path(mirror)
    stamp = target / ".kubeboot-complete"
    if stamp.exists():
        return target, 0.0
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists():
            return target, 0.0
        started = time.monotonic()
        work = target.with_name(target.name + ".partial")
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        args = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(work), mirror]
        try:
            output = run(args, timeout=1800)
            if log is not None:
                log.write_text(output)
            prepare(work)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        (work / ".kubeboot-complete").write_text(f"{SUITE} {mirror}\n")
        work.rename(target)
        _drop_stale(target)
        return target, time.monotonic() - started


def _drop_stale(current: Path) -> None:
    """Remove older cached root filesystems (a different key) so the cache does not grow without bound; one that a
    running node still mounts (as its overlay's lower layer) stays until a later build."""
    for other in current.parent.glob(f"{SUITE}-*"):
        if other != current and other.is_dir() and not other.name.endswith(".partial") and not _in_use(other):
            shutil.rmtree(other, ignore_errors=True)


def _in_use(root: Path) -> bool:
    """True when an overlay mount on this host has `root` as a lower layer."""
    lower = f"lowerdir={root}"
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[2] == "overlay" and any(
            option == lower or option.startswith(lower + ":") for option in fields[3].split(",")
        ):
            return True
    return False


def prepare(root: Path) -> None:
    """Turn a fresh debootstrap into a template: no identity of its own, networkd on, kernel modules known."""
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    dbus_id = root / "var/lib/dbus/machine-id"
    if dbus_id.exists() or dbus_id.is_symlink():
        dbus_id.unlink()
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    _link(wants / "systemd-networkd.service", "/lib/systemd/system/systemd-networkd.service")
    sockets = root / "etc/systemd/system/sockets.target.wants"
    sockets.mkdir(parents=True, exist_ok=True)
    _link(sockets / "systemd-networkd.socket", "/lib/systemd/system/systemd-networkd.socket")
    for archive in (root / "var/cache/apt/archives").glob("*.deb"):
        archive.unlink()
    for listing in (root / "var/lib/apt/lists").glob("*_*"):
        listing.unlink()
    release = os.uname().release
    modules = root / "lib/modules" / release
    modules.mkdir(parents=True, exist_ok=True)
    (modules / "modules.builtin").write_text("".join(f"{line}\n" for line in kernel_builtin_modules()))
    (modules / "modules.order").write_text("")
    (modules / "modules.builtin.modinfo").write_text("")
    run(["chroot", str(root), "depmod", release])


def _link(path: Path, target: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    path.symlink_to(target)
